"""Files to documents: the text of every format `edgembed index` reads, with where each
piece of text came from (page, heading, message, line).

Plain text, Markdown, JSON lines, HTML (the standard library's parser), e-mail (``.eml``
and mbox, the standard library's `email`) and source code need nothing more. PDF
(pypdf), DOCX (python-docx) and ODT (odfpy) need the `docs` extra, imported only when
such a file is read. A file that cannot be read raises `UnreadableFile` with a one-line
reason; ingestion skips it and goes on.
"""

from __future__ import annotations

import email
import email.policy
import importlib
import io
import json
import logging
import mailbox
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ..errors import EdgembedError, reason

TEXT_FIELDS = ("text", "contents", "content", "body")
DOCS_EXTRA = "pip install 'edgembed[docs]'"
# source code, by suffix: the language goes into the passages' metadata
CODE = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".go": "go",
    ".rs": "rust", ".java": "java", ".kt": "kotlin", ".scala": "scala", ".c": "c",
    ".h": "c", ".cc": "c++", ".cpp": "c++", ".hpp": "c++", ".cs": "c#", ".rb": "ruby",
    ".php": "php", ".swift": "swift", ".sh": "shell", ".bash": "shell", ".sql": "sql",
    ".r": "r", ".lua": "lua", ".pl": "perl", ".hs": "haskell", ".ml": "ocaml",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".clj": "clojure", ".dart": "dart",
    ".jl": "julia", ".m": "objective-c", ".zig": "zig", ".toml": "toml", ".yaml": "yaml",
    ".yml": "yaml", ".css": "css", ".scss": "scss",
}
PLAIN = (".txt", ".text", ".rst", ".org", ".tex")
MARKDOWN = (".md", ".markdown")
HTML = (".html", ".htm", ".xhtml")
MAIL = (".eml", ".mbox")
DOCUMENTS = (".pdf", ".docx", ".odt")
SUFFIXES = (*PLAIN, *MARKDOWN, ".jsonl", *HTML, *MAIL, *DOCUMENTS, *CODE)
MARKDOWN_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


class UnreadableFile(EdgembedError):
    """This file's content cannot be read (encrypted, damaged, binary): skip it."""


class MissingExtra(UnreadableFile):
    """Reading this format needs a library that is not installed."""


@dataclass(frozen=True)
class Document:
    """Text to index, its metadata (page, title, language, ...), and the headings in it as
    (character offset, heading), so each passage can name the section it is in."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    headings: tuple[tuple[int, str], ...] = ()


def heading_at(headings: tuple[tuple[int, str], ...], start: int, end: int) -> str | None:
    """The heading of a passage spanning [start, end): the last one before it starts, or
    else the first one inside it."""
    before = [title for offset, title in headings if offset <= start]
    if before:
        return before[-1]
    return next((title for offset, title in headings if offset < end), None)


def read_documents(path: Path, data: bytes, warnings: list[str]) -> list[Document]:
    """The documents in a file's bytes, by the file's suffix (unknown suffixes: text)."""
    suffix = path.suffix.lower()
    readers: dict[str, Callable[[], list[Document]]] = {
        ".jsonl": lambda: _jsonl(path, _text(data), warnings),
        ".pdf": lambda: _pdf(data), ".docx": lambda: _docx(data), ".odt": lambda: _odt(data),
        ".eml": lambda: [_message(email.message_from_bytes(data, policy=email.policy.default))],
        ".mbox": lambda: _mbox(path),
    }
    if suffix in readers:
        return readers[suffix]()
    if suffix in HTML:
        return [html_document(_decode_html(data))]
    text = _text(data)
    if suffix in MARKDOWN:
        return [Document(text, {}, tuple((m.start(), m.group(1)) for m in
                                         MARKDOWN_HEADING.finditer(text)))]
    return [Document(text, {"language": CODE[suffix]} if suffix in CODE else {})]


def _text(data: bytes) -> str:
    """UTF-8 text, refusing binary data that happens to carry a text suffix."""
    if b"\x00" in data[:8192]:
        raise UnreadableFile("binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text (byte {exc.start})") from None


def _jsonl(path: Path, text: str, warnings: list[str]) -> list[Document]:
    """One document per line: a JSON string, or an object's first text field (with its
    title put first)."""
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            warnings.append(f"{path}:{number}: not JSON, skipped")
            continue
        if isinstance(record, str):
            documents.append(Document(record, {"line": number}))
            continue
        if not isinstance(record, dict):
            warnings.append(f"{path}:{number}: not a JSON object or string, skipped")
            continue
        body = next((record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str)), "")
        title = record.get("title") if isinstance(record.get("title"), str) else ""
        meta: dict[str, Any] = {"line": number}
        record_id = record.get("id", record.get("_id"))
        if isinstance(record_id, (str, int)):
            meta["record_id"] = record_id
        if title:
            meta["title"] = title
        documents.append(Document((title + "\n" + body).strip() if title else body, meta))
    return documents


# ---------------------------------------------------------------- HTML

class _VisibleText(HTMLParser):
    """The text a browser shows, with block elements on their own lines, the title, and
    the headings (marked in the text by NUL, removed when the text is assembled)."""

    HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "canvas",
                        "iframe", "object"})
    BLOCKS = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "td", "th", "table",
                        "section", "article", "header", "footer", "nav", "aside", "main",
                        "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "dt", "dd",
                        "figure", "figcaption", "hr", "form", "address", "details",
                        "summary"})
    HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.hidden = 0
        self.in_head = False  # until </head> or <body>: browsers close it by themselves
        self.in_title = False
        self.heading: list[str] | None = None
        self.headings: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in ("head", "body"):
            self.in_head = tag == "head"
        elif tag in self.HIDDEN:
            self.hidden += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag in self.HEADINGS and not self.hidden and not self.in_head:
            self.parts.append("\x00")
            self.heading = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag == "head":
            self.in_head = False
        elif tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        if tag in self.HEADINGS and self.heading is not None:
            self.headings.append(" ".join("".join(self.heading).split()))
            self.heading = None
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        elif not self.hidden and not self.in_head:
            self.parts.append(data.replace("\x00", ""))
            if self.heading is not None:
                self.heading.append(data)


def html_document(html: str) -> Document:
    """The visible text of an HTML page, its title and headings."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    marked = "\n".join(line for line in lines if line.strip("\x00 "))
    text, headings = _take_marks(marked, parser.headings)
    title = " ".join(parser.title.split())
    return Document(text, {"title": title} if title else {}, headings)


def _take_marks(marked: str, titles: list[str]) -> tuple[str, tuple[tuple[int, str], ...]]:
    """Remove the NUL heading marks from `marked`; their offsets, paired with the titles."""
    pieces = marked.split("\x00")
    offsets, length = [], len(pieces[0])
    for piece in pieces[1:]:
        offsets.append(length)
        length += len(piece)
    headings = tuple((offset, title) for offset, title in zip(offsets, titles, strict=False)
                     if title)
    return "".join(pieces), headings


def _decode_html(data: bytes) -> str:
    """HTML bytes as text: UTF-8, else the charset the page declares, else Windows-1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    declared = re.search(rb"charset=[\"']?([A-Za-z0-9_.:-]+)", data[:4096])
    for charset in ([declared.group(1).decode("ascii")] if declared else []) + ["cp1252"]:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


# ---------------------------------------------------------------- e-mail

def _message(message: email.message.Message, number: int | None = None) -> Document:
    """Subject, then the body (plain text preferred, else the HTML part's text)."""
    meta: dict[str, Any] = {} if number is None else {"message": number}
    for name in ("subject", "from", "date"):
        value = message.get(name)
        if value:
            meta[name] = " ".join(str(value).split())
    body = ""
    try:
        part = message.get_body(preferencelist=("plain", "html")) \
            if hasattr(message, "get_body") else None
        if part is not None:
            content = part.get_content()
            body = html_document(content).text if part.get_content_type() == "text/html" \
                else content
    except (LookupError, ValueError, AttributeError):
        body = ""
    subject = meta.get("subject", "")
    return Document((subject + "\n\n" + body).strip() if subject else body.strip(), meta)


def _mbox(path: Path) -> list[Document]:
    try:
        box = mailbox.mbox(str(path), create=False)
        messages = [email.message_from_bytes(bytes(message), policy=email.policy.default)
                    for message in box]
    except (OSError, mailbox.Error) as exc:
        raise UnreadableFile(f"not a readable mbox: {reason(exc)}") from None
    return [_message(message, number) for number, message in enumerate(messages, start=1)]


# ---------------------------------------------------------------- the docs extra

def _extra(module: str, name: str, suffix: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"reading {suffix} files needs {name}: {DOCS_EXTRA}") from None


def _pdf(data: bytes) -> list[Document]:
    """One document per page with text (its number in `page`, from 1)."""
    pypdf = _extra("pypdf", "pypdf", ".pdf")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are reported once
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("encrypted PDF (needs a password)")
        title = (reader.metadata or {}).get("/Title") if reader.metadata else None
        documents = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            if text.strip():
                meta: dict[str, Any] = {"page": number}
                if isinstance(title, str) and title.strip():
                    meta["title"] = title.strip()
                documents.append(Document(text, meta))
        return documents
    except UnreadableFile:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        if isinstance(exc, pypdf.errors.DependencyError):
            raise UnreadableFile(f"encrypted PDF pypdf cannot open: {reason(exc)}") from None
        raise UnreadableFile(f"not a readable PDF: {reason(exc, 120)}") from None


def _docx(data: bytes) -> list[Document]:
    """Paragraphs and table cells in order; Heading and Title styles are headings."""
    docx = _extra("docx", "python-docx", ".docx")
    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        headings: list[tuple[int, str]] = []
        offset = 0
        for block in document.iter_inner_content():
            if hasattr(block, "rows"):  # a table
                texts = [cell.text for row in block.rows for cell in row.cells]
            else:
                texts = [block.text]
                style = (block.style.name or "") if block.style is not None else ""
                if style.startswith(("Heading", "Title")) and block.text.strip():
                    headings.append((offset, block.text.strip()))
            for text in texts:
                if text.strip():
                    lines.append(text)
                    offset += len(text) + 1
        title = document.core_properties.title
    except Exception as exc:  # zipfile, lxml and python-docx errors on damaged files
        raise UnreadableFile(f"not a readable DOCX: {reason(exc, 120)}") from None
    return [Document("\n".join(lines), {"title": title} if title else {}, tuple(headings))]


def _odt(data: bytes) -> list[Document]:
    """Headings and paragraphs (in lists, sections and tables too) in order."""
    _extra("odf", "odfpy", ".odt")
    from odf import teletype
    from odf.opendocument import load

    lines: list[str] = []
    headings: list[tuple[int, str]] = []
    offset = 0

    def visit(element: Any) -> None:
        nonlocal offset
        for child in element.childNodes:
            name = getattr(child, "qname", (None, None))[1]
            if name in ("h", "p"):
                text = teletype.extractText(child)
                if text.strip():
                    if name == "h":
                        headings.append((offset, text.strip()))
                    lines.append(text)
                    offset += len(text) + 1
            elif getattr(child, "childNodes", None):
                visit(child)

    try:
        visit(load(io.BytesIO(data)).text)
    except Exception as exc:  # zipfile and XML errors on damaged files
        raise UnreadableFile(f"not a readable ODT: {reason(exc, 120)}") from None
    return [Document("\n".join(lines), {}, tuple(headings))]
