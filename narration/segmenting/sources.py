"""Who a quote is from: a `-- Author, Work (Year)` line, a document a paragraph
introduces ('... published a statement on 27th February, 1921: "..."'), the name a
letter is signed with; and what reads as a person's name, for these and for bylines."""

from __future__ import annotations

import re
from dataclasses import replace

from narration.model import (
    Chapter,
    Source,
)
from narration.reading import Signed
from narration.segmenting.blocks import Raw
from narration.segmenting.inline import (
    WHITESPACE,
    WORD,
    spoken_text,
)
from narration.segmenting.sentences import (
    QUOTE_CHARS,
    sentence_bounds,
    wordset,
)


def _wordlist(words: str) -> list[str]:
    return words.split()


_NOT_NAME = wordset(
    "the a an of and in on to for with what who how why is are was this that from by "
    "chapter part book page top last updated"
)
_NAME_PARTICLES = wordset("de da di del della der van von le la du bin ibn ten ter")
BY = re.compile(r"^\s*by(?:\s+(?P<name>.*?))?\s*$", re.I)
_DOC_NOUNS = (
    "statement|declaration|letter|manifesto|resolution|appeal|leaflet|proclamation|telegram"
    "|programme|program|platform|petition|memorandum|circular|open letter|decree|order"
)
_DOCUMENT_INTRO = re.compile(
    r"^(?P<subject>.*?)\s*\b(?:also\s+|then\s+|later\s+|subsequently\s+|jointly\s+)?"
    r"(?:published|issued|wrote|sent|signed|adopted|released|distributed|circulated|"
    r"drew up|put out|produced)\b.*?\b(?P<noun>" + _DOC_NOUNS + r")\b(?P<after>.*)$",
    re.I | re.S,
)
_GROUP_SUBJECT = re.compile(
    r"^(?:the|this|that|its|their)\s+(?:group|party|faction|organi[sz]ation|movement|"
    r"opposition|committee|union|congress|council|conference|leadership|members)$|^(?:it|they)$",
    re.I,
)
_MONTHS = _wordlist(
    "january february march april may june july august september october november december"
)
_DATE = re.compile(
    r"(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>" + "|".join(_MONTHS) + r"),?\s+"
    r"(?P<year>\d{4})|(?P<month2>" + "|".join(_MONTHS) + r")\s+(?P<day2>\d{1,2})(?:st|nd|rd|th)?"
    r",?\s+(?P<year2>\d{4})|(?P<year3>\d{4})",
    re.I,
)


def name_like(s: str) -> bool:
    """'A. Kolontay', 'WILLIAM MORRIS', 'Victor Serge': a person's name and nothing else."""
    toks = s.strip().rstrip(",").split()
    if not 2 <= len(toks) <= 5:
        return False
    initials = 0
    for t in toks:
        bare = t.strip(".")
        if re.fullmatch(r"(?:[^\W\d_]\.)+", t) and t[0].isupper():
            initials += 1
            continue
        if bare.lower() in _NOT_NAME:
            return False
        if t.lower() in _NAME_PARTICLES:
            continue
        if not (
            bare and bare[0].isupper() and re.fullmatch(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*'?", bare)
        ):
            return False
        if t.endswith(".") and t.lower() not in ("jr.", "sr."):
            return False
    return initials < len(toks)


def signed_sources(ch: Chapter, signed: tuple[Signed, ...]) -> Chapter:
    """A letter's first quote segment gets the name it is signed with as its source (line
    0: the signature is read in the letter, its words counted there, not twice)."""
    segments = list(ch.segments)
    for letter in signed:
        for k, s in enumerate(segments):
            if s.kind == "quote" and letter.first <= s.line <= letter.last:
                if s.source is None:
                    segments[k] = replace(s, source=Source(author=spoken_text(letter.name)))
                break
    return replace(ch, segments=tuple(segments))


def parse_source(rest: str, line: int) -> Source:
    """'Author, Work (Year)' -> Source; whatever the text names is kept, nothing invented."""
    rest = rest.strip()
    year = None
    m = re.search(r"\(([^()]*)\)\s*\.?$", rest)
    if m and m.group(1).strip():
        year = m.group(1).strip()
        rest = rest[: m.start()].strip()
    author, _, work = rest.partition(",")
    return Source(author=author.strip() or None, work=work.strip() or None, year=year, line=line)


def document_split(raw: Raw) -> tuple[Raw, Raw, str, str] | None:
    """A long quotation introduced as a document ('... published a statement on 27th
    February, 1921: "..."'): (intro, quotation, intro sentence, quotation text)."""
    m = re.search(r":[ \t\n]*([\"“])(?P<body>[^\"“”]{80,})[\"”][ \t\n]*$", raw.text)
    if not m:
        return None
    body = m.group("body")
    if len(WORD.findall(body)) < 25 or len(sentence_bounds(WHITESPACE.sub(" ", body))) < 2:
        return None
    intro_text = raw.text[: m.start() + 1]
    sentences = sentence_bounds(WHITESPACE.sub(" ", intro_text))
    last = sentences[-1] if sentences else ""
    if QUOTE_CHARS.search(last) or not _DOCUMENT_INTRO.match(last):
        return None
    return raw.slice(0, m.start() + 1), raw.slice(m.start("body"), m.end("body")), last, body


def document_source(intro: str, chapter_title: str) -> Source:
    """Who issued the document, what it is, and when, from the sentence introducing it."""
    m = _DOCUMENT_INTRO.match(intro)
    assert m is not None
    subject = re.sub(r"[,;]\s*$", "", m.group("subject").strip())
    subject = re.sub(r"^(?:in \d{4},?\s+|on [^,]+,\s+|then,?\s+)", "", subject, flags=re.I)
    if _GROUP_SUBJECT.match(subject):
        author: str | None = chapter_title  # "the group": the subject of the article
    elif name_like(subject) or re.fullmatch(r"[A-Z][\w'’\-]+", subject):
        author = subject
    else:
        author = None
    noun = m.group("noun").lower()
    work = noun[:1].upper() + noun[1:]
    year = None
    d = _DATE.search(m.group("after")) or _DATE.search(intro)
    if d:
        if d.group("year") or d.group("year2"):
            day = d.group("day") or d.group("day2")
            month = (d.group("month") or d.group("month2")).capitalize()
            year = d.group("year") or d.group("year2")
            work = f"{work} of {int(day)} {month} {year}"
        else:
            year = d.group("year3")
            work = f"{work} of {year}"
    return Source(author=author, work=work, year=year, line=0)
