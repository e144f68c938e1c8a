"""Healing: a short distillation of the pruned model (student) towards the original
(teacher) on unlabeled text, on the CPU, bounded in time.

The loss is 1 - cosine between the student's and the teacher's sentence embeddings (for
unit vectors that is half their squared distance), as in Distilled Sentence Embedding.
With `dims`, both are cut to the first `dims` dimensions and renormalised first, so the
student is taught the truncated embedding it will actually ship."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgembed.errors import ExportError

from .feeds import tokenized_batches
from .prune_vocab import builtin_words
from .texts import builtin_texts
from .validate import pool

THREADS = 2
BATCH_SIZE = 32
MAX_LENGTH = 128  # heal texts are sentences; longer windows only cost time
LEARNING_RATE = 3e-4
WARMUP_STEPS = 10


def builtin_heal_texts(synthetic: int = 1200, seed: int = 0) -> list[str]:
    """The built-in calibration sentences plus `synthetic` random word sequences (4–16
    words of the built-in English list, SCOWL size ≤ 35): broad vocabulary at no data cost.
    The validation set is left out, since the quality card measures on it."""
    rng = random.Random(seed)
    words = builtin_words(35)
    made = [" ".join(rng.choices(words, k=rng.randint(4, 16))) for _ in range(synthetic)]
    return builtin_texts("calibration") + made


def _unit(vectors: Any, dims: int | None) -> Any:
    import torch

    vectors = vectors[:, :dims] if dims else vectors
    return torch.nn.functional.normalize(vectors, dim=-1)


def heal(student: Any, teacher: np.ndarray, texts: Sequence[str], tokenizer_file: Path,
         pooling: str, minutes: float, max_steps: int | None = None,
         dims: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Train `student` (a transformers model, in place) so its embeddings of `texts` match
    `teacher` (the original model's embeddings of the same texts, one row per text).
    Stops after `minutes` of wall time or `max_steps`; returns what it did, for the manifest."""
    import torch

    if len(texts) != len(teacher):
        raise ExportError("heal: teacher embeddings and texts differ in number")
    if len(texts) < BATCH_SIZE:
        raise ExportError(f"--heal needs at least {BATCH_SIZE} texts, got {len(texts)}")
    if minutes <= 0:
        raise ExportError(f"--heal-minutes must be positive, got {minutes}")
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    target = _unit(torch.from_numpy(np.asarray(teacher, np.float32)), dims)
    # the token table stays frozen: it is most of the parameters (and of the optimizer's
    # time), and frozen rows keep a pruned vocabulary's embeddings exact
    student.get_input_embeddings().weight.requires_grad_(False)
    trained = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=LEARNING_RATE)
    student.eval()  # no dropout: a few hundred steps converge faster without it
    losses, steps, epochs = [], 0, 0
    start = time.monotonic()
    deadline = start + minutes * 60
    try:
        while time.monotonic() < deadline and (max_steps is None or steps < max_steps):
            order = rng.permutation(len(texts))
            batches = tokenized_batches(tokenizer_file, [texts[i] for i in order], MAX_LENGTH,
                                        batch_size=BATCH_SIZE)
            for number, batch in enumerate(batches):
                if time.monotonic() >= deadline or (max_steps is not None and steps >= max_steps):
                    break
                rows = order[number * BATCH_SIZE:(number + 1) * BATCH_SIZE]
                feeds = {k: torch.from_numpy(v) for k, v in batch.items()}
                hidden = student(**feeds).last_hidden_state
                vectors = _unit(pool(hidden, feeds["attention_mask"], pooling), dims)
                loss = (1 - (vectors * target[rows]).sum(-1)).mean()
                for group in optimizer.param_groups:
                    group["lr"] = LEARNING_RATE * min(1.0, (steps + 1) / WARMUP_STEPS)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                steps += 1
            epochs += 1
    finally:
        torch.set_num_threads(threads)
    window = max(1, min(20, len(losses) // 2))
    return {
        "texts": len(texts), "steps": steps, "epochs_started": epochs,
        "seconds": round(time.monotonic() - start, 1), "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE, "loss": "1 - cosine to the teacher's embedding",
        "loss_first": round(float(np.mean(losses[:window])), 5) if losses else None,
        "loss_last": round(float(np.mean(losses[-window:])), 5) if losses else None,
        "threads": THREADS, "seed": seed,
    }
