"""A bounded corpus of broken packages, made in tmp_path from the real default package:
every one must give a one-line edgembed error (at load, or at the first encode when only
running the model can tell), never a KeyError, TypeError or onnxruntime traceback."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgembed import EdgembedError, Encoder, PackageError, default_package_path
from edgembed.package import sha256_file

LONG_TEXT = "word " * 2000


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A private copy of the default package; cases hard-link to it, so every mutation
    below replaces a file (unlink, then write) instead of writing through the link."""
    target = tmp_path_factory.mktemp("pristine") / "pkg"
    shutil.copytree(default_package_path(), target)
    return target


def clone(pristine: Path, where: Path) -> Path:
    shutil.copytree(pristine, where, copy_function=os.link)
    return where


def replace(path: Path, data: bytes | str | None) -> None:
    """Swap a file for new content (None: a directory of that name)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data.encode() if isinstance(data, str) else data)


def manifest_of(package: Path) -> dict:
    return json.loads((package / "manifest.json").read_text())


def write_manifest(package: Path, manifest: dict) -> None:
    replace(package / "manifest.json", json.dumps(manifest))


def refresh_checksum(package: Path, name: str) -> None:
    """Record a damaged file's real sha256, so that the loader behind the check runs."""
    manifest = manifest_of(package)
    if (package / name).is_file():
        manifest["files"][name]["sha256"] = sha256_file(package / name)
    write_manifest(package, manifest)


def outcome(path, verify: bool = True) -> tuple[str, Exception | None]:
    """Where the package fails: "load", "encode" or "ok"; any other exception escapes."""
    try:
        encoder = Encoder.load(path, verify=verify)
    except PackageError as exc:
        return "load", exc
    try:
        encoder.encode(["a short text", "", LONG_TEXT])
        encoder.encode("int8 too", precision="int8")
    except EdgembedError as exc:
        return "encode", exc
    return "ok", None


def assert_clean(stage: str, exc: Exception | None, expected_stage: str, match: str) -> None:
    assert stage == expected_stage, (stage, exc)
    if exc is not None:
        message = str(exc)
        assert "\n" not in message and "Traceback" not in message, message
        assert match.lower() in message.lower(), message


def set_field(path: tuple, value) -> Callable[[dict], None]:
    def mutate(manifest: dict) -> None:
        node = manifest
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return mutate


DELETE = object()
RANGES = {"lo": [-0.2] * 384, "hi": [0.2] * 384}

MANIFEST_CASES = [  # (field path, bad value, words the error must contain)
    (("dim",), "abc", "dim"), (("dim",), -1, "dim"), (("dim",), 0, "dim"),
    (("dim",), 1.5, "dim"), (("dim",), True, "dim"), (("dim",), None, "dim"),
    (("dim",), [384], "dim"), (("dim",), 383, "output"), (("dim",), 10**30, "output"),
    (("max_seq_length",), -1, "max_seq_length"), (("max_seq_length",), 0, "max_seq_length"),
    (("max_seq_length",), "256", "max_seq_length"), (("max_seq_length",), 256.0, "max_seq"),
    (("max_seq_length",), 10**12, "max_seq_length"), (("max_seq_length",), 1, "no room"),
    (("prefixes",), 5, "prefixes"), (("prefixes",), "query: ", "prefixes"),
    (("prefixes",), ["query: "], "prefixes"), (("prefixes", "query"), 5, "prefixes"),
    (("prefixes", "document"), {"a": 1}, "prefixes"),
    (("name",), 5, "name"), (("name",), "", "name"), (("name",), None, "name"),
    (("pooling",), 5, "pooling"), (("normalized",), "yes", "normalized"),
    (("normalized",), 1, "normalized"), (("output",), 5, "output"), (("output",), "", "output"),
    (("output",), "no_such_output", "no output"),
    (("files",), [], "files"), (("files",), "model.onnx", "files"), (("files",), {}, "model.onnx"),
    (("files", "model.onnx"), "abc", "sha256"), (("files", "model.onnx"), {}, "sha256"),
    (("files", "model.onnx", "sha256"), 5, "sha256"),
    (("files", "model.onnx", "sha256"), "zz", "sha256"),
    (("files", "model.onnx", "bytes"), -1, "bytes"),
    (("files", "../../../etc/passwd"), {"sha256": "0" * 64}, "plain file name"),
    (("files", "/etc/passwd"), {"sha256": "0" * 64}, "plain file name"),
    (("files", "tokenizer.json"), DELETE, "tokenizer.json"),
    (("calibration",), "x", "calibration"), (("calibration", "int8"), 5, "calibration"),
    (("calibration", "int8"), {"lo": "a", "hi": "b"}, "calibration"),
    (("calibration", "int8"), {"lo": [0.0] * 3, "hi": [1.0] * 3}, "calibration"),
    (("calibration", "int8"), {"lo": [0.0] * 384}, "calibration"),
    (("calibration", "int8"), {**RANGES, "lo": [float("nan")] * 384}, "calibration"),
    (("calibration", "int8"), {"lo": RANGES["hi"], "hi": RANGES["lo"]}, "calibration"),
    (("quantization",), 5, "quantization"), (("source",), [], "source"),
    (("format",), "other", "format"), (("format",), DELETE, "format"),
    (("format_version",), "1", "format_version"), (("format_version",), True, "format_version"),
    (("format_version",), 2, "format_version"), (("format_version",), DELETE, "format_version"),
    (("dim",), DELETE, "dim"), (("files",), DELETE, "files"), (("normalized",), DELETE, "normal"),
]


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize(("path", "value", "words"), MANIFEST_CASES,
                         ids=[f"{'.'.join(c[0])}={c[1]!r:.20}" for c in MANIFEST_CASES])
def test_bad_manifest_field(pristine, tmp_path, path, value, words, verify):
    package = clone(pristine, tmp_path / "pkg")
    manifest = manifest_of(package)
    set_field(path, value)(manifest)
    write_manifest(package, manifest)
    assert_clean(*outcome(package, verify), "load", words)


MANIFEST_FILES = {  # whole manifest.json contents
    "empty": b"", "null": b"null", "list": b"[]", "number": b"384", "truncated": b'{"format": "ed',
    "not utf-8": b"\xff\xfe\x00garbage\x80", "deeply nested": b"[" * 100_000,
    "NaN dim": None, "huge exponent": None, "BOM": None, "directory": None,
}


@pytest.mark.parametrize("kind", sorted(MANIFEST_FILES))
def test_bad_manifest_file(pristine, tmp_path, kind):
    package = clone(pristine, tmp_path / "pkg")
    text = (package / "manifest.json").read_text()
    data = {
        "NaN dim": text.replace('"dim": 384', '"dim": NaN'),
        "huge exponent": text.replace('"dim": 384', '"dim": 1e99999'),
        "BOM": "\ufeff" + text,
    }.get(kind, MANIFEST_FILES[kind])
    replace(package / "manifest.json", data)
    assert_clean(*outcome(package), "load", "manifest" if kind != "NaN dim" else "dim")


def damaged(data: bytes, kind: str) -> bytes | None:
    return {"empty": b"", "first 10 bytes": data[:10], "first 1000 bytes": data[:1000],
            "half": data[:len(data) // 2], "all but last byte": data[:-1],
            "zeros": bytes(len(data)), "garbage": os.urandom(4096),
            "json not onnx": b'{"model": 1}', "directory": None}[kind]


FILE_DAMAGE = ["empty", "first 10 bytes", "first 1000 bytes", "half", "all but last byte",
               "zeros", "garbage", "json not onnx", "directory"]


@pytest.mark.parametrize("kind", FILE_DAMAGE)
@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json"])
def test_damaged_file_with_matching_checksum(pristine, tmp_path, name, kind):
    """The checksum is updated to match, so the file reaches onnxruntime / tokenizers."""
    package = clone(pristine, tmp_path / "pkg")
    replace(package / name, damaged((package / name).read_bytes(), kind))
    refresh_checksum(package, name)
    words = "missing file" if kind == "directory" else name
    assert_clean(*outcome(package), "load", words)
    assert_clean(*outcome(package, verify=False), "load", name)


def test_dangling_and_looping_symlinks(pristine, tmp_path):
    package = clone(pristine, tmp_path / "pkg")
    (package / "model.onnx").unlink()
    (package / "model.onnx").symlink_to(tmp_path / "nowhere")
    assert_clean(*outcome(package), "load", "model.onnx")
    (package / "manifest.json").unlink()
    (package / "manifest.json").symlink_to(package / "manifest.json")
    assert_clean(*outcome(package), "load", "manifest.json")


def test_unreadable_manifest(pristine, tmp_path, monkeypatch):
    """A manifest that exists but cannot be read. File modes cannot make one for root (as CI
    runs), so reading this one path fails as a file without read permission does."""
    package = clone(pristine, tmp_path / "pkg")
    manifest = package / "manifest.json"
    read_text = Path.read_text

    def denied(self: Path, *args, **kwargs) -> str:
        if self == manifest:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    stage, exc = outcome(package)
    assert_clean(stage, exc, "load", f"cannot read {manifest}")
    assert str(exc).endswith(os.strerror(errno.EACCES))


def test_bad_paths(pristine, tmp_path):
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "a-file").write_text("x")
    for path, words in [(tmp_path / "missing", "not a directory"),
                        (tmp_path / "a-file", "not a directory"),
                        (pristine / "model.onnx", "not a directory"),
                        (tmp_path / "empty-dir", "manifest.json"),
                        (str(tmp_path / "x\x00y"), "not a directory"),
                        ("a" * 5000, "cannot open"), ("", "empty"), ("   ", "empty"),
                        ("~no_such_user_here/pkg", "no_such_user_here")]:
        assert_clean(*outcome(path), "load", words)
    for path in (5, 1.5, b"/tmp", ["pkg"]):
        with pytest.raises(TypeError, match="package path"):
            Encoder.load(path)


def with_word_level_tokenizer(pristine: Path, where: Path, vocab: dict[str, int],
                              unk_token: str | None = None) -> Path:
    """A copy of the package whose (valid, checksummed) tokenizer.json is a whitespace
    word-level tokenizer over `vocab`."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel(vocab, unk_token=unk_token))
    tokenizer.pre_tokenizer = Whitespace()
    package = clone(pristine, where)
    replace(package / "tokenizer.json", tokenizer.to_str())
    refresh_checksum(package, "tokenizer.json")
    return package


def test_tokenizer_that_loads_but_cannot_encode(pristine, tmp_path):
    """A valid tokenizer.json whose word-level vocabulary has no unknown token: tokenizers
    itself fails on unseen words, which must surface as one edgembed line."""
    package = with_word_level_tokenizer(pristine, tmp_path / "pkg",
                                        {"a": 1, "short": 2, "[PAD]": 0})
    assert_clean(*outcome(package), "encode", "tokenizer")


def test_token_ids_beyond_the_models_vocabulary(pristine, tmp_path):
    package = with_word_level_tokenizer(pristine, tmp_path / "pkg",
                                        {"[PAD]": 0, "[UNK]": 10**6}, unk_token="[UNK]")
    assert_clean(*outcome(package), "encode", "onnxruntime")


def test_max_seq_length_beyond_the_position_table(pristine, tmp_path):
    """Well-typed but wrong: MiniLM has 512 positions. Only a long text can show it."""
    package = clone(pristine, tmp_path / "pkg")
    manifest = manifest_of(package)
    manifest["max_seq_length"] = 4096
    write_manifest(package, manifest)
    assert_clean(*outcome(package), "encode", "onnxruntime")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=6)
FIELDS = [("dim",), ("max_seq_length",), ("name",), ("pooling",), ("normalized",),
          ("prefixes",), ("prefixes", "query"), ("output",), ("files",),
          ("files", "model.onnx"), ("files", "model.onnx", "sha256"),
          ("files", "tokenizer.json", "bytes"), ("calibration",), ("calibration", "int8"),
          ("calibration", "int8", "lo"), ("format_version",), ("static_shape",)]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(FIELDS), json_values | st.just(DELETE))
def test_any_json_in_any_field(pristine, tmp_path_factory, path, value):
    """Whatever JSON a field holds, loading then encoding ends in success or an edgembed
    error, never in an exception from inside."""
    package = clone(pristine, tmp_path_factory.mktemp("fuzz") / "pkg")
    manifest = manifest_of(package)
    set_field(path, value)(manifest)
    write_manifest(package, manifest)
    stage, exc = outcome(package, verify=False)
    if exc is not None:
        assert "\n" not in str(exc)


def tiny_model(inputs: list[tuple[str, int]], nan: bool = False) -> bytes:
    """A small ONNX graph in place of MiniLM: the given inputs ([batch, seq]) and a
    sentence_embedding [batch, 384] of zeros (or NaN: 0/0) computed from the first one."""
    from onnx import TensorProto, helper, numpy_helper

    first = inputs[0][0]
    nodes = [helper.make_node("Cast", [first], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f", "axis"], ["s"], keepdims=1),
             helper.make_node("Sub", ["s", "s"], ["zero"]),
             helper.make_node("Div" if nan else "Add", ["zero", "zero"], ["v"]),
             helper.make_node("Expand", ["v", "shape"], ["sentence_embedding"])]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(name, kind, ["batch", "seq"]) for name, kind in inputs],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT,
                                       ["batch", 384])],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "axis"),
                     numpy_helper.from_array(np.array([1, 384], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


INT64 = 7  # onnx.TensorProto.INT64
FLOAT = 1  # onnx.TensorProto.FLOAT


@pytest.mark.parametrize(("inputs", "nan", "stage", "words"), [
    ([("x", INT64)], False, "load", "takes inputs"),
    ([("input_ids", INT64)], False, "load", "takes inputs"),
    ([("input_ids", FLOAT), ("attention_mask", INT64)], False, "load", "expected int64"),
    ([("input_ids", INT64), ("attention_mask", INT64), ("pixels", INT64)], False, "load",
     "takes inputs"),
    ([("input_ids", INT64), ("attention_mask", INT64)], True, "encode", "NaN"),
    ([("input_ids", INT64), ("attention_mask", INT64)], False, "ok", ""),
])
def test_model_that_disagrees_with_the_package(pristine, tmp_path, inputs, nan, stage, words):
    package = clone(pristine, tmp_path / "pkg")
    replace(package / "model.onnx", tiny_model(inputs, nan))
    refresh_checksum(package, "model.onnx")
    assert_clean(*outcome(package), stage, words)


@pytest.mark.parametrize("options", [
    {"threads": 0}, {"threads": -1}, {"threads": True}, {"threads": 1.5}, {"threads": "2"},
    {"threads": 10**6}, {"providers": 5}, {"providers": []}, {"providers": [5]},
    {"providers": "NoSuchExecutionProvider"}, {"providers": ["CPUExecutionProvider", None]},
])
def test_bad_load_options(options):
    with pytest.raises(EdgembedError, match=next(iter(options)).rstrip("s")):
        Encoder.load(**options)


def test_numpy_thread_count_is_accepted():
    assert Encoder.load(threads=np.int64(1)).encode("ok").shape == (384,)
