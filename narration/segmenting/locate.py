"""Where a segment's text stands in its seed file (where a piece of it does: offsets.py).

A segment's text is the text as spoken (lines joined, markup dropped, abbreviations read
as words, references decoded), so it is no slice of the file. Its place is found by its
words: the segment's words (`inline.WORD`, case-folded, accents set aside) are matched in
order against the file's, from where the last segment ended (in a text file, from the line
the segment starts on). What the file has and the text has not (a page number, an
illustration marker, a reference's name, a link's address) is skipped; what the text has
and the file has not (an image's description) is passed over; `viz.` and `namely`,
`_mis_managed` and `mismanaged` match. Nothing here raises on a mismatch: the span is the
stretch from the first word matched to the last, with the punctuation around them.

Offsets are Python string indices into the text `Book.texts` holds for the file: a text
seed's decoded text with its line endings as written (CRLF is two characters) and no
byte-order mark; an EPUB or HTML document's text nodes in document order (see TextSpan).
Only start and end are kept on segments; the words of the file are read a chunk at a time,
never held for a whole book.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import unicodedata

from narration.model import TextSpan
from narration.segmenting.inline import _DASHES as _DASH_MARKS  # `--` and ` - `, read as a dash
from narration.segmenting.inline import _ENTITY as _REFERENCE  # a Markdown character reference
from narration.segmenting.inline import MARKERS, WORD, decode_entities, restore

#: Words read from the file at a time.
_CHUNK = 1 << 16
#: Words of an EPUB or HTML document a segment's first words are looked for in, after
#: where the last segment ended (what lies between was removed: a note, a contents list).
_ANCHOR_WINDOW = 20_000
#: How far a resync looks: segment words passed over, file words skipped (an inline
#: footnote or illustration caption the segmenter removed is at most a few hundred words).
_SKIP_SEGMENT = 8
_SKIP_FILE = 1_500
#: Abbreviations the segmenter reads as words (inline.expand_abbreviations): the words as
#: spoken -> the file's words for them.
_EXPANSIONS: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = {
    "namely": ((("namely",), ("viz",)),),
    "that": ((("that", "is"), ("i", "e")),),
    "for": ((("for", "example"), ("e", "g")),),
    "et": ((("et", "cetera"), ("etc",)), (("et", "cetera"), ("c",))),
    "compare": ((("compare",), ("cf",)),),
    "note": ((("note", "well"), ("n", "b")),),
}
_MARKUP = "_*=`"
#: Where the segmenter's lines end (inline.NEWLINES, and a line feed).
_LINE_END = re.compile("\r\n|[\n\r\u2028\u2029\x85]")
_DASHES = "-–—―"


def word_key(word: str) -> str:
    """A word as words are compared: case-folded, accents set aside ("Café" is "cafe")."""
    if word.isascii():
        return word.lower()
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", word).casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


#: A letter or digit outside ASCII: a word that word_key may change ("Café").
_NON_ASCII_LETTER = re.compile(r"(?![\x00-\x7f])[^\W_]")


def _keys(text: str) -> list[str]:
    """The keys of a text's words, in order (word_key, done by the regex engine where the
    text is ASCII)."""
    low = text.lower()
    keys = WORD.findall(low) if len(low) == len(text) else [w.lower() for w in WORD.findall(text)]
    if not low.isascii() and _NON_ASCII_LETTER.search(low):
        keys = [k if k.isascii() else word_key(k) for k in keys]
    return keys


def _references(
    text: str, begin: int, end: int, keys: list[str], spans: list[tuple[int, int]]
) -> tuple[list[str], list[tuple[int, int]]]:
    """Markdown's character references as what they name: `Caf&eacute;` is "Caf" and "e",
    `&amp;` no word at all."""
    out_keys, out_spans = list(keys), list(spans)
    drop: set[int] = set()
    for ref in _REFERENCE.finditer(text, begin, end):
        k = bisect.bisect_left(spans, (ref.start(), -1))
        if k >= len(spans) or spans[k][1] != ref.end() - 1:
            continue
        named = "".join(word_key(w) for w in WORD.findall(restore(decode_entities(ref.group()))))
        if named:
            out_keys[k], out_spans[k] = named, (ref.start(), ref.end())
        else:
            drop.add(k)
    if drop:
        out_keys = [x for k, x in enumerate(out_keys) if k not in drop]
        out_spans = [x for k, x in enumerate(out_spans) if k not in drop]
    return out_keys, out_spans


def same_char(a: str, b: str) -> bool:
    return a == b or (a in _DASHES and b in _DASHES)


class Words:
    """The words of a text (or of text[lo:hi]) from some offset on, read a chunk at a time:
    each word's key and where it stands. Words are numbered in the order read; numbers stay
    valid until the next `at` that starts reading afresh."""

    def __init__(
        self, text: str, lo: int = 0, hi: int | None = None, *, references: bool = False
    ) -> None:
        self.text = text
        self.references = references  # `&eacute;` is a letter, `&amp;` no word (Markdown)
        self.lo = lo  # the words held are those starting in [lo, scanned)
        self.hi = len(text) if hi is None else hi
        self.scanned = lo
        self.chunk = 4096
        self.base = 0  # the number of keys[0]
        self.keys: list[str] = []
        self.spans: list[tuple[int, int]] = []

    def at(self, offset: int) -> int:
        """The number of the first word starting at or after `offset`."""
        if offset < self.lo or offset > self.scanned:
            self.base += len(self.keys) + 1
            self.keys, self.spans = [], []
            self.lo = self.scanned = max(0, min(offset, self.hi))
            self.chunk = 4096  # read afresh: a little first (a segment's), more as needed
            return self.base
        k = bisect.bisect_left(self.spans, (offset, -1))
        if k > 4096:  # what lies before is not looked at again: let it go
            del self.keys[:k], self.spans[:k]
            self.base += k
            self.lo = offset
            k = 0
        return self.base + k

    def has(self, j: int) -> bool:
        """Whether word j exists (reading on as far as it)."""
        while j - self.base >= len(self.keys):
            if self.scanned >= self.hi:
                return False
            self._read()
        return True

    def _read(self) -> None:
        """The next chunk's words: found and keyed by the regex engine, not word by word."""
        text, begin = self.text, self.scanned
        end = min(self.hi, begin + self.chunk)
        self.chunk = min(2 * self.chunk, _CHUNK)
        spans = [m.span() for m in WORD.finditer(text, begin, end)]
        if end < self.hi and len(spans) > 1 and spans[-1][1] == end:
            spans.pop()  # a word the chunk cut: read whole with the next chunk
            end = spans[-1][1]
        low = text[begin:end].lower()
        if len(low) == end - begin:
            keys = [low[a - begin : b - begin] for a, b in spans]
            if not low.isascii() and _NON_ASCII_LETTER.search(low):
                keys = [k if k.isascii() else word_key(k) for k in keys]
        else:  # a letter whose lower case is longer ("İ"): word by word
            keys = [word_key(text[a:b]) for a, b in spans]
        if self.references and "&" in text[begin:end]:
            keys, spans = _references(text, begin, end, keys, spans)
        self.keys.extend(keys)
        self.spans.extend(spans)
        self.scanned = end

    def key(self, j: int) -> str:
        return self.keys[j - self.base]

    def start(self, j: int) -> int:
        return self.spans[j - self.base][0]

    def end(self, j: int) -> int:
        return self.spans[j - self.base][1]

    def run(self, j: int, keys: list[str]) -> bool:
        """Whether the words from j are `keys`, word for word."""
        k = j - self.base
        return self.has(j + len(keys) - 1) and self.keys[k : k + len(keys)] == keys

    def find(self, probe: list[str], j: int, window: int) -> int | None:
        """The first word number p in [j, j + window) where the words p, p+1, ... are
        `probe`, or None."""
        if not probe:
            return None
        self.has(j + window + len(probe))
        lo, hi = j - self.base, min(len(self.keys), j - self.base + window)
        if lo < 0:
            return None
        first, rest, k = probe[0], probe[1:], len(probe)
        keys = self.keys
        while lo < hi:
            try:
                p = keys.index(first, lo, hi)
            except ValueError:
                return None
            if keys[p + 1 : p + k] == rest:
                return p + self.base
            lo = p + 1
        return None


#: A segment word's place in the file: (start, end), or None where no word of the file
#: stands for it.
Place = tuple[int, int] | None


def _group_places(
    words: Words, j: int, fj: int, seg_keys: list[str], i: int, si: int
) -> list[Place]:
    """Places of segment words i..si-1 matched as a group to file words j..fj-1 (their keys
    joined are the same letters, or the same abbreviation): by letters where they agree."""
    file_keys = [words.key(t) for t in range(j, fj)]
    if "".join(seg_keys[i:si]) != "".join(file_keys):  # an abbreviation: the whole stretch
        return [(words.start(j), words.end(fj - 1))] * (si - i)
    cum = [0]
    for k in file_keys:
        cum.append(cum[-1] + len(k))

    def at(p: int, end: bool) -> int:
        t = bisect.bisect_right(cum, p - 1 if end else p) - 1
        t = min(max(t, 0), len(file_keys) - 1)
        s, e = words.start(j + t), words.end(j + t)
        return min(s + (p - cum[t]), e)

    out: list[Place] = []
    p = 0
    for k in seg_keys[i:si]:
        out.append((at(p, False), at(p + len(k), True)))
        p += len(k)
    return out


def _group(words: Words, j: int, seg_keys: list[str], i: int) -> tuple[int, int] | None:
    """(si, fj) where segment words i..si-1 and file words j..fj-1 are the same letters
    ("mismanaged" / "mis" "managed"), or an abbreviation and the words read for it."""
    for spoken, written in _EXPANSIONS.get(seg_keys[i], ()):
        n, m = len(spoken), len(written)
        if (
            tuple(seg_keys[i : i + n]) == spoken
            and words.has(j + m - 1)
            and tuple(words.key(j + t) for t in range(m)) == written
        ):
            return i + n, j + m
    a, b = seg_keys[i], words.key(j)
    si, fj = i + 1, j + 1
    for _ in range(8):
        if a == b:
            return si, fj
        if len(a) < len(b):
            if si >= len(seg_keys) or not b.startswith(a):
                return None
            a += seg_keys[si]
            si += 1
        else:
            if not a.startswith(b) or not words.has(fj):
                return None
            b += words.key(fj)
            fj += 1
    return None


def _expansion_at(seg_keys: list[str], t: int) -> bool:
    """Whether the segment's words from t are an abbreviation read as words ("et cetera")."""
    return any(
        tuple(seg_keys[t : t + len(spoken)]) == spoken
        for spoken, _ in _EXPANSIONS.get(seg_keys[t], ())
    )


def _probe(seg_keys: list[str], i: int, k: int) -> list[str]:
    """Up to k segment words from i to look for in the file, as the file writes them: none
    when they start with an abbreviation read as words, cut before one."""
    out: list[str] = []
    for t in range(i, min(i + k, len(seg_keys))):
        if _expansion_at(seg_keys, t):
            break
        out.append(seg_keys[t])
    return out


def _resync(words: Words, j: int, seg_keys: list[str], i: int) -> tuple[int, int] | None:
    """The nearest place the two run together again: (i2, j2) with segment words from i2
    found at file word j2, fewest words passed over on both sides. Three words in a row
    must agree, or (near by, where fewer are left to agree) one."""
    best: tuple[int, int] | None = None
    for k, far in ((3, _SKIP_FILE), (1, 20)):
        cost = far + _SKIP_SEGMENT
        for di in range(min(_SKIP_SEGMENT, len(seg_keys) - i)):
            if di >= cost:
                break
            p = words.find(_probe(seg_keys, i + di, k), j, min(far, cost - di))
            if p is not None and di + (p - j) < cost:
                best, cost = (i + di, p), di + (p - j)
        if best is not None:
            return best
    return None


def match_words(words: Words, j: int, seg_keys: list[str], i: int = 0) -> list[Place]:
    """Each segment word's place in the file, matched in order from file word j."""
    out: list[Place] = [None] * len(seg_keys)
    n = len(seg_keys)
    while i < n and words.has(j):
        if words.key(j) == seg_keys[i]:
            out[i] = (words.start(j), words.end(j))
            i, j = i + 1, j + 1
            continue
        g = _group(words, j, seg_keys, i)
        if g is not None:
            si, fj = g
            out[i:si] = _group_places(words, j, fj, seg_keys, i, si)
            i, j = si, fj
            continue
        r = _resync(words, j, seg_keys, i)
        if r is None:
            # the last word run into the next block's ("end" in "endStart"): its letters
            if i == n - 1 and words.key(j).startswith(seg_keys[i]):
                s = words.start(j)
                out[i] = (s, min(s + len(seg_keys[i]), words.end(j)))
            break
        i, j = r
    return out


def _extend(text: str, start: int, end: int, lead: str, trail: str) -> tuple[int, int]:
    """The span widened over the marks the segment has before its first word and after its
    last (an opening quote, a full stop), passing over the file's others (markup, the full
    stop of an abbreviation read as words), never past a letter or a line's end."""
    want = [c for c in reversed(lead) if not c.isspace()]
    k = start
    while want and k > 0 and start - k < 40:
        c = text[k - 1]
        if c.isalnum() or c in "\r\n\u2028\u2029\x85":
            break
        k -= 1
        if same_char(c, want[0]):
            want.pop(0)
            start = k
            while k > 0 and c in _DASHES and text[k - 1] in _DASHES:
                k -= 1  # "--" read as one dash
                start = k
    want = [c for c in trail if not c.isspace()]
    if not want and text[end : end + 1] == "." and _abbreviation_before(text, end):
        want = ["."]  # "etc." read as "et cetera": its full stop is the abbreviation's
    k = end
    while want and k < len(text) and k - end < 40:
        c = text[k]
        if c.isalnum() or c in "\r\n\u2028\u2029\x85":
            break
        k += 1
        if same_char(c, want[0]):
            want.pop(0)
            end = k
            while k < len(text) and c in _DASHES and text[k] in _DASHES:
                k += 1
                end = k
    return start, end


_ABBREVIATED = re.compile(r"(?<![^\W_])(?:viz|etc|&c|cf|i\.e|e\.g|n\.b)\Z", re.I)


def _abbreviation_before(text: str, end: int) -> bool:
    return _ABBREVIATED.search(text, max(0, end - 4), end) is not None


@functools.lru_cache(maxsize=1024)
def _counted(n: int) -> re.Pattern[str]:
    """n words (WORD) and what lies between them: matched by the regex engine, so a
    segment whose words are the file's costs no Python per word."""
    return re.compile(rf"[^\W_]+(?:[\W_]*[^\W_]+){{{n - 1}}}")


def _first_word(text: str) -> int:
    m = WORD.search(text)
    return m.start() if m else len(text)


def _last_word_end(text: str) -> int:
    k = len(text)
    while k > 0 and not (text[k - 1].isalnum() and text[k - 1] != "_"):
        k -= 1
    return k


def segment_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    keys, places = [], []
    for m in WORD.finditer(text):
        w = m.group()
        keys.append(w.lower() if w.isascii() else word_key(w))
        places.append(m.span())
    return keys, places


def references(file: str) -> bool:
    """Whether a file's `&...;` are character references, read as what they name: a
    Markdown seed's (inline.source_text); an EPUB or HTML document's text nodes have them
    decoded already."""
    return file.lower().endswith(".md")


class Locator:
    """Finds where segments stand in one file's text, segment after segment as the
    segmenter gives them (reading order). `lines`: the text is the one the segmenter's line
    numbers count (a text seed), so a segment is looked for from its line; otherwise (an
    EPUB or HTML document's text) from where the last one ended."""

    def __init__(self, file: str, text: str, *, lines: bool, start: int = 0) -> None:
        self.file = file
        self.text = text
        self.lines = lines
        self.words = Words(text, references=references(file))
        self.last = start  # where the last segment found ended (first: where to begin)
        self._line_starts: list[int] | None = None

    def line_start(self, line: int) -> int:
        """Offset of a 1-based line (ending where the segmenter ends lines: _LINE_END)."""
        if self._line_starts is None:
            text = self.text
            if any(c in text for c in "\v\f\x1c\x1d\x1e"):  # line ends only str.splitlines knows
                self._line_starts = [0, *(m.end() for m in _LINE_END.finditer(text))]
            else:
                self._line_starts = [0, *itertools.accumulate(map(len, text.splitlines(True)))]
        starts = self._line_starts
        return starts[line - 1] if 1 <= line <= len(starts) else len(self.text)

    def span(self, text: str, line: int = 0) -> TextSpan | None:
        """Where a segment's text (as spoken) stands, starting on `line` (0: unknown); None
        when none of its words is in the file here."""
        if self.lines and line > 0:
            here, following = self.line_start(line), self.line_start(line + 1)
            # on the line where the last segment ended (a document's quotation after its
            # introduction): from there
            offset = self.last if here <= self.last < following else here
            if offset == here:
                found = self._whole_lines(text, line)
                if found is not None:
                    return found
        else:
            offset = self.last
        keys = _keys(text)
        if not keys:
            return self._bare(text, offset) if self.lines and line > 0 else None
        first = WORD.search(self.text, offset)
        if first is not None:  # the file's words from here are the segment's, word for word?
            run = _counted(len(keys)).match(self.text, first.start())
            if run is not None and _keys(run.group()) == keys:
                return self._edges(text, first.start(), run.end(), True, True)
        words = self.words
        j0 = words.at(offset)
        if not (self.lines and line > 0):  # where the words come again, past what was removed
            anchor = None
            for i0 in range(min(len(keys), _SKIP_SEGMENT)):
                p = words.find(_probe(keys, i0, 3), j0, _ANCHOR_WINDOW)
                if p is not None:
                    # its first words not the file's ("Namely" for "viz."): from before them
                    anchor = max(j0, p - 2 * i0 - 2) if i0 else p
                    break
            if anchor is None:
                return None
            j0 = anchor
        found = match_words(words, j0, keys)
        hits = [k for k, f in enumerate(found) if f is not None]
        if not hits:
            return None
        first, last = found[hits[0]], found[hits[-1]]
        assert first is not None and last is not None
        return self._edges(text, first[0], last[1], hits[0] == 0, hits[-1] == len(keys) - 1)

    def _whole_lines(self, text: str, line: int) -> TextSpan | None:
        """The most common case, found without a word-by-word look: the segment is the
        file's lines from `line` on, joined with their spaces collapsed, `_italic_` marks
        dropped and `--` read as a dash (a paragraph of prose)."""
        starts = self._line_starts
        assert starts is not None
        src, want = self.text, len(text)
        parts: list[str] = []
        size = -1
        k = line - 1
        while k < len(starts):
            stop = starts[k + 1] if k + 1 < len(starts) else len(src)
            piece = src[starts[k] : stop]
            if "_" in piece or "`" in piece:
                piece = MARKERS.sub("", piece)
            if "-" in piece:
                piece = _DASH_MARKS.sub(" — ", piece)
            piece = " ".join(piece.split())
            if not piece:
                return None
            parts.append(piece)
            size += len(piece) + 1
            if size >= want:
                break
            k += 1
        if size != want or " ".join(parts) != text:
            return None
        first = src[starts[line - 1] : starts[line] if line < len(starts) else len(src)]
        last = src[starts[k] : starts[k + 1] if k + 1 < len(starts) else len(src)]
        start = starts[line - 1] + len(first) - len(first.lstrip())
        self.last = starts[k] + len(last.rstrip())
        return TextSpan(self.file, start, self.last)

    def _edges(self, text: str, start: int, end: int, lead: bool, trail: bool) -> TextSpan:
        """The span from its first word found to its last, widened over the marks the
        segment has around them (where those words are its first and last)."""
        before = text[: _first_word(text)] if lead else ""
        after = text[_last_word_end(text) :] if trail else ""
        start, end = _extend(self.text, start, end, before, after)
        self.last = end
        return TextSpan(self.file, start, end)

    def _bare(self, text: str, offset: int) -> TextSpan | None:
        """A segment without words ("…"): the rest of its line, where that holds its marks."""
        line_end = _LINE_END.search(self.text, offset)
        stop = line_end.start() if line_end else len(self.text)
        chunk = self.text[offset:stop]
        marks = text.strip()
        at = chunk.find(marks) if marks else -1
        if at < 0:
            return None
        self.last = offset + at + len(marks)
        return TextSpan(self.file, offset + at, self.last)
