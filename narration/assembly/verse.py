"""Verse in a seed: a paragraph whose line breaks are the author's (three or more lines
that each open with a capital, one of them well short of the text's width, or a couplet),
so the read-along book keeps its lines."""

from __future__ import annotations

import re
from collections.abc import Mapping

from narration.fingerprint import WORD
from narration.model import CastChapter

#: A line of a hard-wrapped text that stops this far short of the file's width is a line
#: the author ended (a couplet's), not one the wrapping ended.
_VERSE_SHORT = 0.75
#: Wrapped prose fills its lines to within a word of the width: a line this short is not.
_WRAPPED = 0.85
#: Files whose line breaks are the source's formatting, not the text's (their <br> is lost
#: in the text they are read from).
_MARKUP = (".xhtml", ".html", ".htm", ".xml")


#: A line that opens with a capital (after any quote marks or brackets), as verse lines do:
#: a line of prose wrapped short mostly opens with a word that runs on.
_CAPITAL = re.compile(r"[\W_]*[^\W\d_a-z]")


#: A line ending on punctuation: a couplet's first line does; prose wrapped short mostly
#: breaks between words.
_CLOSED = re.compile(r"[,;:.!?\u2014\u2019\u201d'\")]$")


def _width(text: str) -> int:
    """The width a plain text is wrapped at: the longest of most of its lines."""
    lengths = sorted(len(line.rstrip()) for line in text.splitlines() if line.strip())
    return lengths[int(len(lengths) * 0.95)] if lengths else 0


def verse_breaks(
    cast: CastChapter, texts: Mapping[str, str], widths: dict[str, int]
) -> dict[str, tuple[int, ...]]:
    """The segments of a chapter that are set in lines of their own (verse, an address, a
    letter's close), by segment id: after which of their words each line ends. Found in
    plain and Markdown seeds: a paragraph of three lines or more that each open with a
    capital (wrapped prose goes on mid-sentence), one of them well short of the text's width
    (wrapped prose fills each), or a couplet whose first line stops short of it on a
    punctuation mark. A paragraph whose words do not match its
    lines one for one keeps no breaks."""
    out: dict[str, tuple[int, ...]] = {}
    for part in cast.parts:
        segment = part.segment
        span = segment.span if segment is not None else None
        if segment is None or span is None or segment.kind == "heading":
            continue
        if segment.id in out or span.file.lower().endswith(_MARKUP):
            continue
        text = texts.get(span.file)
        if text is None:
            continue
        lines = [ln.strip().lstrip(">").strip() for ln in text[span.start : span.end].splitlines()]
        lines = [ln for ln in lines if ln]
        if len(lines) < 2 or not all(_CAPITAL.match(ln) for ln in lines[1:]):
            continue  # one line, or prose wrapped (its lines go on mid-sentence)
        if span.file not in widths:
            widths[span.file] = _width(text)
        width = widths[span.file]
        if len(lines) == 2:  # "... said\nScrooge." is prose wrapped narrow; a couplet is not
            if not (len(lines[0]) <= _VERSE_SHORT * width and _CLOSED.search(lines[0])):
                continue
        elif min(len(ln) for ln in lines[:-1]) > _WRAPPED * width:
            continue  # every line full: prose whose lines happen to open with names
        counts = [len(WORD.findall(ln)) for ln in lines]
        if sum(counts) != len(WORD.findall(segment.text)):
            continue
        ends, total = [], 0
        for n in counts[:-1]:
            total += n
            ends.append(total)
        out[segment.id] = tuple(ends)
    return out
