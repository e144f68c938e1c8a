"""Healing: a short distillation of the pruned model (student) towards the original
(teacher) on unlabeled text, on the CPU, bounded in time.

Two losses, summed. The sentence loss is 1 - cosine between the student's and the
teacher's sentence embeddings (for unit vectors, half their squared distance), as in
Distilled Sentence Embedding; with `dims` both are cut to the first `dims` dimensions and
renormalised first, so the student is taught the truncated embedding it will ship. The
layer loss asks each kept layer to output what its original counterpart output (mean
squared error over real tokens, relative to the teacher's mean square), as in Patient
Knowledge Distillation: every token of every layer is a target, so a few hundred CPU
steps carry far more signal than one vector per text."""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgembed.errors import ExportError

from .feeds import forward_inputs, tokenized_batches
from .prune_layers import layer_list
from .prune_vocab import builtin_words
from .texts import builtin_texts
from .validate import pool

THREADS = 2
BATCH_SIZE = 32
MAX_LENGTH = 128  # passages are cut here: longer windows only cost time
LEARNING_RATE = 3e-4
WARMUP_STEPS = 10
LAYER_LOSS_WEIGHT = 1.0


@functools.cache
def stdlib_paragraphs() -> tuple[str, ...]:
    """English prose from Python's own standard library: docstring paragraphs and the
    language reference (pydoc_data), kept when they read as sentences (mostly letters, no
    doctest, 60–1,000 characters). Natural text of every kind of syntax, available offline
    on any machine that runs the exporter; sorted, so the same Python gives the same set.
    Cached: parsing the standard library takes seconds."""
    import ast
    import sysconfig
    from pydoc_data.topics import topics

    def prose(text: str) -> list[str]:
        found = []
        for paragraph in re.split(r"\n\s*\n", text):
            paragraph = " ".join(paragraph.split())
            letters = sum(c.isalpha() or c == " " for c in paragraph)
            if (60 <= len(paragraph) <= 1000 and letters / len(paragraph) > 0.9
                    and paragraph[0].isupper() and paragraph.count(" ") >= 8
                    and ">>>" not in paragraph):
                found.append(paragraph)
        return found

    found = set()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if {"test", "tests", "site-packages", "idlelib", "lib2to3"} & set(path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                found.update(prose(ast.get_docstring(node) or ""))
    for text in topics.values():
        found.update(prose(text))
    return tuple(sorted(found))


def builtin_heal_texts(synthetic: int = 6000, passages: int = 1000, seed: int = 0) -> list[str]:
    """Enough distinct text that a few hundred steps rarely repeat one (repeats overfit:
    with 2,000 texts the loss on them fell far below the loss on held-out sentences):
    the built-in calibration sentences; `passages` of 3–8 of them joined, paragraph-length
    like the documents people index; the standard library's prose (stdlib_paragraphs);
    and `synthetic` random sequences of 4–32 words of the built-in English list (SCOWL size
    ≤ 50) for vocabulary the rest misses. The validation set is left out, since the
    quality card measures on it."""
    rng = random.Random(seed)
    sentences = builtin_texts("calibration")
    words = builtin_words(50)
    joined = [" ".join(rng.sample(sentences, rng.randint(3, 8))) for _ in range(passages)]
    made = [" ".join(rng.choices(words, k=rng.randint(4, 32))) for _ in range(synthetic)]
    return [*sentences, *joined, *stdlib_paragraphs(), *made]


def _unit(vectors: Any, dims: int | None) -> Any:
    import torch

    vectors = vectors[:, :dims] if dims else vectors
    return torch.nn.functional.normalize(vectors, dim=-1)


def _layer_loss(student_states: Sequence[Any], teacher_states: Sequence[Any],
                layer_map: Sequence[int], mask: Any) -> Any:
    """Mean over kept layers of ‖student − teacher‖² / ‖teacher‖² over real tokens."""
    weight = mask.unsqueeze(-1).float()
    losses = []
    for student_layer, teacher_layer in enumerate(layer_map):
        mine, target = student_states[student_layer + 1], teacher_states[teacher_layer + 1]
        error = (((mine - target) ** 2) * weight).sum()
        losses.append(error / ((target ** 2) * weight).sum().clamp(min=1e-9))
    return sum(losses) / len(losses)


def heal(student: Any, teacher: Any, texts: Sequence[str], tokenizer_file: Path,
         pooling: str, minutes: float, layer_map: Sequence[int],
         max_steps: int | None = None, dims: int | None = None,
         seed: int = 0, max_length: int = MAX_LENGTH) -> dict[str, Any]:
    """Train `student` (a transformers model, in place) to reproduce `teacher` (the
    original transformers model with the same vocabulary, left unchanged) on `texts`.
    Student layer i is taught teacher layer `layer_map[i]`'s output. Stops after `minutes`
    of wall time or `max_steps`; returns what it did, for the manifest."""
    import torch

    if len(texts) < BATCH_SIZE:
        raise ExportError(f"--heal needs at least {BATCH_SIZE} texts, got {len(texts)}")
    if minutes <= 0:
        raise ExportError(f"--heal-minutes must be positive, got {minutes}")
    if len(layer_map) != len(layer_list(student)):
        raise ExportError(f"heal: {len(layer_map)} teacher layers mapped to a student of "
                          f"{len(layer_list(student))} layers")
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    teacher.eval()
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
            batches = tokenized_batches(tokenizer_file, [texts[i] for i in order], max_length,
                                        batch_size=BATCH_SIZE)
            for batch in batches:
                if time.monotonic() >= deadline or (max_steps is not None and steps >= max_steps):
                    break
                feeds = forward_inputs(student, batch)
                mask = feeds["attention_mask"]
                with torch.no_grad():
                    taught = teacher(**feeds, output_hidden_states=True).hidden_states
                    target = _unit(pool(taught[-1], mask, pooling), dims)
                states = student(**feeds, output_hidden_states=True).hidden_states
                vectors = _unit(pool(states[-1], mask, pooling), dims)
                sentence = (1 - (vectors * target).sum(-1)).mean()
                loss = sentence + LAYER_LOSS_WEIGHT * _layer_loss(states, taught, layer_map,
                                                                  mask)
                # warm up, then decay linearly to zero at the time or step limit
                done = max((time.monotonic() - start) / (minutes * 60),
                           steps / max_steps if max_steps else 0.0)
                for group in optimizer.param_groups:
                    group["lr"] = (LEARNING_RATE * min(1.0, (steps + 1) / WARMUP_STEPS)
                                   * max(0.0, 1.0 - done))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append((float(sentence.detach()), float(loss.detach())))
                steps += 1
            epochs += 1
    finally:
        torch.set_num_threads(threads)
    window = max(1, min(20, len(losses) // 2))
    first = np.mean(losses[:window], axis=0) if losses else (None, None)
    last = np.mean(losses[-window:], axis=0) if losses else (None, None)
    return {
        "texts": len(texts), "steps": steps, "epochs_started": epochs,
        "seconds": round(time.monotonic() - start, 1), "batch_size": BATCH_SIZE,
        "learning_rate": f"{LEARNING_RATE}, {WARMUP_STEPS} warm-up steps, linear decay to 0",
        "loss": f"(1 - cosine to the teacher's embedding) + {LAYER_LOSS_WEIGHT} × relative "
                f"squared error of each kept layer's output; student layers ← teacher "
                f"layers {list(layer_map)}",
        "sentence_loss_first": _rounded(first[0]), "sentence_loss_last": _rounded(last[0]),
        "loss_first": _rounded(first[1]), "loss_last": _rounded(last[1]),
        "threads": THREADS, "seed": seed,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 5)
