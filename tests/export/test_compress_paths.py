"""Compression options that succeed, through the real `edgembed export` command: a word-list
FILE for `--prune-vocab`, `--layers N`, `--heal TEXTS` (with `--heal-steps`) and
`--optimize 2`, in one export. (The default `--prune-vocab` and `english-50` run in
tests/cli/test_export_cli.py; refusals in test_compress.py.)"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import cosines, edgembed
from edgembed import Encoder

pytestmark = pytest.mark.slow

WORDS = ["the", "children", "walked", "to", "school", "in", "morning", "photosynthesis",
         "mitochondria", "enzyme", "protein", "cell", "membrane", "energy"]
OTHER_WORDS = ["computer", "government", "restaurant", "television"]  # not in WORDS
HEAL_TEXTS = 40


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, minilm_source):
    from edgembed.export.texts import builtin_texts

    root = tmp_path_factory.mktemp("compress-paths")
    words = root / "words.txt"
    words.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    heal = root / "heal.txt"
    heal.write_text("\n".join(builtin_texts("calibration")[:HEAL_TEXTS]) + "\n",
                    encoding="utf-8")
    output = root / "small"
    result = edgembed("export", str(minilm_source), "-o", str(output), "--quantize", "none",
                      "--no-validate", "--optimize", "2", "--prune-vocab", str(words),
                      "--layers", "4", "--heal", str(heal), "--heal-steps", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
    return output, manifest


def test_word_list_file_decides_the_vocabulary(compressed, minilm_source):
    from tokenizers import Tokenizer

    output, manifest = compressed
    assert manifest["compression"]["requested"]["prune_vocab"] == "words.txt"
    vocabulary = manifest["compression"]["applied"]["vocabulary"]
    assert vocabulary["source"] == "file words.txt" and vocabulary["texts"] == len(WORDS)
    before = Tokenizer.from_file(str(minilm_source / "tokenizer.json"))
    after = Tokenizer.from_file(str(output / "tokenizer.json"))
    for tokenizer in (before, after):
        tokenizer.no_padding()
    assert after.get_vocab_size() == vocabulary["kept_tokens"] < 12_000
    # the list's words tokenize as before; other words fall back to shorter pieces
    assert [e.tokens for e in before.encode_batch(WORDS)] == \
        [e.tokens for e in after.encode_batch(WORDS)]
    for word in OTHER_WORDS:
        assert before.encode(word).tokens == ["[CLS]", word, "[SEP]"]
        pieces = after.encode(word).tokens[1:-1]
        assert len(pieces) > 1 and "".join(p.removeprefix("##") for p in pieces) == word


def test_layers_keeps_the_first_n(compressed):
    output, manifest = compressed
    assert manifest["compression"]["applied"]["layers"] == {"kept": [0, 1, 2, 3],
                                                          "original_layers": 6}
    model = onnx.load(str(output / "model.onnx"))
    onnx.checker.check_model(model)
    kinds = [node.op_type for node in model.graph.node]
    assert kinds.count("Attention") == 4  # one fused attention per kept layer


def test_optimize_2_is_recorded_and_fused(compressed):
    _, manifest = compressed
    optimization = manifest["optimization"]
    assert optimization["level"] == 2
    assert optimization["fused_operators"]["Attention"] == 4
    assert optimization["fused_operators"]["SkipLayerNormalization"] == 8


def test_heal_reads_the_given_texts(compressed):
    _, manifest = compressed
    assert manifest["compression"]["requested"]["heal"] == "heal.txt"
    heal = manifest["compression"]["applied"]["heal"]
    assert heal["texts_source"] == "file heal.txt" and heal["texts"] == HEAL_TEXTS
    assert heal["steps"] == 2 and heal["batch_size"] == 32
    assert np.isfinite([heal["loss_first"], heal["loss_last"]]).all()


def test_compressed_package_computes_the_first_layers(compressed, minilm_source):
    """For texts of the word list (tokens unchanged), the package computes what the source's
    first four layers compute, mean-pooled; healing has moved it only two small steps."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    output, _ = compressed
    texts = ["the children walked to school in the morning", "protein in the cell membrane",
             "energy in the morning"]
    vectors = Encoder.load(output).encode(texts)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_source))
    model = AutoModel.from_pretrained(str(minilm_source)).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        states = model(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].unsqueeze(-1)

    def pooled(hidden: torch.Tensor) -> np.ndarray:
        return ((hidden * mask).sum(1) / mask.sum(1)).numpy()

    # hidden_states[4] is the output of layer 3; the full model's differs a lot from it
    assert cosines(vectors, pooled(states[4])).min() > 0.98
    assert cosines(vectors, pooled(states[6])).max() < 0.7
