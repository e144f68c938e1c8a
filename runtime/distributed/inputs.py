"""What `edgembed embed --ray` reads, cut into numbered parts that name their output files.

Inputs:

* ``.jsonl``: one passage per line, a JSON object; its id in `Fields.id_field`, its text in
  `Fields.text_fields` (several are joined by a space: ``title`` + ``text`` as BEIR does),
  every other field kept as metadata;
* ``.parquet``: the same, one passage per row, in columns;
* ``.txt`` / ``.md``: documents, cut into passages exactly as `edgembed index` cuts them
  (same passage ids: ``PATH#N``);
* folders: every such file under them (hidden entries skipped), sorted.

A part is a byte range of a JSONL file (it owns the lines that *start* in it), a slice of
a Parquet row group, or a group of text files. Parts are planned from file sizes and
Parquet metadata alone, so planning reads no text, and the same inputs always give the same
parts: a resumed run knows which outputs are still missing.

Bad rows (not JSON, no text, text that is not a str, empty text, a text longer than
`Fields.max_chars`, an id that is not a str or int) are returned as `BadRow`s, never raised:
one bad row must not stop a job of millions.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EdgembedError
from ..index.ingest import Chunker, passage_id, walk

PART_BYTES = 2 << 20  # input bytes per part: small enough to balance actors, big to amortise
RECORD_SUFFIXES = (".jsonl", ".parquet")
DOCUMENT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Fields:
    """Where a record keeps its id and text, and the longest text embedded (longer ones are
    reported: the model reads only its first max_seq_length tokens, so such a row should be
    cut into passages first)."""

    id_field: str = "id"
    text_fields: tuple[str, ...] = ("text",)
    max_chars: int = 100_000
    metadata: bool = True


@dataclass(frozen=True)
class Part:
    """One unit of work: `name` names its output file (``NAME.parquet``)."""

    name: str
    kind: str  # "jsonl" | "parquet" | "documents"
    path: str = ""
    start: int = 0  # jsonl: first byte; parquet: first row of the row group
    end: int = 0  # jsonl: end byte; parquet: end row
    row_group: int = 0
    files: tuple[str, ...] = ()  # documents

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class BadRow:
    """A row that was skipped: where it is (file and byte offset or row), its id if it had
    one, and why."""

    where: str
    reason: str
    id: str | None = None


@dataclass
class PartRows:
    rows: list[Row] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


def input_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The files to read: given files as they are, folders walked (sorted); a file of a kind
    edgembed does not read is refused, so a typo never silently embeds nothing."""
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            files += list(_walk_all(path))
        elif path.is_file():
            if path.suffix.lower() not in RECORD_SUFFIXES + DOCUMENT_SUFFIXES:
                kind = path.suffix or "files without a suffix"
                raise EdgembedError(f"{path}: cannot read {kind}; give .jsonl, .parquet, .txt "
                                    "or .md files or folders of them")
            files.append(path.resolve())
        else:
            raise EdgembedError(f"no such file or folder: {path}")
    files = list(dict.fromkeys(files))
    if not files:
        raise EdgembedError("no .jsonl, .parquet, .txt or .md files in "
                            f"{', '.join(map(str, inputs))}")
    return files


def _walk_all(root: Path) -> Iterator[Path]:
    """Record files and documents under a folder, in `edgembed index`'s walk order."""
    for path in sorted(root.rglob("*.parquet")):
        if not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield path.resolve()
    yield from walk([root])  # .txt, .md and .jsonl, as `edgembed index` finds them


def plan_parts(inputs: Sequence[str | Path], part_bytes: int = PART_BYTES) -> list[Part]:
    """The parts of these inputs, numbered in order; deterministic for unchanged inputs."""
    if part_bytes < 1:
        raise EdgembedError(f"part size must be positive, got {part_bytes} bytes")
    parts: list[Part] = []
    documents: list[str] = []
    documents_bytes = 0

    def name() -> str:
        return f"part-{len(parts):05d}"

    def flush_documents() -> None:
        nonlocal documents, documents_bytes
        if documents:
            parts.append(Part(name(), "documents", files=tuple(documents)))
        documents, documents_bytes = [], 0

    for path in input_files(inputs):
        suffix = path.suffix.lower()
        size = path.stat().st_size
        if suffix in DOCUMENT_SUFFIXES:
            if documents and documents_bytes + size > part_bytes:
                flush_documents()
            documents.append(str(path))
            documents_bytes += size
            continue
        flush_documents()
        if suffix == ".jsonl":
            for start in range(0, max(size, 1), part_bytes):
                parts.append(Part(name(), "jsonl", str(path), start, min(size, start + part_bytes)))
        else:
            for group, start, end in _parquet_slices(path, part_bytes):
                parts.append(Part(name(), "parquet", str(path), start, end, row_group=group))
    flush_documents()
    return parts


def _parquet_slices(path: Path, part_bytes: int) -> Iterator[tuple[int, int, int]]:
    """(row group, first row, end row) slices of about `part_bytes` of uncompressed data."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
        raise EdgembedError(f"{path}: not a readable Parquet file ({exc})") from None
    for group in range(meta.num_row_groups):
        info = meta.row_group(group)
        rows = info.num_rows
        per_row = max(1.0, info.total_byte_size / max(rows, 1))
        step = max(1, int(part_bytes / per_row))
        for start in range(0, rows, step):
            yield group, start, min(rows, start + step)


# ---------------------------------------------------------------- reading a part

def read_part(part: Part, fields: Fields, chunker: Chunker | None = None) -> PartRows:
    """The good rows and the bad rows of one part. `chunker` cuts documents into passages
    (the encoder's, so passages fit the model)."""
    if part.kind == "jsonl":
        return _read_jsonl(part, fields)
    if part.kind == "parquet":
        return _read_parquet(part, fields)
    if chunker is None:
        raise EdgembedError("reading documents needs the model's chunker")
    return _read_documents(part, fields, chunker)


def _jsonl_lines(path: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of every line that starts in [start, end)."""
    with open(path, "rb") as handle:
        offset = start
        if start > 0:
            handle.seek(start - 1)
            if handle.read(1) != b"\n":  # inside a line: it belongs to the previous part
                offset = start + len(handle.readline())
        handle.seek(offset)
        while offset < end:
            line = handle.readline()
            if not line:
                break
            yield offset, line
            offset += len(line)


def _read_jsonl(part: Part, fields: Fields) -> PartRows:
    out = PartRows()
    name = os.path.basename(part.path)
    for offset, raw in _jsonl_lines(part.path, part.start, part.end):
        where = f"{name}@{offset}"
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            out.bad.append(BadRow(where, f"not JSON ({exc.__class__.__name__}: "
                                         f"{str(exc)[:80]})"))
            continue
        if not isinstance(record, dict):
            out.bad.append(BadRow(where, f"a JSON {type(record).__name__}, not an object"))
            continue
        _add_record(out, record, where, fields, default_id=where)
    return out


def _read_parquet(part: Part, fields: Fields) -> PartRows:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(part.path).read_row_group(part.row_group)
    table = table.slice(part.start, part.end - part.start)
    out = PartRows()
    name = os.path.basename(part.path)
    for number, record in enumerate(table.to_pylist()):
        row = part.start + number
        _add_record(out, record, f"{name}#group{part.row_group}/row{row}", fields,
                    default_id=f"{name}#{part.row_group}/{row}")
    return out


def _add_record(out: PartRows, record: dict[str, Any], where: str, fields: Fields,
                default_id: str) -> None:
    """Check one record; append it to the good or the bad rows."""
    raw_id = record.get(fields.id_field, default_id)
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        out.bad.append(BadRow(where, f"id ({fields.id_field}) is {type(raw_id).__name__}, "
                                     "expected str or int"))
        return
    doc_id = str(raw_id)
    present = [name for name in fields.text_fields if record.get(name) is not None]
    if not present:
        out.bad.append(BadRow(where, f"no text (field {' / '.join(fields.text_fields)} is "
                                     "missing or null)", doc_id))
        return
    for name in present:
        if not isinstance(record[name], str):
            out.bad.append(BadRow(where, f"text field {name!r} is {type(record[name]).__name__}"
                                         f" ({reprlib.repr(record[name])}), expected str",
                                  doc_id))
            return
    text = " ".join(record[name] for name in present).strip()
    reason = text_problem(text, fields.max_chars)
    if reason:
        out.bad.append(BadRow(where, reason, doc_id))
        return
    metadata = None
    if fields.metadata:
        skip = {fields.id_field, *fields.text_fields}
        metadata = {key: value for key, value in record.items() if key not in skip} or None
    out.rows.append(Row(doc_id, text, metadata))


def text_problem(text: str, max_chars: int) -> str | None:
    """Why a text is not embedded, or None: empty (nothing to embed: it would come out as
    the model's empty input), or huge (the model would read only its beginning)."""
    if not text.strip():
        return "empty text"
    if len(text) > max_chars:
        return (f"huge text: {len(text):,} characters, more than {max_chars:,}; cut it into "
                "passages first (or raise --max-chars)")
    return None


def _read_documents(part: Part, fields: Fields, chunker: Chunker) -> PartRows:
    out = PartRows()
    for path in part.files:
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except OSError as exc:
            out.bad.append(BadRow(path, f"cannot read ({exc.strerror or exc})"))
            continue
        except UnicodeDecodeError as exc:
            out.bad.append(BadRow(path, f"not UTF-8 (byte {exc.start})"))
            continue
        for number, (start, end) in enumerate(chunker.passages(text)):
            passage = text[start:end]
            if not passage.strip():
                continue
            metadata = {"file": path, "passage": number, "start": start, "end": end} \
                if fields.metadata else None
            out.rows.append(Row(passage_id(path, number), passage, metadata))
        if not text.strip():
            out.bad.append(BadRow(path, "empty text"))
    return out
