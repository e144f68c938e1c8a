"""Passages for `edgembed index`: the chunker cuts long texts into overlapping passages that
fit the model."""

from __future__ import annotations

from edgembed.index.ingest import Chunker
from edgembed.package import default_package_path

SAMPLES = default_package_path().parent / "samples"


def test_chunker_passages_fit_and_overlap(default_encoder):
    chunker = Chunker(default_encoder.tokenizer, default_encoder.max_seq_length)
    text = (SAMPLES / "sourdough-baking.md").read_text(encoding="utf-8") * 3
    spans = chunker.passages(text)
    assert len(spans) > 3
    assert spans[0][0] == 0 and spans[-1][1] == len(text.rstrip())
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start < end  # overlapping
    for start, end in spans:
        assert len(default_encoder.tokenizer.encode(text[start:end]).ids) <= \
            default_encoder.max_seq_length
    assert chunker.passages("") == [] and chunker.passages("short") == [(0, 5)]
