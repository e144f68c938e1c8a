"""Compression in the exporter: vocabulary pruning, layer / head / FFN pruning, healing and
output truncation, each checked on the real MiniLM; nonsense combinations refused."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import onnx
import pytest

from conftest import cosines
from edgembed import Encoder
from edgembed.cli import main
from edgembed.errors import ExportError
from edgembed.export import Compression, ExportOptions, export_model
from edgembed.export.prune_vocab import (
    builtin_words,
    kept_vocabulary,
    prune_tokenizer,
    read_vocabulary,
    script_token_ids,
)

# sentences of common words, all in the built-in english-20 list
IN_VOCABULARY = [
    "the children walked to school in the morning",
    "she bought fresh bread and milk at the market",
    "how do you keep a garden green in summer",
    "the meeting was moved to next week because of the weather",
    "water boils at a lower temperature on a high mountain",
]
UNICODE = [
    "", " ", "naïve café crème brûlée", "Ünïcödé façade", "東京タワーの高さは？", "你好，世界",
    "мы планируем поехать на море", "يبدأ الاجتماع في الساعة العاشرة", "שלום עולם",
    "emoji 🚀🔥👍🏽 and ZWJ 👨‍👩‍👧", "combining e\u0301 a\u0308", "zero\u200bwidth",
    "control \x00\x07\x1b chars", "x" * 300, "pneumonoultramicroscopicsilicovolcanoconiosis",
    "½ ¼ ∑ ∫ √ ≠ ≤ ∞ ℃ ™ © ®", "\ufffd\ufffe", "ｆｕｌｌｗｉｄｔｈ", "ﬁ ligature",
]


@pytest.fixture(scope="module")
def vocab_package(tmp_path_factory, minilm_source):
    output = tmp_path_factory.mktemp("compress") / "vocab"
    export_model(minilm_source, output, ExportOptions(
        quantize="none", validate=False,
        compression=Compression(prune_vocab="english-20", table_bits=4)))
    return output


@pytest.fixture(scope="module")
def structured_package(tmp_path_factory, minilm_source):
    output = tmp_path_factory.mktemp("compress") / "structured"
    export_model(minilm_source, output, ExportOptions(
        quantize="none", validate=False,
        compression=Compression(keep_layers=[0, 2, 4, 5], prune_heads=0.25, prune_ffn=0.25,
                                dims=128)))
    return output


def _tokenizer(minilm_source) -> dict:
    return json.loads((minilm_source / "tokenizer.json").read_text(encoding="utf-8"))


def test_tokenizer_rewrite_is_consistent(minilm_source):
    kept, described = kept_vocabulary(minilm_source / "tokenizer.json", "english-20")
    assert described["texts"] == len(builtin_words(20))
    original = _tokenizer(minilm_source)
    pruned = prune_tokenizer(original, kept)
    vocab = pruned["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(len(kept))) and len(kept) < 15_000
    assert pruned["model"]["unk_token"] in vocab
    for token in pruned["added_tokens"]:  # specials keep their text and get their new id
        assert vocab[token["content"]] == token["id"]
    for spec in pruned["post_processor"]["special_tokens"].values():
        assert [vocab[t] for t in spec["tokens"]] == spec["ids"]
    assert vocab[pruned["padding"]["pad_token"]] == pruned["padding"]["pad_id"]
    by_old = {i: t for t, i in original["model"]["vocab"].items()}
    assert all(by_old[old] in vocab for old in kept)


@pytest.mark.slow
def test_list_words_tokenize_as_before(minilm_source, vocab_package):
    from tokenizers import Tokenizer

    before = Tokenizer.from_file(str(minilm_source / "tokenizer.json"))
    after = Tokenizer.from_file(str(vocab_package / "tokenizer.json"))
    words = builtin_words(20)[::7]
    assert [e.tokens for e in before.encode_batch(words)] == \
        [e.tokens for e in after.encode_batch(words)]


@pytest.mark.slow
def test_vocab_pruned_package_is_small_and_encodes_any_unicode(vocab_package):
    manifest = json.loads((vocab_package / "manifest.json").read_text())
    applied = manifest["compression"]["applied"]
    assert applied["vocabulary"]["kept_tokens"] < 15_000
    assert "GatherBlockQuantized" in applied["token_table"]
    encoder = Encoder.load(vocab_package)
    vectors = encoder.encode(UNICODE)
    assert vectors.shape == (len(UNICODE), 384) and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    # every single-character token is kept, so text of other scripts falls back to one
    # piece per character (never [UNK], never an error)
    other = "東京 мир планируем"
    pieces = encoder.tokenizer.encode(other).tokens
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and "[UNK]" not in pieces
    assert [piece.removeprefix("##") for piece in pieces[1:-1]] == list(other.replace(" ", ""))


@pytest.mark.slow
def test_in_vocabulary_text_matches_the_unpruned_model(minilm_source, tmp_path):
    from sentence_transformers import SentenceTransformer

    output = tmp_path / "vocab-fp32"
    export_model(minilm_source, output, ExportOptions(
        quantize="none", validate=False, compression=Compression(prune_vocab="english-20")))
    reference = SentenceTransformer(str(minilm_source), device="cpu").encode(IN_VOCABULARY)
    assert cosines(Encoder.load(output).encode(IN_VOCABULARY), reference).min() >= 0.999


def _pruned_tokenizer(minilm_source, kept: list[int], tmp_path):
    from tokenizers import Tokenizer

    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(prune_tokenizer(_tokenizer(minilm_source), kept)), "utf-8")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _words(encoding) -> dict[int, list[str]]:
    """Tokens of each pre-tokenized word of an encoding, by word index."""
    words: dict[int, list[str]] = {}
    for token, word in zip(encoding.tokens, encoding.word_ids, strict=True):
        if word is not None:
            words.setdefault(word, []).append(token)
    return words


def _has_dropped_letter(text: str) -> bool:
    """A letter of a script the latin vocabulary drops (anything but Latin and Greek)."""
    return any(char.isalpha() and not unicodedata.name(char, "").startswith(("LATIN", "GREEK"))
               for char in text)


def test_latin_vocabulary_keeps_every_latin_and_greek_token(minilm_source, tmp_path):
    from tokenizers import Tokenizer

    kept = sorted(script_token_ids(read_vocabulary(_tokenizer(minilm_source)),
                                   ["latin", "greek"]) | {0, 100, 101, 102, 103})
    assert kept == kept_vocabulary(minilm_source / "tokenizer.json", "latin")[0]
    by_id = {i: t for t, i in _tokenizer(minilm_source)["model"]["vocab"].items()}
    dropped = {by_id[i] for i in set(by_id) - set(kept)}
    assert {"[unused0]", "[unused993]", "東", "##ل", "м"} <= dropped
    assert not dropped & {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "α", "##β", "é", "½"}
    assert 27_000 < len(kept) < len(by_id) - 2_000
    before = Tokenizer.from_file(str(minilm_source / "tokenizer.json"))
    before.no_truncation()
    before.no_padding()
    after = _pruned_tokenizer(minilm_source, kept, tmp_path)
    latin = [*IN_VOCABULARY, "naïve café crème brûlée", "TNF-α and IL-1β levels (p < 0.05)",
             "pneumonoultramicroscopicsilicovolcanoconiosis", "½ ∑ ≤ ∞ © ®", "Ünïcödé façade"]
    assert [e.tokens for e in before.encode_batch(latin)] == \
        [e.tokens for e in after.encode_batch(latin)]
    # any input tokenizes; a word changes only if it has letters of a dropped script, and
    # then it is one [UNK]
    changed = set()
    for text, old, new in zip(UNICODE, before.encode_batch(UNICODE),
                              after.encode_batch(UNICODE), strict=True):
        assert new.tokens[0] == "[CLS]" and new.tokens[-1] == "[SEP]"
        old_words, new_words = _words(old), _words(new)
        assert old_words.keys() == new_words.keys()
        for word, pieces in new_words.items():
            if pieces != old_words[word]:
                start, end = old.word_to_chars(word)
                assert pieces == ["[UNK]"] and _has_dropped_letter(text[start:end]), text
                changed.add(text)
    assert len(changed) == 5  # the Japanese, Chinese, Russian, Arabic and Hebrew texts
    assert after.encode("東京 мир").tokens == ["[CLS]", "[UNK]", "[UNK]", "[UNK]", "[SEP]"]


@pytest.mark.slow
def test_four_bit_latin_package_fits_15_mb_and_encodes_any_unicode(minilm_source, tmp_path,
                                                                  default_encoder):
    output = tmp_path / "four-bit"
    manifest = export_model(minilm_source, output, ExportOptions(
        quantize="int8-dynamic", validate=False,
        compression=Compression(prune_vocab="latin", table_bits=4, weight_bits=4)))
    assert manifest.quantization["weight_bits"] == 4
    assert sum(f.bytes for f in manifest.files.values()) <= 15_000_000
    model = onnx.load(str(output / "model.onnx"))
    nbits = [node for node in model.graph.node if node.op_type == "MatMulNBits"]
    assert len(nbits) == 36  # every weight MatMul of 6 layers: Q, K, V, out, FFN up, down
    assert all(onnx.helper.get_attribute_value(attr) == 4
               for node in nbits for attr in node.attribute if attr.name == "bits")
    weights = {init.name for init in model.graph.initializer}
    assert not [node for node in model.graph.node
                if node.op_type == "MatMul" and node.input[1] in weights]
    encoder = Encoder.load(output)
    vectors = encoder.encode(UNICODE)
    assert vectors.shape == (len(UNICODE), 384) and np.isfinite(vectors).all()
    # 4-bit weights drift (mean ~0.96 against fp32) but must still mean the same thing
    assert cosines(encoder.encode(IN_VOCABULARY), default_encoder.encode(IN_VOCABULARY)).mean() \
        >= 0.9


def _layer_numbers(model: onnx.ModelProto) -> set[int]:
    return {int(m.group(1)) for node in model.graph.node
            if (m := re.search(r"/layer\.(\d+)/", node.name))}


@pytest.mark.slow
def test_structured_pruning_gives_a_valid_smaller_graph(structured_package):
    model = onnx.load(str(structured_package / "model.onnx"))
    onnx.checker.check_model(model)
    assert _layer_numbers(model) == {0, 1, 2, 3}
    weights = {init.name: init.dims for init in model.graph.initializer}
    matmul_shapes = [tuple(weights[node.input[1]]) for node in model.graph.node
                     if node.op_type == "MatMul" and node.input[1] in weights]
    assert matmul_shapes.count((384, 288)) == 3 * 4  # Q, K, V: 9 of 12 heads of 32 dims
    assert matmul_shapes.count((384, 1152)) == 4     # FFN up: 3/4 of 1536 neurons
    manifest = json.loads((structured_package / "manifest.json").read_text())
    assert manifest["dim"] == 128
    assert manifest["compression"]["applied"]["layers"]["kept"] == [0, 2, 4, 5]
    vectors = Encoder.load(structured_package).encode(IN_VOCABULARY)
    assert vectors.shape == (5, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_heal_reduces_the_distillation_loss(minilm_source):
    import torch
    from transformers import AutoModel

    from edgembed.export.heal import heal
    from edgembed.export.prune_layers import keep_layers
    from edgembed.export.texts import builtin_texts

    texts = builtin_texts("calibration")[:32]  # one batch: every step sees the same texts
    teacher = AutoModel.from_pretrained(str(minilm_source))
    student = keep_layers(AutoModel.from_pretrained(str(minilm_source)), [0, 5])
    before = [p.detach().clone() for p in teacher.parameters()]
    report = heal(student, teacher, texts, minilm_source / "tokenizer.json", "mean",
                  minutes=2, layer_map=[0, 5], max_steps=8)
    assert report["steps"] == 8 and report["loss_last"] < report["loss_first"]
    assert report["sentence_loss_last"] < report["sentence_loss_first"]
    assert not student.get_input_embeddings().weight.requires_grad  # the table stays exact
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))


def test_builtin_heal_texts_are_many_distinct_and_fixed():
    from edgembed.export.heal import builtin_heal_texts, stdlib_paragraphs
    from edgembed.export.texts import builtin_texts

    prose = stdlib_paragraphs()
    assert len(prose) > 1000 and list(prose) == sorted(set(prose))
    assert all(60 <= len(p) <= 1000 and ">>>" not in p for p in prose)
    texts = builtin_heal_texts()
    assert len(set(texts)) > 10_000 and texts == builtin_heal_texts()
    assert not set(builtin_texts("validation")) & set(texts)  # the card's texts stay unseen


@pytest.mark.slow
def test_heal_teacher_shares_the_pruned_vocabulary(minilm_source, tmp_path):
    """The teacher sees the student's ids: with nothing structural changed (dims equal to
    the model's), the student starts as the teacher, so the first loss is zero."""
    from edgembed.export.compress import compress_source
    from edgembed.export.source import read_source
    from edgembed.export.texts import builtin_texts

    _, applied = compress_source(
        read_source(minilm_source),
        Compression(prune_vocab="english-20", dims=384, heal=True, heal_steps=1),
        tmp_path, builtin_texts("calibration"))
    assert applied["vocabulary"]["kept_tokens"] < 15_000
    assert applied["heal"]["steps"] == 1 and applied["heal"]["loss_first"] < 1e-6


@pytest.mark.parametrize(("options", "export_options", "message"), [
    ({"layers": 4, "keep_layers": [0, 1]}, {}, "not both"),
    ({"layers": 0}, {}, "between 1 and 6"),
    ({"layers": 7}, {}, "between 1 and 6"),
    ({"keep_layers": [0, 6]}, {}, "no layer 6"),
    ({"keep_layers": [2, 1]}, {}, "increasing"),
    ({"keep_layers": []}, {}, "at least one"),
    ({"prune_heads": 1.0}, {}, r"\[0, 1\)"),
    ({"prune_ffn": -0.1}, {}, r"\[0, 1\)"),
    ({"dims": 0}, {}, "between 1 and"),
    ({"dims": 385}, {}, "between 1 and"),
    ({"heal": True}, {}, "nothing to heal"),
    ({"heal": True, "prune_vocab": True}, {}, "nothing to heal"),
    ({"heal_steps": 5, "layers": 4}, {}, "needs --heal"),
    ({"prune_heads": 0.5}, {"optimize": 1, "quantize": "int8-dynamic"}, "--optimize 0"),
    ({"table_bits": 4}, {"quantize": "fp16"}, "fp16"),
    ({"table_bits": 3}, {}, "--table-bits"),
    ({"weight_bits": 4}, {"quantize": "fp16"}, "pair it with --quantize"),
    ({"weight_bits": 4}, {"quantize": "int8-static"}, "pair it with --quantize"),
    ({"weight_bits": 2}, {}, "--weight-bits must be one of"),
    ({"keep_scripts": ["latin", "klingon"]}, {}, "unknown script 'klingon'"),
    ({"keep_scripts": "latin"}, {}, "a list of script names"),
])
def test_nonsense_combinations_refused(minilm_source, tmp_path, options, export_options,
                                       message):
    with pytest.raises(ExportError, match=message):
        export_model(minilm_source, tmp_path / "out",
                     ExportOptions(compression=Compression(**options), **export_options))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_word_list_without_tokens_refused(minilm_source, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("🚀\n\u0378\n🔥👍\n", encoding="utf-8")  # all [UNK] for MiniLM
    with pytest.raises(ExportError, match="no tokens"):
        export_model(minilm_source, tmp_path / "out",
                     ExportOptions(compression=Compression(prune_vocab=words)))


@pytest.mark.parametrize(("argv", "message"), [
    (["--heal-minutes", "3"], "--heal-minutes needs --heal"),
    (["--keep-layers", "0,x"], "comma-separated"),
    (["--recipe", "r.toml", "--layers", "3"], "not --recipe"),
])
def test_cli_refuses_with_one_line(argv, message, tmp_path, capsys):
    source = [] if "--recipe" in argv else ["src"]
    assert main(["export", *source, "-o", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_passes_weight_bits_through(minilm_source, tmp_path, capsys):
    argv = ["export", str(minilm_source), "-o", str(tmp_path / "o"), "--weight-bits", "4",
            "--quantize", "int8-static"]
    assert main(argv) == 2
    assert "--weight-bits 4 stores the MatMul weights itself" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
