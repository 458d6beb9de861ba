"""Sentences and dialogue: a segment's text cut where a reader pauses, never mid-word, and
each utterance short enough for an engine (MAX_UTTERANCE); quoted speech found so the
cast's `dialogue` rules can give it a voice.
"""

from __future__ import annotations

import re

from narration.model import MAX_UTTERANCE, Span
from narration.segmenting.inline import WHITESPACE, WORD


def wordset(words: str) -> frozenset[str]:
    """A set of words written as one string (for the word lists of the segmenter's modules)."""
    return frozenset(words.split())


_SENTENCE_END = re.compile(r"[.!?…]+[\"”’'»)\]]*(?=\s)")
_NO_SPLIT_AFTER = wordset(
    "mr mrs ms messrs dr prof rev hon st mt gen col capt lt sgt cpl gov sen rep jr sr vs "
    "ca approx fig vol ch pp co corp ltd inc jan feb apr aug sept sep oct nov dec mme "
    "mlle mons esq"
)


_NEXT_CHAR = re.compile(r"\s+[\"“‘'(\[«]*(.)")
_LAST_WORD = re.compile(r"([^\W\d_]+)\Z")
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "p", "art", "op"})
_CLAUSE_LEVELS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?<=;)\s+"),
    re.compile(r"(?<=:)\s+"),
    re.compile(r"(?<=,)\s+"),
    re.compile(r"\s+(?=[—–])|(?<=[—–])\s*|(?<=\s-)\s+"),
    re.compile(r"\s+"),
)


def sentence_bounds(text: str) -> list[str]:
    """Split at sentence ends followed by a capital or digit, not after Mr., initials, etc."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        after = _NEXT_CHAR.match(text, m.end())
        nxt = after.group(1) if after else ""
        if not (nxt.isupper() or nxt.isdigit()):
            continue
        if m.group(0)[0] == ".":
            word = _LAST_WORD.search(text, max(start, m.start() - 40), m.start())
            token = word.group(1) if word else ""
            if token.lower() in _NO_SPLIT_AFTER:
                continue
            if token.lower() in _NUMBER_ABBREVIATIONS and nxt.isdigit():
                continue
            if len(token) == 1 and token.isupper() and token != "I":
                continue  # an initial: "A. Kolontay"
        piece = text[start : m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _fit(text: str, limit: int, level: int = 0) -> list[str]:
    """Cut one sentence into utterances of at most `limit` characters, at the strongest
    clause boundary available (; then : then , then dashes, then spaces); a single word
    longer than the limit is the only thing ever cut mid-word. Linear in len(text)."""
    if len(text) <= limit:
        return [text]
    if level == len(_CLAUSE_LEVELS):
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    parts = [p for p in _CLAUSE_LEVELS[level].split(text) if p]
    if len(parts) == 1:
        return _fit(text, limit, level + 1)
    out: list[str] = []
    cur: list[str] = []
    size = 0
    for part in parts:
        if len(part) > limit:
            if cur:
                out.append(" ".join(cur))
                cur, size = [], 0
            out.extend(_fit(part, limit, level + 1))
            continue
        if cur and size + 1 + len(part) > limit:
            out.append(" ".join(cur))
            cur, size = [], 0
        size += len(part) + (1 if cur else 0)
        cur.append(part)
    if cur:
        out.append(" ".join(cur))
    return out


def split_sentences(text: str, limit: int = MAX_UTTERANCE) -> tuple[str, ...]:
    """The text as utterances for the engine: sentences, long ones cut at clause boundaries,
    each at most `limit` characters (the driver drops longer first utterances silently)."""
    text = WHITESPACE.sub(" ", text).strip()
    out: list[str] = []
    for sentence in sentence_bounds(text):
        out.extend(p for p in (s.strip() for s in _fit(sentence, limit)) if p)
    return tuple(out)


_OPENERS = "“„«"
_CLOSERS = "”»"
QUOTE_CHARS = re.compile('["“”„«»]')


def dialogue_spans(text: str) -> tuple[Span, ...]:
    """Quotations inside a segment (dialogue, quoted words), quote marks included.

    Straight and curly double quotes are handled alike; a quotation still open at the end
    of a paragraph (the usual way to continue a speech) runs to the end of the text.
    """
    spans: list[Span] = []
    start: int | None = None
    for m in QUOTE_CHARS.finditer(text):
        c = m.group(0)
        if start is None:
            if c in _CLOSERS:
                continue
            start = m.start()
        elif c in _OPENERS:
            start = m.start()  # an unclosed quotation: the new one starts here
        else:
            spans.append(Span(start, m.end()))
            start = None
    if start is not None and start < len(text) - 1:
        spans.append(Span(start, len(text)))
    return tuple(s for s in spans if WORD.search(text[s.start : s.end]))
