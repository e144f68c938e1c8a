"""What an export is asked to do: one frozen `ExportOptions`, checked in one place.

`edgembed export` builds one from its arguments, a recipe from its ``[export]`` table
(`ExportOptions.from_table`) and Python callers directly; `export_model(source, output,
options)` takes it. So the command line, recipes and the API refuse the same values with
the same message, before any export work. Checks that need the source model (layer
counts, the model's dimensions) are `compress.check_compression`'s, run by `export_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from edgembed.errors import ExportError

from .compress import Compression
from .optimize import LEVELS
from .quantize import METHODS, PER_TOKEN_METHODS
from .shape import parse_static_shape
from .source import check_pooling

TARGETS = ("npu",)


def _is_texts(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(text, str) for text in value)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


# field → (check of its value, what it must be): the messages of type errors
_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "target": (_optional(lambda v: isinstance(v, str)), "a string"),
    "static_shape": (_optional(lambda v: isinstance(v, str)), "a string like 1x128"),
    "keep_nodes": (_is_texts, "a list of node-name globs"),
    "auto_kept": (_optional(_is_texts), "a list of node names"),
    "max_loss": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "calibration_texts": (_optional(_is_texts), "a list of texts"),
    "validation_texts": (_optional(_is_texts), "a list of texts"),
    "eval_data": (_optional(lambda v: isinstance(v, (str, Path))), "a BEIR folder path"),
    "name": (_optional(lambda v: isinstance(v, str)), "a string"),
    "source_name": (_optional(lambda v: isinstance(v, str)), "a string"),
    "prefixes": (_optional(lambda v: isinstance(v, Mapping) and all(
        isinstance(text, str) for text in v.values())), 'an object like {"query": "..."}'),
    "validate": (lambda v: isinstance(v, bool), "true or false"),
    "compression": (lambda v: isinstance(v, Compression), "a Compression"),
}


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """How to export.

    `quantize`: auto (int8 that keeps the MatMuls it hurts most in higher precision until
    the held-out mean cosine loss is within `max_loss`), int8 (per-token int8 on every
    MatMul), int8-dynamic, int8-static, fp16 or none. `auto_kept`: the nodes an earlier
    `auto` search kept, replayed instead of searching again (recipes record it, because the
    search measures CPU kernels that differ slightly between CPUs). `optimize`: onnxruntime
    fusion level 0-2. `static_shape`: "BxS" for fixed-shape accelerators. `keep_nodes`:
    node-name globs left in higher precision. `calibration_texts` / `validation_texts`:
    instead of the built-in sets. `eval_data`: a BEIR folder for the quality card's
    nDCG@10. `name` / `source_name`: recorded in the manifest (default: the folder's name).
    `target="npu"`: a package NPUs can run: int8-static (QDQ, static scales, standard ops)
    with static shapes (default 1 x the model's max_seq_length; `static_shape` overrides).
    `pooling` / `prefixes`: override the folder's. `validate`: measure the package against
    torch. `compression`: see compress.py."""

    quantize: str = "auto"
    optimize: int = 0
    target: str | None = None
    static_shape: str | None = None
    keep_nodes: Sequence[str] = ()
    auto_kept: Sequence[str] | None = None
    max_loss: float = 0.005
    calibration_texts: Sequence[str] | None = None
    validation_texts: Sequence[str] | None = None
    eval_data: str | Path | None = None
    name: str | None = None
    source_name: str | None = None
    pooling: str | None = None
    prefixes: Mapping[str, str] | None = None
    validate: bool = True
    compression: Compression = field(default_factory=Compression)

    def __post_init__(self) -> None:
        if not isinstance(self.quantize, str) or self.quantize not in METHODS:
            raise ExportError(f"quantize must be one of {', '.join(METHODS)}, "
                              f"got {self.quantize!r}")
        if isinstance(self.optimize, bool) or self.optimize not in LEVELS:
            raise ExportError(f"optimize level must be one of {LEVELS}, got {self.optimize!r}")
        for name, (ok, expected) in _TYPES.items():
            value = getattr(self, name)
            if not ok(value):
                raise ExportError(f"{name} must be {expected}, got {value!r:.80}")
        if self.auto_kept is not None and self.quantize != "auto":
            raise ExportError(f"auto_kept replays an auto search; it needs quantize auto, "
                              f"not {self.quantize}")
        if self.target is not None:
            self._check_target()
        if self.optimize and self.quantize == "int8-static":
            raise ExportError(
                f"quantize int8-static makes a graph of standard ONNX ops (for NPUs); the fused "
                f"com.microsoft operators of optimize level {self.optimize} would defeat it: "
                "use optimize 0")
        if self.quantize == "int8-static" and self.compression.table_bits:
            raise ExportError("quantize int8-static keeps standard ONNX ops; --table-bits "
                              "stores the token table with a com.microsoft operator")
        if self.optimize and self.quantize in PER_TOKEN_METHODS:
            raise ExportError(
                f"quantize {self.quantize} works on plain MatMuls: the fused Attention and "
                f"EmbedLayerNormalization of optimize level {self.optimize} would stay float32 "
                "(a package nearly 3x larger); use optimize 0, or quantize int8-dynamic")
        if not 0 < self.max_loss < 1:
            raise ExportError(f"max_loss must be between 0 and 1, got {self.max_loss}")
        if self.static_shape is not None:
            parse_static_shape(self.static_shape)
        check_pooling(self.pooling)
        for name in ("keep_nodes", "auto_kept", "calibration_texts", "validation_texts"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.prefixes is not None:
            object.__setattr__(self, "prefixes", MappingProxyType(dict(self.prefixes)))

    def _check_target(self) -> None:
        """`target="npu"` means int8-static: `auto` (the default) becomes it, other
        methods are refused."""
        if self.target not in TARGETS:
            raise ExportError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.quantize not in ("auto", "int8-static"):
            raise ExportError(f"target npu makes a static int8 (QDQ) package; it takes quantize "
                              f"int8-static (or the default), not {self.quantize}")
        object.__setattr__(self, "quantize", "int8-static")

    @property
    def shape(self) -> tuple[int, int] | None:
        """`static_shape` as (batch, sequence), or None for dynamic shapes."""
        return parse_static_shape(self.static_shape) if self.static_shape else None

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str, **given: Any) -> ExportOptions:
        """Options from a recipe's ``[export]`` table (its ``compression`` a table of
        Compression's fields), plus `given` ones the table may not set. Every refusal is one
        ExportError line that starts with `where`."""
        try:
            values = _known(table, [f.name for f in fields(cls) if f.name not in given])
            if isinstance(values.get("compression"), Mapping):
                values["compression"] = Compression(**_known(
                    values["compression"], [f.name for f in fields(Compression)], "compression."))
            return cls(**values, **given)
        except ExportError as exc:
            raise ExportError(f"{where}: {exc}") from None


def _known(table: Mapping[str, Any], valid: Sequence[str], prefix: str = "") -> dict[str, Any]:
    """The table as keyword arguments, refusing the first key that is not one of `valid`."""
    for key in table:
        if key not in valid:
            raise ExportError(f"unknown option {prefix + str(key)!r}; valid options: "
                              f"{', '.join(valid)}")
    return dict(table)
