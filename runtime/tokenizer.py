"""Tokenizer set-up for the runtime.

Model repos often pin padding and truncation in tokenizer.json (MiniLM pins both at 128).
We override both: truncate at the package's max_seq_length and pad per batch ourselves,
so short texts never pay for a long fixed shape.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from .errors import ModelLoadError


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
