"""What the narrator announces: a chapter's opening and a quote's source, from
voices.yaml's templates, with the clauses whose fields are unknown dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from narration.model import (
    MAX_UTTERANCE,
)

#: A title that already says which chapter it is: "Chapter Four", "Part II", "Book the
#: First", "3. The Union", "XII: Dawn" (not "1921 in Russia", "I Am Legend" or "Letters").
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|first|second|"
    "third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|the"
)


_NUMBERED_TITLE = re.compile(
    r"^\s*(?:"
    r"(?i:chapter|part|book|section|canto|act|volume|stave|letter)\s+"
    r"(?:\d+|(?i:[ivxlcdm]+)|(?i:" + _NUMBER_WORDS + r"))\b"
    r"|\d{1,3}(?:[.:)]\s|[.:)]?$)"
    r"|[IVXLCDM]+(?:[.:)]\s|[.:)]?$)"
    r")"
)


def says_its_number(title: str) -> bool:
    """Whether a chapter's title already names its number (so the announcement does not)."""
    return _NUMBERED_TITLE.match(title) is not None


_FIELD = re.compile(r"\{(\w+)\}")


def render_template(template: str, fields: Mapping[str, Any]) -> str:
    """Fill a template, dropping the clauses whose fields are unknown.

    'Chapter {number}. {title}. By {author}.' with no author gives 'Chapter 1. Title.';
    'From {author}, {work}, {year}.' with no year gives 'From Author, Work.'
    """
    sentences = re.split(r"(?<=[.!?])\s+", template.strip())
    kept: list[str] = []
    for sentence in sentences:
        clauses = re.split(r"(,\s*)", sentence)
        out = ""
        for clause in clauses[::2]:
            names = _FIELD.findall(clause)
            if any(fields.get(n) in (None, "") for n in names):
                continue
            filled = clause.format(**{n: fields[n] for n in names}) if names else clause
            if out:
                out += ", " + filled
            else:
                out = filled
        # a sentence that lost its fields entirely ("By .") is dropped
        if _FIELD.search(sentence) and not any(
            fields.get(n) not in (None, "") for n in _FIELD.findall(sentence)
        ):
            continue
        out = out.strip().rstrip(",")
        if out and out[-1] not in ".!?" and sentence.rstrip()[-1:] in ".!?":
            out += sentence.rstrip()[-1]
        if out.strip(" .!?"):
            kept.append(out)
    return " ".join(kept)


def split_long(text: str) -> list[str]:
    """Split an announcement into utterances the engine handles (they are short in practice)."""
    if len(text) <= MAX_UTTERANCE:
        return [text]
    parts = re.split(r"(?<=[.!?,;:])\s+", text)
    out: list[str] = []
    for part in parts:
        while len(part) > MAX_UTTERANCE:
            cut = part.rfind(" ", 0, MAX_UTTERANCE)
            cut = cut if cut > 0 else MAX_UTTERANCE
            out.append(part[:cut].strip())
            part = part[cut:].strip()
        if out and len(out[-1]) + 1 + len(part) <= MAX_UTTERANCE:
            out[-1] = f"{out[-1]} {part}"
        elif part:
            out.append(part)
    return out
