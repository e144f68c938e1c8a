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

from .errors import ModelLoadError

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """Python strings may hold lone surrogates (from surrogateescape decoding, or JSON like
    "\\ud800"); they cannot be UTF-8 encoded, so tokenizers and SQLite reject them. They
    become U+FFFD, the replacement character."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def load_tokenizer(path: Path, max_length: int) -> tuple[Tokenizer, int]:
    """Return the tokenizer (truncating, not padding) and its pad token id."""
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for bad JSON
        raise ModelLoadError(f"cannot load tokenizer {path}: {str(exc).strip()[:200]}") from None
    pad_id = (tokenizer.padding or {}).get("pad_id")
    if pad_id is None:
        pad_id = tokenizer.token_to_id("[PAD]") or tokenizer.token_to_id("<pad>") or 0
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer, int(pad_id)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None,
              height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token id rows → (input_ids, attention_mask) int64 arrays padded to `width` (default:
    the longest row) and `height` rows (default: as many as given; spare rows copy row 0
    so a fixed-batch graph never sees an all-padding row)."""
    width = width or max(len(row) for row in rows)
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
