"""Text in, vectors out: tokenization, length-bucketed batching and the ONNX forward pass."""

from __future__ import annotations

import itertools
import os
import reprlib
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from . import codes
from .errors import EdgembedError, ModelLoadError, PackageError
from .manifest import Manifest
from .package import Package, open_package
from .session import (
    check_threads,
    cpu_only,
    default_threads,
    open_session,
    resolve_providers,
    run_session,
)
from .tokenizer import load_tokenizer, pad_batch, replace_lone_surrogates, tokenize

PRECISIONS = codes.PRECISIONS
KINDS = ("query", "document")
# The graph inputs the encoder knows how to fill; input_ids and attention_mask are required.
FEEDS = ("input_ids", "attention_mask", "token_type_ids")
# A forward pass holds at most this many padded tokens per thread running it (a batch is split
# into several passes): activations then stay in the CPU's caches, and the memory arena
# stays small. Measured on a 2-core AVX-512 VNNI machine (benchmarks/results/
# pass_tokens.json): the default package encoded short sentences within 3% as fast with
# 128 as with 256 and 6% faster than with 512, and the process's peak memory after them
# was 139 MB against 151 and 173. Results do not change: rows never interact in a pass.
PASS_TOKENS_PER_THREAD = 128
# Graphs whose weight products are int8 with activation scales computed at run time (the
# `int8`, `auto` and `int8-dynamic` methods) run their passes on one single-thread session,
# several side by side, one per thread, instead of one pass at a time whose operators are
# split over the threads: onnxruntime's int8 operators gain little from a second thread on
# a pass of PASS_TOKENS_PER_THREAD tokens, and a short text (a query) is as fast on one
# thread. One session also keeps one copy of the model in memory; the price is a lone long
# text, which cannot be split and runs on one thread (`parallel_passes=False` keeps every
# thread for it). Float graphs keep their operators split: theirs use a second thread well
# even on one short text. Measured on a 2-core Intel Xeon with AMX, one process
# (benchmarks/results/bench_xeon_amx.json): batch-32 sentences and SciFact abstracts side
# by side vs one at a time in profile.short.passes, one text alone on one thread vs two in
# profile.single.lone_texts.
PARALLEL_PASS_METHODS = ("int8", "auto", "int8-dynamic")
# Texts are tokenized and length-sorted in windows of this many batches: big enough to
# sort well, small enough that memory stays bounded for huge inputs.
WINDOW_BATCHES = 16
PROGRESS_MIN_TEXTS = 512
# Before tokenizing, texts are cut at this many characters per token of max_seq_length:
# far beyond what the model reads (WordPiece words are at most 100 characters, most tokens
# under 10), but it keeps a megabyte paste from costing seconds of tokenization.
CHARS_PER_TOKEN = 64
# sentence-transformers' encode keywords that ask for something edgembed does not do: each is
# accepted at the values that mean what edgembed does anyway, else refused with the reason
ST_ACCEPTED: dict[str, tuple[Any, ...]] = {
    "convert_to_numpy": (True,), "convert_to_tensor": (False,), "device": (None, "cpu"),
    "output_value": ("sentence_embedding",), "truncate_dim": (None,), "pool": (None,),
    "chunk_size": (None,)}
_TORCH = "edgembed returns numpy arrays and never imports torch; use torch.from_numpy(...)"
ST_REFUSED = {
    "convert_to_numpy": _TORCH, "convert_to_tensor": _TORCH,
    "device": "edgembed runs on the hardware chosen at load time (Encoder.load(path, "
              "providers=[...]) for onnxruntime, or backend='openvino', device='GPU'); "
              "device='cpu' is accepted for a CPU-only encoder",
    "output_value": "a package's graph pools and outputs sentence embeddings only",
    "truncate_dim": "use dims=, which keeps the first dims dimensions and, unlike truncate_dim, "
                    "re-normalises a unit-length model's vectors",
    "pool": "one Encoder is thread-safe: share it between threads instead of processes",
    "chunk_size": "one Encoder is thread-safe: share it between threads instead of processes"}


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, count: int = 1) -> None:
        return None


def map_in_pool(function: Any, items: list[Any], pool: ThreadPoolExecutor) -> Iterator[Any]:
    """`map(function, items)` run on `pool`'s threads, results in order. When the caller
    stops early (an error, Ctrl-C), the items not yet started are dropped instead of run, and
    the ones running are waited for: nothing of this call is left running afterwards."""
    futures = [pool.submit(function, item) for item in items]
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()
        wait(futures)


def progress_bar(total: int, show: bool | None, min_total: int = PROGRESS_MIN_TEXTS,
                 **options: Any) -> Any:
    """A tqdm bar when one is shown, else a no-op with the same `update`: tqdm (with the
    asyncio and importlib.metadata it pulls in) is imported only then, which keeps ~60 ms
    off every process's cold start. `show=None`: only for `min_total` or more items, on a
    terminal."""
    if show is None:
        show = total >= min_total and sys.stderr is not None and sys.stderr.isatty()
    if not show:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, **options)


class Encoder:
    """A loaded model package, ready to encode.

    Thread-safe, and not serialised: concurrent `encode` calls run in parallel. The
    tokenizer is only read and onnxruntime's `InferenceSession.run` is thread-safe. A pass
    runs on the session's intra-op thread pool (`threads`). With `parallel_passes`, the
    session runs on one thread and a call's passes run side by side on the encoder's
    `threads` worker threads. Concurrent callers compete for the same cores."""

    def __init__(self, package: Package, threads: int | None = None,
                 providers: Sequence[Any] | str | None = None, backend: str = "onnxruntime",
                 device: str | None = None, static_buckets: object = None,
                 parallel_passes: bool | None = None) -> None:
        self.package = package
        self.max_seq_length = package.manifest.max_seq_length
        self.backend = backend
        self.threads = check_threads(threads) or default_threads()
        self.parallel_passes = self._check_parallel_passes(parallel_passes, providers)
        self.session = open_session(package.model_path,
                                    threads=1 if self.parallel_passes else threads,
                                    providers=providers, backend=backend, device=device,
                                    static_buckets=static_buckets)
        self._pass_tokens = PASS_TOKENS_PER_THREAD * self.threads
        # the worker threads parallel passes run on, made at the first call that needs them
        # and kept for the encoder's life: new threads per call cost about a millisecond of
        # start-up each
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self.tokenizer, self.pad_id = load_tokenizer(package.tokenizer_path, self.max_seq_length)
        self._output_name = package.manifest.output
        self._input_names, (self._fixed_batch, self._fixed_length) = self._check_graph()
        self._int8_ranges: codes.Int8Ranges | None = None
        if (self.manifest.calibration or {}).get("int8"):
            try:  # parse now: a damaged calibration is a package problem, not an encode one
                self._int8_ranges = self.int8_ranges
            except EdgembedError as exc:
                raise PackageError(f"{package.path}: {exc}") from None
        if self._fixed_length:
            limit = min(self.max_seq_length, self._fixed_length)
            self.tokenizer.enable_truncation(max_length=limit)

    def _check_graph(self) -> tuple[list[str], tuple[int | None, int | None]]:
        """Refuse a model.onnx that does not fit the manifest: a package whose parts disagree
        would otherwise fail (or silently misbehave) at the first encode."""
        where = self.package.model_path
        inputs = {node.name: node for node in self.session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= set(inputs) or not set(inputs) <= set(FEEDS):
            raise ModelLoadError(f"{where} takes inputs {sorted(inputs)}; an edgembed model "
                                 "takes input_ids, attention_mask and optionally token_type_ids")
        for node in inputs.values():
            if node.type != "tensor(int64)" or len(node.shape) != 2:
                raise ModelLoadError(f"{where}: input {node.name} is {node.type} {node.shape}; "
                                     "expected int64 [batch, sequence]")
        outputs = {node.name: node for node in self.session.get_outputs()}
        if self._output_name not in outputs:
            raise ModelLoadError(f"{where} has no output {self._output_name!r} (the manifest's "
                                 f"'output'); it has {sorted(outputs)}")
        shape = outputs[self._output_name].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != self.dim):
            raise ModelLoadError(f"{where}: output {self._output_name} has shape {shape}, but "
                                 f"the manifest says [batch, {self.dim}]")
        fixed = [size if isinstance(size, int) and size > 0 else None
                 for size in inputs["input_ids"].shape]
        return [name for name in FEEDS if name in inputs], (fixed[0], fixed[1])

    def _check_parallel_passes(self, requested: object, providers: Any) -> bool:
        """Whether a call of several passes runs them side by side: by default, for graphs
        with int8 products (PARALLEL_PASS_METHODS) on onnxruntime's CPU provider with two or
        more threads; `True` or `False` overrides the default where passes can run so."""
        if requested is not None and not isinstance(requested, (bool, np.bool_)):
            raise EdgembedError("parallel_passes must be True, False or None (the default), "
                                f"got {reprlib.repr(requested)}")
        possible = self.backend == "onnxruntime" and self.threads > 1 and cpu_only(
            resolve_providers(providers))
        if requested and not possible:
            raise EdgembedError("parallel_passes=True needs backend='onnxruntime' on its CPU "
                                f"provider and threads of 2 or more (threads={self.threads})")
        return bool(requested) if requested is not None \
            else possible and int8_products(self.manifest)

    @classmethod
    def load(cls, path: str | Path | None = None, threads: int | None = None,
             providers: Sequence[Any] | str | None = None, verify: bool = True, *,
             backend: str = "onnxruntime", device: str | None = None,
             static_buckets: bool | Sequence[int] | None = None,
             parallel_passes: bool | None = None) -> Encoder:
        """Load a package directory (default: the bundled all-MiniLM-L6-v2), checking its files.
        Anything wrong with the package raises a PackageError naming the file or field.

        `backend="onnxruntime"` (default) runs on `providers` (default: its CPU provider).
        `backend="openvino"` (the `openvino` extra) runs on OpenVINO's `device`: "CPU"
        (default), "GPU", "NPU" or "AUTO". `static_buckets` (OpenVINO only): pad a
        dynamic-shape package to a few sequence lengths, each compiled once and cached on
        disk; on by default on NPUs, which need fixed shapes; True for the default lengths
        (DEFAULT_BUCKETS in edgembed.openvino_session) or a list of lengths.

        `parallel_passes` (onnxruntime, CPU, threads ≥ 2): the session runs on one thread,
        and the forward passes of a call run side by side, one per thread, instead of one
        pass at a time with each operator split over all threads; a few texts are split
        into one pass per thread. On by default for int8 packages: batches about 1.5×
        faster, short single texts as fast, the same memory; a lone long text, which
        cannot be split, runs on one thread (about 1.5× slower at 256 tokens on two
        cores). Vectors are the same within float rounding: rows never interact in a
        pass."""
        return cls(open_package(path, verify=verify), threads=threads, providers=providers,
                   backend=backend, device=device, static_buckets=static_buckets,
                   parallel_passes=parallel_passes)

    @property
    def path(self) -> Path:
        return self.package.path

    @property
    def manifest(self) -> Manifest:
        return self.package.manifest

    @property
    def dim(self) -> int:
        return self.package.manifest.dim

    @property
    def int8_ranges(self) -> codes.Int8Ranges:
        """Per-dimension int8 ranges: calibrated at export, or the documented fallback."""
        if self._int8_ranges is None:
            self._int8_ranges = codes.int8_ranges(self.manifest.calibration, self.dim,
                                                  self.manifest.normalized)
        return self._int8_ranges

    def prefix(self, kind: str) -> str:
        if not isinstance(kind, str) or kind not in KINDS:
            raise EdgembedError(f"kind must be one of {KINDS}, got {reprlib.repr(kind)}")
        return (self.manifest.prefixes or {}).get(kind) or ""

    @property
    def prompts(self) -> dict[str, str]:
        """The package's named prompts (sentence-transformers' `prompts`: name → text)."""
        return dict(self.manifest.prompts)

    @property
    def default_prompt_name(self) -> str | None:
        """The prompt used when a call names none (sentence-transformers' setting)."""
        return self.manifest.default_prompt_name

    def resolve_prompt(self, kind: str | None = None, prompt_name: str | None = None,
                       prompt: str | None = None) -> str:
        """The text put before every input, from at most one of: `prompt` (the literal
        text), `prompt_name` (one of `prompts`), `kind` ("query" or "document": the
        package's prefixes). With none, the default prompt if the package names one (as
        sentence-transformers does), else the document prefix. Passing two is refused:
        sentence-transformers would silently drop one."""
        given = [name for name, value in (("kind", kind), ("prompt_name", prompt_name),
                                          ("prompt", prompt)) if value is not None]
        if len(given) > 1:
            raise EdgembedError(f"pass one of {' or '.join(given)}, not both: each chooses "
                                "the text put before the inputs")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise EdgembedError(f"prompt must be a string, got {reprlib.repr(prompt)}")
            return prompt
        if prompt_name is not None:
            return self._named_prompt(prompt_name)
        if kind is None and self.default_prompt_name is not None:
            return self._named_prompt(self.default_prompt_name)
        return self.prefix("document" if kind is None else kind)

    def _named_prompt(self, name: Any) -> str:
        if not isinstance(name, str) or name not in self.manifest.prompts:
            names = ", ".join(repr(key) for key in self.manifest.prompts)
            raise EdgembedError(
                f"unknown prompt_name {reprlib.repr(name)}: "
                + (f"this package's prompts are {names}" if names else
                   "this package has no named prompts")
                + "; kind='query' or kind='document' picks its prefixes, prompt='...' any text")
        return self.manifest.prompts[name]

    def encode(self, texts: str | Iterable[str], batch_size: int = 32,
               precision: str = "float32", kind: str | None = None,
               show_progress: bool | None = None, dims: int | None = None, *,
               prompt_name: str | None = None, prompt: str | None = None,
               normalize_embeddings: bool = False, show_progress_bar: bool | None = None,
               convert_to_numpy: bool = True, **st_options: Any) -> np.ndarray:
        """Embed texts; rows come back in input order. A single string gives a 1-D vector.

        `texts` is a str or any iterable of str: a list, a tuple, a 1-D numpy array of str,
        or a generator, which is read to the end first (use `encode_iter` to stream). Sets
        (no order) and mappings (keys or values?) are refused, as is bytes; an item that is
        not a str raises a TypeError naming its position (`texts[3] is NoneType, ...`).

        Every str has a defined, finite result. The empty string and any text of only
        whitespace or control characters embed as the model's empty input (`[CLS] [SEP]`);
        lone surrogates become U+FFFD; NUL, RTL marks, emoji and any other Unicode go to the
        tokenizer as they are; a text longer than max_seq_length × CHARS_PER_TOKEN
        characters is cut before tokenizing, with one UserWarning per call counting such
        texts (the model reads only max_seq_length tokens anyway). Bad arguments raise
        EdgembedError before any text is read or encoded.

        `precision`: "float32"; "int8" (calibrated per-dimension ranges) or "uint8" (the
        same codes plus 128); "ubinary" (packed sign bits, ceil(dim/8) bytes per row) or
        "binary" (the same bytes as int8, minus 128), as sentence-transformers'
        `quantize_embeddings` defines them. `dims` keeps only the first dims dimensions (see
        `edgembed.codes.quantize`).

        The text put before each input comes from one of `kind` ("query" or "document": the
        package's prefixes, e.g. e5's "query: "), `prompt_name` (one of the package's named
        `prompts`) or `prompt` (literal text), as `resolve_prompt` says; with none of them,
        the package's default prompt, else its document prefix.

        sentence-transformers' keywords mean what they mean there: `normalize_embeddings`
        scales float rows to unit length (a no-op for packages whose vectors are normalised),
        `show_progress_bar` is `show_progress`, `convert_to_numpy=True` is what edgembed
        always returns. Its other keywords (`convert_to_tensor`, `device`, `output_value`,
        `truncate_dim`, `pool`, `chunk_size`) are accepted at the values that ask for what
        edgembed does anyway and refused otherwise, with the reason: never ignored."""
        show_progress = self._check_st_options(show_progress, show_progress_bar,
                                               normalize_embeddings, convert_to_numpy,
                                               st_options)
        self._check_options(batch_size, precision, dims)
        normalize = bool(normalize_embeddings) and not self.manifest.normalized
        if normalize and precision in ("int8", "uint8"):
            raise EdgembedError(f"normalize_embeddings=True with precision={precision!r}: this "
                                "package's int8 ranges were calibrated on its unnormalised "
                                "vectors; quantize float rows yourself or drop one of the two")
        prefix = self.resolve_prompt(kind, prompt_name, prompt)
        single = isinstance(texts, str)
        out, _ = self._encode_all(check_texts(texts), int(batch_size), prefix, show_progress)
        out = self._convert(out, precision, dims, normalize)
        return out[0] if single else out

    def _check_st_options(self, show_progress: Any, show_progress_bar: Any, normalize: Any,
                          convert_to_numpy: Any, others: dict[str, Any]) -> bool | None:
        """sentence-transformers' encode keywords, checked; returns the progress setting."""
        for name, value in (("normalize_embeddings", normalize),
                            ("convert_to_numpy", convert_to_numpy)):
            if not isinstance(value, (bool, np.bool_)):
                raise EdgembedError(f"{name} must be True or False, got {reprlib.repr(value)}")
        if show_progress is not None and show_progress_bar is not None \
                and bool(show_progress) != bool(show_progress_bar):
            raise EdgembedError(f"show_progress={show_progress} and show_progress_bar="
                                f"{show_progress_bar} disagree; pass one of them")
        if not convert_to_numpy:
            others = {"convert_to_numpy": False, **others}
        for name, value in others.items():
            if name not in ST_ACCEPTED:
                raise TypeError(f"encode() got an unexpected keyword argument {name!r}")
            accepted = ST_ACCEPTED[name]
            if name == "device" and not self._cpu_only():
                accepted = (None,)
            if not any(value is ok or (type(value) is type(ok) and value == ok)
                       for ok in accepted):
                raise EdgembedError(f"{name}={reprlib.repr(value)} is not supported: "
                                    f"{ST_REFUSED[name]}")
        return show_progress if show_progress is not None else show_progress_bar

    def _cpu_only(self) -> bool:
        return cpu_only(self.session.get_providers())

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Cosine similarity of every row of `embeddings1` with every row of `embeddings2`:
        a float32 matrix (len1, len2), also for single vectors, as sentence-transformers'
        `similarity` computes with its default function. Float vectors only: int8 and
        binary codes are not points in the model's space (`edgembed.codes` scores those)."""
        first, second = (_float_rows(e, name) for e, name in
                         ((embeddings1, "embeddings1"), (embeddings2, "embeddings2")))
        if first.shape[1] != second.shape[1]:
            raise EdgembedError(f"embeddings1 has {first.shape[1]} dimensions, embeddings2 "
                                f"{second.shape[1]}")
        return codes.l2_normalize(first) @ codes.l2_normalize(second).T

    def get_sentence_embedding_dimension(self) -> int:
        """`dim`, under sentence-transformers' name."""
        return self.dim

    def encode_with_usage(self, texts: str | Iterable[str], kind: str | None = None,
                          batch_size: int = 32, *, prompt_name: str | None = None,
                          prompt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """float32 rows as `encode` gives them (always 2-D), and the tokens the model read
        for each text as `count_tokens` gives them, from one tokenization: what a server
        billing usage needs."""
        self._check_options(batch_size, "float32", None)
        prefix = self.resolve_prompt(kind, prompt_name, prompt)
        return self._encode_all(check_texts(texts), int(batch_size), prefix, False)

    def _encode_all(self, items: list[str], batch_size: int, prefix: str,
                    show_progress: bool | None) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((len(items), self.dim), dtype=np.float32)
        tokens = np.empty(len(items), dtype=np.int64)
        with progress_bar(len(items), show_progress, unit="text") as bar:
            done = 0
            for vectors, lengths in self._windows(iter(items), batch_size, prefix, bar):
                out[done:done + len(vectors)] = vectors
                tokens[done:done + len(vectors)] = lengths
                done += len(vectors)
        return out, tokens

    def encode_iter(self, texts: str | Iterable[str], batch_size: int = 32,
                    precision: str = "float32", kind: str | None = None,
                    dims: int | None = None, *, prompt_name: str | None = None,
                    prompt: str | None = None) -> Iterator[np.ndarray]:
        """Embed a stream of texts with bounded memory: yields arrays of up to `batch_size`
        rows, in input order, whose concatenation equals `encode(list(texts), ...)` with the
        same arguments. At most batch_size × WINDOW_BATCHES texts are read ahead of the rows
        yielded, so a generator of millions of texts never sits in memory.

        Arguments are checked when this is called; items are type-checked as they are read
        (a non-str raises TypeError naming its position in the stream). The counted warning
        for over-long texts comes once, after the last text."""
        self._check_options(batch_size, precision, dims)
        prefix = self.resolve_prompt(kind, prompt_name, prompt)
        items = iter_texts(texts)
        return self._stream(items, int(batch_size), prefix, precision, dims)

    def _stream(self, items: Iterator[str], batch_size: int, prefix: str, precision: str,
                dims: int | None) -> Iterator[np.ndarray]:
        for vectors, _ in self._windows(items, batch_size, prefix, None):
            vectors = self._convert(vectors, precision, dims)
            for start in range(0, len(vectors), batch_size):
                yield vectors[start:start + batch_size]

    def _check_options(self, batch_size: Any, precision: Any, dims: Any) -> None:
        if not _is_int(batch_size) or batch_size < 1:
            raise EdgembedError(
                f"batch_size must be a positive integer, got {reprlib.repr(batch_size)}")
        if not isinstance(precision, str) or precision not in PRECISIONS:
            raise EdgembedError(
                f"precision must be one of {PRECISIONS}, got {reprlib.repr(precision)}")
        if dims is not None and (not _is_int(dims) or not 1 <= dims <= self.dim):
            raise EdgembedError(
                f"dims must be an integer in 1..{self.dim}, got {reprlib.repr(dims)}")

    def count_tokens(self, texts: str | Iterable[str], kind: str | None = None, *,
                     prompt_name: str | None = None, prompt: str | None = None) -> np.ndarray:
        """How many tokens the model reads for each text (special tokens included, after the
        prompt and the cut `encode` applies): what an API bills as usage."""
        prefix = self.resolve_prompt(kind, prompt_name, prompt)
        prepared, _ = self._prepare(check_texts(texts), prefix)
        return np.fromiter(map(len, tokenize(self.tokenizer, prepared)), dtype=np.int64,
                           count=len(prepared))

    def convert(self, vectors: np.ndarray, precision: str = "float32",
                dims: int | None = None) -> np.ndarray:
        """What `encode(..., precision=, dims=)` returns, from float32 rows `encode` gave:
        lets a caller encode once and serve several precisions."""
        self._check_options(1, precision, dims)
        return self._convert(vectors, precision, dims)

    def _convert(self, vectors: np.ndarray, precision: str, dims: Any,
                 normalize: bool = False) -> np.ndarray:
        """`normalize`: scale rows to unit length (after truncation, as sentence-transformers
        does); the caller refuses it for int8, whose ranges are for the model's own scale."""
        if normalize and dims is None:
            vectors = codes.l2_normalize(vectors)
        if precision == "float32" and dims is None:
            return vectors
        ranges = self.int8_ranges if precision in ("int8", "uint8") else None
        return codes.quantize(vectors, precision, ranges=ranges,
                              dims=None if dims is None else int(dims),
                              normalize=self.manifest.normalized or normalize)

    def _windows(self, items: Iterator[str], batch_size: int, prefix: str,
                 bar: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """float32 vectors and token counts of successive windows of texts, each window read
        only when needed."""
        window, cut = batch_size * WINDOW_BATCHES, 0
        while chunk := list(itertools.islice(items, window)):
            texts, n_cut = self._prepare(chunk, prefix)
            cut += n_cut
            yield self._encode_window(texts, batch_size, bar)
        if cut:
            limit = self.max_seq_length * CHARS_PER_TOKEN
            warnings.warn(f"{cut} text(s) longer than {limit} characters were cut before "
                          f"tokenizing (the model reads at most {self.max_seq_length} tokens)",
                          stacklevel=3)

    def _prepare(self, texts: list[str], prefix: str) -> tuple[list[str], int]:
        """Prefix, then make every text tokenizable: lone surrogates (which cannot be UTF-8
        encoded) become U+FFFD, and texts far longer than the model reads are cut (counted)."""
        limit = self.max_seq_length * CHARS_PER_TOKEN
        prepared, cut = [], 0
        for text in texts:
            text = prefix + text if prefix else text
            text = replace_lone_surrogates(text)
            if len(text) > limit:
                text, cut = text[:limit], cut + 1
            prepared.append(text)
        return prepared, cut

    def _encode_window(self, texts: list[str], batch_size: int,
                       bar: Any) -> tuple[np.ndarray, np.ndarray]:
        ids = tokenize(self.tokenizer, texts)
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        sorted_lengths = lengths[order]
        if self.parallel_passes:
            passes = [order[rows] for rows in self._passes(
                sorted_lengths, batch_size, PASS_TOKENS_PER_THREAD, parts=self.threads)]
        else:
            passes = [order[rows] for rows in self._passes(sorted_lengths, batch_size,
                                                           self._pass_tokens)]
        run, session = self._run, self.session
        if len(passes) > 1 and self.parallel_passes:
            results = map_in_pool(lambda rows: run([ids[i] for i in rows], session),
                                  passes, self._pass_pool())
        else:
            results = (run([ids[i] for i in rows], session) for rows in passes)
        for rows, vectors in zip(passes, results, strict=True):
            out[rows] = vectors
            if bar is not None:
                bar.update(len(rows))
        return out, lengths

    def _pass_pool(self) -> ThreadPoolExecutor:
        """The worker threads parallel passes run on; a process forked from this one (whose
        copy of the pool has no threads) makes its own."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="edgembed-pass")
                self._pool_pid = os.getpid()
            return self._pool

    def _passes(self, sorted_lengths: np.ndarray, batch_size: int, pass_tokens: int,
                parts: int = 1) -> Iterator[slice]:
        """Slices of the length-sorted (longest first) texts, one per forward pass: at most
        `batch_size` texts, at most a `parts`-th of them (so that a few texts still make a
        pass per thread) and, unless the graph has a fixed shape, at most `pass_tokens`
        padded tokens (each pass pads to its first, longest text)."""
        start, share = 0, -(-len(sorted_lengths) // parts)
        while start < len(sorted_lengths):
            count = self._fixed_batch or min(batch_size, share)
            if not self._fixed_batch:
                count = min(count, max(1, pass_tokens // int(sorted_lengths[start])))
            yield slice(start, start + count)
            start += count

    def _run(self, ids: list[list[int]], session: Any) -> np.ndarray:
        """One forward pass over a batch padded to its own longest text (or the fixed shape)."""
        input_ids, mask = pad_batch(ids, self.pad_id, self._fixed_length, self._fixed_batch)
        feeds = {"input_ids": input_ids, "attention_mask": mask,
                 "token_type_ids": np.zeros_like(input_ids)}
        result = run_session(session, self._output_name,
                             {name: feeds[name] for name in self._input_names})
        if result.shape != (len(input_ids), self.dim):
            raise EdgembedError(f"the model returned shape {list(result.shape)} for "
                                f"{len(input_ids)} texts; the manifest says dim {self.dim}")
        vectors = result[:len(ids)]
        if not np.isfinite(vectors).all():
            raise EdgembedError("the model returned NaN or infinite values; the package's "
                                "model.onnx is broken (re-export it)")
        return vectors


def int8_products(manifest: Manifest) -> bool:
    """Whether a package's weight products are int8 with activation scales computed at run
    time: the graphs whose passes run side by side by default."""
    quantization = manifest.quantization or {}
    return quantization.get("method") in PARALLEL_PASS_METHODS \
        and quantization.get("weight_bits", 8) == 8


def check_texts(texts: Any) -> list[str]:
    """The texts as a list of str: a str is one text; any other iterable of str is read to
    the end. TypeError names the first item that is not a str, or the container refused."""
    return list(iter_texts(texts))


def iter_texts(texts: Any) -> Iterator[str]:
    """Like `check_texts`, lazily: the container is checked now, each item as it is read.
    A str subclass (numpy's str_, say) comes out as a plain str."""
    if isinstance(texts, str):
        return iter([str.__str__(texts)])
    if isinstance(texts, (bytes, bytearray, memoryview)):
        raise TypeError("texts must be str or an iterable of str, got bytes; decode it first")
    if isinstance(texts, Mapping):
        raise TypeError(f"texts must be str or an iterable of str, got a mapping "
                        f"({type(texts).__name__}); pass list(m.values()) or list(m)")
    if isinstance(texts, Set):
        raise TypeError(f"texts must be str or an iterable of str, got a {type(texts).__name__}, "
                        "which has no order to return rows in; pass a list (sorted(s), say)")
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise TypeError(f"texts must be one-dimensional, got an array of shape {texts.shape}")
    try:
        iterator = iter(texts)
    except TypeError:
        raise TypeError(f"texts must be str or an iterable of str, "
                        f"got {type(texts).__name__}") from None
    return _checked(iterator)


def _checked(items: Iterator[Any]) -> Iterator[str]:
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__}, expected str")
        yield text if type(text) is str else str.__str__(text)


def _float_rows(vectors: Any, name: str) -> np.ndarray:
    """A vector or matrix of finite floats as a float32 matrix, or a clear error."""
    array = np.asarray(vectors)
    if array.dtype.kind != "f":
        raise EdgembedError(f"{name} must be float vectors (precision='float32'), got "
                            f"{array.dtype}; compare int8 or binary codes with edgembed.codes")
    rows, _ = codes.as_matrix(array.astype(np.float32, copy=False))
    if not np.isfinite(rows).all():
        raise EdgembedError(f"{name} contains NaN or infinity")
    return rows


def _is_int(value: Any) -> bool:
    """An integer argument: Python or numpy int, not bool (True is not a batch size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))

