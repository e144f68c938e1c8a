"""The typed manifest: one checked, frozen Manifest that reads what the exporter writes,
round-trips what it does not know, and refuses bad fields with one line."""

from __future__ import annotations

import dataclasses
import json

import pytest

from edgembed import PackageError, default_package_path, open_package
from edgembed.manifest import FileEntry, Manifest

SHIPPED = default_package_path() / "manifest.json"


@pytest.fixture
def raw() -> dict:
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def test_shipped_manifest_round_trips_exactly(raw):
    manifest = Manifest.from_dict(raw, SHIPPED)
    assert manifest.to_dict() == raw and list(manifest.to_dict()) == list(raw)
    assert open_package().manifest == manifest
    assert manifest.dim == 384 and manifest.output == "sentence_embedding"
    assert manifest.files["model.onnx"] == FileEntry(raw["files"]["model.onnx"]["sha256"],
                                                     raw["files"]["model.onnx"]["bytes"])


def test_unknown_keys_are_kept_and_written_back(raw):
    manifest = Manifest.from_dict({**raw, "from_the_future": {"levels": [1, 2]}}, SHIPPED)
    assert manifest.extra["from_the_future"]["levels"] == (1, 2)
    assert manifest.to_dict()["from_the_future"] == {"levels": [1, 2]}


def test_frozen_all_the_way_down(raw):
    manifest = Manifest.from_dict(raw, SHIPPED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.dim = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.quality["mean_cosine"] = 1.0  # type: ignore[index]
    assert isinstance(manifest.calibration["int8"]["lo"], tuple)
    changed = dataclasses.replace(manifest, quality={"mean_cosine": 0.5})
    assert changed.quality["mean_cosine"] == 0.5 and manifest.quality["mean_cosine"] != 0.5
    with pytest.raises(PackageError, match="field 'dim' must be a positive integer"):
        dataclasses.replace(manifest, dim=0)  # a changed copy is checked like any other


def test_prompts_default_to_none_and_are_not_written_unset(raw):
    manifest = Manifest.from_dict(raw, SHIPPED)
    assert dict(manifest.prompts) == {} and manifest.default_prompt_name is None
    assert "prompts" not in manifest.to_dict() and "default_prompt_name" not in manifest.to_dict()
    prompted = Manifest.from_dict({**raw, "prompts": {"query": "query: ", "passage": ""},
                                   "default_prompt_name": "query"}, SHIPPED)
    assert prompted.prompts["query"] == "query: " and prompted.default_prompt_name == "query"
    assert prompted.to_dict()["prompts"] == {"query": "query: ", "passage": ""}
    assert Manifest.from_dict(prompted.to_dict(), SHIPPED) == prompted


@pytest.mark.parametrize(("changes", "words"), [
    ({"prompts": ["query: "]}, "field 'prompts' must be an object of prompt name → text"),
    ({"prompts": {"query": 5}}, "field 'prompts' must be an object"),
    ({"prompts": None}, "field 'prompts'"),
    ({"default_prompt_name": 3}, "field 'default_prompt_name' must be null or a string"),
    ({"default_prompt_name": "query"}, "must name one of the prompts (there are none)"),
    ({"prompts": {"query": "q: "}, "default_prompt_name": "doc"}, "prompts (query), got 'doc'"),
    ({"static_shape": [1]}, "field 'static_shape'"),
    ({"compression": 5}, "field 'compression' must be an object"),
])
def test_bad_new_fields_are_one_line_errors_naming_the_file(raw, changes, words):
    with pytest.raises(PackageError) as caught:
        Manifest.from_dict({**raw, **changes}, SHIPPED)
    message = str(caught.value)
    assert message.startswith(f"{SHIPPED}: ") and words in message and "\n" not in message


def test_exporter_writer_refuses_what_the_runtime_would(raw):
    from edgembed.errors import ExportError
    from edgembed.export.writer import build_manifest

    fields = {key: raw[key] for key in Manifest.known_keys() if key in raw}
    assert build_manifest(fields).to_dict() == raw
    with pytest.raises(ExportError, match="field 'max_seq_length' must be an integer in 1.."):
        build_manifest({**fields, "max_seq_length": 0})
