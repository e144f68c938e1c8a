"""Keyword search with SQLite FTS5: the tokenizer an index uses, and how a person's text
becomes an FTS5 query.

FTS5 has a query language of its own (``"phrase"``, ``AND``, ``NOT``, ``-``, ``col:``,
``*``, ``^``, ``NEAR``). People do not type it on purpose, so by default a query is cut
into words and each word is quoted: the query matches documents holding any of the words,
ranked by BM25, and no input can be a syntax error. ``keyword_syntax=True`` passes the
text to FTS5 as it is, for those who want its language.

Pure functions; the SQL lives in `edgembed.index.store`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

# Named tokenizers. "unicode": Unicode-aware word splitting, case and diacritic folding, no
# stemming, so no language is favoured. "english" adds the Porter stemmer (English
# suffixes: "ducks" and "duck" match; it would conflate words of other languages by English
# rules). "trigram" matches any 3-character substring: for languages written without
# spaces, and for code identifiers; the index is several times larger. The default follows
# the model (`default_tokenizer`).
TOKENIZERS = {
    "english": "porter unicode61 remove_diacritics 2",
    "unicode": "unicode61 remove_diacritics 2",
    "trigram": "trigram",
}
ENGLISH_VOCABULARY_SHARE = 0.8  # see default_tokenizer
# Words found in more than this share of the documents (and in more than COMMON_TERM_DOCS
# of them) are left out of keyword queries, unless that leaves none. Scoring them costs a
# pass over most of the index and moves BM25 little (above half the documents, not at
# all: FTS5 floors their IDF at zero); the dense ranking still reads them. On SciFact's
# train split leaving them out changed hybrid nDCG@10 by less than 0.001
# (benchmarks/results/eval_scifact_train.json, fusion sweep).
COMMON_TERM_SHARE = 0.2
COMMON_TERM_DOCS = 1000
MAX_TERMS = 64  # a pasted page stays a fast query: its first 64 distinct words
# a word: letters and digits (unicode61 splits at everything else, underscores included)
WORD = re.compile(r"[^\W_]+")


def default_tokenizer(vocabulary: Iterable[str]) -> str:
    """"english" for a model that reads English only, else "unicode": a model whose
    vocabulary is almost all ASCII (once word-piece markers are removed) ranks other
    languages poorly anyway, and English stemming helps its keyword side; a multilingual
    model gets the tokenizer that favours no language."""
    tokens = [token.removeprefix("##").lstrip("\u0120\u2581") for token in vocabulary]
    tokens = [token for token in tokens if token]
    ascii_share = sum(token.isascii() for token in tokens) / max(len(tokens), 1)
    return "english" if ascii_share >= ENGLISH_VOCABULARY_SHARE else "unicode"


def tokenizer_spec(name_or_spec: str) -> str:
    """The FTS5 ``tokenize`` argument for a named tokenizer, or a spec given as FTS5 takes
    it (e.g. ``"unicode61 tokenchars '-'"``); SQLite checks the latter."""
    if not isinstance(name_or_spec, str) or not name_or_spec.strip():
        raise ValueError(f"keyword tokenizer must be one of {', '.join(TOKENIZERS)} or an "
                         f"FTS5 tokenize string, got {name_or_spec!r}")
    return TOKENIZERS.get(name_or_spec.strip(), name_or_spec.strip())


def sql_string(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def words(text: str) -> list[str]:
    """The distinct words of `text` (first spelling kept, case-insensitively), at most
    MAX_TERMS."""
    seen: dict[str, str] = {}
    for word in WORD.findall(text):
        seen.setdefault(word.casefold(), word)
        if len(seen) == MAX_TERMS:
            break
    return list(seen.values())


def informative_words(words: Sequence[str], terms: Sequence[tuple[int, str]],
                      counts: Mapping[str, int], total: int,
                      share: float = COMMON_TERM_SHARE) -> list[str]:
    """The words of a query (`terms`: (position of the word, term), as the index's
    tokenizer cuts them) holding a term found in at most `share` of the `total` documents
    (or in at most COMMON_TERM_DOCS: small indexes keep every word), by the documents that
    hold each term (`counts`); all of them if that leaves none, none if no word makes a
    term. Common terms move BM25 little (above half the documents not at all: FTS5 floors
    their IDF at zero) but scoring them costs a pass over most of the index; the dense
    ranking still reads them."""
    if not terms:
        return []
    limit = max(share * total, COMMON_TERM_DOCS)
    keep = sorted({position for position, term in terms if 0 < counts.get(term, 0) <= limit})
    return [words[position] for position in keep] or list(words)


def quoted(words: list[str]) -> str | None:
    """An FTS5 query matching documents with any of `words`, each quoted so that nothing in
    it is read as FTS5 syntax; None when there are no words."""
    phrases = ['"' + word.replace('"', '""') + '"' for word in words]
    return " OR ".join(phrases) if phrases else None


def match_expression(text: str) -> str | None:
    """`quoted(words(text))`: any word of a person's text, as an FTS5 query."""
    return quoted(words(text))


def snippet_segments(marked: str, start: str, end: str) -> list[str]:
    """An FTS5 snippet with `start`/`end` around matches, as alternating segments: plain,
    match, plain, ... (even positions plain, odd positions matched)."""
    segments = []
    rest = marked
    while True:
        before, found, after = rest.partition(start)
        segments.append(before)
        if not found:
            return segments
        match, _, rest = after.partition(end)
        segments.append(match)
