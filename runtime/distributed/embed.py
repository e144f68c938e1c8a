"""Bulk embedding on Ray Data: a pool of actors, each loading the model package once,
embeds parts of the input and writes one Parquet file per part.

The Ray Dataset holds the parts (`inputs.plan_parts`), one per block; `map_batches` runs
`PartEmbedder` on an actor pool. An actor reads its part itself (so no text travels through
the object store), sorts the rows longest first (so each batch holds texts of similar
length and pads little), embeds them, and writes ``OUT/part-NNNNN.parquet`` atomically
(`parquet.write_atomic`), with the bad rows of the part in ``part-NNNNN.bad.jsonl``. A
rerun skips the parts whose file exists: a killed job resumes where it stopped.

**Threads.** Ray gives each actor `cpus_per_actor` CPUs; its onnxruntime session gets that
many intra-op threads and no more. Threads beyond the CPUs an actor owns fight the other
actors' threads for the same cores (N actors × N threads on N cores is the classic way to
lose half the speed), so the thread count follows Ray's assignment, and the report says
which it was.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..encoder import Encoder
from ..errors import EdgembedError
from ..extras import require
from .inputs import PART_BYTES, BadRow, Fields, Part, plan_parts, read_part
from .parquet import VECTOR_COLUMNS, ModelInfo, check_columns, vectors_table, write_atomic

JOB_FILE = "job.json"
REPORT_FILE = "report.json"
JOB_FORMAT = "edgembed-embed"
PART_META_KEY = b"edgembed_part"
SUMMARY_KEYS = ("part", "rows", "bad", "encode_s", "cpu_s", "seconds", "actor", "threads")


def embed_longest_first(encoder: Encoder, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """float32 document vectors of `texts`, in input order, encoded longest text first: the
    batches then hold texts of similar length and pad little. A text's vector does not
    depend on its batch-mates (per-token int8 packages; float packages up to rounding)."""
    order = np.argsort([-len(text) for text in texts], kind="stable")
    vectors = encoder.encode([texts[i] for i in order], batch_size=batch_size,
                             kind="document", show_progress=False)
    out = np.empty_like(vectors)
    out[order] = vectors
    return out


@dataclass(frozen=True)
class Job:
    """Everything an actor needs to embed a part; also written to OUT/job.json, so that a
    resumed run can check it continues the same job."""

    out: str
    package: str
    package_id: str
    fields: Fields
    columns: tuple[str, ...]
    batch_size: int
    keep_text: bool
    threads: int | None = None  # None: the CPUs Ray assigns to the actor

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fields"]["text_fields"] = list(self.fields.text_fields)
        data["columns"] = list(self.columns)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        fields = dict(data["fields"])
        fields["text_fields"] = tuple(fields["text_fields"])
        return cls(**{**data, "fields": Fields(**fields), "columns": tuple(data["columns"])})


def assigned_cpus(default: int = 1) -> int:
    """The CPUs Ray reserved for the calling actor (whole CPUs, at least 1)."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", default)
    return max(1, int(cpus))


class PartEmbedder:
    """The Ray actor: loads the package once, then embeds whole parts (one per call)."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = Job.from_json(job)
        self.threads = self.job.threads or assigned_cpus()
        self.encoder = Encoder.load(self.job.package, threads=self.threads)
        self.model = ModelInfo(self.encoder.package.package_id, self.encoder.dim,
                               self.encoder.int8_ranges.to_json(), str(self.encoder.path))
        self.actor = f"{socket.gethostname()}:{os.getpid()}"
        self._chunker = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        summaries = [self.embed_part(Part(**json.loads(raw))) for raw in batch["part"]]
        return {key: [summary[key] for summary in summaries] for key in SUMMARY_KEYS}

    @property
    def chunker(self) -> Any:
        if self._chunker is None:
            from ..index.ingest import Chunker

            self._chunker = Chunker(self.encoder.tokenizer, self.encoder.max_seq_length,
                                    self.encoder.prefix("document"))
        return self._chunker

    def embed_part(self, part: Part) -> dict[str, Any]:
        start = time.perf_counter()
        job = self.job
        chunker = self.chunker if part.kind == "documents" else None
        found = read_part(part, job.fields, chunker)
        texts = [row.text for row in found.rows]
        encode_start, cpu_start = time.perf_counter(), time.process_time()
        vectors = embed_longest_first(self.encoder, texts, job.batch_size) if texts else \
            np.empty((0, self.encoder.dim), np.float32)
        encode_s = time.perf_counter() - encode_start
        cpu_s = time.process_time() - cpu_start
        table = vectors_table([row.id for row in found.rows], vectors, self.model,
                              job.columns, texts if job.keep_text else None,
                              [row.metadata for row in found.rows]
                              if job.fields.metadata else None)
        out = Path(job.out)
        if found.bad:
            _write_bad_rows(out / f"{part.name}.bad.jsonl", found.bad)
        summary = {"part": part.name, "rows": len(texts), "bad": len(found.bad),
                   "encode_s": round(encode_s, 4), "cpu_s": round(cpu_s, 4),
                   "actor": self.actor,
                   "threads": self.threads,
                   "seconds": round(time.perf_counter() - start, 4)}
        meta = dict(table.schema.metadata or {})
        meta[PART_META_KEY] = json.dumps(summary).encode()
        write_atomic(table.replace_schema_metadata(meta), out / f"{part.name}.parquet")
        return summary


def _write_bad_rows(path: Path, bad: list[BadRow]) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text("".join(json.dumps(asdict(row), ensure_ascii=False) + "\n" for row in bad),
                    encoding="utf-8")
    os.replace(temp, path)


# ---------------------------------------------------------------- the driver

@dataclass
class ActorStats:
    actor: str
    threads: int
    parts: int = 0
    rows: int = 0
    encode_s: float = 0.0
    cpu_s: float = 0.0  # the actor process's CPU time while encoding (all its threads)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.encode_s if self.encode_s else 0.0

    @property
    def rows_per_cpu_s(self) -> float:
        """Rows per CPU-second: the cost of a row, much less sensitive than rows_per_s
        to other processes sharing the cores (spinning threads still count)."""
        return self.rows / self.cpu_s if self.cpu_s else 0.0


@dataclass
class EmbedReport:
    """What a run did: rows written, rows skipped as bad, parts done now or before, and
    the throughput of every actor (rows per second of encoding)."""

    out: str
    parts: int
    parts_done_before: int
    rows: int
    bad_rows: int
    seconds: float
    actors: list[ActorStats] = field(default_factory=list)
    cpus_per_actor: int = 1

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"out": self.out, "parts": self.parts,
                "parts_done_before": self.parts_done_before, "rows": self.rows,
                "bad_rows": self.bad_rows, "seconds": round(self.seconds, 3),
                "cpus_per_actor": self.cpus_per_actor,
                "actors": [{**asdict(a), "encode_s": round(a.encode_s, 3),
                            "cpu_s": round(a.cpu_s, 3), "rows_per_s": round(a.rows_per_s, 1),
                            "rows_per_cpu_s": round(a.rows_per_cpu_s, 1)}
                           for a in self.actors]}


def embed_to_parquet(inputs: Sequence[str | Path], out: str | Path, *,
                     package: str | Path | None = None, address: str | None = None,
                     actors: int | None = None, cpus_per_actor: int = 1,
                     threads: int | None = None, batch_size: int = 32,
                     columns: Sequence[str] = VECTOR_COLUMNS, fields: Fields | None = None,
                     keep_text: bool = True, part_bytes: int = PART_BYTES,
                     show_progress: bool | None = None) -> EmbedReport:
    """Embed every passage of `inputs` on a Ray cluster into Parquet files under `out`.

    Connects to Ray at `address` (None: the running or a new local cluster, as `ray.init`
    decides; "auto": the cluster of this machine). `actors` (default: as many as the
    cluster's CPUs allow) each reserve `cpus_per_actor` CPUs and run that many onnxruntime
    threads (`threads` overrides it; more threads than CPUs only oversubscribes). Parts
    whose file exists in `out` are skipped, so rerunning a killed job resumes it (and, once
    every part is written, removes the temporary files its killed writers left)."""
    ray = require("ray", "ray")
    require("pyarrow", "ray")
    fields = fields or Fields()
    columns = check_columns(columns)
    if not isinstance(cpus_per_actor, int) or cpus_per_actor < 1:
        raise EdgembedError(f"cpus per actor must be a positive integer, got {cpus_per_actor!r}")
    if actors is not None and (not isinstance(actors, int) or actors < 1):
        raise EdgembedError(f"actors must be a positive integer, got {actors!r}")
    encoder = Encoder.load(package, threads=1)  # checks the package before any cluster work
    out = Path(out).expanduser().resolve()
    parts = plan_parts(inputs, part_bytes)
    job = Job(str(out), str(encoder.path), encoder.package.package_id, fields, columns,
              int(batch_size), keep_text, threads)
    _claim_output(out, job, parts)
    todo = [part for part in parts if not (out / f"{part.name}.parquet").exists()]
    started = time.perf_counter()
    summaries: list[dict[str, Any]] = []
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        if cpus_per_actor > cluster_cpus:
            raise EdgembedError(f"{cpus_per_actor} CPUs per actor, but the Ray cluster has "
                                f"{cluster_cpus}")
        pool = min(actors or max(1, cluster_cpus // cpus_per_actor), len(todo))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = sys.stderr.isatty() if show_progress is None \
            else show_progress
        dataset = ray.data.from_items([{"part": json.dumps(part.to_json())} for part in todo],
                                      override_num_blocks=len(todo))
        dataset = dataset.map_batches(
            PartEmbedder, fn_constructor_kwargs={"job": job.to_json()}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=pool), num_cpus=cpus_per_actor)
        summaries = dataset.take_all()
    _remove_leftover_temporaries(out)
    report = _report(out, parts, summaries, time.perf_counter() - started, cpus_per_actor)
    (out / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=1) + "\n",
                                   encoding="utf-8")
    return report


def _claim_output(out: Path, job: Job, parts: list[Part]) -> None:
    """Create OUT with its job file, or check that OUT holds this same job (a resume)."""
    record = {"format": JOB_FORMAT, "version": 1, "job": job.to_json(),
              "parts": [part.to_json() for part in parts]}
    path = out / JOB_FILE
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EdgembedError(f"cannot read {path}: {exc}") from None
        if existing != json.loads(json.dumps(record)):
            raise EdgembedError(f"{out} holds the output of another job (other inputs, model "
                                "or options, or the input files changed); write to a new "
                                "folder")
        return
    if out.exists() and any(out.iterdir()):
        raise EdgembedError(f"{out} exists and is not empty; write to a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        temp = out / f".{JOB_FILE}.{os.getpid()}"
        temp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        raise EdgembedError(f"cannot write to {out}: {exc.strerror or exc}") from None


def _remove_leftover_temporaries(out: Path) -> None:
    """Once every part is written, a temporary part file left in OUT can only come from a
    writer that was killed before its rename (a killed run's actor): it is garbage."""
    for path in [*out.glob(".part-*.parquet.*"), *out.glob(".part-*.bad.jsonl.*")]:
        path.unlink(missing_ok=True)


def _report(out: Path, parts: list[Part], summaries: list[dict[str, Any]], seconds: float,
            cpus_per_actor: int) -> EmbedReport:
    """Totals over every part (those of earlier runs read from their files' metadata) and
    the throughput of this run's actors."""
    pq = require("pyarrow.parquet", "ray")
    now = {summary["part"] for summary in summaries}
    rows = sum(int(s["rows"]) for s in summaries)
    bad = sum(int(s["bad"]) for s in summaries)
    for part in parts:
        if part.name in now:
            continue
        meta = pq.read_schema(out / f"{part.name}.parquet").metadata or {}
        earlier = json.loads(meta.get(PART_META_KEY, b"{}"))
        rows += int(earlier.get("rows", 0))
        bad += int(earlier.get("bad", 0))
    by_actor: dict[str, ActorStats] = {}
    for s in summaries:
        stats = by_actor.setdefault(s["actor"], ActorStats(s["actor"], int(s["threads"])))
        stats.parts += 1
        stats.rows += int(s["rows"])
        stats.encode_s += float(s["encode_s"])
        stats.cpu_s += float(s["cpu_s"])
    return EmbedReport(str(out), len(parts), len(parts) - len(summaries), rows, bad, seconds,
                       sorted(by_actor.values(), key=lambda a: a.actor), cpus_per_actor)


def bad_rows(out: str | Path) -> list[dict[str, Any]]:
    """Every bad row reported in an output folder, part by part."""
    found = []
    for path in sorted(Path(out).glob("part-*.bad.jsonl")):
        part = path.name.split(".")[0]
        found += [{"part": part, **json.loads(line)}
                  for line in path.read_text(encoding="utf-8").splitlines() if line]
    return found
