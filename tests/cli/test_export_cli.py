"""`edgembed export` through the command line, succeeding: the printed table, `--json`,
`--recipe`, `--quantize fp16`, `--optimize 1`, `--eval-data`, `--pooling cls|max`, `auto`
with a non-default `--max-loss` and `--weight-bits 4`, and the default `--prune-vocab`
and `english-50`. Each export of the real MiniLM costs 15-45 s, so the options share a
few exports (module-scoped), and every check says which option it is about."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import onnx
import pytest
from beir_sample import copies_as_queries, write_beir

from conftest import cosines
from edgembed import Encoder, default_package_path
from edgembed.cli import main

pytestmark = pytest.mark.slow

# sentences of common words, all in the built-in english-20 list (so in english-35 and
# english-50 too): vocabulary pruning leaves their tokens exactly as they were
IN_VOCABULARY = [
    "the dog ran across the green field after the ball",
    "my brother likes to read old books at night",
    "we had fish and rice for dinner last week",
    "the train was late because of the snow",
    "please open the window when the room gets too hot",
]
HEADER = ["variant", "quantize", "size MB", "mean cos", "min cos", "speed×fp32", "nDCG@10"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`edgembed ARGV` in this process (torch is imported once for every export here)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main([str(arg) for arg in argv])
    return status, out.getvalue(), err.getvalue()


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows by variant (cells are separated by two or more spaces)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines]
    assert cells[0] == HEADER, stdout
    assert lines[-1].startswith("cosine: against torch fp32"), stdout
    return {row[0]: row[1:] for row in cells[1:] if len(row) == len(HEADER)}


def torch_pooled(source: Path, texts: list[str], pooling: str) -> np.ndarray:
    """The source transformer's token states pooled by hand: what --pooling promises."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModel.from_pretrained(str(source)).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).bool()
    if pooling == "cls":
        return hidden[:, 0].numpy()
    if pooling == "max":
        return hidden.masked_fill(~mask, -1e9).max(dim=1).values.numpy()
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


def op_types(package: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(package / "model.onnx")).graph.node]


def manifest_of(package: Path) -> dict:
    return json.loads((package / "manifest.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- fp16, fused, CLS, BEIR

@pytest.fixture(scope="module")
def fp16_export(tmp_path_factory, minilm_source, sentences):
    """fp16 with --optimize 1, --pooling cls, --eval-data and the default --prune-vocab."""
    root = tmp_path_factory.mktemp("export-cli")
    documents = sentences[:60]
    data = write_beir(root / "beir", documents, {"test": copies_as_queries(documents)})
    output = root / "fp16-cls"
    result = run_cli("export", minilm_source, "-o", output, "--quantize", "fp16",
                     "--optimize", "1", "--pooling", "cls", "--eval-data", data,
                     "--prune-vocab")
    return result, output


def test_export_prints_the_table_with_the_fp32_reference(fp16_export):
    (status, stdout, stderr), output = fp16_export
    assert status == 0, stderr
    card = manifest_of(output)["quality"]
    rows = table_rows(stdout)
    assert set(rows) == {"fp32 (reference)", str(output)}
    size = manifest_of(output)["files"]["model.onnx"]["bytes"] / 1e6
    assert rows[str(output)] == ["fp16", f"{size:.2f}", str(card["mean_cosine"]),
                                 str(card["min_cosine"]), str(card["speed_vs_fp32"]),
                                 str(card["retrieval"]["package"]["ndcg@10"])]
    assert rows["fp32 (reference)"] == ["none", "-", "1.0000", "-", "1.00",
                                        str(card["retrieval"]["fp32"]["ndcg@10"])]
    assert "kept in higher precision" not in stdout  # fp16 keeps nothing


def test_quantize_fp16_stores_half_precision_weights(fp16_export):
    _, output = fp16_export
    assert manifest_of(output)["quantization"]["method"] == "fp16"
    weights = onnx.load(str(output / "model.onnx")).graph.initializer
    big = [w for w in weights if np.prod(w.dims) >= 384 * 384]
    assert big and all(w.data_type == onnx.TensorProto.FLOAT16 for w in big)
    graph_io = Encoder.load(output).session
    assert graph_io.get_outputs()[0].type == "tensor(float)"  # inputs and outputs stay fp32


def test_optimize_1_fuses_attention(fp16_export):
    _, output = fp16_export
    optimization = manifest_of(output)["optimization"]
    assert optimization["level"] == 1
    kinds = op_types(output)
    assert kinds.count("Attention") == 6 == optimization["fused_operators"]["Attention"]
    assert "SkipLayerNormalization" in kinds and "EmbedLayerNormalization" in kinds


def test_pooling_cls_is_what_the_package_and_its_card_compute(fp16_export, minilm_source):
    _, output = fp16_export
    manifest = manifest_of(output)
    assert manifest["pooling"] == "cls"
    vectors = Encoder.load(output).encode(IN_VOCABULARY)
    cls = torch_pooled(minilm_source, IN_VOCABULARY, "cls")
    mean = torch_pooled(minilm_source, IN_VOCABULARY, "mean")
    # fp16 rounding costs ~1e-5 of cosine; the folder's own (mean) pooling is far away
    assert cosines(vectors, cls).min() >= 0.999
    assert cosines(vectors, mean).max() < 0.95
    # the card compares with torch pooled the same way, not with the folder's mean pooling
    card = manifest["quality"]
    assert "same pooling" in card["reference"]
    # measured 0.984: english-35 changes the tokens of words outside the list (the
    # folder's mean pooling as the reference gave 0.52)
    assert card["mean_cosine"] >= 0.97, card


def test_eval_data_measures_both_graphs(fp16_export):
    _, output = fp16_export
    retrieval = manifest_of(output)["quality"]["retrieval"]
    assert (retrieval["data"], retrieval["split"]) == ("beir", "test")
    for graph in ("package", "fp32"):
        # each query is a copy of its relevant document: exact search ranks it first
        assert retrieval[graph]["ndcg@10"] == pytest.approx(1.0), retrieval
        assert 0 < retrieval[graph]["recall@100"] <= 1


def test_default_prune_vocab_is_english_35(fp16_export, minilm_source):
    from tokenizers import Tokenizer

    _, output = fp16_export
    compression = manifest_of(output)["compression"]
    assert compression["requested"]["prune_vocab"] is True
    vocabulary = compression["applied"]["vocabulary"]
    assert vocabulary["source"].startswith("built-in english-35")
    assert 12_000 < vocabulary["kept_tokens"] < vocabulary["original_tokens"] == 30_522
    before = Tokenizer.from_file(str(minilm_source / "tokenizer.json"))
    after = Tokenizer.from_file(str(output / "tokenizer.json"))
    assert after.get_vocab_size() == vocabulary["kept_tokens"]
    assert [e.tokens for e in before.encode_batch(IN_VOCABULARY)] == \
        [e.tokens for e in after.encode_batch(IN_VOCABULARY)]


# ---------------------------------------------------------------- auto, 4-bit, max, --json

MAX_LOSS = 0.006  # not the default 0.005


@pytest.fixture(scope="module")
def auto_export(tmp_path_factory, minilm_source):
    """auto with --max-loss 0.006 and --weight-bits 4, --pooling max, english-50, --json.
    To save time: 128 calibration texts instead of 400 (auto ranks the nodes on the first 64
    and stops on the other 64), and no validation (the fp16 export checks the card)."""
    from edgembed.export.texts import builtin_texts

    root = tmp_path_factory.mktemp("export-cli")
    calibration = root / "calibration.txt"
    calibration.write_text("\n".join(builtin_texts("calibration")[:128]), encoding="utf-8")
    output = root / "auto-4bit"
    result = run_cli("export", minilm_source, "-o", output, "--max-loss", str(MAX_LOSS),
                     "--weight-bits", "4", "--pooling", "max", "--prune-vocab", "english-50",
                     "--calibration", calibration, "--no-validate", "--json")
    return result, output


def test_json_prints_the_written_manifest(auto_export):
    (status, stdout, stderr), output = auto_export
    assert status == 0, stderr
    assert json.loads(stdout) == manifest_of(output)
    assert "variant" not in stdout  # the table is replaced, not added


def test_auto_keeps_the_fewest_nodes_within_max_loss(auto_export):
    _, output = auto_export
    quantization = manifest_of(output)["quantization"]
    auto = quantization["auto"]
    assert quantization["method"] == "auto" and auto["max_loss"] == MAX_LOSS
    kept, tried = auto["kept_in_float"], {int(k): v for k, v in auto["tried"].items()}
    # 4-bit weights on every MatMul lose about 0.011 of held-out cosine, more than the
    # budget: auto has to keep some nodes, and keeps the fewest that bring the loss within it
    assert tried[0] < 1 - MAX_LOSS and kept
    assert tried[len(kept)] == auto["held_out_mean_cosine"] >= 1 - MAX_LOSS
    assert all(cosine < 1 - MAX_LOSS for count, cosine in tried.items() if count < len(kept))
    assert kept == list(auto["sensitivity"])[:len(kept)]  # the most sensitive first


def test_weight_bits_4_with_auto_stores_the_other_matmuls_in_4_bits(auto_export):
    _, output = auto_export
    quantization = manifest_of(output)["quantization"]
    kept = quantization["auto"]["kept_in_float"]
    assert quantization["weight_bits"] == 4
    model = onnx.load(str(output / "model.onnx"))
    bits = [onnx.helper.get_attribute_value(attr) for node in model.graph.node
            if node.op_type == "MatMulNBits" for attr in node.attribute if attr.name == "bits"]
    assert bits == [4] * (36 - len(kept))
    # the nodes auto keeps run per-token int8 (8-bit weights), named after the source nodes
    merged = quantization["merged_matmuls"]  # readers of one input share a product
    integer = [name for node in model.graph.node if node.op_type == "MatMulIntegerToFloat"
               for name in merged.get(node.name, [node.name.removesuffix("/Int8")])]
    assert sorted(integer) == sorted(kept)
    weights = {init.name for init in model.graph.initializer}
    assert not [node for node in model.graph.node
                if node.op_type == "MatMul" and node.input[1] in weights]


def test_pooling_max_is_what_the_package_computes(auto_export, minilm_source):
    _, output = auto_export
    manifest = manifest_of(output)
    assert manifest["pooling"] == "max" and manifest["quality"] is None  # --no-validate
    vectors = Encoder.load(output).encode(IN_VOCABULARY)
    # 4-bit and int8 weights move the vectors (held-out cosine >= 0.994 to the fp32 graph);
    # mean pooling of the same states is much further away
    assert cosines(vectors, torch_pooled(minilm_source, IN_VOCABULARY, "max")).min() >= 0.95
    assert cosines(vectors, torch_pooled(minilm_source, IN_VOCABULARY, "mean")).max() < 0.9


def test_prune_vocab_english_50_keeps_more_than_english_35(auto_export, fp16_export):
    english_50 = manifest_of(auto_export[1])["compression"]["applied"]["vocabulary"]
    english_35 = manifest_of(fp16_export[1])["compression"]["applied"]["vocabulary"]
    assert english_50["source"].startswith("built-in english-50")
    assert english_35["kept_tokens"] < english_50["kept_tokens"] < 30_522
    assert english_35["texts"] < english_50["texts"]  # words of the list


# ---------------------------------------------------------------- --recipe

def test_recipe_through_the_cli(tmp_path, minilm_source):
    """A recipe of its own (the default's source, other export options): the package gets
    the recipe's name and source model, and the table has no fp32 row (nothing validated)."""
    shipped = (default_package_path().parent / "recipes" / "all-minilm-l6-v2.toml").read_text()
    recipe = tmp_path / "small.toml"
    recipe.write_text(
        shipped[:shipped.index("[export]")]
        .replace('name = "all-minilm-l6-v2"', 'name = "minilm-fp32-recipe"')
        + '[export]\nquantize = "none"\nvalidate = false\n', encoding="utf-8")
    output = tmp_path / "built"
    status, stdout, stderr = run_cli("export", "--recipe", recipe, "-o", output)
    assert status == 0, stderr
    manifest = manifest_of(output)
    assert manifest["name"] == "minilm-fp32-recipe"
    assert manifest["source"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["quantization"]["method"] == "none" and manifest["quality"] is None
    size = manifest["files"]["model.onnx"]["bytes"] / 1e6
    assert table_rows(stdout) == {str(output): ["none", f"{size:.2f}", "-", "-", "-", "-"]}
    vectors = Encoder.load(output).encode(IN_VOCABULARY)
    reference = torch_pooled(minilm_source, IN_VOCABULARY, "mean")
    assert cosines(vectors, reference).min() >= 0.9999  # fp32: the source model itself
