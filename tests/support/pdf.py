"""Just enough PDF reading for the tests of generated documents (fpdf2 with core fonts): the file
is well formed at both ends, and the text its content streams show, in order. Not a PDF parser."""

from __future__ import annotations

import re
import zlib

STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
SHOWN = re.compile(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj", re.S)
ESCAPE = re.compile(rb"\\(.)", re.S)


def text(document: bytes) -> str:
    """Every string shown with `Tj`, one per line, after inflating compressed streams."""
    assert document.startswith(b"%PDF-"), document[:20]
    assert document.rstrip().endswith(b"%%EOF") and b"xref" in document
    shown: list[str] = []
    for match in STREAM.finditer(document):
        content = match.group(1)
        try:
            content = zlib.decompress(content)
        except zlib.error:
            pass  # an uncompressed stream
        for literal in SHOWN.finditer(content):
            raw = ESCAPE.sub(lambda m: m.group(1), literal.group(1))
            shown.append(raw.decode("latin-1"))
    return "\n".join(shown)
