"""What each block of a file is: a chapter heading, a section heading, a paragraph, a
quote, a list item, or something removed (a separator, a note, a footnote, a contents
list). The kinds of block are the rows of RULES, tried in order; a new kind of block is a
new row. Which headings are the book's chapters is decided over the whole book after,
in chapters.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from narration.segmenting.blocks import (
    ATTRIBUTION,
    FENCE,
    LIST_ITEM,
    MD_HEADING,
    QUOTE_LINE,
    SEPARATOR,
    SETEXT,
    SOURCE_LINE,
    Block,
    Item,
    Raw,
    Segmenting,
    is_source_line,
)
from narration.segmenting.headings import (
    CONTENTS,
    Heading,
    all_caps,
    chapter_heading,
    display,
    title_like,
    unit_line,
)
from narration.segmenting.inline import (
    WHITESPACE,
)
from narration.segmenting.sources import BY
from narration.segmenting.spoken import spoken

_WEB = re.compile(
    r"^(?:top of (?:the )?page|back to (?:the )?top|return to (?:the )?top|go to top"
    r"|last (?:updated|modified|revised)\b.*|page last (?:updated|modified)\b.*"
    r"|print (?:this )?page|share this(?: page| article)?|share on \w+"
    r"|skip to (?:main )?content|click here\b.*|copyright\s*(?:©|\(c\))?.*\d{4}.*"
    r"|©.*\d{4}.*|all rights reserved|privacy policy|terms of (?:use|service)"
    r"|cookie (?:policy|settings)|subscribe to (?:our|the) newsletter|follow us on \w+"
    r"|(?:«|<<)?\s*previous\s*[|·•]\s*next\s*(?:»|>>)?|site ?map|main page"
    r"|(?:home|index)(?:\s*[|»>·•/]\s*[\w '’-]+)+)\W*$",
    re.I,
)
_TRANSCRIBER = re.compile(
    r"^\[?\s*(?:(?:original\s+)?transcriber['’]?s?\s+notes?\b|transcribed\s+(?:from|by)\b|produced\s+by\b"
    r"|e-?text\s+(?:prepared|produced)\s+by\b|this\s+e-?(?:text|book)\s+was\s+"
    r"(?:prepared|produced|created)\b|scanned\s+(?:and\s+proofed\s+)?by\b"
    r"|html\s+version\s+by\b|proofread\s+by\b)",
    re.I,
)
#: A bracketed note of the edition's, not the book's ("[Editor's Note: ... ebook #43 ...]").
_EDITION_NOTE = re.compile(r"^\[\s*(?:editor|publisher)['’]?s?\s+notes?\b", re.I)
_ILLUSTRATION_BLOCK = re.compile(r"^\s*\[\s*Illustration\b", re.I)
_FOOTNOTE_BLOCK = re.compile(r"^\s*(?:\{\d{1,3}\}|\[\d{1,3}\]|\[\s*Footnote\b)", re.I)
_FOOTNOTES_HEADING = re.compile(
    r"^\s*(?:FOOT-?NOTES|Foot-?notes|END-?NOTES|End-?notes|NOTES)\s*:?\s*$"
)


def _bracketed(blocks: list[Block], i: int) -> int:
    """Index of the block that closes a bracket opened at block i (for multi-block notes)."""
    depth = 0
    for j in range(i, min(len(blocks), i + 40)):
        text = blocks[j].text
        depth += text.count("[") - text.count("]")
        if depth <= 0:
            return j
    return i


@dataclass(frozen=True)
class At:
    """The block a rule looks at, with what the rules ask of it: its neighbours, the file,
    the items classified so far, and whether it is under a footnotes heading."""

    blocks: list[Block]
    i: int
    f: Segmenting
    items: list[Item]
    footnotes: bool

    @property
    def b(self) -> Block:
        return self.blocks[self.i]

    @property
    def first(self) -> str:
        return self.b.lines[0][1].strip()

    @property
    def single(self) -> str | None:
        return self.b.single

    @cached_property
    def heading(self) -> Heading | None:
        """The chapter heading the block's one line reads as."""
        return _heading_of(self.single, self.b, self.f) if self.single else None

    @property
    def next_single(self) -> str | None:
        return self.blocks[self.i + 1].single if self.i + 1 < len(self.blocks) else None


@dataclass(frozen=True)
class Taken:
    """What a rule gives: the items, for this block and the `blocks - 1` after it."""

    items: tuple[Item, ...]
    blocks: int = 1


@dataclass(frozen=True)
class Rule:
    """A kind of block: where `applies` to a block, `gives` its items. `footnotes` says
    whether the block opens a footnotes section (True), closes one (False), or neither."""

    name: str
    applies: Callable[[At], bool]
    gives: Callable[[At], Taken]
    footnotes: bool | None = None


def _one(kind: str, reason: str = "") -> Callable[[At], Taken]:
    """A rule's gift of one item of a kind for the block."""
    return lambda at: Taken((Item(kind, at.b, reason=reason),))


def _run(reason: str, last: Callable[[At], int]) -> Callable[[At], Taken]:
    """A rule's gift of removed items for the block and the blocks up to `last`."""

    def gives(at: At) -> Taken:
        j = last(at)
        return Taken(
            tuple(Item("removed", at.blocks[k], reason=reason) for k in range(at.i, j + 1)),
            j - at.i + 1,
        )

    return gives


def _titled(heading: Heading, title_line: str) -> str:
    """A chapter's title from its heading and the title line under it."""
    sep = ". " if heading.rule == "numeral" else ": "
    return f"{heading.title}{sep}{display(title_line.strip().rstrip('.'))}"


def _numeral_with_title(at: At) -> Heading | None:
    """A heading and its title as one block of two lines ("IV." / "THE FLIGHT")."""
    if at.heading is not None or len(at.b.lines) != 2:
        return None
    two = _heading_of(at.b.lines[0][1], at.b, at.f)
    title = at.b.lines[1][1]
    if two and two.wants_title and title_like(title) and _may_title(title):
        return two
    return None


def _heading_and_title(at: At) -> Taken:
    two = _numeral_with_title(at)
    assert two is not None
    return Taken((Item("chapter", at.b, title=_titled(two, at.b.lines[1][1]), heading=two),))


def _in_footnotes(at: At) -> bool:
    """A block under a footnotes heading, until the next heading."""
    markdown_heading = at.f.markdown and MD_HEADING.match(at.first) is not None
    return at.footnotes and at.heading is None and not markdown_heading


def _underlined(at: At) -> bool:
    """A heading underlined with `===` (a chapter) or `---` (a section)."""
    lines = at.b.lines
    return (
        len(lines) == 2
        and SETEXT.match(lines[1][1]) is not None
        and len(lines[1][1].strip()) >= 3
        and (at.f.markdown or title_like(at.first))
    )


def _underlined_heading(at: At) -> Taken:
    kind = "chapter" if at.b.lines[1][1].strip().startswith("=") else "heading"
    return Taken((Item(kind, at.b, title=display(at.b.lines[0][1])),))


def _comment_end(at: At) -> int:
    j = at.i
    while j + 1 < len(at.blocks) and "-->" not in at.blocks[j].text:
        j += 1
    return j


def _bracketed_note(at: At) -> bool:
    first = at.first
    return _ILLUSTRATION_BLOCK.match(first) is not None or (
        first.startswith("[")
        and (_TRANSCRIBER.match(first) is not None or _EDITION_NOTE.match(first) is not None)
    )


def _bracketed_note_items(at: At) -> Taken:
    illustration = _ILLUSTRATION_BLOCK.match(at.first) is not None
    reason = "illustration marker" if illustration else "transcriber's note"
    return _run(reason, lambda at: _bracketed(at.blocks, at.i))(at)


def _transcriber_notes(at: At) -> Taken:
    """A transcriber's note; under "Transcriber's Notes:", the notes that follow it too."""
    out = [Item("removed", at.b, reason="transcriber's note")]
    if at.single and at.single.endswith(":"):
        blocks, j = at.blocks, at.i
        while (
            j + 1 < len(blocks)
            and blocks[j + 1].gap < 6
            and not title_like(blocks[j + 1].text)
            and not _heading_of(blocks[j + 1].lines[0][1], blocks[j + 1], at.f)
            and len(at.items) + len(out) < 10_000
        ):
            j += 1
            out.append(Item("removed", blocks[j], reason="transcriber's note"))
    return Taken(tuple(out), len(out))


def _web(at: At) -> bool:
    b = at.b
    return (
        len(b.lines) <= 2
        and len(b.text) <= 150
        and _WEB.match(WHITESPACE.sub(" ", b.text).strip()) is not None
    )


def _footnote_end(at: At) -> int:
    return _bracketed(at.blocks, at.i) if at.first.startswith("[") else at.i


def _chapter(at: At) -> Taken:
    """A chapter heading, with the title line under it if it wants one."""
    heading = at.heading
    assert heading is not None
    nxt = at.next_single
    if (
        heading.wants_title
        and nxt
        and title_like(nxt)
        and _may_title(nxt)
        and not _WEB.match(nxt)
        and not BY.match(nxt)
    ):
        title = _titled(heading, nxt)
        return Taken(
            (Item("chapter", at.b, title=title, heading=heading, extra=[at.blocks[at.i + 1]]),), 2
        )
    return Taken((Item("chapter", at.b, title=heading.title, heading=heading),))


def _markdown_heading(at: At) -> bool:
    return at.f.markdown and MD_HEADING.match(at.first) is not None and len(at.b.lines) == 1


def _markdown_heading_item(at: At) -> Taken:
    """`#` a chapter, `##` and more a section: its title as spoken, the markup it drops
    listed with its segment; a heading with nothing to say is removed."""
    m = MD_HEADING.match(at.first)
    assert m is not None
    kind = "chapter" if len(m.group("hashes")) == 1 else "heading"
    f = at.f
    before = len(f.removed)
    title = display(spoken(Raw.of([(at.b.line, m.group("text"))]), f))
    pieces = f.removed[before:]
    del f.removed[before:]  # a section heading's are listed with its segment
    if title:
        return Taken((Item(kind, at.b, title=title, title_removed=pieces),))
    return Taken((Item("removed", at.b, reason="empty heading"),))  # "#" alone, or only markup


def _source_below_quote(at: At) -> bool:
    """The `-- Author, Work (Year)` line below a quote."""
    return bool(
        at.single and SOURCE_LINE.match(at.single) and at.items and at.items[-1].kind == "quote"
    )


#: The kinds of block, tried in order: the first rule that applies gives the block's items.
#: A new kind of block is a row here (before the rules it must win over).
RULES: tuple[Rule, ...] = (
    Rule(
        "numeral and title in one block",
        lambda at: _numeral_with_title(at) is not None,
        _heading_and_title,
        footnotes=False,
    ),
    Rule("footnote under a footnotes heading", _in_footnotes, _one("removed", "footnotes")),
    Rule("code block", lambda at: FENCE.match(at.first) is not None, _one("removed", "code block")),
    Rule(
        "separator",
        lambda at: all(SEPARATOR.match(t) for _, t in at.b.lines),
        _one("removed", "separator"),
    ),
    Rule("underlined heading", _underlined, _underlined_heading, footnotes=False),
    Rule("comment", lambda at: at.first.startswith("<!--"), _run("comment", _comment_end)),
    Rule("illustration or bracketed note", _bracketed_note, _bracketed_note_items),
    Rule(
        "transcriber's note",
        lambda at: _TRANSCRIBER.match(at.first) is not None and len(at.b.lines) <= 8,
        _transcriber_notes,
    ),
    Rule("web page boilerplate", _web, _one("removed", "web page boilerplate")),
    Rule(
        "footnotes heading",
        lambda at: bool(at.single and _FOOTNOTES_HEADING.match(at.single)),
        _one("removed", "footnotes"),
        footnotes=True,
    ),
    Rule(
        "footnote",
        lambda at: _FOOTNOTE_BLOCK.match(at.first) is not None,
        _run("footnote", _footnote_end),
    ),
    Rule(
        "contents heading",
        lambda at: bool(at.single and CONTENTS.match(at.single)),
        _one("contents"),
    ),
    Rule("chapter heading", lambda at: at.heading is not None, _chapter, footnotes=False),
    Rule("Markdown heading", _markdown_heading, _markdown_heading_item, footnotes=False),
    Rule(
        "attribution line",
        lambda at: bool(at.single and ATTRIBUTION.match(at.single)),
        _one("attribution"),
    ),
    Rule("blockquote", lambda at: QUOTE_LINE.match(at.first) is not None, _one("quote")),
    Rule("source line below a quote", _source_below_quote, _one("quote")),
    Rule("list item", lambda at: LIST_ITEM.match(at.first) is not None, _one("list")),
    Rule(
        "table of contents",
        lambda at: len(at.b.lines) >= 2 and _toc_block(at.b),
        _one("removed", "table of contents"),
    ),
    Rule("short line", lambda at: bool(at.single and title_like(at.single)), _one("short")),
    Rule("paragraph", lambda at: True, _one("para")),
)


def classify(blocks: list[Block], f: Segmenting) -> list[Item]:
    """Each block's item, by the first rule of RULES that applies to it; a quote's source
    line folded into the quote."""
    items: list[Item] = []
    i = 0
    footnotes = False
    while i < len(blocks):
        at = At(blocks, i, f, items, footnotes)
        rule = next(r for r in RULES if r.applies(at))
        taken = rule.gives(at)
        items.extend(taken.items)
        if rule.footnotes is not None:
            footnotes = rule.footnotes
        i += taken.blocks
    _merge_quote_sources(items)
    return items


def _may_title(line: str) -> bool:
    """A line that may be the title of the chapter heading above it: not a heading of its
    own, unless a named section ("I" / "Introduction")."""
    heading = chapter_heading(line)
    return heading is None or heading.rule == "special"


def _heading_of(line: str, b: Block, f: Segmenting) -> Heading | None:
    """The chapter heading a line of this block reads as. A numeral is one only in plain text
    (Markdown numbers its lists so), and a numeral with a title on its line only when the
    title is in capitals or the line is set off by blank lines ("I. A SCANDAL IN BOHEMIA")."""
    heading = chapter_heading(line)
    if heading is None or heading.rule != "numeral":
        return heading
    if f.markdown:
        return None
    if not heading.wants_title and not (all_caps(line) or b.gap >= 2):
        return None
    return heading


def _toc_block(b: Block) -> bool:
    """A block of chapter-heading lines (or lines with page numbers): a table of contents."""
    lines = [t.strip() for _, t in b.lines]
    hits = [
        t
        for t in lines
        if chapter_heading(t) is not None
        or re.search(r"(?:\.{3,}|\s{2,}|\t)\s*(?:\d{1,4}|[ivxlc]+)$", t)
        or unit_line(t)
    ]
    # a contents list names each chapter once: "I." twice is a paragraph's wrapped lines
    names = {re.sub(r"[\W_]+$", "", t).casefold() for t in hits}
    return len(names) >= 2 and len(hits) * 2 >= len(lines)


def _merge_quote_sources(items: list[Item]) -> None:
    """Fold a `-- Author, Work (Year)` line into the blockquote above it; a longer line
    that begins with a dash is a paragraph of its own, never a source."""
    out: list[Item] = []
    for item in items:
        if (
            item.kind == "quote"
            and out
            and out[-1].kind == "quote"
            and not QUOTE_LINE.match(item.block.lines[0][1])
        ):
            if is_source_line(item.block.lines[0][1]):
                out[-1].extra.append(item.block)
                continue
            item.kind = "para"
        out.append(item)
    items[:] = out
