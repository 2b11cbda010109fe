"""Split documents into overlapping chunks of about ``size`` characters, at natural boundaries.

Each chunk ends at the best boundary inside its window, in this order of preference: a markdown
heading, a blank line (paragraph), a line break, the end of a sentence, a space; only text with
none of these is cut mid-word. The search starts halfway through the window, so a chunk is never
shorter than half the size unless the document ends. The next chunk starts up to ``overlap``
characters before the previous one ended, on a word boundary, except after a heading break: a new
section starts clean. Offsets are into the document text (``text[start:end] == chunk.text``), so
results can point back at the exact passage. The same input always gives the same chunks.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from llmops_cli.errors import ConfigError
from llmops_cli.retrieval.documents import Document

CHUNKER_VERSION = "1"  # bump when the splitting rules change: it forces a full re-index

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^(```|~~~)")
# Boundaries below headings, best first; the number is how much of the separator stays in the chunk.
_SEPARATORS: tuple[tuple[tuple[str, int], ...], ...] = (
    (("\n\n", 0),),
    (("\n", 0),),
    ((". ", 1), ("! ", 1), ("? ", 1), (".\t", 1)),
    ((" ", 0), ("\t", 0)),
)


@dataclass(frozen=True)
class ChunkSettings:
    size: int = 500
    overlap: int = 50

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"chunk size must be at least 1, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ConfigError(
                f"overlap ({self.overlap}) must be smaller than the chunk size ({self.size}).",
                hint="Set chunk.overlap below chunk.size (e.g. size: 500, overlap: 50).",
            )

    @property
    def fingerprint(self) -> str:
        return f"chunker-v{CHUNKER_VERSION}:size={self.size}:overlap={self.overlap}"


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    heading: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, as stored in the index."""

    doc_id: str
    index: int  # position in the document, from 0
    text: str
    start: int  # character offsets into the document text
    end: int
    source: str
    heading: str | None = None
    title: str | None = None
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        return f"{self.doc_id}::{self.index}"

    def embedding_text(self) -> str:
        """What gets embedded: the chunk with its title and section heading in front.

        A chunk cut from the middle of a section often never names its topic ("Hold the button
        for 10 seconds"); the heading gives the embedding that context.
        """
        first_line = self.text.split("\n", 1)[0].lstrip("#").strip()
        context = list(dict.fromkeys(p for p in (self.title, self.heading) if p and p != first_line))
        return " > ".join(context) + "\n\n" + self.text if context else self.text


def chunk_document(document: Document, settings: ChunkSettings) -> list[Chunk]:
    """``document`` split into chunks (markdown files break at headings and remember them)."""
    spans = split_text(document.text, settings, markdown=document.kind == "md")
    return [
        Chunk(
            document.id,
            i,
            document.text[s.start : s.end],
            s.start,
            s.end,
            document.source,
            s.heading,
            document.title,
            document.metadata,
        )
        for i, s in enumerate(spans)
    ]


@dataclass(frozen=True)
class Heading:
    offset: int  # where the heading line starts
    level: int
    text: str


def markdown_headings(text: str) -> list[Heading]:
    """ATX headings (``# Title``) outside fenced code blocks, in order."""
    headings, offset, in_fence = [], 0, False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            match = _HEADING.match(line)
            if match:
                headings.append(Heading(offset, len(match[1]), match[2].strip()))
        offset += len(line) + 1
    return headings


def split_text(text: str, settings: ChunkSettings, *, markdown: bool = False) -> list[Span]:
    """The chunk spans of ``text``; whitespace-only stretches belong to no chunk."""
    headings = markdown_headings(text) if markdown else []
    heading_offsets = [h.offset for h in headings]
    size, n = settings.size, len(text)
    spans: list[Span] = []
    start = _skip_space(text, 0)
    while start < n:
        at_heading = False
        if n - start <= size:
            end = n
        else:
            lowest = start + max(size // 2, settings.overlap + 1)
            end, at_heading = _break(text, lowest, start + size, heading_offsets)
            end, at_heading = _no_dangling_heading(text, start, end, at_heading, heading_offsets)
        trimmed = _trim_end(text, start, end)
        spans.append(Span(start, trimmed, _heading_at(headings, heading_offsets, start)))
        if end >= n:
            break
        following = end if at_heading or settings.overlap == 0 else _overlap_start(text, start, trimmed, settings)
        start = _skip_space(text, following)
    return spans


def _break(text: str, lowest: int, limit: int, heading_offsets: list[int]) -> tuple[int, bool]:
    """Where to end a chunk in ``(lowest, limit]``, and whether that is a heading boundary."""
    i = bisect.bisect_right(heading_offsets, limit) - 1
    if i >= 0 and heading_offsets[i] >= lowest:
        return heading_offsets[i], True
    for level in _SEPARATORS:
        best = -1
        for sep, keep in level:
            found = text.rfind(sep, lowest, limit)
            if found >= 0:
                best = max(best, found + keep)
        if best >= lowest:
            return best, False
    return limit, False


def _no_dangling_heading(
    text: str, start: int, end: int, at_heading: bool, heading_offsets: list[int]
) -> tuple[int, bool]:
    """Move a break that would leave headings as a chunk's last lines to before those headings."""
    i = bisect.bisect_left(heading_offsets, end) - 1
    while i >= 0 and heading_offsets[i] > start and "\n" not in text[heading_offsets[i] : end].strip():
        end, at_heading = heading_offsets[i], True
        i -= 1
    return end, at_heading


def _overlap_start(text: str, start: int, end: int, settings: ChunkSettings) -> int:
    """Start of the next chunk: ``overlap`` characters back, moved forward to the next word."""
    target = max(end - settings.overlap, start + 1)
    for j in range(target, end):
        if text[j].isspace():
            return j + 1
    return target


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _heading_at(headings: list[Heading], offsets: list[int], position: int) -> str | None:
    i = bisect.bisect_right(offsets, position) - 1
    return headings[i].text if i >= 0 else None
