"""What `narrate cast` and `narrate characters` show: the cast as JSON (each part's voice,
rule, span and speech) and as an outline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from narration.casting.characters import (
    Role,
    role_json,
)
from narration.config import VoicesConfig
from narration.invocation import narrate
from narration.model import (
    CastChapter,
    CastSegment,
    Source,
    Speakers,
)
from narration.segmenting.offsets import Offsets


def _source_json(source: Source | None) -> dict[str, str | None] | None:
    if source is None:
        return None
    return {"author": source.author, "work": source.work, "year": source.year}


def cast_to_json(
    cast: Iterable[CastChapter],
    speakers: Speakers | None = None,
    texts: Mapping[str, str] | None = None,
    roles: Mapping[str, Role] | None = None,
    config: VoicesConfig | None = None,
) -> dict[str, Any]:
    """The `narrate segments --json` shape with "voice" and "rule" on every segment, who
    speaks it ("speaker", "attribution") or the quotations it holds ("quotations"), and
    where it stands in its seed file ("span", offsets into `texts`, Book.texts); the book's
    characters at the top level.

    Announcements appear in reading order as segments of kind "announcement"; a narration
    segment split at dialogue spans appears as its pieces.
    """
    speakers = speakers or Speakers()
    where = Offsets(texts or {})
    chapters = []
    for cc in cast:
        ch = cc.chapter
        chapters.append(
            {
                "id": ch.id,
                "title": ch.title,
                "author": ch.author,
                "file": ch.file,
                "segments": [
                    {
                        "id": p.id,
                        "kind": p.kind,
                        "text": " ".join(line.text for line in p.lines),
                        "source": _source_json(p.source),
                        "voice": p.voice.name,
                        "rule": p.rule,
                        **_speech_json(p, speakers, where),
                    }
                    for p in cc.parts
                ],
            }
        )
    return {
        "chapters": chapters,
        "characters": characters_json(speakers, roles, config),
    }


def characters_json(
    speakers: Speakers, roles: Mapping[str, Role] | None, config: VoicesConfig | None
) -> list[dict[str, Any]]:
    """The characters as `narrate characters --json` gives them: with their voice and why,
    when there is a voices.yaml to cast them."""
    from narration.segmenting.speakers.review import character_json

    return [
        character_json(c)
        | ({"voice": role_json((roles or {}).get(c.id), config)} if config is not None else {})
        for c in speakers.characters
    ]


def _speech_json(part: CastSegment, speakers: Speakers, where: Offsets) -> dict[str, Any]:
    """A part's span in its file, and its speaker or the quotations it holds."""
    from narration.segmenting.speakers.review import part_speech

    segment = part.segment
    if segment is None:
        return {"span": None, "speaker": None, "attribution": None, "quotations": []}
    speech = part_speech(speakers, segment, part.within)
    whole = speech.whole
    # a part's place: its segment's span, or its piece's
    within = part.within
    span = segment.span if within is None else where.range(segment, within.start, within.end)
    quotations = []
    for h in speech.held:
        at = where.range(segment, h.start, h.end)
        quotations.append(
            {
                "start": at.start if at else None,
                "end": at.end if at else None,
                "speaker": h.quotation.speaker,
                "attribution": h.quotation.attribution,
            }
        )
    return {
        "span": {"file": span.file, "start": span.start, "end": span.end} if span else None,
        "speaker": whole.speaker if whole else None,
        "attribution": whole.attribution if whole else None,
        "quotations": quotations,
    }


def cast_outline(
    cast: Iterable[CastChapter],
    preview: int = 60,
    speakers: Speakers | None = None,
    roles: Mapping[str, Role] | None = None,
) -> str:
    """Who reads what, per chapter, and per voice the number of segments and words; under a
    part, who speaks it or each quotation in it, with the evidence; at the end, the voice
    of each character that has one, and why."""
    from narration.segmenting.speakers.review import part_speech, speech_lines

    speakers = speakers or Speakers()
    names = {c.id: c.name for c in speakers.characters}
    out: list[str] = []
    per_voice: dict[str, list[int]] = {}
    cast = list(cast)
    every = [p for cc in cast for p in cc.parts]
    # columns as wide as their widest entry ("character:mrs-grey"), 28 and 12 at least
    iw = max([28, *(len(p.id) for p in every)])
    vw = max([12, *(len(p.voice.name) for p in every)])
    rw = max([22, *(len(p.rule) for p in every)])
    for cc in cast:
        ch = cc.chapter
        out.append(
            f"{ch.number:>2}. {ch.title}"
            + (f" - {ch.author}" if ch.author else "")
            + f"  [{ch.file}]"
        )
        for p in cc.parts:
            text = " ".join(line.text for line in p.lines)
            short = text if len(text) <= preview else text[: preview - 1].rstrip() + "…"
            out.append(f"    {p.id:<{iw}} {p.kind:<12} {p.voice.name:<{vw}} {p.rule:<{rw}} {short}")
            if p.segment is not None:
                speech = part_speech(speakers, p.segment, p.within)
                for line in speech_lines(p.segment, names, speech):
                    out.append(f"    {'':<{iw}} {line}")
            stats = per_voice.setdefault(p.voice.name, [0, 0])
            stats[0] += 1
            stats[1] += len(text.split())
        out.append("")
    out.append("Voices:")
    for name, (segments, words) in sorted(per_voice.items()):
        out.append(f"    {name:<{vw}} {segments:>5} segments {words:>7} words")
    if speakers.quotations:
        from narration.segmenting.speakers.review import tally

        out.append("")
        out.append(f"Speakers: {tally(speakers)} ({narrate()} characters lists them).")
    voiced = [(c, r) for c in speakers.characters if (r := (roles or {}).get(c.id)) and r.voice]
    if voiced:
        out.append("Characters' voices:")
        for c, r in voiced:
            assert r.voice is not None
            out.append(f"    {c.name:<24} {r.voice.engine_voice:<28} {r.how}: {r.why}")
    return "\n".join(out)
