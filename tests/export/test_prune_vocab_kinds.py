"""--prune-vocab and --keep-scripts on each tokenizer kind: WordPiece (BERT), Unigram
(XLM-RoBERTa, as multilingual-e5 and paraphrase-multilingual-MiniLM have) and byte-level
BPE (RoBERTa), on tiny models whose tokenizers are trained here (tests/multiscript.py). Text in
a kept script tokenizes exactly as before and gets the unpruned model's vector; text in a
dropped script still encodes: to the unknown token, or to bytes."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import pytest
from multiscript import KINDS, NUMBERS, TEXTS, build_model, train_tokenizer

from conftest import cosines
from edgembed import Encoder
from edgembed.cli import main
from edgembed.errors import ExportError
from edgembed.export import Compression, ExportOptions, export_model
from edgembed.export.prune_vocab import kept_vocabulary, prune_tokenizer, read_vocabulary

FAMILIES = list(KINDS)
KEPT = ("latin", "cyrillic")
# Unicode character-name prefixes of each script's letters and marks: an oracle that
# does not use the Script property the pruning reads
NAME_PREFIXES = {"latin": ("LATIN",), "cyrillic": ("CYRILLIC",), "greek": ("GREEK",),
                 "arabic": ("ARABIC",), "hebrew": ("HEBREW",), "devanagari": ("DEVANAGARI",),
                 "thai": ("THAI",), "cjk": ("CJK", "HIRAGANA", "KATAKANA", "HANGUL")}


def _script_of(character: str) -> str | None:
    """The script set a letter or mark belongs to by its name; None for anything else."""
    if not unicodedata.category(character).startswith(("L", "M")):
        return None
    first = unicodedata.name(character, "").split(" ")[0]
    return next((script for script, names in NAME_PREFIXES.items() if first in names), None)


def _dropped_letters(text: str, kept: tuple[str, ...]) -> bool:
    return any(_script_of(c) not in (None, *kept) for c in text)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """family → its trained tokenizer.json (no torch: fast)."""
    folder = tmp_path_factory.mktemp("tokenizers")
    files = {}
    for family in FAMILIES:
        files[family] = folder / f"{family}.json"
        train_tokenizer(family).save(str(files[family]))
    return files


def _pruned(path, kept_ids, tmp_path):
    from tokenizers import Tokenizer

    pruned = tmp_path / f"pruned-{path.name}"
    original = json.loads(path.read_text(encoding="utf-8"))
    pruned.write_text(json.dumps(prune_tokenizer(original, kept_ids)), encoding="utf-8")
    before, after = Tokenizer.from_file(str(path)), Tokenizer.from_file(str(pruned))
    return before, after, original


def _assert_same(before, after, kept_ids, texts):
    """Same tokens, and each id is the old id renumbered."""
    new_id = {old: new for new, old in enumerate(kept_ids)}
    for old, new in zip(before.encode_batch(texts), after.encode_batch(texts), strict=True):
        assert new.tokens == old.tokens
        assert new.ids == [new_id[i] for i in old.ids]


@pytest.mark.parametrize("family", FAMILIES)
def test_kept_scripts_tokenize_as_before_and_dropped_ones_still_encode(family, tokenizers,
                                                                       tmp_path):
    path = tokenizers[family]
    kept_ids, described = kept_vocabulary(path, scripts=list(KEPT))
    assert described == {"tokenizer": KINDS[family], "scripts": list(KEPT),
                         "scripts_rule": described["scripts_rule"]}
    before, after, original = _pruned(path, kept_ids, tmp_path)
    _assert_same(before, after, kept_ids, [*TEXTS["latin"], *TEXTS["cyrillic"], *NUMBERS])

    # the table keeps exactly the tokens without letters of dropped scripts, the special
    # tokens and what keeps any text encodable
    vocabulary = read_vocabulary(original)
    expected = {i for i, text in enumerate(vocabulary.spelled)
                if not _dropped_letters(text, KEPT)} | set(vocabulary.always)
    lowest = None
    if family == "xlm-roberta":  # the lowest-scored piece, which sets the unknown score
        scores = [score for _, score in original["model"]["vocab"]]
        lowest = vocabulary.tokens[scores.index(min(scores))]
        expected.add(scores.index(min(scores)))
    assert set(kept_ids) == expected
    assert len(kept_ids) < 0.8 * len(vocabulary.tokens)

    unk = after.token_to_id("[UNK]" if family == "bert" else "<unk>")
    specials = {after.token_to_id(t) for t in ("[CLS]", "[SEP]", "<s>", "</s>")} - {None}
    dropped = [text for script, texts in TEXTS.items() if script not in KEPT
               for text in texts]
    for text, encoding in zip(dropped, after.encode_batch(dropped), strict=True):
        pieces = [(i, tok) for i, tok in zip(encoding.ids, encoding.tokens, strict=True)
                  if i not in specials]
        assert pieces, text
        if family == "roberta":  # bytes: nothing is lost, no piece is a dropped letter
            assert after.decode(encoding.ids) == text
            assert unk not in encoding.ids
            assert not any(_dropped_letters(after.decode([i]), KEPT) for i, _ in pieces)
        else:  # each piece is the unknown token or spells no letter of any script
            lettered = [after.id_to_token(i) for i, _ in pieces if i != unk
                        and any(_script_of(c) for c in after.id_to_token(i))
                        and after.id_to_token(i) != lowest]
            assert not lettered, text
            assert any(i == unk for i, _ in pieces)


@pytest.mark.parametrize("family", FAMILIES)
def test_corpus_keeps_its_tokens_and_every_character(family, tokenizers, tmp_path):
    path = tokenizers[family]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS["cyrillic"]) + "\n", encoding="utf-8")
    kept_ids, described = kept_vocabulary(path, corpus)
    assert described["source"] == "file corpus.txt" and described["texts"] == 4
    before, after, original = _pruned(path, kept_ids, tmp_path)
    _assert_same(before, after, kept_ids, TEXTS["cyrillic"])
    # (the tiny Unigram vocabulary is mostly single characters, which a corpus keeps)
    assert len(kept_ids) < 0.9 * len(original["model"]["vocab"])
    # other text still spells out in single characters (or bytes), never the unknown token
    unk = after.token_to_id("[UNK]" if family == "bert" else "<unk>")
    others = [*TEXTS["greek"], *TEXTS["thai"], *TEXTS["latin"]]
    for encoding in after.encode_batch(others):
        assert unk not in encoding.ids

    # a corpus and scripts together keep both
    union, described = kept_vocabulary(path, corpus, ["greek"])
    assert described["scripts"] == ["greek"] and set(kept_ids) < set(union)
    before, after, _ = _pruned(path, union, tmp_path)
    _assert_same(before, after, union, [*TEXTS["cyrillic"], *TEXTS["greek"]])


def test_latin_source_is_the_latin_and_greek_scripts(tokenizers):
    path = tokenizers["xlm-roberta"]
    assert kept_vocabulary(path, "latin")[0] == kept_vocabulary(path, False,
                                                                ["latin", "greek"])[0]
    # any Unicode script name works beside the named sets
    assert kept_vocabulary(path, False, ["Thai"])[0] == kept_vocabulary(path, False,
                                                                      ["thai"])[0]


def test_byte_fallback_pieces_are_kept(tokenizers, tmp_path):
    """A Unigram with byte fallback (as Llama-style SentencePiece models have): dropped
    scripts fall back to the <0x..> pieces, never to the unknown token."""
    document = json.loads(tokenizers["xlm-roberta"].read_text(encoding="utf-8"))
    document["model"]["vocab"] += [[f"<0x{byte:02X}>", -30.0] for byte in range(256)]
    document["model"]["byte_fallback"] = True
    path = tmp_path / "fallback.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    # (the pieces are spelled with Latin letters: keep a script without them)
    kept_ids, _ = kept_vocabulary(path, scripts=["cyrillic"])
    before, after, _ = _pruned(path, kept_ids, tmp_path)
    _assert_same(before, after, kept_ids, TEXTS["cyrillic"])
    for encoding in after.encode_batch([*TEXTS["thai"], *TEXTS["latin"]]):
        tokens = set(encoding.tokens) - {"<s>", "</s>", "\u2581"}
        assert tokens and all(re.fullmatch(r"<0x[0-9A-F]{2}>", t) for t in tokens)
    assert len(kept_ids) < len(document["model"]["vocab"]) - 100


def _with_model(path, tmp_path, **changes):
    document = json.loads(path.read_text(encoding="utf-8"))
    document["model"].update(changes)
    return document


@pytest.mark.parametrize(("family", "changes", "message"), [
    ("bert", {"type": "WordLevel"}, "supports WordPiece, Unigram, BPE tokenizers; this one "
                                   "is 'WordLevel'"),
    ("xlm-roberta", {"unk_id": None}, "no unknown token, byte fallback or byte-level"),
    ("bert", {"unk_token": "[NOPE]"}, "no unknown token"),
])
def test_unsafe_tokenizers_refused(family, changes, message, tokenizers, tmp_path):
    with pytest.raises(ExportError, match=message.replace("(", r"\(")):
        read_vocabulary(_with_model(tokenizers[family], tmp_path, **changes))


def test_bpe_without_byte_level_or_unknown_token_refused(tokenizers):
    document = json.loads(tokenizers["roberta"].read_text(encoding="utf-8"))
    document["pre_tokenizer"] = {"type": "Whitespace"}
    with pytest.raises(ExportError, match="no unknown token, byte fallback or byte-level"):
        read_vocabulary(document)
    document["model"]["unk_token"] = "<unk>"
    assert read_vocabulary(document).always >= {3}


def test_unknown_script_refused_by_the_cli(minilm_source, tmp_path, capsys):
    argv = ["export", str(minilm_source), "-o", str(tmp_path / "o"), "--keep-scripts",
            "latin,elvish"]
    assert main(argv) == 2
    assert "unknown script 'elvish'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --- exported packages (torch) ---------------------------------------------------------

@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """family → its tiny sentence-transformers folder."""
    root = tmp_path_factory.mktemp("sources")
    return {family: build_model(family, root) for family in FAMILIES}


@pytest.fixture(scope="module")
def packages(tmp_path_factory, sources):
    """family → {variant: package folder}: unpruned, kept scripts, corpus; float32."""
    root = tmp_path_factory.mktemp("kinds")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join([*TEXTS["latin"], *TEXTS["cyrillic"]]) + "\n", "utf-8")
    variants = {"unpruned": Compression(), "scripts": Compression(keep_scripts=list(KEPT)),
                "corpus": Compression(prune_vocab=corpus)}
    built = {}
    for family, source in sources.items():
        built[family] = {}
        for name, compression in variants.items():
            output = root / f"{family}-{name}"
            export_model(source, output, ExportOptions(quantize="none", validate=False,
                                                       compression=compression))
            built[family][name] = output
    return built


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", ["scripts", "corpus"])
def test_pruned_package_keeps_kept_text_vectors(family, variant, packages):
    unpruned = Encoder.load(packages[family]["unpruned"])
    pruned = Encoder.load(packages[family][variant])
    manifest = json.loads((packages[family][variant] / "manifest.json").read_text())
    vocabulary = manifest["compression"]["applied"]["vocabulary"]
    assert vocabulary["tokenizer"] == KINDS[family]
    # (the tiny Unigram vocabulary is mostly single characters, which a corpus keeps)
    assert vocabulary["kept_tokens"] < (0.8 if variant == "scripts" else 0.95) * \
        vocabulary["original_tokens"]
    assert (packages[family][variant] / "model.onnx").stat().st_size < \
        (packages[family]["unpruned"] / "model.onnx").stat().st_size

    kept = [*TEXTS["latin"], *TEXTS["cyrillic"], *(NUMBERS if variant == "scripts" else [])]
    for text in kept:
        assert pruned.tokenizer.encode(text).tokens == unpruned.tokenizer.encode(text).tokens
    assert cosines(pruned.encode(kept), unpruned.encode(kept)).min() >= 0.9999

    dropped = [text for script, texts in TEXTS.items() if script not in KEPT
               for text in texts]
    vectors = pruned.encode(dropped)
    assert vectors.shape == (len(dropped), 32) and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    if variant == "scripts":  # their tokens are gone, so their vectors change
        assert cosines(vectors, unpruned.encode(dropped)).min() < 0.99


@pytest.mark.slow
def test_cli_keeps_scripts_of_a_quantized_unigram_package(sources, packages, tmp_path, capsys):
    output = tmp_path / "pkg"
    assert main(["export", str(sources["xlm-roberta"]), "-o", str(output), "--json",
                 "--keep-scripts", "latin, cyrillic", "--table-bits", "4",
                 "--quantize", "int8-dynamic", "--no-validate"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    compression = manifest["compression"]
    assert compression["requested"]["keep_scripts"] == ["latin", "cyrillic"]
    assert compression["applied"]["vocabulary"]["scripts"] == ["latin", "cyrillic"]
    assert "GatherBlockQuantized" in compression["applied"]["token_table"]
    pruned, unpruned = Encoder.load(output), Encoder.load(packages["xlm-roberta"]["unpruned"])
    kept = [*TEXTS["latin"], *TEXTS["cyrillic"]]
    # int8 weights and a 4-bit table against float32: close, not equal (and the int8
    # kernels differ slightly between AVX2 and AVX-512 VNNI CPUs)
    assert cosines(pruned.encode(kept), unpruned.encode(kept)).mean() >= 0.95
    assert np.isfinite(pruned.encode([*TEXTS["thai"], *TEXTS["cjk"]])).all()
