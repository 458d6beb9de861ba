"""Where a piece of a segment stands in its seed file (a quotation, a dialogue piece): the
segment's words matched to the file's within its span (locate.py found the span), then an
index into the segment's text mapped to an offset into the file's, through the words and
the marks between them.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass

from narration.model import Segment, TextSpan
from narration.segmenting.locate import (
    Place,
    Words,
    match_words,
    references,
    same_char,
    segment_words,
)


@dataclass(frozen=True)
class Alignment:
    """A segment's words matched to the file's within its span: maps an index in the
    segment's text to an offset in the file's text (a quotation's start and end)."""

    segment_text: str
    file_text: str
    span: TextSpan
    places: tuple[tuple[int, int], ...]  # each segment word's (start, end) in its text
    found: tuple[Place, ...]  # and in the file's

    def position(self, index: int, *, end: bool = False) -> int:
        """The file offset for an index into the segment's text. A start (end=False) maps
        the character at `index`; an end (exclusive, end=True) maps the character before
        it and is one past it. Always within the span."""
        n = len(self.segment_text)
        if end:
            if index <= 0:
                return self.span.start
            return min(self._char(min(index, n) - 1, True) + 1, self.span.end)
        if index >= n:
            return self.span.end
        return max(self._char(max(index, 0), False), self.span.start)

    def range(self, start: int, end: int) -> TextSpan:
        """The span in the file of segment text[start:end]."""
        a = self.position(start)
        b = max(a, self.position(end, end=True))
        return TextSpan(self.span.file, a, b)

    def _char(self, c: int, end: bool) -> int:
        places, found = self.places, self.found
        k = bisect.bisect_right([s for s, _ in places], c) - 1  # the word at or before c
        if k >= 0 and c < places[k][1]:  # inside word k
            f = found[k]
            if f is None:
                return self._between(k, end)
            return self._in_word(f, c - places[k][0], end)
        # in the gap after word k (k == -1: before the first)
        return self._in_gap(k, c, end)

    def _in_word(self, f: tuple[int, int], off: int, end: bool) -> int:
        """The off-th letter of the file's word(s) at f (markup inside passed over)."""
        s, e = f
        seen = 0
        for p in range(s, e):
            if self.file_text[p].isalnum():
                if seen == off:
                    return p
                seen += 1
        return e - 1 if end else s

    def _bounds(self, k: int) -> tuple[int, int]:
        """The file stretch between segment word k's place and word k+1's (-1, n: the span's
        ends), looking past words with no place."""
        found = self.found
        a = next((found[t][1] for t in range(k, -1, -1) if found[t] is not None), self.span.start)  # type: ignore[index]
        b = next(
            (found[t][0] for t in range(k + 1, len(found)) if found[t] is not None),  # type: ignore[index]
            self.span.end,
        )
        return a, max(a, b)

    def _between(self, k: int, end: bool) -> int:
        """A word with no place of its own: the first (or, for an end, last) mark of the
        file's stretch where it would stand."""
        a, b = self._bounds(k - 1)
        stretch = self.file_text[a:b]
        if end:
            stripped = stretch.rstrip()
            return a + len(stripped) - 1 if stripped else max(a - 1, self.span.start)
        return a + len(stretch) - len(stretch.lstrip()) if stretch.strip() else b

    def _in_gap(self, k: int, c: int, end: bool) -> int:
        """A mark between words (a comma, a dash, a quote): the same mark in the file's gap
        between the same words, in order; else the edge of the gap on its side."""
        gap_start = self.places[k][1] if k >= 0 else 0
        a, b = self._bounds(k)
        cursor = a
        for q in range(gap_start, c + 1):
            ch = self.segment_text[q]
            if ch.isspace():
                continue
            p = cursor
            while p < b and not same_char(self.file_text[p], ch):
                p += 1
            if p >= b:
                if q == c:
                    return cursor - 1 if end else b
                continue
            if q == c:
                return p
            cursor = p + 1
        return b


def align(segment_text: str, file_text: str, span: TextSpan) -> Alignment:
    """Match a segment's words to the file's within its span, to map many indices."""
    keys, places = segment_words(segment_text)
    words = Words(file_text, span.start, span.end, references=references(span.file))
    found = match_words(words, words.at(span.start), keys) if keys else []
    return Alignment(segment_text, file_text, span, tuple(places), tuple(found))


def position(
    segment_text: str, file_text: str, span: TextSpan, index: int, *, end: bool = False
) -> int:
    """The offset in `file_text` of `index` in a segment's text, its words aligned within the
    segment's `span`: a start maps the character at `index`, an end (end=True, exclusive)
    the character before it, plus one. For a quotation `segment.text[a:b]`, the file's
    text[position(.., a):position(.., b, end=True)] reads the same words."""
    return align(segment_text, file_text, span).position(index, end=end)


class Offsets:
    """File offsets of stretches of segments' text (a quotation, a dialogue piece), as
    `narrate cast --json` reports them: a segment's words aligned with its file's once, for
    all the stretches asked of it in turn."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self.texts = texts  # Book.texts: file name -> the text offsets index into
        self._segment: Segment | None = None
        self._alignment: Alignment | None = None

    def range(self, segment: Segment, start: int, end: int) -> TextSpan | None:
        """Where segment.text[start:end] stands in its file, its surrounding spaces left out
        (a space has no place of its own); None where the segment has no place there (an
        image's description)."""
        span = segment.span
        if span is None or span.file not in self.texts:
            return None
        piece = segment.text[start:end]
        start, end = (
            start + len(piece) - len(piece.lstrip()),
            end - len(piece) + len(piece.rstrip()),
        )
        if self._segment is not segment:
            self._segment = segment
            self._alignment = align(segment.text, self.texts[span.file], span)
        assert self._alignment is not None
        at = self._alignment.range(start, end)
        text = self.texts[span.file]
        stop = at.end
        while stop < len(text) and text[stop] == "-" and text[stop - 1] == "-":
            stop += 1  # "--" read as one dash: a stretch ending with it ends after both
        return at if stop == at.end else TextSpan(at.file, at.start, stop)
