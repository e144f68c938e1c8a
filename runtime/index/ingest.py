"""Turn folders of files into index passages, incrementally.

`formats` reads each file into documents (a PDF page, an e-mail, an HTML page, ...). Long
documents are cut into overlapping passages that fit the model's max_seq_length, using the
tokenizer's character offsets so that every passage is an exact slice of its document's
text. A file whose size and mtime are unchanged is skipped without being read; a touched
file whose sha256 is unchanged is skipped too; a changed file has its passages replaced;
a file that disappeared from a walked folder has its passages removed. A file that cannot
be read is skipped with a one-line reason, and the run goes on.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from ..errors import EdgembedError
from .formats import SUFFIXES, MissingExtra, UnreadableFile, heading_at, read_documents
from .index import Index
from .store import FileState

OVERLAP_TOKENS = 32
# a passage ends after one of these if one falls in the window's last quarter
BREAK_CHARS = frozenset(".!?\n")


@dataclass
class IngestReport:
    added_files: int = 0
    updated_files: int = 0
    unchanged_files: int = 0
    removed_files: int = 0
    skipped_files: int = 0
    passages_added: int = 0
    passages_removed: int = 0
    warnings: list[str] = field(default_factory=list)


class Chunker:
    """Cuts text into passages of at most `max_tokens` tokens (the model's limit minus its
    special tokens and document prefix), overlapping by OVERLAP_TOKENS."""

    def __init__(self, tokenizer: Tokenizer, max_seq_length: int, prefix: str = "") -> None:
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        specials = len(self.tokenizer.encode("").ids)
        prefix_tokens = len(self.tokenizer.encode(prefix, add_special_tokens=False).ids)
        self.max_tokens = max(16, max_seq_length - specials - prefix_tokens)
        self.overlap = min(OVERLAP_TOKENS, self.max_tokens // 4)

    def passages(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character spans of the passages of `text`, in order."""
        offsets = [span for span in self.tokenizer.encode(text, add_special_tokens=False).offsets
                   if span[1] > span[0]]
        if not offsets:
            return []
        spans = []
        first = 0
        while first < len(offsets):
            last = min(first + self.max_tokens, len(offsets)) - 1
            if last < len(offsets) - 1:  # not the final window: prefer a sentence end
                floor = first + (3 * self.max_tokens) // 4
                for i in range(last, floor - 1, -1):
                    end = offsets[i][1]
                    if text[end - 1] in BREAK_CHARS or text[end:end + 1] == "\n":
                        last = i
                        break
            spans.append((offsets[first][0], offsets[last][1]))
            if last == len(offsets) - 1:
                break
            first = max(last + 1 - self.overlap, first + 1)
        return spans


def walk(paths: Sequence[str | Path]) -> Iterator[Path]:
    """Indexable files under the given files and folders, sorted, hidden entries skipped."""
    for raw in paths:
        root = Path(raw).expanduser()
        if root.is_file():
            yield root.resolve()
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root).parts
                if path.suffix.lower() in SUFFIXES and path.is_file() and \
                        not any(part.startswith(".") for part in relative):
                    yield path.resolve()
        else:
            raise EdgembedError(f"no such file or folder: {root}")


def passage_id(path: str, number: int) -> str:
    return f"{path}#{number}"


def index_paths(index: Index, paths: Sequence[str | Path],
                show_progress: bool | None = None) -> IngestReport:
    """Bring `index` up to date with the files under `paths`, then save it. The writer lock
    is taken first, so what is compared is what this run will change. A file that cannot be
    read is reported and keeps what the index held for it."""
    report = IngestReport()
    roots = [Path(p).expanduser().resolve() for p in paths]
    found = list(dict.fromkeys(walk(paths)))
    index.begin_write()
    known = index.files()
    chunker = Chunker(index.encoder.tokenizer, index.encoder.max_seq_length,
                      index.encoder.prefix("document"))
    texts: list[str] = []
    ids: list[str] = []
    metadata: list[dict[str, Any]] = []
    missing: dict[str, list[Path]] = {}  # one warning per missing library
    for path in found:
        key = str(path)
        old = known.get(key)
        try:
            stat = path.stat()
            if old and old.size == stat.st_size and old.mtime_ns == stat.st_mtime_ns:
                report.unchanged_files += 1
                continue
            data = path.read_bytes()
        except OSError as exc:  # vanished or unreadable since the walk: keep what we had
            report.warnings.append(f"{path}: cannot read ({exc.strerror or exc}), skipped")
            report.skipped_files += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        if old and old.sha256 == digest:
            index.set_file(FileState(key, stat.st_size, stat.st_mtime_ns, digest,
                                     old.n_passages))
            report.unchanged_files += 1
            continue
        try:
            documents = read_documents(path, data, report.warnings)
        except MissingExtra as exc:  # keep what the index had: installing the extra fixes it
            missing.setdefault(str(exc), []).append(path)
            report.skipped_files += 1
            continue
        except UnreadableFile as exc:  # its content is gone: so are its passages
            report.warnings.append(f"{path}: {exc}, skipped")
            report.skipped_files += 1
            if old:
                report.passages_removed += index.remove(
                    [passage_id(key, i) for i in range(old.n_passages)])
                index.drop_file(key)
            continue
        if old:
            report.passages_removed += index.remove(
                [passage_id(key, i) for i in range(old.n_passages)])
            report.updated_files += 1
        else:
            report.added_files += 1
        count = 0
        for document in documents:
            for start, end in chunker.passages(document.text):
                meta = {"file": key, "passage": count, "start": start, "end": end,
                        **document.metadata}
                heading = heading_at(document.headings, start, end)
                if heading:
                    meta["heading"] = heading
                texts.append(document.text[start:end])
                ids.append(passage_id(key, count))
                metadata.append(meta)
                count += 1
        index.set_file(FileState(key, stat.st_size, stat.st_mtime_ns, digest, count))
    present = {str(p) for p in found}  # an unreadable file keeps its passages
    for key, state in known.items():
        if key not in present and any(Path(key).is_relative_to(root) for root in roots):
            report.passages_removed += index.remove(
                [passage_id(key, i) for i in range(state.n_passages)])
            index.drop_file(key)
            report.removed_files += 1
    if texts:
        index.add(texts, ids=ids, metadata=metadata, show_progress=show_progress)
        report.passages_added = len(texts)
    index.save()
    for why, paths in missing.items():
        report.warnings.append(f"{len(paths)} file(s) skipped, such as {paths[0]}: {why}")
    for warning in report.warnings:
        print(f"edgembed: warning: {warning}", file=sys.stderr)
    return report
