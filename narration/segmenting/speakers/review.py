"""Speakers as a user reviews them: `narrate characters` (a table, or JSON) and the
quotations' lines under `narrate cast`'s segments. Reads Speakers only; decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from narration.model import Character, Quotation, Segment, Speakers, Within
from narration.progress import count
from narration.segmenting.inline import WORD


def character_json(c: Character) -> dict[str, Any]:
    """One character as `narrate characters --json` and `narrate cast --json` give it."""
    return {
        "id": c.id,
        "name": c.name,
        "aliases": list(c.aliases),
        "gender": c.gender,
        "gender_evidence": c.gender_evidence,
        "quotations": c.quotations,
        "words": c.words,
        "narrator": c.narrator,
    }


def attributed(speakers: Speakers) -> int:
    """How many quotations have a speaker."""
    return sum(1 for q in speakers.quotations if q.speaker)


def tally(speakers: Speakers) -> str:
    """'4 characters, 120 of 150 quotations attributed', as the build and the table say."""
    return (
        f"{count(len(speakers.characters), 'character')}, "
        f"{attributed(speakers)} of {count(len(speakers.quotations), 'quotation')} attributed"
    )


def characters_table(speakers: Speakers, voice_of: Mapping[str, str] | None = None) -> str:
    """The characters, most quoted first: what a user checks before giving them voices;
    with `voice_of` (character id -> the voice that reads it, and why), a voice column."""
    voice_of = voice_of or {}
    header = ("id", "name", "gender", "evidence", "quotes", "words")
    rows = [(*header, *(("voice",) if voice_of else ()), "also called")]
    for c in speakers.characters:
        others = [a for a in c.aliases if a != c.name]
        rows.append(
            (
                c.id + (" *" if c.narrator else ""),
                c.name,
                c.gender,
                c.gender_evidence or "-",
                str(c.quotations),
                str(c.words),
                *((voice_of.get(c.id, "-"),) if voice_of else ()),
                ", ".join(others),
            )
        )
    columns = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(columns)]
    out = []
    for r in rows:
        cells = [
            r[i].rjust(widths[i]) if i in (4, 5) else r[i].ljust(widths[i]) for i in range(columns)
        ]
        out.append("  ".join([*cells, r[-1]]).rstrip())
    out.append("")
    out.append(tally(speakers) + ".")
    if any(c.narrator for c in speakers.characters):
        out.append("* the first-person narrator ('I said').")
    return "\n".join(out)


@dataclass(frozen=True)
class Held:
    """A quotation's piece inside a cast part, by offsets into its segment's text."""

    quotation: Quotation
    start: int
    end: int


@dataclass(frozen=True)
class PartSpeech:
    """The speech in one cast part: the quotation it is (or is a piece of), or else the
    quotations it holds without being split at them."""

    whole: Quotation | None = None
    held: tuple[Held, ...] = ()


def part_speech(speakers: Speakers, segment: Segment, within: Within | None) -> PartSpeech:
    """What of `segment.text` (all of it, or the stretch `within`) is speech, and whose.

    A part is one quotation when its words all lie inside one quotation's piece (its quote
    marks and the punctuation around them aside)."""
    pairs = speakers.in_segment(segment.id)
    if not pairs:
        return PartSpeech()
    lo, hi = (within.start, within.end) if within else (0, len(segment.text))
    inside = [(q, p) for q, p in pairs if p.start < hi and p.end > lo]
    words = list(WORD.finditer(segment.text, lo, hi))
    if words and len(inside) == 1:
        q, p = inside[0]
        if p.start <= words[0].start() and words[-1].end() <= p.end:
            return PartSpeech(whole=q)
    return PartSpeech(held=tuple(Held(q, max(p.start, lo), min(p.end, hi)) for q, p in inside))


def speech_lines(
    segment: Segment, names: dict[str, str], speech: PartSpeech, preview: int = 40
) -> list[str]:
    """Under a part in `narrate cast`: who speaks it, or who speaks each quotation it holds,
    with the evidence ("speaker unknown" where narrate abstained)."""

    def who(q: Quotation) -> str:
        why = f" ({q.attribution})" if q.attribution else ""
        if q.speaker is None:
            return f"speaker unknown{why}"
        return f"said by {names.get(q.speaker, q.speaker)}{why}"

    if speech.whole is not None:
        return [who(speech.whole)]
    out = []
    shown: set[str] = set()
    for h in speech.held:
        if h.quotation.id in shown:  # "…," said he, "…": one quotation, said once
            continue
        shown.add(h.quotation.id)
        text = " ".join(segment.text[h.start : h.end].split())
        short = text if len(text) <= preview else text[: preview - 1].rstrip() + "…"
        out.append(f"“{short}” {who(h.quotation)}")
    return out
