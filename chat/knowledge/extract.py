"""Text out of an uploaded document: PDF, DOCX, Markdown, HTML or plain text, with limits that hold
against hostile files.

The type is decided by the bytes, not by the name or the declared type alone: a PDF starts with
`%PDF-`, a DOCX is a ZIP holding `word/document.xml`, and text is what decodes as UTF-8 (or
UTF-16 with its BOM) with no NUL and few control characters, so a binary renamed `notes.txt` is
refused (`binary posing as text`). What is refused before anything is stored is an
`UnsupportedDocument` (415); what fails while reading is an `ExtractionFailed`, recorded as the
document's `failed` status with its sentence.

Libraries, and why:
- PDF: pypdf (pure Python, maintained, no native code to exploit). It caps every decompressed
  stream itself (75 MB, `pypdf.filters`, raising LimitReachedError), which stops a PDF bomb; we
  also cap the pages read (CIRKELLINE_KNOWLEDGE_MAX_PAGES) and the characters kept
  (CIRKELLINE_KNOWLEDGE_MAX_CHARS), stopping at the first page past them.
- DOCX: read here from the ZIP with the standard library and defusedxml rather than python-docx.
  python-docx hands each part to lxml whole, with no bound on what a ZIP member inflates to, so a
  zip bomb (a few kilobytes declaring or inflating to gigabytes) would be read into memory; we
  check each member's declared size and ratio first, then inflate `word/document.xml` in pieces
  and stop past DOCX_XML_MAX bytes whatever the header claimed. defusedxml refuses entity
  declarations (billion laughs) and external entities. Only the text is wanted (paragraphs `w:p`,
  runs' `w:t`, tabs, breaks), which needs no object model.
- HTML: the standard library's HTMLParser, keeping text and dropping script, style and the head.
- Markdown and plain text: kept as they are (the markup is readable text for both search and model).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser

from django.conf import settings

from chat.errors import BadRequest

PDF, DOCX, MARKDOWN, HTML, TEXT = ("application/pdf",
                                   "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                                   "text/markdown", "text/html", "text/plain")
SUPPORTED = (PDF, DOCX, MARKDOWN, HTML, TEXT)
EXTENSIONS = {".pdf": PDF, ".docx": DOCX, ".md": MARKDOWN, ".markdown": MARKDOWN, ".html": HTML, ".htm": HTML,
              ".txt": TEXT, ".text": TEXT, ".csv": TEXT, ".json": TEXT, ".rst": TEXT}
DOCX_XML_MAX = 50 * 1024 * 1024  # bytes word/document.xml may inflate to
ZIP_RATIO_MAX = 200  # a member's inflated size over its compressed size (real DOCX text: ~5-20)
ZIP_MEMBERS_MAX = 2000
CONTROL_SHARE_MAX = 0.01  # share of control characters (other than whitespace) text may hold


class UnsupportedDocument(BadRequest):
    """Not a document type Cirkelline reads (or a binary posing as one): 415 before anything is stored."""

    status = 415


class ExtractionFailed(Exception):
    """Reading the document failed or passed a limit: the document's `failed` status says why."""


@dataclass
class Extracted:
    """A document's text, in pages (one for anything but a PDF)."""

    pages: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(self.pages)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot >= 0 else ""


def detect_type(content: bytes, name: str, declared: str) -> str:
    """The MIME type the content will be read as, from its bytes (and, for text, its name or
    declared type to tell Markdown and HTML from plain text); UnsupportedDocument otherwise."""
    if content.startswith(b"%PDF-"):
        return PDF
    if content.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                if "word/document.xml" in archive.namelist():
                    return DOCX
        except zipfile.BadZipFile:
            pass
        raise UnsupportedDocument(detail=f"{name!r} is a ZIP archive but not a Word document (.docx).")
    if _decode(content) is None:
        raise UnsupportedDocument(detail=f"{name!r} is not a supported document: send PDF, DOCX, Markdown, HTML or "
                                         "plain text (UTF-8).")
    declared = (declared or "").split(";")[0].strip().lower()
    by_name = EXTENSIONS.get(_suffix(name))
    if declared in (MARKDOWN, "text/x-markdown") or by_name == MARKDOWN:
        return MARKDOWN
    if declared == HTML or by_name == HTML:
        return HTML
    return TEXT


def _decode(content: bytes) -> str | None:
    """Text if the bytes are text (UTF-8, or UTF-16 with a BOM), else None: a binary posing as text."""
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = content.decode("utf-16")
        except UnicodeDecodeError:
            return None
    else:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    if "\x00" in text:
        return None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    if text and controls / len(text) > CONTROL_SHARE_MAX:
        return None
    return text


def _limit_chars(pages: list[str]) -> None:
    if sum(len(p) for p in pages) > settings.CIRKELLINE_KNOWLEDGE_MAX_CHARS:
        raise ExtractionFailed(f"The document has more than {settings.CIRKELLINE_KNOWLEDGE_MAX_CHARS} characters of "
                               "text, the most Cirkelline keeps of one document: split it into smaller files.")


def _pdf(content: bytes) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise ExtractionFailed("The PDF is encrypted: upload it without a password.")
        if len(reader.pages) > settings.CIRKELLINE_KNOWLEDGE_MAX_PAGES:
            raise ExtractionFailed(f"The PDF has {len(reader.pages)} pages; the most Cirkelline reads is "
                                   f"{settings.CIRKELLINE_KNOWLEDGE_MAX_PAGES}.")
        pages: list[str] = []
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            _limit_chars(pages)
    except LimitReachedError:
        raise ExtractionFailed("The PDF decompresses to more data than Cirkelline reads (a compression bomb?).") \
            from None
    except ExtractionFailed:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise ExtractionFailed(f"The PDF could not be read ({type(exc).__name__}).") from None
    return Extracted(pages)


def _docx_xml(archive: zipfile.ZipFile) -> bytes:
    infos = archive.infolist()
    if len(infos) > ZIP_MEMBERS_MAX:
        raise ExtractionFailed("The Word document has too many parts.")
    info = archive.getinfo("word/document.xml")
    if info.file_size > DOCX_XML_MAX or info.file_size > max(info.compress_size, 1) * ZIP_RATIO_MAX:
        raise ExtractionFailed("The Word document inflates to more than Cirkelline reads (a zip bomb?).")
    out = bytearray()
    with archive.open(info) as member:  # the header may lie: count what actually comes out
        while chunk := member.read(1 << 16):
            out += chunk
            if len(out) > DOCX_XML_MAX or len(out) > max(info.compress_size, 1) * ZIP_RATIO_MAX:
                raise ExtractionFailed("The Word document inflates to more than Cirkelline reads (a zip bomb?).")
    return bytes(out)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx(content: bytes) -> Extracted:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            xml = _docx_xml(archive)
        root = fromstring(xml, forbid_dtd=True)
    except (zipfile.BadZipFile, KeyError, RuntimeError, NotImplementedError, EOFError, OSError):
        raise ExtractionFailed("The Word document could not be read.") from None
    except (DefusedXmlException, ParseError):
        raise ExtractionFailed("The Word document's XML is malformed or declares entities.") from None
    paragraphs: list[str] = []
    size = 0
    for para in root.iter(f"{_W}p"):
        parts = []
        for node in para.iter():
            if node.tag == f"{_W}t" and node.text:
                parts.append(node.text)
            elif node.tag == f"{_W}tab":
                parts.append("\t")
            elif node.tag in (f"{_W}br", f"{_W}cr"):
                parts.append("\n")
        paragraphs.append("".join(parts))
        size += len(paragraphs[-1]) + 1
        if size > settings.CIRKELLINE_KNOWLEDGE_MAX_CHARS:
            _limit_chars(paragraphs)
    return Extracted(["\n".join(paragraphs)])


class _HTMLText(HTMLParser):
    SKIP = frozenset({"script", "style", "head", "template", "noscript", "svg"})
    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
                        "table", "ul", "ol", "pre", "blockquote", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _html(text: str) -> Extracted:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return Extracted(["\n".join(line for line in lines if line)])


def extract(content: bytes, file_type: str) -> Extracted:
    """The text of `content`, read as `file_type` (from detect_type); ExtractionFailed if it cannot
    be read or passes a limit. CPU-bound and sync: run it off the event loop."""
    if file_type == PDF:
        result = _pdf(content)
    elif file_type == DOCX:
        result = _docx(content)
    else:
        text = _decode(content)
        if text is None:
            raise ExtractionFailed("The file is not text.")
        result = _html(text) if file_type == HTML else Extracted([text])
    result.pages = [p.replace("\x00", "") for p in result.pages]
    _limit_chars(result.pages)
    if not result.text.strip():
        raise ExtractionFailed("No text was found in the document (a scanned PDF needs text recognition first).")
    return result
