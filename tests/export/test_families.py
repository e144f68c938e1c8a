"""Every encoder family the exporter takes, on tiny models built here: a transformers config
with random weights and a tokenizer trained on the built-in sentences (WordPiece, Unigram
or byte-level BPE), saved as a sentence-transformers folder and exported.

What differs between the families and is checked here: graphs without token_type_ids
(the runtime feeds only the graph's inputs), position tables offset by the padding index
(RoBERTa, XLM-RoBERTa, MPNet: max_position_embeddings - pad_token_id - 1 tokens), CLS /
mean / max pooling, Dense modules after pooling, with and without Normalize; `int8`,
`auto`, `--layers` and `--dims` on each family; head/FFN pruning, healing and vocabulary
pruning where they apply, and clear refusals where they do not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, cosines, cpu_note, edgembed
from edgembed import Encoder
from edgembed.errors import ExportError
from edgembed.export import Compression, ExportOptions, export_model
from edgembed.export.source import position_limit, read_source

HIDDEN, MAX_POSITIONS = 32, 66
# family → (tokenizer kind, its special tokens in id order, the template's first and last
# token, what the folder's modules are: pooling, Dense activation or None, Normalize)
FAMILIES = {
    "bert": ("wordpiece", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], ("[CLS]", "[SEP]"),
             ("cls", "Tanh", True)),
    "distilbert": ("wordpiece", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                   ("[CLS]", "[SEP]"), ("max", None, False)),
    "mpnet": ("wordpiece", ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], ("<s>", "</s>"),
              ("mean", None, True)),
    "xlm-roberta": ("unigram", ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], ("<s>", "</s>"),
                    ("mean", "Identity", False)),
    "roberta": ("bpe", ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], ("<s>", "</s>"),
                ("cls", None, True)),
    "modernbert": ("bpe", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], ("[CLS]", "[SEP]"),
                   ("mean", None, True)),
    # BERT with XLM-R's Unigram tokenizer, as paraphrase-multilingual-MiniLM-L12-v2: token
    # types, and a pad id (1) that is not 0, without RoBERTa's position offset
    "bert+unigram": ("unigram", ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], ("<s>", "</s>"),
                     ("mean", None, True)),
}
# the sequence each family's tiny model can take: RoBERTa-style families lose pad_id + 1
# positions (pad_token_id 1 here: 66 - 2)
EXPECTED_MAX_LENGTH = {"bert": 66, "distilbert": 66, "mpnet": 64, "xlm-roberta": 64,
                       "roberta": 64, "modernbert": 66, "bert+unigram": 66}
TEXTS = ["The cat sat on the mat.", "Stock markets fell sharply today.", "",
         "Naïve café owners serve crème brûlée — 42 times a day!",
         "a " * 200 + "long text cut at the package's max length",
         "Rain is expected tomorrow in the northern hills."]
NAMES = list(FAMILIES)


def _named(specials: list[str], role: str) -> str:
    return next(token for token in specials if role in token.lower())


def _train_tokenizer(kind: str, specials: list[str], ends: tuple[str, str]):
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    from edgembed.export.texts import builtin_texts

    unk = _named(specials, "unk")
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=unk))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    elif kind == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token=unk)
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=unk))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(builtin_texts("calibration"), trainer)
    first, last = ends
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", pair=f"{first} $A {last} {last} $B {last}",
        special_tokens=[(first, tokenizer.token_to_id(first)), (last, tokenizer.token_to_id(last))])
    return tokenizer


def model_type(family: str) -> str:
    return family.split("+")[0]


def _config(family: str, vocab: int, pad_id: int, cls_id: int, sep_id: int):
    import transformers

    common = {"vocab_size": vocab, "pad_token_id": pad_id,
              "max_position_embeddings": MAX_POSITIONS}
    bert_like = {"hidden_size": HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "intermediate_size": 64, **common}
    family = model_type(family)
    if family == "bert":
        return transformers.BertConfig(**bert_like)
    if family == "distilbert":
        return transformers.DistilBertConfig(dim=HIDDEN, n_layers=2, n_heads=2, hidden_dim=64,
                                             **common)
    if family == "mpnet":
        return transformers.MPNetConfig(**bert_like, bos_token_id=cls_id, eos_token_id=sep_id)
    if family in ("roberta", "xlm-roberta"):
        config = (transformers.RobertaConfig if family == "roberta"
                  else transformers.XLMRobertaConfig)
        return config(**bert_like, type_vocab_size=1, bos_token_id=cls_id, eos_token_id=sep_id)
    return transformers.ModernBertConfig(
        **{**bert_like, "num_hidden_layers": 3}, global_attn_every_n_layers=2,
        local_attention=16, bos_token_id=cls_id, eos_token_id=sep_id, cls_token_id=cls_id,
        sep_token_id=sep_id)


def build_transformer(family: str, folder: Path, seed: int = 0) -> Path:
    """A transformers folder of `family`: random weights and a freshly trained tokenizer."""
    import torch
    import transformers

    kind, specials, ends, _ = FAMILIES[family]
    tokenizer = _train_tokenizer(kind, specials, ends)
    pad = _named(specials, "pad")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=pad, unk_token=_named(specials, "unk"),
        cls_token=ends[0], sep_token=ends[1], bos_token=ends[0], eos_token=ends[1],
        mask_token=_named(specials, "mask"), model_max_length=EXPECTED_MAX_LENGTH[family],
        **({} if model_type(family) == "bert"
           else {"model_input_names": ["input_ids", "attention_mask"]}))
    torch.manual_seed(seed)
    config = _config(family, tokenizer.get_vocab_size(), *(tokenizer.token_to_id(token)
                                                           for token in (pad, *ends)))
    config.initializer_range = 0.2  # wider than the 0.02 of training: texts differ more
    transformers.AutoModel.from_config(config).eval().save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def build_tiny(family: str, folder: Path, pooling: str | None = None,
               dense: str | None | bool = False, normalize: bool | None = None,
               transformer: Path | None = None) -> Path:
    """A sentence-transformers folder of `family` (on `transformer`'s weights, or new
    ones); the modules are the family's FAMILIES entry unless given (`dense`: an activation
    name, None for no Dense)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )

    modules = FAMILIES[family][3]
    pooling = pooling or modules[0]
    activation = modules[1] if dense is False else dense
    normalize = modules[2] if normalize is None else normalize
    if transformer is None:
        transformer = build_transformer(family, folder.parent / f"{folder.name}-hf")
    torch.manual_seed(1)  # the Dense module's weights
    parts = [Transformer(str(transformer), max_seq_length=EXPECTED_MAX_LENGTH[family]),
             Pooling(HIDDEN, pooling)]
    if activation is not None:
        function = getattr(torch.nn, activation)()
        parts.append(Dense(HIDDEN, 24, bias=activation != "Identity",
                           activation_function=function))
    if normalize:
        parts.append(Normalize())
    SentenceTransformer(modules=parts, device="cpu").save(str(folder))
    return folder


def torch_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return model.encode(texts, convert_to_numpy=True, normalize_embeddings=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-families")
    return {family: build_tiny(family, root / family) for family in NAMES}


@pytest.fixture(scope="module")
def fp32_packages(tiny, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-fp32")
    for family, folder in tiny.items():
        export_model(folder, root / family, ExportOptions(quantize="none", validate=False))
    return {family: root / family for family in NAMES}


# ---------------------------------------------------------------- fp32 against torch

@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_fp32_package_matches_torch(family, tiny, fp32_packages):
    encoder = Encoder.load(fp32_packages[family])
    manifest = encoder.manifest
    kind, _, _, (pooling, activation, normalize) = FAMILIES[family]
    assert manifest.source["model_type"] == model_type(family)
    assert (manifest.pooling, manifest.normalized) == (pooling, normalize)
    assert manifest.dim == (24 if activation else HIDDEN)
    assert manifest.max_seq_length == EXPECTED_MAX_LENGTH[family]
    # the runtime pads with the model's own pad token (RoBERTa-style position ids skip it)
    assert encoder.pad_id == encoder.tokenizer.token_to_id(_named(FAMILIES[family][1], "pad"))
    # every layer's attention scale moved into its query weights, except behind ModernBERT's
    # rotary embedding (tiny models: 2 layers)
    assert manifest.optimization["attention_scales_folded"] == (0 if family == "modernbert"
                                                                else 2)
    inputs = {node.name for node in encoder.session.get_inputs()}
    assert inputs == ({"input_ids", "attention_mask", "token_type_ids"}
                      if model_type(family) == "bert"
                      else {"input_ids", "attention_mask"})

    reference = torch_vectors(tiny[family], TEXTS)
    vectors = encoder.encode(TEXTS)  # the long text fills every position of the table
    assert vectors.shape == reference.shape
    assert cosines(vectors, reference).min() >= 0.9999, cpu_note()
    norms = np.linalg.norm(vectors, axis=1)
    if normalize:
        assert np.allclose(norms, 1, atol=1e-5)
    else:  # the folder has no Normalize: neither has the package
        assert not np.allclose(norms, 1, atol=1e-2)
        assert np.allclose(norms, np.linalg.norm(reference, axis=1), rtol=1e-3)
    # the comparison means something: different texts give clearly different vectors
    others = cosines(reference[:1].repeat(len(TEXTS) - 1, 0), reference[1:])
    assert others.min() < 0.99, others


def test_position_table_limits():
    assert position_limit({"model_type": "roberta", "max_position_embeddings": 514,
                           "pad_token_id": 1}) == 512
    assert position_limit({"model_type": "xlm-roberta", "max_position_embeddings": 514,
                           "pad_token_id": 1}) == 512
    assert position_limit({"model_type": "mpnet", "max_position_embeddings": 514,
                           "pad_token_id": 1}) == 512
    assert position_limit({"model_type": "bert", "max_position_embeddings": 512,
                           "pad_token_id": 0}) == 512
    assert position_limit({"model_type": "modernbert", "max_position_embeddings": 8192}) == 8192


# ---------------------------------------------------------------- pooling and modules

@pytest.mark.slow
def test_pooling_variants_in_manifest_and_vectors(tmp_path):
    """One set of weights (same seed) with cls, mean and max pooling, a Dense module and
    without Normalize: each package says what it does, and computes it."""
    variants = {"cls": ("cls", None, True), "mean": ("mean", None, True),
                "max": ("max", None, True), "mean-dense-tanh": ("mean", "Tanh", True),
                "max-raw": ("max", None, False)}
    vectors = {}
    transformer = build_transformer("xlm-roberta", tmp_path / "hf")
    for name, (pooling, activation, normalize) in variants.items():
        folder = build_tiny("xlm-roberta", tmp_path / name, pooling=pooling, dense=activation,
                            normalize=normalize, transformer=transformer)
        manifest = export_model(folder, tmp_path / f"{name}-pkg",
                                ExportOptions(quantize="none", validate=False))
        assert (manifest.pooling, manifest.normalized) == (pooling, normalize)
        assert manifest.dim == (24 if activation else HIDDEN)
        vectors[name] = Encoder.load(tmp_path / f"{name}-pkg").encode(TEXTS)
        assert cosines(vectors[name], torch_vectors(folder, TEXTS)).min() >= 0.9999, cpu_note()
    for a, b in [("cls", "mean"), ("cls", "max"), ("mean", "max")]:
        assert cosines(vectors[a], vectors[b]).min() < 0.99, (a, b)
    # the same max pooling, normalised or not: the same direction, other lengths
    assert cosines(vectors["max"], vectors["max-raw"]).min() >= 0.9999
    assert not np.allclose(np.linalg.norm(vectors["max-raw"], axis=1), 1, atol=1e-2)


@pytest.mark.slow
def test_pooling_override_applies_the_dense_module(tiny, tmp_path):
    """--pooling overrides the folder's CLS: the reference is then transformers plus the
    exporter's own pooling, Dense and normalisation, and the package matches it."""
    manifest = export_model(tiny["bert"], tmp_path / "pkg",
                            ExportOptions(quantize="none", pooling="mean",
                                          validation_texts=TEXTS))
    assert manifest.pooling == "mean" and manifest.dim == 24
    assert "transformers + same pooling" in manifest.quality["reference"]
    assert manifest.quality["min_cosine"] >= 0.9999, cpu_note()


# ---------------------------------------------------------------- quantization

def _weight_matmuls(package: Path) -> int:
    import onnx

    from edgembed.export.per_token import weight_matmuls

    return len(weight_matmuls(onnx.load(str(package / "model.onnx"))))


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
@pytest.mark.parametrize("method", ["int8", "auto"])
def test_int8_methods_on_every_family(family, method, tiny, fp32_packages, tmp_path,
                                      sentences):
    manifest = export_model(tiny[family], tmp_path / "pkg", ExportOptions(
        quantize=method, validation_texts=sentences[:64]))
    quantization, card = manifest.quantization, manifest.quality
    assert quantization["method"] == method
    kept = quantization["kept_in_float"]
    # every weight MatMul of the fp32 graph (Dense modules too) is int8 or kept, by name
    assert quantization["int8_matmuls"] + len(kept) == _weight_matmuls(fp32_packages[family])
    assert _weight_matmuls(tmp_path / "pkg") == len(kept)
    if method == "int8":
        assert not kept
    else:
        assert manifest.quality is not None and "auto" in quantization
        assert quantization["auto"]["held_out_mean_cosine"] >= 1 - 0.005, quantization["auto"]
    # the card: measured against torch on the given texts, with the fp32 speed beside it.
    # Random weights have no outlier structure; per-token int8 stays within 1% of torch on
    # them on AVX2 and VNNI CPUs alike (pair-limited weights make both compute the same)
    assert card["n_texts"] == 64 and card["texts"] == "caller-supplied texts"
    assert 0.99 <= card["mean_cosine"] <= 1.0 and card["min_cosine"] >= 0.95, (card, cpu_note())
    assert card["speed_vs_fp32"] > 0
    vectors = Encoder.load(tmp_path / "pkg").encode(TEXTS)
    reference = torch_vectors(tiny[family], TEXTS)
    assert cosines(vectors, reference).min() >= 0.95, cpu_note()


# ---------------------------------------------------------------- compression options

@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_layers_and_dims_on_every_family(family, tiny, tmp_path):
    manifest = export_model(tiny[family], tmp_path / "pkg", ExportOptions(
        quantize="none", validation_texts=TEXTS, compression=Compression(layers=1, dims=16)))
    applied = manifest.compression["applied"]
    assert list(applied["layers"]["kept"]) == [0] and applied["dims"]["kept"] == 16
    assert manifest.dim == 16
    vectors = Encoder.load(tmp_path / "pkg").encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 16) and np.isfinite(vectors).all()
    if manifest.normalized:
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # one layer of two (or three): the card measures it against the whole original model
    assert manifest.quality["n_texts"] == len(TEXTS)
    assert -1 <= manifest.quality["min_cosine"] <= manifest.quality["mean_cosine"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_head_and_ffn_pruning_or_a_clear_refusal(family, tiny, tmp_path):
    options = ExportOptions(quantize="none", validate=False,
                            compression=Compression(prune_heads=0.5, prune_ffn=0.5))
    if model_type(family) in ("bert", "roberta", "xlm-roberta"):  # BERT-style layers
        manifest = export_model(tiny[family], tmp_path / "pkg", options)
        applied = manifest.compression["applied"]
        assert applied["ffn"]["intermediate_size"] == 32 and len(applied["heads"]["removed"]) == 2
        assert np.isfinite(Encoder.load(tmp_path / "pkg").encode(TEXTS)).all()
    else:
        with pytest.raises(ExportError, match="head/FFN pruning supports BERT-style layers"):
            export_model(tiny[family], tmp_path / "pkg", options)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet"])
def test_vocabulary_pruning_on_wordpiece_families(family, tiny, fp32_packages, tmp_path):
    """The tokens of a short corpus (and every single character): its words tokenize as
    before, so its sentences' vectors are unchanged."""
    english = ["the cat sat on the mat", "rain is expected tomorrow"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(english), encoding="utf-8")
    manifest = export_model(tiny[family], tmp_path / "pkg", ExportOptions(
        quantize="none", validate=False, compression=Compression(prune_vocab=corpus)))
    vocabulary = manifest.compression["applied"]["vocabulary"]
    assert vocabulary["kept_tokens"] < vocabulary["original_tokens"]
    pruned = Encoder.load(tmp_path / "pkg").encode(english)
    assert cosines(pruned, Encoder.load(fp32_packages[family]).encode(english)).min() >= 0.9999


@pytest.mark.slow
@pytest.mark.parametrize("family", ["distilbert", "mpnet", "modernbert"])
def test_healing_families_without_token_types(family, tiny, tmp_path, sentences):
    """Healing feeds torch the inputs its forward takes: these refuse token_type_ids."""
    texts = tmp_path / "heal.txt"
    texts.write_text("\n".join(sentences[:64]), encoding="utf-8")
    manifest = export_model(tiny[family], tmp_path / "pkg", ExportOptions(
        quantize="none", validate=False,
        compression=Compression(layers=1, heal=texts, heal_steps=2)))
    assert manifest.compression["applied"]["heal"]["steps"] == 2
    assert np.isfinite(Encoder.load(tmp_path / "pkg").encode(TEXTS)).all()


@pytest.mark.slow
def test_modernbert_keep_layers_must_be_the_first(tiny, tmp_path):
    with pytest.raises(ExportError, match="ModernBERT must keep the first layers"):
        export_model(tiny["modernbert"], tmp_path / "pkg", ExportOptions(
            quantize="none", compression=Compression(keep_layers=[1, 2])))


@pytest.mark.slow
def test_dims_is_checked_against_the_dense_output(tiny, tmp_path):
    with pytest.raises(ExportError, match="between 1 and the model's 24 dimensions"):
        export_model(tiny["bert"], tmp_path / "pkg",
                     ExportOptions(compression=Compression(dims=32)))
    with pytest.raises(ExportError, match="--heal with --dims"):
        export_model(tiny["bert"], tmp_path / "pkg",
                     ExportOptions(compression=Compression(layers=1, dims=16, heal=True)))


# ---------------------------------------------------------------- refusals

def _folder(tmp_path: Path, config: dict, modules: list | None = None) -> Path:
    """A model folder that is only read, never exported: config, tokenizer, weights file."""
    from tokenizers import Tokenizer, models

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "model.safetensors").write_bytes(b"")
    if modules is not None:
        (folder / "modules.json").write_text(json.dumps(modules))
    return folder


NOMIC = {"model_type": "nomic_bert", "n_embd": 768, "auto_map": {
    "AutoConfig": "nomic-ai/nomic-bert-2048--configuration_hf_nomic_bert.NomicBertConfig",
    "AutoModel": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertModel"}}
JINA = {"model_type": "bert", "hidden_size": 768, "max_position_embeddings": 8192, "auto_map": {
    "AutoConfig": "jinaai/jina-bert-implementation--configuration_bert.JinaBertConfig",
    "AutoModel": "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel"}}


@pytest.mark.parametrize("config", [NOMIC, JINA], ids=["nomic", "jina"])
def test_remote_code_refused_naming_what_is_missing(tmp_path, config):
    with pytest.raises(ExportError) as refused:
        read_source(_folder(tmp_path, config))
    message = str(refused.value)
    assert f"model type {config['model_type']!r} needs remote code" in message
    assert config["auto_map"]["AutoModel"] in message and "trust_remote_code" in message
    # the code files the auto_map points to, which are not in the folder
    model_file = config["auto_map"]["AutoModel"].split("--")[1].rsplit(".", 1)[0] + ".py"
    assert "not in the folder either: " in message and model_file in message


def test_remote_code_refused_on_the_command_line(tmp_path):
    folder = _folder(tmp_path, JINA)
    assert_one_line_error(edgembed("export", str(folder), "-o", str(tmp_path / "out")),
                          "needs remote code", "JinaBertModel")


def test_custom_module_refused(tmp_path):
    modules = [{"idx": 0, "name": "0", "path": "", "type": "custom_st.Transformer"}]
    folder = _folder(tmp_path, {"model_type": "xlm-roberta", "hidden_size": 32}, modules)
    with pytest.raises(ExportError, match="'custom_st.Transformer', code shipped with the model"):
        read_source(folder)


@pytest.mark.parametrize(("pooling", "message"), [
    ({"pooling_mode": "lasttoken"}, "found ['lasttoken']"),
    ({"pooling_mode": ["cls", "mean"]}, "exactly one of cls, mean or max"),
    ({"pooling_mode": "mean", "include_prompt": False}, "include_prompt false"),
])
def test_unsupported_pooling_refused(tmp_path, pooling, message):
    modules = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.base.modules.transformer.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"}]
    folder = _folder(tmp_path, {"model_type": "bert", "hidden_size": 32}, modules)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(ExportError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_source(folder)


def test_module_order_and_dense_activation_checked(tmp_path):
    modules = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Normalize",
                "type": "sentence_transformers.models.Normalize"},
               {"idx": 2, "name": "2", "path": "2_Dense",
                "type": "sentence_transformers.models.Dense"}]
    folder = _folder(tmp_path, {"model_type": "bert", "hidden_size": 32}, modules)
    (folder / "2_Dense").mkdir()
    dense = {"in_features": 32, "out_features": 8, "bias": True,
             "activation_function": "torch.nn.modules.activation.Tanh"}
    (folder / "2_Dense" / "config.json").write_text(json.dumps(dense))
    with pytest.raises(ExportError, match="Transformer → Normalize → Dense"):
        read_source(folder)
    (folder / "modules.json").write_text(json.dumps([modules[0], modules[2]]))
    (folder / "2_Dense" / "config.json").write_text(json.dumps(
        {**dense, "activation_function": "torch.nn.modules.activation.GELU"}))
    with pytest.raises(ExportError, match="Dense activation 'torch.nn.modules.activation.GELU'"):
        read_source(folder)
