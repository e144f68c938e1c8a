"""Tokenized model inputs for calibration: what quantize_static and the sensitivity search
feed the graph, built with the same tokenizer settings the runtime uses."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgembed.tokenizer import load_tokenizer, pad_batch


def tokenized_batches(tokenizer_file: Path, texts: Sequence[str], max_length: int,
                      batch_size: int = 8, pad_to: int | None = None) -> list[dict]:
    """Batches of {input_ids, attention_mask, token_type_ids} (int64). With `pad_to`, every
    batch has the same width, which histogram calibrators need."""
    tokenizer, pad_id = load_tokenizer(tokenizer_file, max_length)
    encodings = [e.ids for e in tokenizer.encode_batch(list(texts))]
    batches = []
    for start in range(0, len(encodings), batch_size):
        ids, mask = pad_batch(encodings[start:start + batch_size], pad_id, width=pad_to)
        batches.append({"input_ids": ids, "attention_mask": mask,
                        "token_type_ids": np.zeros_like(ids)})
    return batches


def forward_inputs(model: Any, batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch's inputs that a torch model's forward takes, as torch tensors: DistilBERT,
    MPNet and ModernBERT take no token_type_ids, and refuse them."""
    import torch

    accepted = inspect.signature(model.forward).parameters
    return {name: value if isinstance(value, torch.Tensor) else torch.from_numpy(value)
            for name, value in batch.items() if name in accepted}
