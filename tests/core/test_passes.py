"""Batches are split into forward passes of bounded padded tokens, without changing results
beyond float rounding: the default package's int8 is per token, so a row never depends on
its pass-mates; only the padded width changes, which moves the last bits of a few sums."""

from __future__ import annotations

import numpy as np

from conftest import cosines, cpu_note
from edgembed import Encoder
from edgembed.encoder import PASS_TOKENS_PER_THREAD


def _counting(encoder: Encoder) -> list[tuple[int, int]]:
    """Record (texts, padded width) of every forward pass the encoder makes."""
    shapes: list[tuple[int, int]] = []
    run = encoder._run

    def counted(ids: list[list[int]]) -> np.ndarray:
        shapes.append((len(ids), max(map(len, ids))))
        return run(ids)

    encoder._run = counted
    return shapes


def test_passes_hold_at_most_the_token_budget(sentences):
    encoder = Encoder.load(threads=1)
    assert encoder._pass_tokens == PASS_TOKENS_PER_THREAD
    encoder._pass_tokens = 64
    shapes = _counting(encoder)
    long_texts = [" ".join(sentences[i:i + 6]) for i in range(0, 60, 6)]
    texts = sentences[:40] + long_texts
    vectors = encoder.encode(texts, batch_size=32)
    assert sum(count for count, _ in shapes) == len(texts)
    assert all(count * width <= 64 or count == 1 for count, width in shapes)
    assert any(count == 1 and width > 64 for count, width in shapes)  # one text over budget
    whole = Encoder.load(threads=1)
    whole._pass_tokens = 10**9
    agreement = cosines(vectors, whole.encode(texts, batch_size=32))
    assert agreement.min() > 0.9999, (agreement.min(), cpu_note())


def test_budget_scales_with_threads():
    assert Encoder.load(threads=2)._pass_tokens == 2 * PASS_TOKENS_PER_THREAD
