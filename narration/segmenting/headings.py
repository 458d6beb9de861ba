"""How a reader tells a heading from a line of text in a plain-text book: chapter headings
with a unit word (CHAPTER, STAVE, LETTER, PART, BOOK, VOLUME) and a number in words, roman
or arabic numerals; numerals alone (``IV.``, ``4)``); the named sections (PREFACE, EPILOGUE);
short titles; page numbers; and the entries of a book's own contents list.

These are the recognisers only: which of the lines they accept really are chapters is the
segmenter's decision (chapters.py), made over the whole book (a run of numerals counting up
from one is a book's chapters, a numeral alone is a section; numbers that fall in the middle
of a sentence are page numbers).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from narration.segmenting.coverage import words
from narration.segmenting.inline import WHITESPACE, markup_dropped
from narration.segmenting.sentences import wordset

Level = Literal["part", "chapter"]

_NUMBER_WORDS = (
    r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four"
    r"|five|six|seven|eight|nine))?|one|two|three|four|five|six|seven|eight|nine|ten|eleven"
    r"|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|hundred)"
)
_ORDINAL_WORDS = (
    r"(?:(?:twenty|thirty|forty|fifty)[- ](?:first|second|third|fourth|fifth|sixth|seventh"
    r"|eighth|ninth)|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh"
    r"|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth"
    r"|twentieth|thirtieth|fortieth|fiftieth|last|final)"
)
#: The words a heading names its unit by, and the level of each: parts, books and volumes
#: hold chapters; staves (A Christmas Carol) and letters (Frankenstein, Dracula) are chapters.
UNITS: dict[str, Level] = {
    "chapter": "chapter",
    "chap.": "chapter",
    "adventure": "chapter",
    "stave": "chapter",
    "letter": "chapter",
    "canto": "chapter",
    "part": "part",
    "book": "part",
    "volume": "part",
    "vol.": "part",
    # the same units in the languages Gutenberg has most books in
    "chapitre": "chapter",
    "kapitel": "chapter",
    "capítulo": "chapter",
    "capitulo": "chapter",
    "capitolo": "chapter",
    "hoofdstuk": "chapter",
    "livre": "part",
    "partie": "part",
    "tome": "part",
    "buch": "part",
    "teil": "part",
    "libro": "part",
    "parte": "part",
    "tomo": "part",
}
_UNIT_WORDS = "|".join(re.escape(w.upper()) for w in sorted(UNITS, key=len, reverse=True))
_UNIT = re.compile(
    r"^(?P<label>" + _UNIT_WORDS + r")\s+(?:THE\s+)?"
    r"(?P<num>[IVXLCDM]+|\d{1,4}|" + _ORDINAL_WORDS + "|" + _NUMBER_WORDS + r")(?![\w'’]|-\w)"
    r"\.?\s*(?:[:.\-—–]+\s*)?(?P<rest>.*)$",
    re.I,
)
_ROMAN = re.compile(r"^M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})$")
#: A numeral alone on its line, as chapters are numbered in many books ("IV.", "4)", "12").
_NUMERAL = re.compile(r"^(?P<num>[IVXLCDM]{1,8}|\d{1,3})(?P<mark>[.)]?)$")
#: A numeral and a title on one line ("I. A SCANDAL IN BOHEMIA", "4) The Storm").
_NUMERAL_TITLE = re.compile(
    r"^(?P<num>[IVXLCDM]{1,8}|\d{1,3})(?:[.)]|\.?\s*[:—–-])\s+(?P<rest>\S.*)$"
)
#: A page number on its own line, as scanned books keep them: "12", "[12]", "- 12 -", "xii".
PAGE_NUMBER = re.compile(
    r"^\s*(?:\[\s*(?:Pg\.?\s*|p\.?\s*)?\d{1,4}\s*\]|[-–—]\s*\d{1,4}\s*[-–—]|\(?\d{1,4}[).]?"
    r"|[ivxlcdm]{1,8}[.)]?)\s*$",
    re.I,
)
SPECIAL_CHAPTERS = (
    "preface",
    "introduction",
    "prologue",
    "epilogue",
    "foreword",
    "afterword",
    "conclusion",
    "postscript",
    "interlude",
    "appendix",
)
_SPECIAL = re.compile(
    r"^(?:(?:THE\s+)?AUTHOR['’]S\s+)?(?:"
    + "|".join(w.upper() for w in SPECIAL_CHAPTERS)
    + r")(?:\s+TO\s+THE\s+[A-Z ]+EDITION)?\.?$|^(?:"
    + "|".join(w.capitalize() for w in SPECIAL_CHAPTERS)
    + r")\.?$"
)
CONTENTS = re.compile(r"^\s*(?:TABLE OF CONTENTS|CONTENTS|Table of Contents|Contents)\.?:?\s*$")
ILLUSTRATIONS = re.compile(
    r"^\s*(?:LIST OF (?:THE )?(?:ILLUSTRATIONS|PLATES|FIGURES)|ILLUSTRATIONS"
    r"|List of (?:the )?(?:Illustrations|Plates|Figures)|Illustrations)\.?:?\s*$"
)

_ONES_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_ORDINAL_WORDS_LIST = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
)
SMALL_WORDS = wordset(
    "a an the and but or nor for so yet as at by in of on per to via from into with over "
    "upon than de la le du von van der et"
)
_ONES = dict(zip(_ONES_WORDS.split(), range(1, 20), strict=True))
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70}
_TENS |= {"eighty": 80, "ninety": 90}
_ORDINALS = dict(zip(_ORDINAL_WORDS_LIST.split(), range(1, 20), strict=True))
_ORDINAL_TENS = {"twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50}
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def unit_line(line: str) -> bool:
    """A line opening with a unit and its number ("Chapter 3 ...", "BOOK II"), heading or not:
    what a contents list's lines look like."""
    m = _UNIT.match(line.strip())
    return m is not None and line.strip()[0].isupper()


def is_roman(s: str) -> bool:
    return bool(s) and _ROMAN.match(s.upper()) is not None


def number_value(num: str) -> int | None:
    """The value of a heading's number: '12', 'XIV', 'twenty-one', 'first'; None for words
    that name no number ('last')."""
    s = num.strip().rstrip(".").lower()
    if s.isdigit():
        return int(s)
    if is_roman(s):
        total = 0
        values = [_ROMAN_VALUES[c] for c in s.upper()]
        for k, v in enumerate(values):
            total += -v if k + 1 < len(values) and values[k + 1] > v else v
        return total
    parts = re.split(r"[- ]", s)
    if len(parts) == 2 and parts[0] in _TENS:
        last = _ONES.get(parts[1]) or _ORDINALS.get(parts[1])
        return _TENS[parts[0]] + last if last else None
    return _ONES.get(s) or _ORDINALS.get(s) or _TENS.get(s) or _ORDINAL_TENS.get(s)


def cased(s: str) -> list[str]:
    return [c for c in s if c.isupper() or c.islower()]


def all_caps(s: str) -> bool:
    letters = cased(s)
    return bool(letters) and all(c.isupper() for c in letters)


def title_like(s: str) -> bool:
    """A short line that reads as a title or heading (title case or all capitals)."""
    s = s.strip()
    if not s or len(s) > 100 or len(s.split()) > 14:
        return False
    quoted = s[0] in "\"“‘'" and all_caps(s) and not re.search(r"[.!?,;]\W*$", s)
    if not (s[0].isupper() or s[0].isdigit() or quoted):  # “PIECES OF EIGHT”, not “TOM!”
        return False
    if not cased(s):
        return False
    if all_caps(s):
        return not s.endswith((",", ";"))
    if s.endswith((".", ",", ";", ":")):
        return False
    for w in re.findall(r"[^\W\d_][\w'’\-]*", s):
        if len(w) >= 4 and w.lower() not in SMALL_WORDS and not w[0].isupper():
            return False
    return True


def display(s: str) -> str:
    """A title or heading as shown: `--` as a dash, markup dropped, ALL CAPS in title case."""
    s = WHITESPACE.sub(" ", markup_dropped(s)).strip()
    if not all_caps(s):
        return unicodedata.normalize("NFC", s)
    out: list[str] = []
    first = True
    for tok in re.split(r"(\s+)", s):
        if not tok or tok.isspace():
            out.append(tok)
            continue
        core = tok.strip("\"“”‘’'([{:;,.!?")
        if tok == "I" or (len(core) > 1 and is_roman(core)):
            new = tok
        elif not first and core.lower() in SMALL_WORDS:
            new = tok.lower()
        else:
            new = "-".join(p[:1].upper() + p[1:].lower() for p in tok.split("-"))
            new = re.sub(
                r"^([\"“‘'(\[]+)([^\W\d_])", lambda m: m.group(1) + m.group(2).upper(), new
            )
        out.append(new)
        first = tok.endswith((":", "—", ".", "?", "!")) or tok in ("—", "–")
    result = unicodedata.normalize("NFC", "".join(out))
    # Title case must never change a word: if some script's case rules would, keep it.
    return result if words(result) == words(s) else unicodedata.normalize("NFC", s)


@dataclass(frozen=True)
class Heading:
    """A line that reads as a chapter heading, before the book as a whole confirms it."""

    title: str  # as shown: "Chapter IV", "Stave One: Marley's Ghost", "IV"
    level: Level
    #: "unit" (a unit word and a number), "special" (PREFACE), "numeral" (a number alone or
    #: with a title on its line: confirmed only as a run counting up from one)
    rule: Literal["unit", "special", "numeral"]
    wants_title: bool = False  # its title may be on the next line ("CHAPTER IV." / "THE FLIGHT")
    number: int | None = None


def chapter_heading(line: str) -> Heading | None:
    """The heading `line` is, if it reads as one on its own."""
    s = line.strip()
    if not s or len(s) > 120:
        return None
    m = _UNIT.match(s)
    if m and s[0].isupper():
        num = m.group("num")
        if num.isalpha() and re.fullmatch(r"[ivxlcdm]+", num, re.I) and not is_roman(num):
            return None
        label = m.group("label").lower()
        level = UNITS[label]
        head = display(s[: m.end("num")])
        if label == "chap.":
            head = "Chap." + head[len("chap.") :]
        rest = m.group("rest").strip()
        number = number_value(num)
        if not rest:
            return Heading(head, level, "unit", wants_title=True, number=number)
        marked = m.group("label").isupper() and re.match(r"[.:]\s", s[m.end("num") :])
        if not title_like(rest.rstrip(".")) and not (
            marked and rest[:1].isupper() and len(rest.split()) <= 20
        ):
            # "Chapter 12 describes the war." is a sentence, not a heading; "CHAPTER 73.
            # Stubb and Flask kill a Right Whale" is one, its label in capitals and marked off
            return None
        return Heading(f"{head}: {display(rest.rstrip('.'))}", level, "unit", number=number)
    m = _NUMERAL.match(s)
    if m and (m.group("num").isdigit() or is_roman(m.group("num"))):
        num = m.group("num")
        return Heading(num, "chapter", "numeral", wants_title=True, number=number_value(num))
    m = _NUMERAL_TITLE.match(s)
    if m and (m.group("num").isdigit() or is_roman(m.group("num"))):
        rest = m.group("rest").strip().rstrip(".")
        if title_like(rest) and chapter_heading(rest) is None:
            num = m.group("num")
            return Heading(
                f"{num}. {display(rest)}", "chapter", "numeral", number=number_value(num)
            )
        return None
    if _SPECIAL.match(s):
        return Heading(display(s.rstrip(".")), "chapter", "special")
    return None


def named_heading(line: str) -> bool:
    """A short line in capitals that may name a chapter ("STORY OF THE DOOR"): a chapter only
    where a book has no numbered headings and such lines recur, or its contents name it."""
    s = line.strip()
    if not all_caps(s) or not title_like(s) or len(s.split()) > 12:
        return False
    if s.endswith((",", ";", ":", "!", "?")) or s.startswith(('"', "“", "'", "‘", "(", "[")):
        return False
    return len(re.findall(r"[^\W\d_]", s)) >= 3


_ENTRY_PAGE = re.compile(
    r"(?:(?:\s*\.){2,}\s*|\s{2,}|\t+|,\s*)(?:p\.\s*)?(?:\d{1,4}|[ivxlc]{1,6})\s*$"
)
_ENTRY_LABEL = re.compile(
    r"^(?:(?:" + _UNIT_WORDS + r")\s+(?:THE\s+)?)?"
    r"(?:[IVXLCDM]+|\d{1,4}|" + _ORDINAL_WORDS + "|" + _NUMBER_WORDS + r")(?![\w'’]|-\w)"
    r"\s*[.:)\-—–]*\s*",
    re.I,
)


def heading_key(text: str) -> str:
    """What a contents entry and the heading it names have in common: the title's words,
    without the unit, the number, the page number and leaders ("CHAPTER I. The Door ... 7"
    and "THE DOOR" both give "the door"). Empty when the entry is only a number."""
    s = markup_dropped(text).strip()
    s = WHITESPACE.sub(" ", _ENTRY_PAGE.sub("", s) if len(s.split()) > 1 else s)
    label = _ENTRY_LABEL.match(s)
    if label and (label.end() == len(s) or s[label.end() - 1 : label.end()] in ".:)-—– "):
        s = s[label.end() :]
    return " ".join(words(s))


def entry_number(text: str) -> int | None:
    """The number a contents entry or heading carries ("CHAPTER IV", "4. The Storm")."""
    s = WHITESPACE.sub(" ", markup_dropped(text)).strip()
    m = _ENTRY_LABEL.match(s)
    if not m:
        return None
    num = re.sub(
        r"^(?:" + _UNIT_WORDS + r")\s+(?:THE\s+)?",
        "",
        m.group(0).strip(),
        flags=re.I,
    )
    return number_value(re.sub(r"[.:)\-—–\s]+$", "", num))
