"""Embedding a Ray Dataset you already have: `embed_dataset` adds vector columns to it.

`embed_to_parquet` owns its input (it plans parts so a killed job can resume); this is
the building block for a pipeline that is already a Ray Dataset (read from a warehouse,
filtered, joined): each row's text column is embedded by a pool of actors that load the
package once, and the columns ``float32`` / ``int8`` / ``ubinary`` (as in the Parquet
files, see `edgembed.distributed.parquet`) and ``error`` are added. A row whose text
cannot be embedded (not a str, empty, longer than `max_chars`) keeps null vectors and
says why in ``error``; every other row has ``error`` null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..encoder import Encoder
from ..errors import EdgembedError
from ..extras import require
from .embed import assigned_cpus, embed_longest_first
from .inputs import text_problem
from .parquet import VECTOR_COLUMNS, ModelInfo, check_columns, vector_arrays


class BatchEmbedder:
    """The Ray actor of `embed_dataset`: one package load, then a batch per call."""

    def __init__(self, package: str | None, text_column: str, columns: Sequence[str],
                 batch_size: int, max_chars: int, threads: int | None) -> None:
        self.threads = threads or assigned_cpus()
        self.encoder = Encoder.load(package, threads=self.threads)
        self.model = ModelInfo(self.encoder.package.package_id, self.encoder.dim,
                               self.encoder.int8_ranges.to_json(), str(self.encoder.path))
        self.text_column, self.columns = text_column, tuple(columns)
        self.batch_size, self.max_chars = batch_size, max_chars

    def __call__(self, batch: Any) -> Any:
        pa = require("pyarrow", "ray")
        pc = require("pyarrow.compute", "ray")
        texts = batch.column(self.text_column).to_pylist()
        errors = [f"text is {type(text).__name__}, expected str" if not isinstance(text, str)
                  else text_problem(text, self.max_chars) for text in texts]
        good = [i for i, error in enumerate(errors) if error is None]
        vectors = np.zeros((len(texts), self.encoder.dim), np.float32)
        if good:
            vectors[good] = embed_longest_first(self.encoder, [texts[i] for i in good],
                                                self.batch_size)
        embedded = pa.array([error is None for error in errors])
        for name, array in vector_arrays(vectors, self.model, self.columns).items():
            batch = batch.append_column(name, pc.if_else(embedded, array,
                                                         pa.nulls(len(texts), array.type)))
        return batch.append_column("error", pa.array(errors, pa.string()))


def embed_dataset(dataset: Any, *, package: str | None = None, text_column: str = "text",
                  columns: Sequence[str] = VECTOR_COLUMNS, actors: int | None = None,
                  cpus_per_actor: int = 1, threads: int | None = None, batch_size: int = 32,
                  rows_per_call: int = 1024, max_chars: int = 100_000) -> Any:
    """`dataset` (a `ray.data.Dataset` with a text column) with vector columns and
    ``error`` added, lazily (Ray runs it when the result is consumed or written). Actors
    and threads as for `embed_to_parquet`: `actors` defaults to the cluster's CPUs /
    `cpus_per_actor`, each actor runs `cpus_per_actor` onnxruntime threads."""
    ray = require("ray", "ray")
    columns = check_columns(columns)
    if not isinstance(cpus_per_actor, int) or cpus_per_actor < 1:
        raise EdgembedError(f"cpus per actor must be a positive integer, got {cpus_per_actor!r}")
    if text_column not in dataset.schema().names:
        raise EdgembedError(f"the dataset has no column {text_column!r} (it has "
                            f"{', '.join(dataset.schema().names)})")
    Encoder.load(package, threads=1)  # a bad package fails here, not in every actor
    pool = actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_actor)
    return dataset.map_batches(
        BatchEmbedder, batch_format="pyarrow", batch_size=rows_per_call,
        fn_constructor_kwargs={"package": None if package is None else str(package),
                               "text_column": text_column, "columns": list(columns),
                               "batch_size": batch_size, "max_chars": max_chars,
                               "threads": threads},
        compute=ray.data.ActorPoolStrategy(size=pool), num_cpus=cpus_per_actor)
