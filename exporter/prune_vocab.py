"""Vocabulary pruning: keep only the token rows the chosen languages need.

On MiniLM half of an int8 package is the 30,522-row token table; on multilingual-e5-small
the 250,002-row table is most of the parameters. A pruned vocabulary keeps the special,
added and unknown tokens, the tokens that keep any text encodable (a byte-level BPE
alphabet, byte-fallback pieces), and then:

- for a word list or corpus: every token the original tokenizer produces for it, every
  single-character token and every all-digit token (numbers are in every language), so
  text outside the corpus still splits into characters;
- for scripts (`keep_scripts`): every token whose characters all belong to those Unicode
  scripts or to none in particular (digits, punctuation, symbols, combining marks).

Both may be given; the kept set is the union. Ids are renumbered in their old order and
every reference to them rewritten.

Why text in a kept script tokenizes exactly as before, for each tokenizer kind:
WordPiece is greedy longest-match over the vocabulary, Unigram picks the best-scoring
segmentation (Viterbi), BPE applies its merges in rank order. Each of them, on such text,
only ever looks at tokens that spell a piece of it, and those are all kept (for BPE with
the merges between them); removing tokens that could not match cannot change the result.
Text of a dropped script falls back to smaller pieces, to the unknown token, or (byte-level
BPE, byte fallback) to bytes, never to an error.

`--prune-vocab latin` is the script set Latin + Greek (Greek: the letters of science and
maths, α, β, μ, Ω).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edgembed.errors import ExportError

from .texts import read_texts

# built-in lists: English words up to a SCOWL size (smaller = more common words)
BUILTIN = {"english-20": 20, "english-35": 35, "english-50": 50}
DEFAULT_BUILTIN = "english-35"
LATIN = "latin"
LATIN_SCRIPTS = ("latin", "greek")  # what `--prune-vocab latin` keeps
# named sets of Unicode scripts (the Script property); any other Unicode script name
# (e.g. Georgian, Bengali, Tamil) is accepted as itself
SCRIPT_SETS: dict[str, tuple[str, ...]] = {
    "latin": ("Latin",), "greek": ("Greek",), "cyrillic": ("Cyrillic",),
    "arabic": ("Arabic",), "hebrew": ("Hebrew",), "devanagari": ("Devanagari",),
    "thai": ("Thai",), "cjk": ("Han", "Hiragana", "Katakana", "Hangul", "Bopomofo"),
}
# characters of no particular script pass in every set
SHARED_SCRIPTS = ("Common", "Inherited")
KINDS = ("WordPiece", "Unigram", "BPE")
BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")
# files of the slow (Python) tokenizers that a pruned tokenizer.json makes stale
SLOW_TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model",
                        "spiece.model", "tokenizer.model")


def builtin_words(max_size: int = 50) -> list[str]:
    """Words of the shipped SCOWL-derived list (exporter/data/english_words.txt) up to a size."""
    text = (resources.files("edgembed.export") / "data" / "english_words.txt").read_text("utf-8")
    rows = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return [word for size, word in rows if int(size) <= max_size]


def vocabulary_texts(source: bool | str | Path) -> tuple[list[str], str]:
    """The texts that decide the vocabulary, and how the manifest describes them: `True` or
    a built-in name (english-20, english-35, english-50) is the shipped English list; any
    other value is a file of words or corpus text, one text per line."""
    name = DEFAULT_BUILTIN if source is True else str(source)
    if name in BUILTIN:
        return builtin_words(BUILTIN[name]), (f"built-in {name}: English words up to SCOWL "
                                              f"size {BUILTIN[name]}")
    return read_texts(source), f"file {Path(source).name}"


def script_names(scripts: Sequence[str]) -> tuple[str, ...]:
    """The Unicode script names of `scripts` (set names of SCRIPT_SETS, or script names
    such as Georgian), checked; an ExportError names the valid sets otherwise."""
    import regex

    if isinstance(scripts, str) or not scripts or not all(isinstance(s, str) for s in scripts):
        raise ExportError(f"keep_scripts must be a list of script names like "
                          f"['latin', 'cyrillic'], got {scripts!r:.80}")
    names: list[str] = []
    for script in scripts:
        if script.lower() in SCRIPT_SETS:
            names.extend(SCRIPT_SETS[script.lower()])
            continue
        try:
            regex.compile(rf"\p{{Script={script}}}")
        except regex.error:
            raise ExportError(f"unknown script {script!r}: use {', '.join(SCRIPT_SETS)} or a "
                              "Unicode script name (e.g. Georgian, Bengali)") from None
        names.append(script)
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Vocabulary:
    """What pruning needs to know of a tokenizer.json: its kind, each token by id, what each
    token spells (prefixes, space markers and byte-level encoding undone), and the ids
    every pruned vocabulary keeps."""

    kind: str
    tokens: list[str]
    spelled: list[str]
    always: frozenset[int]


def read_vocabulary(tokenizer: dict[str, Any]) -> Vocabulary:
    """A tokenizer.json document's Vocabulary; refuses a kind or a configuration for which
    pruning could leave some text without any token."""
    model = tokenizer.get("model") or {}
    kind = model.get("type")
    if kind not in KINDS:
        raise ExportError(f"vocabulary pruning supports {', '.join(KINDS)} tokenizers; this "
                          f"one is {kind!r}")
    if kind == "Unigram":
        tokens = [piece for piece, _ in model["vocab"]]
    else:
        by_id = {index: token for token, index in model["vocab"].items()}
        if sorted(by_id) != list(range(len(by_id))):
            raise ExportError("the tokenizer's vocabulary ids are not 0..N-1")
        tokens = [by_id[index] for index in range(len(by_id))]
    byte_level = kind == "BPE" and _byte_level(tokenizer)
    spelled = [_spelled(token, kind, model, byte_level) for token in tokens]
    always = {token["id"] for token in tokenizer.get("added_tokens", [])}
    unknown = model.get("unk_id") if kind == "Unigram" else model["vocab"].get(
        model.get("unk_token"))
    if unknown is not None:
        always.add(unknown)
    if model.get("byte_fallback"):
        pieces = {index for index, token in enumerate(tokens) if BYTE_PIECE.fullmatch(token)}
        if len(pieces) < 256:
            raise ExportError("the tokenizer uses byte fallback but lacks some of the 256 "
                              "<0x..> byte pieces")
        always |= pieces
    elif byte_level:
        from tokenizers import pre_tokenizers

        alphabet = set(pre_tokenizers.ByteLevel.alphabet())
        if not alphabet <= set(tokens):
            raise ExportError("this byte-level BPE lacks some of the 256 byte tokens, so "
                              "text outside the kept tokens could not always be encoded")
        always |= {index for index, token in enumerate(tokens) if token in alphabet}
    elif unknown is None:
        raise ExportError(f"this {kind} tokenizer has no unknown token, byte fallback or "
                          "byte-level alphabet: text of dropped tokens would encode to "
                          "nothing, so its vocabulary cannot be pruned safely")
    return Vocabulary(kind, tokens, spelled, frozenset(always))


def _byte_level(tokenizer: dict[str, Any]) -> bool:
    pre = tokenizer.get("pre_tokenizer") or {}
    return pre.get("type") == "ByteLevel" or any(
        step.get("type") == "ByteLevel" for step in pre.get("pretokenizers") or [])


def _spelled(token: str, kind: str, model: dict[str, Any], byte_level: bool) -> str:
    """The characters a token stands for: without WordPiece's `##` or BPE's subword
    markers, SentencePiece's `▁` as a space, byte-level BPE decoded (an incomplete UTF-8
    sequence becomes U+FFFD, a character of no script)."""
    if kind == "WordPiece":
        return token.removeprefix(model.get("continuing_subword_prefix") or "##")
    if kind == "Unigram":
        return token.replace("\u2581", " ")
    if byte_level:
        from tokenizers import decoders

        return decoders.ByteLevel().decode([token])
    prefix, suffix = model.get("continuing_subword_prefix"), model.get("end_of_word_suffix")
    return token.removeprefix(prefix or "").removesuffix(suffix or "")


def _script_filter(scripts: Sequence[str]) -> Any:
    """A compiled pattern that finds a character of any script outside `scripts`."""
    import regex

    kept = "".join(rf"\p{{Script={name}}}" for name in (*SHARED_SCRIPTS, *scripts))
    return regex.compile(rf"[^{kept}]")


def script_token_ids(vocabulary: Vocabulary, scripts: Sequence[str]) -> set[int]:
    """Ids of the tokens whose characters are all of the kept scripts (set names or
    Unicode script names) or of none in particular. WordPiece's bracketed placeholders
    such as [unused0] go: its pre-tokenizer splits punctuation off, so no text reaches
    them."""
    other = _script_filter(script_names(scripts))
    return {index for index, text in enumerate(vocabulary.spelled)
            if not other.search(text)
            and not (vocabulary.kind == "WordPiece" and len(text) > 2
                     and text.startswith("[") and text.endswith("]"))}


def corpus_token_ids(tokenizer_file: Path, vocabulary: Vocabulary,
                     texts: Iterable[str]) -> set[int]:
    """Ids the original tokenizer produces for `texts`, plus every single-character and
    all-digit token."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    used: set[int] = set()
    for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        used.update(encoding.ids)
    used -= vocabulary.always
    if not used:
        raise ExportError("the --prune-vocab word list yields no tokens (empty, or every "
                          "word is unknown to this tokenizer)")
    # single characters, alone or after a space marker (and the marker alone)
    pieces = {index for index, text in enumerate(vocabulary.spelled)
              if len(text.lstrip(" ")) <= 1 or text.strip().isdigit()}
    return used | pieces


def _merges(model: dict[str, Any]) -> list[tuple[str, str]]:
    return [tuple(merge.split(" ", 1)) if isinstance(merge, str) else tuple(merge)
            for merge in model.get("merges", [])]


def _merged(model: dict[str, Any], left: str, right: str) -> str:
    """The token a BPE merge produces (tokenizers drops the right part's subword prefix)."""
    return left + right.removeprefix(model.get("continuing_subword_prefix") or "")


def _with_merge_parts(tokenizer: dict[str, Any], vocabulary: Vocabulary,
                      kept: set[int]) -> set[int]:
    """BPE builds a token by merging two smaller ones: keep, recursively, the parts of
    every merge that produces a kept token, so every kept token stays reachable."""
    model = tokenizer["model"]
    parts: dict[str, list[tuple[str, str]]] = {}
    for left, right in _merges(model):
        parts.setdefault(_merged(model, left, right), []).append((left, right))
    ids = model["vocab"]
    pending = [vocabulary.tokens[index] for index in kept]
    while pending:
        for pair in parts.get(pending.pop(), ()):
            for token in pair:
                if token in ids and ids[token] not in kept:
                    kept.add(ids[token])
                    pending.append(token)
    return kept


def kept_vocabulary(tokenizer_file: Path, source: bool | str | Path = False,
                    scripts: Sequence[str] | None = None) -> tuple[list[int], dict[str, Any]]:
    """Old ids to keep, ascending, for a --prune-vocab SOURCE (see vocabulary_texts; `latin`
    is the latin and greek script sets) and/or --keep-scripts, and what the manifest
    records about them."""
    tokenizer = json.loads(Path(tokenizer_file).read_text(encoding="utf-8"))
    vocabulary = read_vocabulary(tokenizer)
    if str(source) == LATIN:
        source, scripts = False, (*LATIN_SCRIPTS, *(scripts or ()))
    kept = set(vocabulary.always)
    described: dict[str, Any] = {"tokenizer": vocabulary.kind}
    if source:
        texts, described["source"] = vocabulary_texts(source)
        described["texts"] = len(texts)
        kept |= corpus_token_ids(tokenizer_file, vocabulary, texts)
    if scripts:
        kept |= script_token_ids(vocabulary, scripts)
        described["scripts"] = list(dict.fromkeys(scripts))
        described["scripts_rule"] = ("every token whose characters are all of these Unicode "
                                     "scripts or of none (digits, punctuation, symbols, "
                                     "combining marks)")
    if not source and not scripts:
        raise ExportError("vocabulary pruning needs a word list or corpus, or scripts to keep")
    if vocabulary.kind == "BPE":
        kept = _with_merge_parts(tokenizer, vocabulary, kept)
    if vocabulary.kind == "Unigram":
        # the unknown token's score is the lowest piece score minus 10: keeping that piece
        # keeps the unknown token's score, and with it every segmentation of kept text
        scores = [score for _, score in tokenizer["model"]["vocab"]]
        kept.add(scores.index(min(scores)))
    return sorted(kept), described


def _remap_processor(processor: dict[str, Any] | None, new_id: dict[int, int]) -> None:
    """Special-token ids in post-processors (TemplateProcessing, Bert/Roberta, Sequence)."""
    if not processor:
        return
    for child in processor.get("processors", []):
        _remap_processor(child, new_id)
    for spec in (processor.get("special_tokens") or {}).values():
        spec["ids"] = [new_id[i] for i in spec["ids"]]
    for key in ("sep", "cls"):
        if key in processor:
            processor[key] = [processor[key][0], new_id[processor[key][1]]]


def prune_tokenizer(tokenizer: dict[str, Any], kept: Sequence[int]) -> dict[str, Any]:
    """A copy of a tokenizer.json document holding only `kept` (old ids), renumbered
    0..len(kept)-1 in their old order; every id reference is rewritten, and a BPE keeps
    the merges whose parts and result are all kept."""
    data = json.loads(json.dumps(tokenizer))
    vocabulary = read_vocabulary(data)
    model = data["model"]
    new_id = {old: new for new, old in enumerate(kept)}
    in_model = [old for old in kept if old < len(vocabulary.tokens)]
    if vocabulary.kind == "Unigram":
        model["vocab"] = [model["vocab"][old] for old in in_model]
        if model.get("unk_id") is not None:
            model["unk_id"] = new_id[model["unk_id"]]
    else:
        model["vocab"] = {vocabulary.tokens[old]: new_id[old] for old in in_model}
    if vocabulary.kind == "BPE":
        strings = any(isinstance(merge, str) for merge in model.get("merges", []))
        model["merges"] = [
            f"{left} {right}" if strings else [left, right]
            for left, right in _merges(model)
            if {left, right, _merged(model, left, right)} <= model["vocab"].keys()]
    for token in data.get("added_tokens", []):
        if token["id"] not in new_id:
            raise ExportError(f"added token {token['content']!r} would be dropped")
        token["id"] = new_id[token["id"]]
    _remap_processor(data.get("post_processor"), new_id)
    if data.get("padding"):
        data["padding"]["pad_id"] = new_id[data["padding"]["pad_id"]]
    return data


def prune_tokenizer_config(config: dict[str, Any], kept: Sequence[int]) -> dict[str, Any]:
    """tokenizer_config.json with its `added_tokens_decoder` keys (ids) renumbered."""
    new_id = {old: new for new, old in enumerate(kept)}
    decoder = config.get("added_tokens_decoder")
    if not decoder:
        return config
    return {**config, "added_tokens_decoder": {str(new_id[int(old)]): token
                                               for old, token in decoder.items()
                                               if int(old) in new_id}}


def vocab_txt(tokenizer: dict[str, Any]) -> str:
    """vocab.txt for the slow tokenizer, consistent with a (pruned) WordPiece tokenizer.json."""
    vocab = tokenizer["model"]["vocab"]
    return "".join(token + "\n" for token, _ in sorted(vocab.items(), key=lambda item: item[1]))


def prune_embeddings(model: Any, kept: Sequence[int]) -> Any:
    """Keep rows `kept` of the model's input token embeddings (a transformers model,
    modified in place and returned), with config.vocab_size to match. The padding token
    must keep its id: RoBERTa-family models count position ids from it."""
    import torch

    table = model.get_input_embeddings()
    index = torch.tensor(list(kept), dtype=torch.long)
    pad = model.config.pad_token_id
    new_pad = list(kept).index(pad) if pad is not None and pad in kept else None
    if pad is not None and new_pad != pad:
        raise ExportError(f"vocabulary pruning would move or drop the padding token (id "
                          f"{pad}); every id below it must be a special token")
    rows = torch.nn.Embedding(len(kept), table.embedding_dim, padding_idx=new_pad)
    rows.weight.data = table.weight.data[index].clone()
    model.set_input_embeddings(rows)
    model.config.vocab_size = len(kept)
    return model
