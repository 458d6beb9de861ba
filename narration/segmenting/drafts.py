"""The segments' texts each chapter's items give, before they get ids and spans: a
heading, a paragraph (or a document it quotes), a list item, a quote with its source;
attribution lines applied to the excerpts under them."""

from __future__ import annotations

from dataclasses import dataclass, field

from narration.model import (
    Removed,
    SegmentKind,
    Source,
)
from narration.segmenting.blocks import (
    ATTRIBUTION,
    MD_HEADING,
    SETEXT,
    SOURCE_LINE,
    Item,
    Raw,
    Segmenting,
    is_source_line,
    item_lines,
)
from narration.segmenting.headings import (
    display,
)
from narration.segmenting.inline import (
    spoken_text,
)
from narration.segmenting.sources import document_source, document_split, parse_source
from narration.segmenting.spoken import lines_raw, spoken, strip_bullet, strip_quote_marker


@dataclass
class Draft:
    kind: SegmentKind
    text: str
    line: int
    source: Source | None = None


@dataclass
class ChapterDraft:
    title: str
    heading: list[tuple[int, str]]  # the lines the title was read from; [] for a file name
    items: list[Item]
    author: str | None = None
    drafts: list[Draft] = field(default_factory=list)
    title_removed: list[Removed] = field(default_factory=list)
    found_by: str = "numbered-heading"
    part: tuple[str, int] | None = None  # the part's title and line, its title's prefix


def _item_drafts(
    item: Item, f: Segmenting, chapter_title: str, source: Source | None
) -> list[Draft]:
    """The segments one item gives: a paragraph, a list item, a quote, a heading."""
    lines = item.block.lines
    if item.kind in ("short", "heading"):
        text = spoken(Raw.of(lines), f) if item.kind == "short" else ""
        if item.kind == "heading":
            m = MD_HEADING.match(lines[0][1])
            raw_title = m.group("text") if m and len(lines) == 1 else lines[0][1]
            text = spoken(Raw.of([(lines[0][0], raw_title)]), f)
            for no, t in lines[1:]:
                if not SETEXT.match(t):
                    text = f"{text} {spoken(Raw.of([(no, t)]), f)}"
        shown = display(text)
        return [Draft("heading", shown, item.line)] if shown else []
    if item.kind == "list":
        text = spoken(lines_raw(lines, strip_bullet), f)
        kind: SegmentKind = "quote" if source else "list_item"
        return [Draft(kind, text, item.line, source)] if text else []
    if item.kind == "quote":
        body = list(lines)
        src: Source | None = None
        for extra in item.extra:
            body.extend(extra.lines)
        stripped = [(no, strip_quote_marker(t)) for no, t in body]
        while stripped and not stripped[-1][1].strip():
            stripped.pop()
        has_text = any(t.strip() for _, t in stripped[:-1])
        source_line = None
        if has_text and is_source_line(stripped[-1][1]):
            source_line = stripped.pop()
            sm = SOURCE_LINE.match(source_line[1])
            assert sm is not None
            src = parse_source(spoken_text(sm.group("rest")), source_line[0])
        text = spoken(Raw.of(stripped), f)
        if not text and source_line is not None:  # its only words were markers: listed
            f.remove(source_line[0], source_line[1], "source of a quote with nothing to read")
        return [Draft("quote", text, item.line, src)] if text else []
    # a paragraph
    raw = Raw.of(lines)
    if source is not None:
        text = spoken(raw, f)
        return [Draft("quote", text, item.line, source)] if text else []
    split = document_split(raw)
    if split is not None:
        intro_raw, body_raw, intro, _ = split
        out: list[Draft] = []
        intro_text = spoken(intro_raw, f)
        if intro_text:
            out.append(Draft("narration", intro_text, item.line))
        body_text = spoken(body_raw, f)
        if body_text:
            out.append(
                Draft("quote", body_text, body_raw.nos[0], document_source(intro, chapter_title))
            )
        return out
    text = spoken(raw, f)
    return [Draft("narration", text, item.line)] if text else []


def chapter_drafts(ch: ChapterDraft, f: Segmenting) -> None:
    """Turn a chapter's items into segment drafts, applying attribution lines to the
    excerpts that follow them (until a heading, a separator or the next attribution)."""
    source: Source | None = None
    pending: Item | None = None  # the attribution line in force, until an excerpt uses it

    def drop_source() -> None:
        nonlocal source, pending
        if pending is not None:
            f.remove_lines(pending.block.lines, "attribution line with no excerpt after it")
        source, pending = None, None

    for item in ch.items:
        if item.kind == "removed":
            f.remove_lines(item_lines(item), item.reason)
            if item.reason == "separator":
                drop_source()
            continue
        if item.kind == "attribution":
            drop_source()
            m = ATTRIBUTION.match(item.block.single or "")
            assert m is not None
            source = Source(
                author=spoken_text(m.group("author")),
                work=spoken_text(m.group("work")),
                year=m.group("year"),
                line=item.line,
            )
            pending = item
            continue
        if item.kind in ("short", "heading", "chapter", "quote"):
            drop_source()
        drafts = _item_drafts(item, f, ch.title, source)
        if pending is not None and any(d.source is source for d in drafts):
            m = ATTRIBUTION.match(pending.block.single or "")
            assert m is not None
            f.remove(
                pending.line, f"({m.group('n')})", "note number of a source's attribution line"
            )
            pending = None
        ch.drafts.extend(drafts)
    drop_source()
