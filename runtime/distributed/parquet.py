"""The Parquet files `edgembed embed --ray` writes, and reading them back.

One file per part, with the columns

* ``id`` (string), and optionally ``text`` (string) and ``metadata`` (JSON string);
* ``float32``: fixed-size list of float32 [dim], the vectors `Encoder.encode` returns;
* ``int8``: fixed-size list of int8 [dim], `precision="int8"` (the package's calibrated
  ranges);
* ``ubinary``: fixed-size binary [ceil(dim / 8)], the packed sign bits (`"ubinary"`).

Which vector columns are written is the caller's choice (any non-empty subset). The file's
schema metadata (key ``edgembed``) records the model package's id, dimensions and int8
ranges, so a reader can refuse vectors of another model. Files are written to a temporary
name and renamed: a file that exists is complete.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import codes as C
from ..errors import EdgembedError
from ..extras import require

VECTOR_COLUMNS = ("float32", "int8", "ubinary")
# dictionary encoding only where it pays: int8 values (256 of them; without it Parquet
# stores each as 4 bytes) and the strings; float32 and packed codes barely repeat
DICTIONARY_COLUMNS = ["id", "text", "metadata", "int8.list.element"]
META_KEY = b"edgembed"


@dataclass(frozen=True)
class ModelInfo:
    """What a reader needs to know about the vectors' model."""

    package_id: str
    dim: int
    int8: dict[str, Any]  # `Int8Ranges.to_json()`
    package_path: str | None = None

    @property
    def ranges(self) -> C.Int8Ranges:
        return C.Int8Ranges.from_json(self.int8)


def check_columns(columns: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(columns))
    unknown = [c for c in chosen if c not in VECTOR_COLUMNS]
    if unknown or not chosen:
        raise EdgembedError(f"vector columns must be a non-empty subset of {VECTOR_COLUMNS}, "
                            f"got {list(columns)}")
    return chosen


def vectors_table(ids: Sequence[str], vectors: np.ndarray, model: ModelInfo,
                  columns: Sequence[str], texts: Sequence[str] | None = None,
                  metadata: Sequence[dict[str, Any] | None] | None = None) -> Any:
    """A pyarrow Table of these rows (float32 vectors in, the chosen columns out)."""
    pa = require("pyarrow", "ray")
    data: dict[str, Any] = {"id": pa.array(list(ids), pa.string())}
    if texts is not None:
        data["text"] = pa.array(list(texts), pa.string())
    if metadata is not None:
        data["metadata"] = pa.array([None if m is None else json.dumps(m, ensure_ascii=False)
                                     for m in metadata], pa.string())
    data.update(vector_arrays(vectors, model, columns))
    table = pa.table(data)
    meta = {"package_id": model.package_id, "dim": model.dim, "int8": model.int8,
            "package_path": model.package_path, "columns": list(columns)}
    return table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})


def vector_arrays(vectors: np.ndarray, model: ModelInfo, columns: Sequence[str],
                  ) -> dict[str, Any]:
    """The chosen vector columns of float32 `vectors`, as pyarrow arrays."""
    pa = require("pyarrow", "ray")
    out = {}
    for column in columns:
        if column == "float32":
            out[column] = _fixed_list(pa, np.asarray(vectors, np.float32), model.dim)
        elif column == "int8":
            out[column] = _fixed_list(pa, C.quantize_int8(vectors, model.ranges), model.dim)
        else:
            packed = np.ascontiguousarray(C.pack_signs(vectors)) if len(vectors) else \
                np.empty((0, C.code_bytes(model.dim)), np.uint8)
            out[column] = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(packed.shape[1]), len(packed), [None, pa.py_buffer(packed.tobytes())])
    return out


def _fixed_list(pa: Any, matrix: np.ndarray, dim: int) -> Any:
    flat = pa.array(np.ascontiguousarray(matrix).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def write_atomic(table: Any, path: Path) -> None:
    """Write to a temporary name in the same folder, fsync, rename: the file at `path`
    either does not exist or is complete."""
    pq = require("pyarrow.parquet", "ray")
    temp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        pq.write_table(table, temp, compression="zstd", use_dictionary=DICTIONARY_COLUMNS)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- reading back

@dataclass
class Batch:
    """Rows of one Parquet file, as arrays."""

    ids: list[str]
    texts: list[str | None] | None
    metadata: list[dict[str, Any] | None] | None
    float32: np.ndarray | None
    int8: np.ndarray | None
    ubinary: np.ndarray | None

    def __len__(self) -> int:
        return len(self.ids)


def parquet_files(source: str | Path) -> list[Path]:
    """The part files of an output folder (or one file), in part order."""
    root = Path(source).expanduser()
    files = [root] if root.is_file() else sorted(root.glob("part-*.parquet"))
    if not files:
        raise EdgembedError(f"no part-*.parquet files in {root} (the output of "
                            "`edgembed embed --ray`)")
    return files


def model_info(path: Path) -> ModelInfo:
    """The model recorded in a part file's schema metadata."""
    pq = require("pyarrow.parquet", "ray")
    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    except Exception as exc:  # pyarrow's errors for a non-Parquet file vary
        raise EdgembedError(f"{path}: not a readable Parquet file ({exc})") from None
    if raw is None:
        raise EdgembedError(f"{path} was not written by edgembed (no '{META_KEY.decode()}' "
                            "schema metadata)")
    meta = json.loads(raw)
    return ModelInfo(meta["package_id"], int(meta["dim"]), meta["int8"],
                     meta.get("package_path"))


def read_batches(files: Sequence[Path]) -> Iterator[tuple[ModelInfo, Batch]]:
    """Each file's model and rows; every file must come from the same model."""
    pq = require("pyarrow.parquet", "ray")
    first: ModelInfo | None = None
    for path in files:
        info = model_info(path)
        if first is None:
            first = info
        elif (info.package_id, info.dim) != (first.package_id, first.dim):
            raise EdgembedError(f"{path} holds vectors of model {info.package_id}, "
                                f"{files[0]} of {first.package_id}: mixed models")
        table = pq.read_table(path)
        names = set(table.column_names)
        yield info, Batch(
            ids=table.column("id").to_pylist(),
            texts=table.column("text").to_pylist() if "text" in names else None,
            metadata=[None if m is None else json.loads(m)
                      for m in table.column("metadata").to_pylist()]
            if "metadata" in names else None,
            float32=_matrix(table, "float32", np.float32, info.dim),
            int8=_matrix(table, "int8", np.int8, info.dim),
            ubinary=_matrix(table, "ubinary", np.uint8, C.code_bytes(info.dim)),
        )


def _matrix(table: Any, column: str, dtype: type, width: int) -> np.ndarray | None:
    if column not in table.column_names:
        return None
    array = table.column(column).combine_chunks()
    if column == "ubinary":
        buffer = array.buffers()[1]
        flat = np.frombuffer(buffer, dtype=np.uint8)[array.offset * width:]
    else:
        flat = array.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat[:len(array) * width].reshape(len(array), width),
                                dtype=dtype)
