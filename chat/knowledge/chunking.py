"""A document's text cut into chunks: what the search ranks, a model reads and an answer cites.

A chunk is at most CHUNK_CHARS characters (about 200-300 words: small enough that five of them fit
a prompt, large enough to hold a paragraph's context), cut at a paragraph, line or sentence end
where one is near, else at a space, and overlapping the previous one by about OVERLAP_CHARS so a
sentence cut in two is whole in one of them. A PDF's chunks never span pages, so each can be
cited with its page.
"""

from __future__ import annotations

from dataclasses import dataclass

CHUNK_CHARS = 1200
OVERLAP_CHARS = 150
_BREAKS = ("\n\n", "\n", ". ", "? ", "! ", "; ", " ")


@dataclass(frozen=True)
class Chunk:
    position: int
    text: str
    page: int | None


def _cut(text: str, start: int) -> int:
    """Where the chunk starting at `start` ends: the last good break in its second half."""
    end = start + CHUNK_CHARS
    if end >= len(text):
        return len(text)
    floor = start + CHUNK_CHARS // 2
    for mark in _BREAKS:
        at = text.rfind(mark, floor, end)
        if at != -1:
            return at + len(mark)
    return end


def split_text(text: str) -> list[str]:
    """`text` in overlapping chunks, stripped, none empty."""
    text = text.strip()
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = _cut(text, start)
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        if end >= len(text):
            break
        # The next chunk starts OVERLAP_CHARS back, at a word's start, and always moves forward.
        back = text.find(" ", max(end - OVERLAP_CHARS, start + 1), end)
        start = back + 1 if back != -1 else end
    return pieces


def chunk_pages(pages: list[str], *, paged: bool) -> list[Chunk]:
    """The chunks of a document's pages, in order (`paged`: remember each chunk's page, 1-based)."""
    chunks: list[Chunk] = []
    for number, page in enumerate(pages, start=1):
        for piece in split_text(page):
            chunks.append(Chunk(position=len(chunks), text=piece, page=number if paged else None))
    return chunks
