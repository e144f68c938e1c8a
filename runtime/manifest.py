"""The model package's manifest.json as one frozen, typed `Manifest`, checked in one place.

The runtime reads it (`package.open_package`) and the exporter writes it
(`edgembed.export.writer`) through this class, so the exporter cannot write what the
runtime would refuse. Whatever is on disk, a bad manifest gives one `PackageError` line
naming the field, never a KeyError or TypeError deep in the encoder.

Each field is declared once below with the check of its JSON value; a new field is one
line. Sections the runtime only displays (quality, quantization, ...) stay read-only
mappings of JSON values. Keys this version does not know (a newer exporter's) are kept in
`extra` and written back. Values are deeply read-only (objects become read-only mappings,
arrays tuples); `to_dict()` gives plain JSON data again, and `dataclasses.replace` a
changed copy, checked like any other.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import PackageError

FORMAT_NAME = "edgembed-package"
FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_FILES = (MODEL_FILE, TOKENIZER_FILE)
# Longer than any position table a text encoder ships with; beyond it a typo, not a model.
MAX_SEQ_LENGTH = 1 << 16
_SHA256 = re.compile("[0-9a-f]{64}")


class _Invalid(ValueError):
    """A field's value is wrong: the message follows "field 'NAME' " in the error."""


def freeze(value: Any) -> Any:
    """JSON data made read-only: objects become mappings that refuse changes, arrays tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def plain(value: Any) -> Any:
    """Frozen manifest data back to plain JSON data (dicts and lists), e.g. for json.dumps."""
    if isinstance(value, FileEntry):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def _short(value: Any) -> str:
    """A bounded repr: a manifest may hold megabytes or deep nesting where a number belongs."""
    try:
        return reprlib.repr(plain(value))
    except RecursionError:
        return "a value nested too deeply"


def _is_int(value: Any, low: int, high: int | None = None) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _checked(expected: str, ok: Callable[[Any], bool], default: Any = MISSING,
             empty: Callable[[], Any] | None = None, write_unset: bool = True) -> Any:
    """A field whose JSON value must pass `ok` ("must be EXPECTED, got ..." otherwise).
    `default` (or `empty()`, a factory) applies when the key is absent; `write_unset=False`
    leaves a field at its default out of `to_dict()` (fields newer than the format)."""
    def parse(value: Any) -> Any:
        if not ok(value):
            raise _Invalid(f"must be {expected}, got {_short(value)}")
        return freeze(value)

    metadata = {"parse": parse, "write_unset": write_unset}
    if empty is not None:
        return field(default_factory=lambda: freeze(empty()), metadata=metadata)
    return field(default=default, metadata=metadata)


def _section(write_unset: bool = True) -> Any:
    """An optional object the runtime passes on or displays: null or any JSON object."""
    return _checked("an object", lambda v: v is None or isinstance(v, Mapping), None,
                    write_unset=write_unset)


def _is_prefixes(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping) and all(
        isinstance(text, str) or text is None for text in value.values()))


def _is_prompts(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(text, str) for text in value.values())


def _is_shape(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and len(value) == 2
                             and all(_is_int(size, 1) for size in value))


@dataclass(frozen=True)
class FileEntry:
    """One file of the package: its sha256 (hex) and, if recorded, its size in bytes."""

    sha256: str
    bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256} if self.bytes is None else \
            {"sha256": self.sha256, "bytes": self.bytes}


def _parse_files(files: Any) -> Mapping[str, FileEntry]:
    if not isinstance(files, Mapping):
        raise _Invalid(f"must be an object of file name → {{sha256, bytes}}, got {_short(files)}")
    for name in REQUIRED_FILES:
        if name not in files:
            raise _Invalid(f"does not list required file {name}")
    entries = {}
    for name, entry in files.items():
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name \
                or "\\" in name or "\0" in name:
            raise _Invalid(f"lists {name!r}, which is not a plain file name")
        if isinstance(entry, FileEntry):
            entry = entry.to_dict()
        if not isinstance(entry, Mapping) or not isinstance(entry.get("sha256"), str) \
                or not _SHA256.fullmatch(entry["sha256"]):
            raise _Invalid(f"entry {name!r} needs a 64-hex-digit sha256, got {_short(entry)}")
        if "bytes" in entry and not _is_int(entry["bytes"], 0):
            raise _Invalid(f"entry {name!r} has bytes {_short(entry['bytes'])}")
        entries[name] = FileEntry(entry["sha256"], entry.get("bytes"))
    return MappingProxyType(entries)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A package's manifest.json, checked. Fields are in the order they are written."""

    name: str = _checked("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
    source: Mapping[str, Any] | None = _section()  # the source model and its weights' sha256
    dim: int = _checked("a positive integer", lambda v: _is_int(v, 1))
    max_seq_length: int = _checked(f"an integer in 1..{MAX_SEQ_LENGTH}",
                                   lambda v: _is_int(v, 1, MAX_SEQ_LENGTH))
    pooling: str = _checked("a string", lambda v: isinstance(v, str))
    normalized: bool = _checked("true or false", lambda v: isinstance(v, bool))
    prefixes: Mapping[str, str | None] | None = _checked(
        'an object like {"query": "...", "document": "..."}', _is_prefixes, None)
    output: str = _checked("a non-empty string (the model's output name)",
                           lambda v: isinstance(v, str) and v != "", "sentence_embedding")
    static_shape: tuple[int, int] | None = _checked(
        "null or [batch, sequence], two positive integers", _is_shape, None)
    optimization: Mapping[str, Any] | None = _section()
    quantization: Mapping[str, Any] | None = _section()
    compression: Mapping[str, Any] | None = _section(write_unset=False)  # only when compressed
    calibration: Mapping[str, Any] | None = _section()  # int8 ranges etc.; see edgembed.codes
    exporter: Mapping[str, Any] | None = _section()  # versions of the export's tools
    quality: Mapping[str, Any] | None = _section()  # the card: cosine to torch, speed, nDCG
    # sentence-transformers prompts (name → text), and the one used when none is named
    prompts: Mapping[str, str] = _checked("an object of prompt name → text", _is_prompts,
                                          empty=dict, write_unset=False)
    default_prompt_name: str | None = _checked(
        "null or a string", lambda v: v is None or isinstance(v, str), None, write_unset=False)
    files: Mapping[str, FileEntry] = field(metadata={"parse": _parse_files})
    # keys this version does not know, kept so that they are written back
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        """Check and freeze every field; the first bad one raises PackageError."""
        for spec in fields(self):
            parse = spec.metadata.get("parse")
            if parse is None:
                continue
            try:
                value = parse(getattr(self, spec.name))
            except _Invalid as exc:
                raise PackageError(f"field {spec.name!r} {exc}") from None
            object.__setattr__(self, spec.name, value)
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise PackageError(f"field 'default_prompt_name' must name one of the prompts "
                               f"({', '.join(self.prompts) or 'there are none'}), got "
                               f"{_short(self.default_prompt_name)}")
        clashes = sorted(set(self.extra) & ({spec.name for spec in fields(self)}
                                            | {"format", "format_version"}))
        if clashes:
            raise PackageError(f"extra keys {', '.join(clashes)} are manifest fields")
        object.__setattr__(self, "extra", freeze(self.extra))

    @classmethod
    def known_keys(cls) -> tuple[str, ...]:
        return tuple(spec.name for spec in fields(cls) if spec.name != "extra")

    @classmethod
    def from_dict(cls, data: Any, where: str | Path) -> Manifest:
        """The manifest read from `where` (named in every error): format and version first,
        then the required keys, then each field's type and value."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_NAME:
            raise PackageError(
                f"{where} is not an edgembed manifest (format != {FORMAT_NAME!r})")
        version = data.get("format_version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise PackageError(
                f"{where} has format_version {_short(version)}; this edgembed reads "
                f"version {FORMAT_VERSION} (upgrade edgembed or re-export the package)")
        required = [spec.name for spec in fields(cls)
                    if spec.default is MISSING and spec.default_factory is MISSING]
        missing = [key for key in required if key not in data]
        if missing:
            raise PackageError(f"{where} lacks required keys: {', '.join(missing)}")
        known = cls.known_keys()
        extra = {key: value for key, value in data.items()
                 if key not in known and key not in ("format", "format_version")}
        try:
            return cls(**{key: data[key] for key in known if key in data}, extra=extra)
        except PackageError as exc:
            raise PackageError(f"{where}: {exc}") from None
        except RecursionError:
            raise PackageError(f"{where}: a field nests too deeply") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data for manifest.json, in the order the exporter has always written."""
        out: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "extra" or (not spec.metadata.get("write_unset", True)
                                        and value == _default(spec)):
                continue
            out[spec.name] = plain(value)
        return {**out, **plain(self.extra)}

    @property
    def model_sha256(self) -> str:
        return self.files[MODEL_FILE].sha256


def _default(spec: Any) -> Any:
    return freeze(spec.default_factory()) if spec.default_factory is not MISSING \
        else spec.default
