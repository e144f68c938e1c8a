"""Text in, vectors out: tokenization, length-bucketed batching and the ONNX forward pass."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import codes
from .errors import EdgembedError
from .package import Package, open_package
from .session import create_session
from .tokenizer import load_tokenizer, pad_batch, replace_lone_surrogates

PRECISIONS = codes.PRECISIONS
KINDS = ("query", "document")
# Texts are tokenized and length-sorted in windows of this many batches: big enough to
# sort well, small enough that memory stays bounded for huge inputs.
WINDOW_BATCHES = 16
PROGRESS_MIN_TEXTS = 512
# Before tokenizing, texts are cut at this many characters per token of max_seq_length:
# far beyond what the model reads (WordPiece words are at most 100 characters, most tokens
# under 10), but it keeps a megabyte paste from costing seconds of tokenization.
CHARS_PER_TOKEN = 64


class Encoder:
    """A loaded model package, ready to encode. Safe to share between threads:
    onnxruntime runs concurrent `run` calls in parallel on one session."""

    def __init__(self, package: Package, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        self.package = package
        self.max_seq_length = int(package.manifest["max_seq_length"])
        self.session = create_session(package.model_path, threads=threads, providers=providers)
        self.tokenizer, self.pad_id = load_tokenizer(package.tokenizer_path, self.max_seq_length)
        self._input_names = [node.name for node in self.session.get_inputs()]
        self._output_name = package.manifest.get("output", "sentence_embedding")
        self._int8_ranges: codes.Int8Ranges | None = None
        shape = self.session.get_inputs()[0].shape
        self._fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self._fixed_length = shape[1] if isinstance(shape[1], int) else None
        if self._fixed_length:
            limit = min(self.max_seq_length, self._fixed_length)
            self.tokenizer.enable_truncation(max_length=limit)

    @classmethod
    def load(cls, path: str | Path | None = None, threads: int | None = None,
             providers: Sequence[str] | None = None, verify: bool = True) -> Encoder:
        """Load a package directory (default: the bundled all-MiniLM-L6-v2), checking its files."""
        return cls(open_package(path, verify=verify), threads=threads, providers=providers)

    @property
    def path(self) -> Path:
        return self.package.path

    @property
    def manifest(self) -> dict[str, Any]:
        return self.package.manifest

    @property
    def dim(self) -> int:
        return int(self.package.manifest["dim"])

    @property
    def int8_ranges(self) -> codes.Int8Ranges:
        """Per-dimension int8 ranges: calibrated at export, or the documented fallback."""
        if self._int8_ranges is None:
            self._int8_ranges = codes.int8_ranges(self.manifest.get("calibration"), self.dim,
                                                  bool(self.manifest.get("normalized")))
        return self._int8_ranges

    def prefix(self, kind: str) -> str:
        if kind not in KINDS:
            raise EdgembedError(f"kind must be one of {KINDS}, got {kind!r}")
        return (self.manifest.get("prefixes") or {}).get(kind) or ""

    def encode(self, texts: str | Sequence[str], batch_size: int = 32,
               precision: str = "float32", kind: str = "document",
               show_progress: bool | None = None, dims: int | None = None) -> np.ndarray:
        """Embed texts; rows come back in input order. A single string gives a 1-D vector.

        `precision`: "float32"; "int8" (calibrated per-dimension ranges); "ubinary" (packed
        sign bits, ceil(dim/8) bytes per row) or "binary" (the same bytes as int8, minus 128),
        as sentence-transformers' `quantize_embeddings` defines them. `dims` keeps only the
        first dims dimensions (see `edgembed.codes.quantize`)."""
        single = isinstance(texts, str)
        items = [texts] if single else check_texts(texts)
        if precision not in PRECISIONS:
            raise EdgembedError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise EdgembedError(f"batch_size must be a positive integer, got {batch_size!r}")
        items = self._prepare(items, self.prefix(kind))
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if show_progress is None:
            show_progress = len(items) >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
        window = batch_size * WINDOW_BATCHES
        with tqdm(total=len(items), disable=not show_progress, unit="text") as bar:
            for start in range(0, len(items), window):
                chunk = items[start:start + window]
                out[start:start + len(chunk)] = self._encode_window(chunk, batch_size, bar)
        if precision != "float32" or dims is not None:
            ranges = self.int8_ranges if precision == "int8" else None
            out = codes.quantize(out, precision, ranges=ranges, dims=dims,
                                 normalize=bool(self.manifest.get("normalized")))
        return out[0] if single else out

    def _prepare(self, texts: list[str], prefix: str) -> list[str]:
        """Prefix, then make every text tokenizable: lone surrogates (which cannot be UTF-8
        encoded) become U+FFFD, and texts far longer than the model reads are cut, with one
        warning that counts them."""
        limit = self.max_seq_length * CHARS_PER_TOKEN
        prepared, cut = [], 0
        for text in texts:
            text = prefix + text if prefix else text
            text = replace_lone_surrogates(text)
            if len(text) > limit:
                text, cut = text[:limit], cut + 1
            prepared.append(text)
        if cut:
            warnings.warn(f"{cut} text(s) longer than {limit} characters were cut before "
                          f"tokenizing (the model reads at most {self.max_seq_length} tokens)",
                          stacklevel=3)
        return prepared

    def _encode_window(self, texts: list[str], batch_size: int, bar: tqdm) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = self._fixed_batch or batch_size
        for start in range(0, len(order), step):
            rows = order[start:start + step]
            out[rows] = self._run([encodings[i].ids for i in rows])
            bar.update(len(rows))
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        """One forward pass over a batch padded to its own longest text (or the fixed shape)."""
        input_ids, mask = pad_batch(ids, self.pad_id, self._fixed_length, self._fixed_batch)
        feeds = {"input_ids": input_ids, "attention_mask": mask,
                 "token_type_ids": np.zeros_like(input_ids)}
        result = self.session.run([self._output_name], {n: feeds[n] for n in self._input_names})
        return result[0][:len(ids)]


def check_texts(texts: Iterable[Any]) -> list[str]:
    """The texts as a list, or a TypeError naming the first item that is not a str."""
    if isinstance(texts, (bytes, bytearray)):
        raise TypeError("texts must be str or a sequence of str, got bytes; decode it first")
    items = list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__}, expected str")
    return items
