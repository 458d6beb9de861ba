"""A file's lines as blocks: runs of non-blank lines (a paragraph, a heading, a list item,
a quote), with the line number of every character kept, page numbers a scan left between
them removed; and the items the classifier makes of them. `Segmenting` holds what one file
being segmented has removed so far, with the reasons."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from narration.model import (
    Notice,
    Removed,
    Source,
)
from narration.segmenting.headings import (
    PAGE_NUMBER,
    Heading,
)


@dataclass
class Raw:
    """A piece of the seed file's text with the line number of every character."""

    text: str
    starts: list[int]  # offsets where a line begins
    nos: list[int]  # its 1-based line number

    @classmethod
    def of(cls, lines: list[tuple[int, str]]) -> Raw:
        starts, nos, pos = [], [], 0
        for no, t in lines:
            starts.append(pos)
            nos.append(no)
            pos += len(t) + 1
        return cls("\n".join(t for _, t in lines), starts, nos)

    def line(self, offset: int) -> int:
        if not self.nos:
            return 0
        return self.nos[max(0, bisect.bisect_right(self.starts, offset) - 1)]

    def slice(self, a: int, b: int) -> Raw:
        i = max(0, bisect.bisect_right(self.starts, a) - 1)
        starts = [0] + [s - a for s in self.starts[i + 1 :] if s < b]
        return Raw(self.text[a:b], starts, self.nos[i : i + len(starts)])


@dataclass
class Block:
    """A run of non-blank lines (a paragraph, a heading, a list item)."""

    lines: list[tuple[int, str]]
    gap: int = 1  # blank lines before it: books set chapter headings off with several

    @property
    def line(self) -> int:
        return self.lines[0][0]

    @property
    def text(self) -> str:
        return "\n".join(t for _, t in self.lines)

    @property
    def single(self) -> str | None:
        return self.lines[0][1].strip() if len(self.lines) == 1 else None


# --------------------------------------------------------------------------------------------
# Recognisers

SEPARATOR = re.compile(r"^\s*(?:[*\-=_~#•·+]\s*){3,}$")

ATTRIBUTION = re.compile(
    r"^\s*\((?P<n>\d{1,3})\)\s+(?P<author>[^\W\d_][^,()]{1,80}?),\s+(?P<work>[^()]{2,200}?)"
    r"\s*\((?P<year>\d{4})\)\s*\.?\s*$"
)
MD_HEADING = re.compile(r"^\s{0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
SETEXT = re.compile(r"^\s{0,3}(?:=+|-+)\s*$")
LIST_ITEM = re.compile(r"^\s*(?:(?P<num>\d{1,3}[.)])|(?P<bullet>[-*+•]))\s+\S")
QUOTE_LINE = re.compile(r"^\s{0,3}>")
SOURCE_LINE = re.compile(r"^\s*(?:--|—|–|―)\s*(?P<rest>\S.*)$")
#: A quote's source is a name or a title, a few words: a longer `— ...` line is text.
SOURCE_WORDS = 12
FENCE = re.compile(r"^\s{0,3}(?:```|~~~)")


@dataclass
class Item:
    kind: str  # removed, chapter, short, para, list, quote, heading, attribution, contents
    block: Block
    reason: str = ""
    title: str = ""
    title_line: int = 0
    source: Source | None = None
    extra: list[Block] = field(default_factory=list)  # a chapter's consumed title line
    # what reading a chapter's title removed (inline markup): listed only if the chapter is
    # kept, for a heading removed whole is listed whole
    title_removed: list[Removed] = field(default_factory=list)
    heading: Heading | None = None  # a chapter heading as recognised, before the book confirms it
    found_by: str = "numbered-heading"  # a chapter's: see model.FOUND_BY

    @property
    def line(self) -> int:
        return self.block.line


def item_lines(item: Item) -> list[tuple[int, str]]:
    """All the lines an item stands for, with a chapter heading's consumed title line."""
    lines = list(item.block.lines)
    for extra in item.extra:
        lines.extend(extra.lines)
    return lines


class Segmenting:
    """One seed file being segmented: its name, the removed pieces, whether it is Markdown."""

    def __init__(self, name: str, markdown: bool | None = None) -> None:
        self.name = name
        self.markdown = name.lower().endswith(".md") if markdown is None else markdown
        self.removed: list[Removed] = []
        self.author_lines: dict[str, int] = {}  # an author read from the text: its line
        self.notices: list[Notice] = []  # what the user should hear of how the file was read

    def remove(self, line: int, text: str, reason: str) -> None:
        text = text.strip("\n")
        if text:
            self.removed.append(Removed(file=self.name, line=line, text=text, reason=reason))

    def remove_lines(self, lines: list[tuple[int, str]], reason: str) -> None:
        while lines and not lines[0][1].strip():
            lines = lines[1:]
        if lines:
            self.remove(lines[0][0], "\n".join(t for _, t in lines).rstrip(), reason)


def split_blocks(lines: list[tuple[int, str]]) -> list[Block]:
    """Paragraph blocks, with list items, attribution lines, Markdown headings and quote
    runs split out even when no blank line separates them."""
    blocks: list[Block] = []
    cur: list[tuple[int, str]] = []
    fence = False
    last = 0  # the line number of the last non-blank line
    gap = 0
    for no, t in lines:
        if FENCE.match(t):
            fence = not fence
            if not cur:
                gap = no - last - 1
            cur.append((no, t))
            last = no
            if not fence:
                blocks.append(Block(cur, gap))
                cur = []
            continue
        if fence:
            cur.append((no, t))
            last = no
            continue
        if not t.strip():
            if cur:
                blocks.append(Block(cur, gap))
                cur = []
            continue
        if not cur:
            gap = no - last - 1
        cur.append((no, t))
        last = no
    if cur:
        blocks.append(Block(cur, gap))
    out: list[Block] = []
    for b in blocks:
        if FENCE.match(b.lines[0][1]):
            out.append(b)
            continue
        out.extend(_split_block(b))
    return out


def _split_block(b: Block) -> list[Block]:
    listy = LIST_ITEM.match(b.lines[0][1]) is not None
    pieces: list[list[tuple[int, str]]] = [[]]
    prev_quote = None
    for no, t in b.lines:
        is_quote = QUOTE_LINE.match(t) is not None
        alone = (
            ATTRIBUTION.match(t)
            or MD_HEADING.match(t)
            or (SEPARATOR.match(t) and not (SETEXT.match(t) and len(pieces[-1]) == 1))
            or (prev_quote and not is_quote and SOURCE_LINE.match(t))  # `-- Author` below
        )
        starts = (
            alone
            or (listy and LIST_ITEM.match(t))
            or (prev_quote is not None and is_quote and not prev_quote)
        )
        if starts and pieces[-1]:
            pieces.append([])
        pieces[-1].append((no, t))
        if alone:
            pieces.append([])
        prev_quote = is_quote
    return [Block(p, b.gap if k == 0 else 0) for k, p in enumerate(pieces) if p]


_SENTENCE_OPEN = re.compile(r"[.!?:;…\"”’')\]_*—-]$")


def _mid_sentence(blocks: list[Block], k: int) -> bool:
    """Block k falls inside a sentence: the block before ends without a stop and the block
    after goes on in lower case ("the calls" / "3)" / "of business")."""
    if k == 0 or k + 1 >= len(blocks):
        return False
    before = blocks[k - 1].lines[-1][1].rstrip()
    after = blocks[k + 1].lines[0][1].lstrip()
    return bool(before) and not _SENTENCE_OPEN.search(before) and after[:1].islower()


def drop_page_numbers(blocks: list[Block], f: Segmenting) -> list[Block]:
    """Page numbers a scanned book kept on lines of their own: a run of numbers in one style
    ("12)", "[12]", "xii") of which one at least falls in the middle of a sentence. They are
    removed, and a paragraph a page break cut in two is joined again."""
    styles: dict[str, list[int]] = {}
    for k, b in enumerate(blocks):
        if b.single and PAGE_NUMBER.match(b.single):
            style = re.sub(r"\d+", "9", re.sub(r"^[ivxlcdm]+", "r", b.single.strip().lower()))
            styles.setdefault(style, []).append(k)
    pages: set[int] = set()
    for ks in styles.values():
        if len(ks) >= 2 and any(_mid_sentence(blocks, k) for k in ks):
            pages.update(ks)
    if not pages:
        return blocks
    out: list[Block] = []
    join = False
    for k, b in enumerate(blocks):
        if k in pages:
            f.remove(b.line, b.text, "page number")
            join = join or _mid_sentence(blocks, k)
            continue
        if join and out:
            out[-1] = Block(out[-1].lines + b.lines, out[-1].gap)
        else:
            out.append(b)
        join = False
    return out


def is_source_line(line: str) -> bool:
    """A `— Name` line of a few words, not a paragraph that begins with a dash."""
    m = SOURCE_LINE.match(line)
    return m is not None and len(m.group("rest").split()) <= SOURCE_WORDS
