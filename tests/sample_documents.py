"""Write the sample documents in models/samples/documents/: a PDF, an HTML page, a DOCX,
an ODT and an e-mail, each small and made here from the texts below (nothing downloaded).

    python tests/sample_documents.py            # (re)writes the samples

The PDF is written by hand (a text layer in the standard Helvetica font, one content
stream per page), so it needs no library; the DOCX and ODT need the `docs` extra
(python-docx, odfpy). `make demo` indexes these files with the others; the tests read
them, and make damaged variants with these functions. Output is deterministic:
re-running it changes no byte.
"""

from __future__ import annotations

import sys
from email.message import EmailMessage
from pathlib import Path

OUT = Path(__file__).parents[1] / "models" / "samples" / "documents"

MANUAL_TITLE = "DW-450 Dishwasher Quick Guide"
MANUAL_PAGES = [
    ["DW-450 Dishwasher Quick Guide",
     "",
     "Loading the racks",
     "Put plates in the lower rack facing the centre, and cups and glasses upside down",
     "in the upper rack. Large pans go at the sides so they do not block the spray arms.",
     "Wooden boards, cast iron and crystal glasses should be washed by hand.",
     "",
     "Choosing a programme",
     "Eco 50 uses the least water and energy and takes about three hours.",
     "Intensive 70 is for burnt-on food. Quick 35 suits lightly soiled cups."],
    ["Error codes",
     "",
     "E09: the heater is faulty. Switch the machine off and call service.",
     "E15: water has leaked into the base tray. Turn off the water tap, unplug the",
     "machine and tilt it gently to empty the tray before restarting.",
     "E24: the drain is blocked. Clean the filter and check that the drain hose is",
     "not kinked. Then run a short programme.",
     "E25: the drain pump is jammed, often by a piece of glass or a cherry stone.",
     "",
     "If a code comes back after these steps, note it and contact the service centre."],
    ["Cleaning the filter",
     "",
     "Once a month, twist the cylindrical filter anticlockwise and lift it out.",
     "Rinse it under warm running water and brush away grease with a soft brush.",
     "Refit it until it clicks; a loose filter lets food into the pump.",
     "",
     "Rinse aid and salt",
     "Refill the rinse aid when the indicator lights up. In hard water areas add",
     "dishwasher salt to the softener under the lower rack."],
]

CHECKLIST_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Camping checklist for a weekend in the hills</title>
<style>body { font-family: sans-serif; } .hidden { display: none; }</style>
<script>console.log("scripts are not indexed");</script>
</head>
<body>
<nav><a href="#shelter">Shelter</a> | <a href="#water">Water</a></nav>
<h1>Camping checklist</h1>
<p>Everything for two nights in the hills, packed into two rucksacks.</p>
<h2 id="shelter">Shelter and sleep</h2>
<ul>
<li>Tent with poles, pegs and a spare guy line</li>
<li>Sleeping bags rated to 0&nbsp;&deg;C and inflatable mats</li>
<li>A head torch each, with spare batteries</li>
</ul>
<h2 id="kitchen">Kitchen</h2>
<p>A gas stove, one pot, a lighter and matches in a dry bag. Plan one hot meal a day
and pack oats, pasta, dried fruit and chocolate.</p>
<h2 id="water">Water</h2>
<p>Stream water is not safe to drink as it is. Bring it to a rolling boil for one
minute, or use a filter followed by purification tablets, and let the tablets work for
thirty minutes before drinking. Carry two litres per person while walking.</p>
<h2 id="first-aid">First aid</h2>
<p>Plasters, blister pads, a crepe bandage, antiseptic wipes, painkillers and tick
tweezers. Check for ticks every evening.</p>
</body>
</html>
"""

LEASE = [
    ("Title", "Lease renewal notes"),
    ("Heading 1", "Rent"),
    ("Normal", "The monthly rent rises from 950 to 990 euros from the first of March. "
               "Payment stays due on the fifth day of each month, by bank transfer."),
    ("Heading 1", "Notice period"),
    ("Normal", "Either side may end the lease with three months' written notice. The "
               "landlord must give six months' notice after five years of tenancy."),
    ("Heading 1", "Pets"),
    ("Normal", "One cat is allowed. Dogs need the landlord's written consent."),
]

REHEARSAL = [
    ("h", "Choir rehearsal plan"),
    ("p", "Rehearsals are on Thursday evenings at half past seven in the parish hall."),
    ("h", "Warm-up"),
    ("p", "Ten minutes of humming, lip trills and sirens before any singing."),
    ("h", "Repertoire"),
    ("p", "The spring concert opens with Locus iste by Bruckner; the altos should learn "
          "the second page by heart before the next rehearsal."),
]


def pdf_bytes(pages: list[list[str]], title: str) -> bytes:
    """A minimal PDF 1.4: one page per list of lines, 11 pt Helvetica, with an xref."""
    def escape(line: str) -> str:
        return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(pages))]
    font_id = 3 + 2 * len(pages)
    info_id = font_id + 1
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for pid, lines in zip(page_ids, pages, strict=True):
        text = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            text.append(f"({escape(line)}) Tj T*")
        text.append("ET")
        stream = "\n".join(text).encode("latin-1")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 {font_id} 0 R >> >> "
                       f"/Contents {pid + 1} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                   b"/Encoding /WinAnsiEncoding >>")
    objects.append(f"<< /Title ({escape(title)}) /Producer (edgembed samples) >>".encode())
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {info_id} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


def eml_bytes() -> bytes:
    message = EmailMessage()
    message["From"] = "Spoke & Chain Bike Repairs <workshop@spokeandchain.example>"
    message["To"] = "alex@example.org"
    message["Subject"] = "Your repair order #4471 is ready"
    message["Date"] = "Tue, 14 Oct 2025 16:05:00 +0200"
    message["Message-ID"] = "<4471@spokeandchain.example>"
    message.set_content(
        "Hello Alex,\n\nyour bike is ready to collect. We replaced the bent rear derailleur "
        "hanger, trued the back wheel and fitted new brake pads. The chain is worn to 0.5% "
        "and should be replaced within the next 500 km.\n\nTotal: 68 euros, payable on "
        "collection. We are open until 6 pm.\n\nSpoke & Chain\n")
    return bytes(message)


def docx_bytes() -> bytes:
    import io

    import docx

    document = docx.Document()
    document.core_properties.title = "Lease renewal notes"
    document.core_properties.created = document.core_properties.modified = \
        __import__("datetime").datetime(2025, 1, 1)
    for style, text in LEASE:
        document.add_paragraph(text, style=style)
    buffer = io.BytesIO()
    document.save(buffer)
    return _fixed_zip_times(buffer.getvalue())


def odt_bytes() -> bytes:
    import io

    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    for kind, text in REHEARSAL:
        document.text.addElement(H(outlinelevel=1, text=text) if kind == "h" else P(text=text))
    buffer = io.BytesIO()
    document.write(buffer)
    return _fixed_zip_times(buffer.getvalue())


def _fixed_zip_times(data: bytes) -> bytes:
    """The same zip with every entry dated 2025-01-01 and no volatile metadata, so the
    output does not change between runs."""
    import io
    import re
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "meta.xml":  # odfpy stamps the creation time
                content = re.sub(rb"<meta:creation-date>[^<]*</meta:creation-date>",
                                 b"", content)
            info = zipfile.ZipInfo(item.filename, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = item.compress_type
            target.writestr(info, content)
    return buffer.getvalue()


def main() -> int:
    OUT.mkdir(exist_ok=True)
    files = {
        "dishwasher-manual.pdf": pdf_bytes(MANUAL_PAGES, MANUAL_TITLE),
        "camping-checklist.html": CHECKLIST_HTML.encode("utf-8"),
        "bike-repair-receipt.eml": eml_bytes(),
        "lease-renewal.docx": docx_bytes(),
        "choir-rehearsal.odt": odt_bytes(),
    }
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"wrote {OUT / name} ({len(data):,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
