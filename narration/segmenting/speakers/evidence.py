"""What the narration beside a quotation says of who speaks it: an attribution ("said
Holmes", "Holmes said", "said he", an action "Holmes placed the lamp"), a second speaker
introduced between two quoted stretches, the names a quotation addresses, and whether the
book is told in the first person. Patterns only: attribute.py weighs them."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from narration.segmenting.speakers.names import (
    CAPITALISED,
    THE_TITLE,
    TITLE_PATTERN,
)
from narration.segmenting.speakers.quotes import SPEECH_VERBS

_VERB = (
    r"(?:"
    + "|".join(sorted(SPEECH_VERBS, key=len, reverse=True))
    + r"|(?:put|broke|cut|chimed|struck|burst)\s+in|went\s+on|came\s+back)"
)


_ADV = r"(?:[a-z]+ly\s+|again\s+|then\s+|now\s+|at\s+last\s+|at\s+once\s+)"


#: "Mr. van der Luyden", "old Horace Talbot"
_PARTICLES = r"(?:(?:van|von|der|den|de|du|da|di|del|della|la|le|ten|ter)\s+){0,2}"


_NAME = (
    rf"(?:the\s+(?:[a-z]+\s+)?)?(?:(?:old|young|little|poor)\s+)?(?:{TITLE_PATTERN}\s+)?{_PARTICLES}"
    rf"{CAPITALISED}(?:\s+{CAPITALISED}){{0,2}}"
)


#: A word of a noun phrase ("her father", "the old lady"), never a function word.
_NP_WORD = (
    r"(?!(?:and|or|but|nor|then|who|whom|which|that|as|to|in|of|with|at|on|for|by|from|"
    r"into|upon|was|were|had|has|is|be)\b)[a-z-]+"
)


_NP = (
    r"(?:[Tt]he|[Hh]is|[Hh]er|[Mm]y|[Oo]ur|[Tt]heir|[Tt]his|[Tt]hat|[Aa]|[Aa]n)\s+"
    rf"(?:{_NP_WORD}\s+){{0,2}}?{_NP_WORD}"
)


_THE_TITLE = THE_TITLE.pattern.replace("\\b[Tt]he", "[Tt]he").replace("(?P<title>", "(?:")


_WHO = rf"(?P<who>{_THE_TITLE}|{_NAME}|[Hh]e|[Ss]he|I|{_NP})"


_LEAD = r"^[\s,.;:!?—–\-\"“”'’‘)]*"


#: After a quotation: "said Emma", "said he", "replied the doctor", and any verb so
#: inverted ("opined Mrs. Munt", "whistled Ned Winsett": only speech is written so);
#: "Emma said", "she replied", "he had said", "Her father fondly replied".
AFTER_VERB_WHO = re.compile(rf"{_LEAD}{_ADV}?(?P<verb>{_VERB}|[a-z]{{3,}}ed)\s+{_ADV}?{_WHO}\b")


AFTER_WHO_VERB = re.compile(
    rf"{_LEAD}{_WHO}\s+{_ADV}?(?:had\s+|has\s+|then\s+)?{_ADV}?"
    rf"(?P<verb>{_VERB}\b|(?P<action>[a-z]{{3,}}ed)\b)"
)


#: "…," was Frank's reply; "…?" came Tibby's voice.
AFTER_REPLY = re.compile(
    rf"{_LEAD}(?:was|came)\s+{_WHO}['’]s\s+(?:\w+\s+)?(?:reply|answer|response|retort|"
    r"rejoinder|comment|remark|question|exclamation|cry|voice)\b"
)


#: Before a quotation: "Her father fondly replied," / "Emma said:" / "said Emma," at the
#: end of the narration that leads into it.
BEFORE_WHO_VERB = re.compile(
    rf"{_WHO}\s+{_ADV}?(?:had\s+)?{_ADV}?(?P<verb>{_VERB})\b[^.!?\"“”]{{0,60}}[,:—–-]?\s*$"
)


#: A verb of speech ending the narration before a quotation, its subject further back in
#: the sentence: "Mr. Darcy felt their rudeness and immediately said,".
BEFORE_VERB = re.compile(rf"\b(?:{_VERB})\b[^.!?\"“”]{{0,40}}[,:—–-]*\s*$")


SENTENCE_END = re.compile(r"[.!?\"“”]")


BEFORE_VERB_WHO = re.compile(rf"(?P<verb>{_VERB})\s+{_WHO}\b[^.!?\"“”]{{0,40}}[,:—–-]\s*$")


_VOCATIVE = re.compile(
    rf"(?:^|(?P<mid>[,—–])\s*|[!?;]\s*)(?:dear\s+|my\s+dear\s+)?(?P<who>{_NAME})\s*(?=[,.!?;—–]|$)"
)


_FIRST_PERSON = re.compile(r"\bI\b")


def two_speakers(between: str) -> bool:
    """Whether the narration between two quoted stretches of a paragraph gives the second
    its own speaker: '"…," said Mrs. van der Luyden; and Mrs. Archer murmured: "…"', or
    '"…." They drank some more port. Tony said, "…"' (a new turn, introduced)."""
    first = None
    for after in (AFTER_VERB_WHO, AFTER_WHO_VERB):
        first = after.match(between)
        if first is not None:
            break
    rest = OPENING_QUOTE.sub("", between[first.end() :] if first else between)
    for before in (BEFORE_WHO_VERB, BEFORE_VERB_WHO):
        n = before.search(rest)
        if n is not None:
            return first is None or n.group("who").lower() != first.group("who").lower()
    return first is None and BEFORE_VERB.search(rest) is not None


@dataclass(frozen=True)
class Said:
    """An attribution beside a quotation: who, as written, and the words that say so."""

    who: str
    evidence: str  # "said Holmes", "Her father fondly replied", "Emma smiled"
    #: a verb of speech ("said"), not an action the speaker does ("smiled", "placed")
    speech: bool = True

    @property
    def label(self) -> str:
        return f"{'explicit' if self.speech else 'narration'}: {self.evidence}"


def explicit_who(text_before: str, betweens: Sequence[str], text_after: str) -> Said | None:
    """The attribution beside a quotation: between its pieces, after it, or before it.
    Asked twice of each quotation (finding the characters, then attributing): cached on
    the narration an attribution can stand in."""
    return _explicit_who(
        text_before[-_NEAR:], tuple(b[:_NEAR] for b in betweens), text_after[:_NEAR]
    )


#: How much narration beside a quotation an attribution stands in.
_NEAR = 200


@functools.lru_cache(maxsize=8192)
def _explicit_who(text_before: str, betweens: tuple[str, ...], text_after: str) -> Said | None:
    for between in betweens:
        for pat in (AFTER_VERB_WHO, AFTER_WHO_VERB, AFTER_REPLY):
            m = pat.match(between)
            if m:
                return _said(m)
    for pat in (AFTER_VERB_WHO, AFTER_WHO_VERB, AFTER_REPLY):
        m = pat.match(text_after)
        if m:
            return _said(m)
    tail = OPENING_QUOTE.sub("", text_before[-160:])
    for pat in (BEFORE_WHO_VERB, BEFORE_VERB_WHO):
        m = pat.search(tail)
        if m:
            return _said(m)
    return None


def _said(m: re.Match[str]) -> Said:
    """The attribution a pattern matched: its evidence from the speaker to the verb, no
    further ("said Emma, willing to let it pass" is "said Emma")."""
    groups = m.groupdict()
    if groups.get("verb") is None:
        return Said(m.group("who"), _evidence(m.group(0)))
    start = min(m.start("who"), m.start("verb"))
    end = max(m.end("who"), m.end("verb"))
    return Said(m.group("who"), _evidence(m.string[start:end]), groups.get("action") is None)


OPENING_QUOTE = re.compile(r"[\"“‘'«]\s*$")


def _evidence(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip(" \t\n,.;:!?—–-\"“”'’‘)")).strip()


@functools.lru_cache(maxsize=8192)
def vocatives(text: str) -> tuple[tuple[str, bool], ...]:
    """Names a quotation addresses: "…, Emma." / "Emma, …" / "My dear Harriet!", each with
    whether it stands after a comma or a dash (where an interjection, "Indeed, …", is not
    written with a capital)."""
    if not _CAPITAL.search(text):
        return ()
    return tuple((m.group("who"), m.group("mid") is not None) for m in _VOCATIVE.finditer(text))


_CAPITAL = re.compile("[A-Z]")


def first_person_narrator(narration: Sequence[str]) -> bool:
    """Whether the book is told in the first person: "I" often in its narration."""
    text = "\n".join(narration)
    words = len(text.split())
    i = len(_FIRST_PERSON.findall(text))
    return words > 0 and i / words > 0.006 and i >= 3
