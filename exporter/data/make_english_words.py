"""Regenerate english_words.txt, the built-in list behind `edgembed export --prune-vocab`.

It is SCOWL's English lists up to size 50 (Debian package `scowl`, 2020.12.07-2; size 50 is
what Debian's wamerican ships, 35 is wamerican-small), possessives dropped, one
"SIZE<TAB>WORD" line per word at the smallest size that lists it, so the exporter can
choose how common a word must be (`--prune-vocab english-20` … `english-50`). Run once:

    apt-get install scowl && python exporter/data/make_english_words.py
"""

from __future__ import annotations

from pathlib import Path

SCOWL = Path("/usr/share/dict/scowl")
LISTS = ("english-words", "american-words", "english-upper", "american-upper",
         "english-contractions", "american-contractions", "english-abbreviations",
         "american-abbreviations", "english-proper-names", "american-proper-names")
SIZES = (10, 20, 35, 40, 50)
OUTPUT = Path(__file__).with_name("english_words.txt")
NOTICE = """\
# English words with their SCOWL size (smaller = more common): the english-* and american-*
# words, upper, contractions, abbreviations and proper-names lists at sizes 10-50 (Debian
# package scowl 2020.12.07-2), possessives dropped. Regenerate: make_english_words.py.
#
# Copyright 2000-2011 by Kevin Atkinson
# Permission to use, copy, modify, distribute and sell these word lists, the associated
# scripts, the output created from the scripts, and its documentation for any purpose is
# hereby granted without fee, provided that the above copyright notice appears in all
# copies and that both that copyright notice and this permission notice appear in
# supporting documentation. Kevin Atkinson makes no representations about the
# suitability of this array for any purpose. It is provided "as is" without express or
# implied warranty. (SCOWL also includes lists under similar permissive terms by Alan
# Beale and others; see /usr/share/doc/scowl/copyright.)
"""


def main() -> None:
    sizes: dict[str, int] = {}
    for size in SIZES:
        for name in LISTS:
            path = SCOWL / f"{name}.{size}"
            if path.is_file():
                for word in path.read_text("latin-1").split():
                    if not word.endswith("'s"):
                        sizes.setdefault(word, size)
    lines = [f"{size}\t{word}" for word, size in sorted(sizes.items())]
    OUTPUT.write_text(NOTICE + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} words to {OUTPUT}")


if __name__ == "__main__":
    main()
