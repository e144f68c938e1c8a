"""The OpenVINO backend on its CPU device: the same vectors as onnxruntime (within what the
package's quantisation allows), the same input contract and errors, and length buckets
compiled once each and kept in the on-disk model cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

from conftest import assert_one_line_error, cosines, cpu_note, edgembed
from edgembed import EdgembedError, Encoder
from edgembed.errors import ModelLoadError
from edgembed.extras import MissingExtraError

pytest.importorskip("openvino", reason="the openvino extra: pip install 'edgembed[openvino]'")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test compiles into its own cache folder, so none finds another's blobs."""
    cache = tmp_path / "ov-cache"
    monkeypatch.setenv("EDGEMBED_OPENVINO_CACHE", str(cache))
    return cache


# ------------------------------------------------------------------ without torch

def test_default_package_is_refused_naming_the_ops_and_the_variants_that_work():
    with pytest.raises(ModelLoadError) as caught:
        Encoder.load(backend="openvino")
    message = str(caught.value)
    assert "MatMulIntegerToFloat" in message
    assert "int8-static" in message and "--quantize none" in message
    assert "backend='onnxruntime'" in message
    assert len(message.splitlines()) == 1


def test_unknown_device_lists_the_available_ones():
    with pytest.raises(EdgembedError, match=r"device 'TPU' is not available.*available: CPU"):
        Encoder.load(backend="openvino", device="TPU")
    with pytest.raises(EdgembedError, match="device must be a string"):
        Encoder.load(backend="openvino", device=0)


@pytest.mark.parametrize(("options", "fragment"), [
    ({"backend": "tensorrt"}, "backend must be one of onnxruntime, openvino"),
    ({"backend": "openvino", "providers": ["CPUExecutionProvider"]},
     "providers= is for backend='onnxruntime'"),
    ({"device": "CPU"}, "device= and static_buckets= are for backend='openvino'"),
    ({"static_buckets": True}, "device= and static_buckets= are for backend='openvino'"),
    ({"backend": "openvino", "static_buckets": [0, 64]}, "static_buckets must be"),
    ({"backend": "openvino", "static_buckets": "64"}, "static_buckets must be"),
    ({"backend": "openvino", "threads": 0}, "threads must be an integer"),
])
def test_bad_backend_options_are_refused(options, fragment):
    with pytest.raises(EdgembedError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Encoder.load(**options)


def test_missing_openvino_names_the_extra():
    code = """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "openvino":
                    raise ModuleNotFoundError("blocked", name="openvino")
        sys.meta_path.insert(0, Block())
        from edgembed import Encoder
        from edgembed.extras import MissingExtraError
        try:
            Encoder.load(backend="openvino")
        except MissingExtraError as exc:
            print(exc)
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("pip install 'edgembed[openvino]'"), result.stdout
    assert issubclass(MissingExtraError, EdgembedError)


def test_loading_sends_no_telemetry():
    """Importing openvino starts Intel's usage telemetry (Google Analytics, opt-out):
    edgembed imports it with the telemetry package hidden, so nothing leaves the machine,
    not even from the process openvino-telemetry forks to send."""
    code = """
        import socket, sys, time
        def refuse(*args, **kwargs):
            print("NETWORK", args[:1], file=sys.stderr, flush=True)
            raise OSError("blocked")
        socket.getaddrinfo = refuse
        socket.socket.connect = refuse
        from edgembed import Encoder
        from edgembed.errors import ModelLoadError
        try:
            Encoder.load(backend="openvino")
        except ModelLoadError:
            pass
        import openvino.tools.ovc.telemetry_utils as telemetry
        print(telemetry.tm.__name__)
        time.sleep(1)  # openvino-telemetry sends from a thread, then a forked process
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "NETWORK" not in result.stderr, result.stderr
    assert result.stdout.strip() == "openvino.tools.ovc.telemetry_stub"


def test_cli_refuses_the_default_package_in_one_line():
    result = edgembed("embed", "--backend", "openvino", stdin="hello\n")
    assert_one_line_error(result, "OpenVINO cannot read", "int8-static")
    result = edgembed("embed", "--backend", "openvino", "--device", "TPU", stdin="hello\n")
    assert_one_line_error(result, "device 'TPU' is not available")


def test_cache_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    from edgembed.openvino_session import cache_dir

    monkeypatch.delenv("EDGEMBED_OPENVINO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "edgembed" / "openvino"


# ------------------------------------------------------- on exported MiniLM packages

@pytest.fixture(scope="module")
def reference(fp32_package, sentences):
    """onnxruntime's vectors of the fp32 package."""
    return Encoder.load(fp32_package).encode(sentences)


@pytest.mark.slow
@pytest.mark.parametrize("buckets", [None, True])
def test_fp32_vectors_match_onnxruntime(fp32_package, sentences, reference, buckets):
    """fp32 on both backends: the same arithmetic in another order (and, with buckets, more
    padding, which the attention mask hides)."""
    encoder = Encoder.load(fp32_package, backend="openvino", static_buckets=buckets)
    agreement = cosines(encoder.encode(sentences), reference)
    assert agreement.min() >= 0.9999, (agreement.min(), cpu_note())


@pytest.fixture(scope="module")
def int8_static_package(tmp_path_factory, minilm_source):
    from edgembed.export import ExportOptions, export_model

    output = tmp_path_factory.mktemp("packages") / "minilm-int8-static"
    export_model(minilm_source, output, ExportOptions(quantize="int8-static", validate=False))
    return output


@pytest.mark.slow
def test_int8_static_keeps_its_quality(int8_static_package, sentences, reference):
    """A QDQ package runs on OpenVINO's own int8 kernels, which round differently from
    onnxruntime's (single vectors move by a few hundredths): what must hold is the
    package's quality, its mean cosine to fp32, as onnxruntime runs it. 0.01 of slack:
    int8 kernels differ between AVX2 and AVX-512 VNNI CPUs, on both backends."""
    expected = cosines(Encoder.load(int8_static_package).encode(sentences), reference).mean()
    vectors = Encoder.load(int8_static_package, backend="openvino").encode(sentences)
    agreement = cosines(vectors, reference)
    assert agreement.mean() >= expected - 0.01, (agreement.mean(), expected, cpu_note())


@pytest.fixture(scope="module")
def openvino_fp32(fp32_package):
    return Encoder.load(fp32_package, backend="openvino", threads=1)


@pytest.mark.slow
def test_input_contract_holds(openvino_fp32, fp32_package, sentences):
    encoder = openvino_fp32
    assert encoder.encode([]).shape == (0, 384)
    assert encoder.encode("one text").shape == (384,)
    texts = ["", sentences[0], "short", sentences[5] * 3, "", "short", "\x00\u202e🙂", "a " * 400]
    batched = encoder.encode(texts, batch_size=3)
    one_by_one = np.stack([encoder.encode([text])[0] for text in texts])
    assert np.allclose(batched, one_by_one, atol=1e-5)
    # the same text in two passes of different padded widths: equal up to float rounding
    assert np.allclose(batched[0], batched[4], atol=1e-6)
    assert np.allclose(batched[2], batched[5], atol=1e-6)
    assert cosines(batched, Encoder.load(fp32_package).encode(texts)).min() >= 0.9999
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoder.encode(["word " * 100_000])
    assert "were cut before tokenizing" in str(caught[0].message)
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        encoder.encode(["fine", None])
    with pytest.raises(EdgembedError, match="batch_size"):
        encoder.encode(["x"], batch_size=0)
    assert encoder.encode(["x"], precision="ubinary").shape == (1, 48)


@pytest.mark.slow
def test_threads_setting_reaches_openvino(openvino_fp32):
    compiled = openvino_fp32.session._compiled[None]
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1


@pytest.mark.slow
def test_concurrent_callers_get_their_own_rows(openvino_fp32, sentences):
    expected = openvino_fp32.encode(sentences[:40])
    results: dict[int, np.ndarray] = {}

    def work(start: int) -> None:
        results[start] = openvino_fp32.encode(sentences[start:start + 10])

    threads = [threading.Thread(target=work, args=(start,)) for start in range(0, 40, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = np.concatenate([results[start] for start in range(0, 40, 10)])
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.slow
def test_length_buckets_compile_once_each_and_fill_the_cache(fp32_package, private_cache,
                                                             sentences, reference):
    encoder = Encoder.load(fp32_package, backend="openvino", static_buckets=[16, 64])
    assert encoder.session.compiled_shapes == []  # compiled lazily, on first use
    counts = encoder.count_tokens(sentences)
    medium = next(text for text, count in zip(sentences, counts, strict=True)
                  if 16 < count <= 64)
    short, long = "a short one", " ".join(sentences[:12])
    encoder.encode([short], batch_size=1)
    encoder.encode([medium, short, medium], batch_size=4)
    assert encoder.session.compiled_shapes == [(1, 16), (4, 64)]
    again = encoder.encode([medium, short, medium], batch_size=4)
    encoder.encode([short], batch_size=1)
    assert encoder.session.compiled_shapes == [(1, 16), (4, 64)]  # reused, not recompiled
    encoder.encode([long], batch_size=1)  # beyond the largest bucket: its own length
    assert encoder.session.compiled_shapes[-1][1] > 64
    blobs = list(private_cache.glob("*.blob"))
    assert len(blobs) == 3, sorted(os.listdir(private_cache))
    index = [sentences.index(medium)]
    assert cosines(again[:1], reference[index]).min() >= 0.9999

    # a new encoder (as a new process would) reads the compiled buckets from the cache
    reloaded = Encoder.load(fp32_package, backend="openvino", static_buckets=[16, 64])
    assert np.allclose(reloaded.encode([medium, short, medium], batch_size=4), again,
                       atol=1e-5)
    assert len(list(private_cache.glob("*.blob"))) == 3
    assert Encoder.load(fp32_package, backend="openvino",
                        static_buckets=False).session.buckets is None


@pytest.fixture(scope="module")
def static_package(tmp_path_factory, minilm_source):
    from edgembed.export import ExportOptions, export_model

    output = tmp_path_factory.mktemp("packages") / "minilm-fp32-2x32"
    export_model(minilm_source, output,
                 ExportOptions(quantize="none", static_shape="2x32", validate=False))
    return output


@pytest.mark.slow
def test_static_shape_package_compiles_once(static_package, fp32_package, sentences):
    encoder = Encoder.load(static_package, backend="openvino", static_buckets=True)
    assert encoder.session.buckets is None  # fixed shapes need no buckets
    texts = sentences[:5] + ["x"]
    vectors = encoder.encode(texts)
    assert list(encoder.session._compiled) == [None]
    expected = Encoder.load(static_package).encode(texts)
    assert cosines(vectors, expected).min() >= 0.9999


def test_cli_device_needs_the_openvino_backend():
    result = edgembed("embed", "--device", "CPU", stdin="hello\n")
    assert_one_line_error(result, "--device is for --backend openvino")


@pytest.mark.slow
def test_cli_embeds_and_searches_on_openvino(fp32_package, tmp_path):
    import json

    result = edgembed("embed", "--model", str(fp32_package), "--backend", "openvino",
                      "--device", "CPU", stdin="water boils at 100 degrees\n")
    assert result.returncode == 0, result.stderr
    vector = np.array([json.loads(result.stdout)["embedding"]], dtype=np.float32)
    expected = Encoder.load(fp32_package).encode(["water boils at 100 degrees"])
    assert cosines(vector, expected)[0] >= 0.9999

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "water.txt").write_text("Water boils at 100 degrees Celsius at sea level.")
    (docs / "bread.txt").write_text("Sourdough bread needs a lively starter.")
    index = str(tmp_path / "index")
    built = edgembed("index", str(docs), "--index", index, "--model", str(fp32_package),
                     "--backend", "openvino")
    assert built.returncode == 0, built.stderr
    # without --model, the index's own package is loaded on the chosen backend
    found = edgembed("search", "when does water boil", "--index", index, "--mode", "dense",
                     "--backend", "openvino", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["file"].endswith("water.txt")


@pytest.mark.slow
def test_server_loads_its_encoder_on_openvino(fp32_package, tmp_path):
    pytest.importorskip("starlette")
    from edgembed import Index
    from edgembed.serve.app import load

    encoder, index = load(str(fp32_package), backend="openvino", device="CPU", threads=1)
    assert index is None and encoder.backend == "openvino"
    assert encoder.session.device == "CPU"

    built = Index.create(tmp_path / "index", Encoder.load(fp32_package))
    built.add(["Water boils at 100 degrees Celsius.", "Bread needs a starter."])
    built.save()
    built.close()
    # without a model, the index's own package is loaded on the chosen backend
    encoder, index = load(None, str(tmp_path / "index"), backend="openvino")
    try:
        assert encoder.backend == "openvino" and encoder.path == fp32_package
        assert index.search("when does water boil", k=1)[0].text.startswith("Water")
    finally:
        index.close()


@pytest.mark.slow
def test_openvino_backend_runs_without_torch(fp32_package):
    """The slim runtime plus the openvino extra: no torch, transformers or onnx needed."""
    code = f"""
        import sys
        heavy = ("torch", "transformers", "optimum", "sentence_transformers", "onnx")
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in heavy:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from edgembed import Encoder
        vectors = Encoder.load({str(fp32_package)!r}, backend="openvino").encode(["hi"])
        assert vectors.shape == (1, 384), vectors.shape
        print([name for name in heavy if name in sys.modules])
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
