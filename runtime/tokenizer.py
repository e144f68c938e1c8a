"""Tokenizer set-up for the runtime.

Model repos often pin padding and truncation in tokenizer.json (MiniLM pins both at 128).
We override both: truncate at the package's max_seq_length and pad per batch ourselves,
so short texts never pay for a long fixed shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .errors import EdgembedError, ModelLoadError, reason

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """Python strings may hold lone surrogates (from surrogateescape decoding, or JSON like
    "\\ud800"); they cannot be UTF-8 encoded, so tokenizers and SQLite reject them. They
    become U+FFFD, the replacement character."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def load_tokenizer(path: Path, max_length: int) -> tuple[Tokenizer, int]:
    """Return the tokenizer (truncating, not padding) and its pad token id. A tokenizer that
    cannot encode the empty text within `max_length` tokens is refused here, at load time."""
    try:
        tokenizer = Tokenizer.from_file(str(path))
        pad_id = (tokenizer.padding or {}).get("pad_id")
        if pad_id is None:
            pad_id = tokenizer.token_to_id("[PAD]") or tokenizer.token_to_id("<pad>") or 0
        tokenizer.no_padding()
        specials = len(tokenizer.encode("").ids)
    except BaseException as exc:  # bare Exception for bad JSON; PanicException for worse
        if not _is_tokenizers_failure(exc):
            raise
        raise ModelLoadError(f"cannot load tokenizer {path}: {reason(exc)}") from None
    if specials >= max_length:
        raise ModelLoadError(f"max_seq_length {max_length} leaves no room for text: the "
                             f"tokenizer {path} adds {specials} special tokens to every text")
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer, int(pad_id)


def tokenize(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text. `encode_batch_fast` skips the character offsets, which the
    encoder never reads (a sixth less tokenizing time on short sentences); it only reads
    the tokenizer, so threads may share it. Its failures (a vocabulary without an unknown
    token, say) become EdgembedError."""
    try:
        return [encoding.ids for encoding in tokenizer.encode_batch_fast(texts)]
    except BaseException as exc:
        if not _is_tokenizers_failure(exc):
            raise
        raise EdgembedError(f"the tokenizer failed: {reason(exc)}") from None


def _is_tokenizers_failure(exc: BaseException) -> bool:
    """tokenizers raises plain Exceptions, and pyo3's PanicException (a BaseException, so
    that bare `except Exception` misses it) when its Rust code panics."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None,
              height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token id rows → (input_ids, attention_mask) int64 arrays padded to `width` (default:
    the longest row) and `height` rows (default: as many as given; spare rows copy row 0
    so a fixed-batch graph never sees an all-padding row)."""
    width = width or max(1, max((len(row) for row in rows), default=0))
    height = height or len(rows)
    input_ids = np.full((height, width), pad_id, dtype=np.int64)
    mask = np.zeros((height, width), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, :len(row)] = row[:width]
        mask[i, :len(row)] = 1
    if len(rows) < height:
        input_ids[len(rows):] = input_ids[0]
        mask[len(rows):] = mask[0]
    return input_ids, mask
