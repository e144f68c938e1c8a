"""Vocabulary pruning: keep only the token rows a language actually needs.

On MiniLM half of an int8 package is the 30,522-row token table, most of which English
text never touches. We keep the special tokens, every token the original tokenizer
produces for a word list or corpus, every single-character token (with and without the
continuing prefix, so any word made of known characters still tokenizes into pieces) and
every all-digit token (numbers are in every language); then renumber them. WordPiece is
greedy longest-match, so every word of the list tokenizes exactly as before; other words
fall back to shorter pieces, or to [UNK], never to an error.

The built-in `latin` source is a lighter cut for English (and other Latin-script) text that
must keep every word it can spell: instead of a word list it keeps every token whose
letters are all Latin or Greek (digits, punctuation, symbols and marks pass), and drops the
`[unused…]` placeholders and the tokens with letters of other scripts, which such text
never reaches.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from edgembed.errors import ExportError

from .texts import read_texts

# built-in lists: English words up to a SCOWL size (smaller = more common words)
BUILTIN = {"english-20": 20, "english-35": 35, "english-50": 50}
DEFAULT_BUILTIN = "english-35"
LATIN = "latin"
LATIN_SCRIPTS = ("LATIN", "GREEK")  # Greek: the letters of science and maths (α, β, μ, Ω)


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


def kept_vocabulary(tokenizer_file: Path, source: bool | str | Path) -> tuple[list[int], dict]:
    """Old ids to keep for a --prune-vocab SOURCE (see vocabulary_texts, or `latin`), and
    what the manifest records about the source."""
    if str(source) == LATIN:
        return latin_token_ids(tokenizer_file), {
            "source": "built-in latin: every token whose letters are all Latin or Greek; "
                      "[unused…] placeholders and other scripts' letters dropped"}
    texts, described = vocabulary_texts(source)
    return kept_token_ids(tokenizer_file, texts), {"source": described, "texts": len(texts)}


def _wordpiece(tokenizer: dict[str, Any]) -> dict[str, Any]:
    model = tokenizer.get("model") or {}
    if model.get("type") != "WordPiece":
        raise ExportError(f"vocabulary pruning supports WordPiece tokenizers (BERT family); "
                          f"this one is {model.get('type')!r}")
    if model.get("unk_token") not in model.get("vocab", {}):
        raise ExportError("the tokenizer's unk_token is not in its vocabulary")
    return model


def _vocabulary(tokenizer_file: Path) -> tuple[dict[str, Any], dict[str, str], set[int]]:
    """A tokenizer.json's WordPiece model, each token's text without the continuing prefix,
    and the ids every pruned vocabulary keeps (added/special tokens and [UNK])."""
    data = json.loads(Path(tokenizer_file).read_text(encoding="utf-8"))
    model = _wordpiece(data)
    prefix = model.get("continuing_subword_prefix", "##")
    bare = {token: token[len(prefix):] if token.startswith(prefix) else token
            for token in model["vocab"]}
    always = {token["id"] for token in data.get("added_tokens", [])}
    return model, bare, always | {model["vocab"][model["unk_token"]]}


def kept_token_ids(tokenizer_file: Path, texts: Iterable[str]) -> list[int]:
    """Old ids to keep, ascending: special/added tokens, [UNK], the tokens of `texts`, the
    single characters with and without the continuing prefix, and all-digit tokens."""
    from tokenizers import Tokenizer

    model, bare, always = _vocabulary(tokenizer_file)
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    used: set[int] = set()
    for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        used.update(encoding.ids)
    used.discard(model["vocab"][model["unk_token"]])
    if not used:
        raise ExportError("the --prune-vocab word list yields no tokens (empty, or every "
                          "word is [UNK] for this tokenizer)")
    pieces = {model["vocab"][token] for token, text in bare.items()
              if len(text) == 1 or text.isdigit()}
    return sorted(used | always | pieces)


def _latin_character(character: str) -> bool:
    """Not a letter (digits, punctuation, symbols, marks), or a Latin or Greek letter."""
    if not character.isalpha() or ord(character) < 0x0250:  # Latin-1 and Latin Extended
        return True
    return unicodedata.name(character, "").split(" ")[0] in LATIN_SCRIPTS


def latin_token_ids(tokenizer_file: Path) -> list[int]:
    """Old ids to keep, ascending: special/added tokens, [UNK], and every token whose
    letters are all Latin or Greek (see _latin_character). Bracketed
    placeholders such as [unused0] go: the pre-tokenizer splits punctuation off, so no text
    ever produces them."""
    model, bare, always = _vocabulary(tokenizer_file)
    latin = {model["vocab"][token] for token, text in bare.items()
             if not (len(text) > 1 and text.startswith("[") and text.endswith("]"))
             and all(_latin_character(character) for character in text)}
    return sorted(always | latin)


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
    0..len(kept)-1 in their old order; every id reference is rewritten."""
    data = json.loads(json.dumps(tokenizer))
    model = _wordpiece(data)
    new_id = {old: new for new, old in enumerate(kept)}
    by_id = {old: token for token, old in model["vocab"].items()}
    model["vocab"] = {by_id[old]: new for old, new in new_id.items()}
    for token in data.get("added_tokens", []):
        if token["id"] not in new_id:
            raise ExportError(f"added token {token['content']!r} would be dropped")
        token["id"] = new_id[token["id"]]
    _remap_processor(data.get("post_processor"), new_id)
    if data.get("padding"):
        data["padding"]["pad_id"] = new_id[data["padding"]["pad_id"]]
    return data


def vocab_txt(tokenizer: dict[str, Any]) -> str:
    """vocab.txt for the slow tokenizer, consistent with a (pruned) tokenizer.json."""
    vocab = tokenizer["model"]["vocab"]
    return "".join(token + "\n" for token, _ in sorted(vocab.items(), key=lambda item: item[1]))


def prune_embeddings(model: Any, kept: Sequence[int]) -> Any:
    """Keep rows `kept` of the model's input token embeddings (a transformers model,
    modified in place and returned), with config.vocab_size and pad_token_id to match."""
    import torch

    table = model.get_input_embeddings()
    index = torch.tensor(list(kept), dtype=torch.long)
    pad = model.config.pad_token_id
    new_pad = list(kept).index(pad) if pad is not None and pad in kept else None
    rows = torch.nn.Embedding(len(kept), table.embedding_dim, padding_idx=new_pad)
    rows.weight.data = table.weight.data[index].clone()
    model.set_input_embeddings(rows)
    model.config.vocab_size = len(kept)
    model.config.pad_token_id = new_pad
    return model
