"""`edgembed index` of real document formats: PDF pages, HTML, DOCX, ODT, e-mail and code,
passages that keep their page and heading, and files that cannot be read skipped with a
one-line reason, counted, without stopping the run."""

from __future__ import annotations

import io
import json
import mailbox
import shutil
import sys
from pathlib import Path

import pytest
import sample_documents

from conftest import edgembed
from edgembed import Index, default_package_path
from edgembed.index import formats, index_paths

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("docx")
pytest.importorskip("odf")

DOCUMENTS = default_package_path().parent / "samples" / "documents"


def read(path: Path) -> list[formats.Document]:
    return formats.read_documents(path, path.read_bytes(), [])


def test_samples_are_what_the_generator_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_documents, "OUT", tmp_path)
    sample_documents.main()
    for made in tmp_path.iterdir():
        assert made.read_bytes() == (DOCUMENTS / made.name).read_bytes(), made.name


def test_pdf_pages_and_title():
    pages = read(DOCUMENTS / "dishwasher-manual.pdf")
    assert [page.metadata["page"] for page in pages] == [1, 2, 3]
    assert all(page.metadata["title"] == "DW-450 Dishwasher Quick Guide" for page in pages)
    assert "E24: the drain is blocked" in pages[1].text


def test_html_visible_text_title_and_headings():
    (page,) = read(DOCUMENTS / "camping-checklist.html")
    assert page.metadata == {"title": "Camping checklist for a weekend in the hills"}
    assert "scripts are not indexed" not in page.text and "font-family" not in page.text
    assert "0 °C" in page.text  # entities decoded
    titles = [title for _, title in page.headings]
    assert titles == ["Camping checklist", "Shelter and sleep", "Kitchen", "Water",
                      "First aid"]
    for offset, title in page.headings:
        assert page.text[offset:offset + len(title)] == title


def test_html_without_closing_tags():
    page = formats.html_document("<html><head><title>T</title><meta charset=utf-8>"
                                 "<body><h1>One</h1><p>first<br>second<p>third</html>")
    assert page.text == "One\nfirst\nsecond\nthird"
    assert page.metadata == {"title": "T"} and page.headings == ((0, "One"),)


def test_docx_and_odt_paragraphs_and_headings():
    (lease,) = read(DOCUMENTS / "lease-renewal.docx")
    assert lease.metadata == {"title": "Lease renewal notes"}
    assert [t for _, t in lease.headings] == ["Lease renewal notes", "Rent", "Notice period",
                                              "Pets"]
    assert "990 euros" in lease.text
    (plan,) = read(DOCUMENTS / "choir-rehearsal.odt")
    assert [t for _, t in plan.headings] == ["Choir rehearsal plan", "Warm-up", "Repertoire"]
    for document in (lease, plan):
        for offset, title in document.headings:
            assert document.text[offset:offset + len(title)] == title


def test_email_and_mbox(tmp_path):
    (message,) = read(DOCUMENTS / "bike-repair-receipt.eml")
    assert message.metadata["subject"] == "Your repair order #4471 is ready"
    assert message.metadata["from"].startswith("Spoke & Chain")
    assert message.metadata["date"] == "Tue, 14 Oct 2025 16:05:00 +0200"
    assert message.text.startswith("Your repair order #4471 is ready\n\n")
    assert "derailleur hanger" in message.text
    box = mailbox.mbox(str(tmp_path / "inbox.mbox"))
    box.add((DOCUMENTS / "bike-repair-receipt.eml").read_bytes())
    box.add(b"From: a@example.org\nSubject: Second\n\nThe tent poles arrived.\n")
    box.close()
    messages = read(tmp_path / "inbox.mbox")
    assert [m.metadata["message"] for m in messages] == [1, 2]
    assert messages[1].text == "Second\n\nThe tent poles arrived."


def test_code_and_markdown(tmp_path):
    (tmp_path / "tool.py").write_text("def main():\n    return 0\n")
    (code,) = read(tmp_path / "tool.py")
    assert code.metadata == {"language": "python"}
    (tmp_path / "notes.md").write_text("intro\n# First\ntext\n## Second part ##\nmore\n")
    (notes,) = read(tmp_path / "notes.md")
    assert notes.headings == ((6, "First"), (19, "Second part"))
    assert formats.heading_at(notes.headings, 0, 5) is None
    assert formats.heading_at(notes.headings, 0, 10) == "First"
    assert formats.heading_at(notes.headings, 25, 30) == "Second part"


def broken_files(folder: Path) -> dict[str, str]:
    """Files that cannot be read, by name, with the reason each is skipped for."""
    writer = pypdf.PdfWriter(clone_from=io.BytesIO((DOCUMENTS / "dishwasher-manual.pdf")
                                                   .read_bytes()))
    writer.encrypt("secret", algorithm="RC4-128")
    encrypted = io.BytesIO()
    writer.write(encrypted)
    files = {
        "locked.pdf": (encrypted.getvalue(), "encrypted PDF"),
        "truncated.pdf": ((DOCUMENTS / "dishwasher-manual.pdf").read_bytes()[:300],
                          "not a readable PDF"),
        "broken.docx": (b"PK\x03\x04" + bytes(range(256)) * 4, "not a readable DOCX"),
        "broken.odt": (b"not a zip at all", "not a readable ODT"),
        "junk.txt": (bytes(range(256)) * 8, "binary data, not text"),
        "latin1.md": ("café".encode("latin-1"), "not UTF-8 text"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: why for name, (_, why) in files.items()}


def test_unreadable_files_are_skipped_with_a_reason_and_counted(tmp_path, default_encoder):
    folder = tmp_path / "files"
    shutil.copytree(DOCUMENTS, folder)
    reasons = broken_files(folder)
    index = str(tmp_path / "index")
    result = edgembed("index", str(folder), "--index", index)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    for name, why in reasons.items():
        (line,) = [line for line in lines if f"/{name}:" in line]
        assert line.startswith("edgembed: warning: ") and why in line and "skipped" in line
    assert lines[-1].endswith("5 new, 0 changed, 0 unchanged, 0 removed, 6 skipped files; "
                              "+7 / -0 passages; 7 passages in the index"), lines[-1]
    hits = json.loads(edgembed("search", "what does error E24 mean", "--index", index,
                               "--json").stdout)
    assert hits[0]["file"].endswith("dishwasher-manual.pdf") and hits[0]["page"] == 2
    # a readable file that turns unreadable loses its passages; fixed, it comes back
    (folder / "lease-renewal.docx").write_bytes(b"PK\x03\x04 damaged")
    again = edgembed("index", str(folder), "--index", index)
    assert "7 skipped files; +0 / -1 passages" in again.stderr.strip().splitlines()[-1]
    shutil.copy(DOCUMENTS / "lease-renewal.docx", folder)
    back = edgembed("index", str(folder), "--index", index).stderr.strip().splitlines()[-1]
    assert "1 new" in back and "+1 / -0" in back


def test_passages_keep_page_and_heading(tmp_path, default_encoder):
    folder = tmp_path / "files"
    shutil.copytree(DOCUMENTS, folder)
    (folder / "long.html").write_text(
        "<title>Long</title>" + "".join(f"<h2>Part {i}</h2><p>" + f"Paragraph {i}. " * 120
                                        + "</p>" for i in range(3)), encoding="utf-8")
    index = Index.create(tmp_path / "index", default_encoder)
    index_paths(index, [folder])
    docs = index.store.fetch(index._keys.tolist())
    metadata = [meta for _, _, meta in docs.values()]
    pages = sorted(m["page"] for m in metadata if m["file"].endswith(".pdf"))
    assert pages == [1, 2, 3]
    parts = [m["heading"] for m in metadata if m["file"].endswith("long.html")]
    assert len(parts) > 3 and set(parts) == {"Part 0", "Part 1", "Part 2"}
    for _, text, meta in docs.values():
        if meta["file"].endswith("long.html") and meta["heading"] != "Part 0":
            number = meta["heading"].split()[1]
            assert f"Paragraph {number}." in text  # the heading is the passage's section
    index.close()


def test_a_missing_extra_keeps_the_file_for_later(tmp_path, default_encoder, monkeypatch):
    folder = tmp_path / "files"
    folder.mkdir()
    shutil.copy(DOCUMENTS / "dishwasher-manual.pdf", folder)
    shutil.copy(DOCUMENTS / "lease-renewal.docx", folder)
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "docx", None)
    index = Index.create(tmp_path / "index", default_encoder)
    report = index_paths(index, [folder])
    assert report.skipped_files == 2 and report.added_files == 0
    assert any("pip install 'edgembed[docs]'" in w for w in report.warnings)
    monkeypatch.undo()
    report = index_paths(index, [folder])  # installed now: read, not "unchanged"
    assert report.added_files == 2 and report.skipped_files == 0
    index.close()
