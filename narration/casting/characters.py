"""Voices for the characters: `characters:` in voices.yaml, over the speakers narrate found.

Contract: `cast_characters(speakers, config, palette)` gives every character a `Role`: the
voice that reads its quotations and why. Pure and deterministic: the same speakers, the
same voices.yaml and the same engine voices give the same cast.

The automatic cast is stable as well as deterministic: the characters with a voice of
their own choose in the order they first speak, each the free voice of its gender it ranks
first, in the engine's most distinct tier that has one (espeak-ng's numbered variants,
each with its own accent; Kokoro's best grades), by a hash of its own id and the voice
(rendezvous hashing). So text changed elsewhere never moves a voice, a character who first
speaks later never takes one from a character already cast, and pinning a character keeps
its automatic voice unused, so it moves no one. Only a character cast anew before others
(a merge, a split, one crossing min_quotations) can move a later one's voice, and only
where it took the very voice that one ranked first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from narration.config import DEFAULT_ENGINE, CharactersConfig, VoiceConfig, VoicesConfig
from narration.errors import Problem
from narration.invocation import narrate
from narration.model import (
    CHARACTER_VOICE,
    Book,
    CastableVoice,
    Character,
    Quotation,
    Segment,
    Speakers,
    Voice,
)
from narration.segmenting.inline import WORD

#: How a character got its voice, as `narrate characters` and `narrate cast` say it.
How = Literal["pinned", "automatic", "shared pool", "narrator", "fallback"]

#: The speaker a `characters.speakers` entry may name for the narration's own voice.
NARRATION = "narrator"
#: ...and for nobody in particular: the fallback.
NOBODY = "unknown"


@dataclass(frozen=True)
class Role:
    """A character's voice in this production, and why.

    `voice` None: its quotations are read by the fallback, the voice of a matching
    `kind: dialogue` rule or else the narration's (for the narrator, the narration's)."""

    character: str  # Character.id
    voice: Voice | None
    how: How
    why: str  # "automatic: Scottish, variant m3 (male)", "pinned in characters.voices"


def name_key(name: str) -> str:
    """A name as voices.yaml may write it: any case, with or without the dots of titles."""
    return " ".join(name.replace(".", " ").casefold().split())


def character_index(speakers: Speakers) -> dict[str, Character]:
    """Every name, alias and id of the characters, as `name_key` writes it. A name two
    characters share goes to the one the book quotes most (characters come most quoted
    first)."""
    index: dict[str, Character] = {}
    for c in speakers.characters:
        for name in (c.id, c.name, *c.aliases):
            index.setdefault(name_key(name), c)
    return index


def _rank(character: str, voice: CastableVoice) -> str:
    return hashlib.sha256(f"{character}\0{voice.engine_voice}".encode()).hexdigest()


def _auto_voice(character: Character, chosen: CastableVoice, base: VoiceConfig | None) -> Voice:
    """The engine's voice with the pace of the default voice, when it is the same engine's."""
    same = base is not None and base.engine == chosen.engine
    return Voice(
        name=f"{CHARACTER_VOICE}{character.id}",
        label=character.name,
        engine_voice=chosen.engine_voice,
        rate=base.rate if same and base is not None else VoiceConfig().rate,
        pitch=VoiceConfig().pitch,  # the variant gives the pitch
        volume=1.0,
        engine=chosen.engine,
        speed=base.speed if same and base is not None else 1.0,
    )


def auto_engine(config: VoicesConfig) -> str:
    """The engine whose voices the automatic cast picks from."""
    chars = config.characters
    return chars.engine or config.voices[config.default].engine or DEFAULT_ENGINE


def cast_characters(
    speakers: Speakers,
    config: VoicesConfig,
    palette: Sequence[CastableVoice] = (),
    voices: Mapping[str, Voice] | None = None,
) -> dict[str, Role]:
    """Each character's Role, by id. `palette`: the engine's voices for casting (in its
    order, most distinct first); `voices`: voices.yaml's, made."""

    chars = config.characters
    made = dict(voices or {name: vc.as_voice(name) for name, vc in config.voices.items()})
    index = character_index(speakers)
    pinned: dict[str, str] = {}
    for who, voice_name in chars.voices.items():
        c = index.get(name_key(who))
        if c is not None:
            pinned.setdefault(c.id, voice_name)
    first: dict[str, int] = {}
    for n, q in enumerate(speakers.quotations):
        if q.speaker is not None:
            first.setdefault(q.speaker, n)
    # the book's own voices are not given to characters: each character sounds unlike them
    taken_by_book = {(vc.engine, vc.engine_voice) for vc in config.voices.values()}
    base = config.voices.get(config.default)
    by_gender: dict[str, list[CastableVoice]] = {"male": [], "female": []}
    for v in palette:
        if (v.engine, v.engine_voice) not in taken_by_book:
            by_gender[v.gender].append(v)
    pools: dict[str, list[CastableVoice]] = {}
    own: dict[str, list[CastableVoice]] = {}
    for gender, offered in by_gender.items():
        size = min(chars.pool, len(offered))
        pools[gender] = offered[len(offered) - size :]
        own[gender] = offered[: len(offered) - size]
    roles: dict[str, Role] = {}
    used: set[str] = set()
    order = sorted(speakers.characters, key=lambda c: (first.get(c.id, len(first)), c.id))
    for c in order:
        role = _automatic(c, chars, own, pools, used, base)
        if c.id in pinned:
            # a pinned character keeps the voice it would have had, unused, so pinning one
            # never moves another's
            voice = made[pinned[c.id]]
            role = Role(c.id, voice, "pinned", f"pinned to '{voice.name}'")
        roles[c.id] = role
    return roles


def _automatic(
    c: Character,
    chars: CharactersConfig,
    own: Mapping[str, Sequence[CastableVoice]],
    pools: Mapping[str, Sequence[CastableVoice]],
    used: set[str],
    base: VoiceConfig | None,
) -> Role:
    """The voice the automatic cast gives `c` (taking it from `used`'s free ones)."""
    if c.narrator:
        return Role(c.id, None, "narrator", "the narrator: the narration's voice")
    if not chars.auto:
        return Role(c.id, None, "fallback", "not cast (characters.auto is off)")
    if not c.quotations:
        return Role(c.id, None, "fallback", "no quotation is theirs")
    if c.gender not in own:
        return Role(c.id, None, "fallback", "gender unknown (characters.genders can say)")
    if not own[c.gender] and not pools[c.gender]:
        return Role(c.id, None, "fallback", f"the engine offers no other {c.gender} voice")
    free = [v for v in own[c.gender] if v.engine_voice not in used]
    if c.quotations >= chars.min_quotations and free:
        chosen = min(free, key=lambda v: (v.tier, _rank(c.id, v)))
        used.add(chosen.engine_voice)
        return Role(c.id, _auto_voice(c, chosen, base), "automatic", chosen.description)
    chosen = min(pools[c.gender], key=lambda v: _rank(c.id, v))
    why = (
        f"fewer than {chars.min_quotations} quotations"
        if c.quotations < chars.min_quotations
        else f"no {c.gender} voice of its own left"
    )
    return Role(c.id, _auto_voice(c, chosen, base), "shared pool", f"{chosen.description}; {why}")


def casts_characters(config: VoicesConfig) -> bool:
    """Whether voices.yaml gives any character a voice (so quotations are read apart)."""
    chars = config.characters
    return chars.auto or bool(chars.voices) or bool(chars.speakers)


#: The attribution of a quotation voices.yaml gives the narration's voice.
SET_TO_NARRATION = "set in voices.yaml: the narration's voice"
_SET = "set in voices.yaml"
#: Quote marks a quotation's piece leaves out, taken into its part for the transcript.
_OPENING = "\"“‘«'"
_CLOSING = "\"”’»'"


@dataclass(frozen=True)
class Piece:
    """A stretch of a segment's text read as one part: narration, or a quotation's piece."""

    start: int
    end: int
    quotation: Quotation | None


def speech_pieces(segment: Segment, speakers: Speakers) -> list[Piece]:
    """The segment cut at its quotations, each with its quote marks; stretches with no word
    left out. Numbered in order, they are the parts `narrate cast` shows as `<id>.0`, `.1`…
    """
    text = segment.text
    pieces: list[Piece] = []
    cursor = 0
    for q, p in speakers.in_segment(segment.id):
        start, end = p.start, p.end
        if start > 0 and text[start - 1] in _OPENING:
            start -= 1
        if end < len(text) and text[end] in _CLOSING:
            end += 1
        if start < cursor:
            continue
        pieces.append(Piece(cursor, start, None))
        pieces.append(Piece(start, end, q))
        cursor = end
    pieces.append(Piece(cursor, len(text), None))
    return [p for p in pieces if WORD.search(text, p.start, p.end)]


def with_speakers_set(book: Book, speakers: Speakers, config: VoicesConfig) -> Speakers:
    """Speakers with voices.yaml's corrections applied: `characters.speakers` (each
    quotation in a part, or a whole segment, it names given that speaker, and the
    characters' counts again) and `characters.genders`."""
    wanted = config.characters.speakers
    genders = {name_key(k): g for k, g in config.characters.genders.items()}
    if not wanted and not genders:
        return speakers
    index = character_index(speakers)
    changed: dict[str, Quotation] = {}
    for chapter in book.chapters if wanted else ():
        for segment in chapter.segments:
            if not speakers.in_segment(segment.id):
                continue
            for n, piece in enumerate(speech_pieces(segment, speakers)):
                who = wanted.get(f"{segment.id}.{n}", wanted.get(segment.id))
                q = piece.quotation
                if who is None or q is None:
                    continue
                key = name_key(who)
                character = index.get(key)
                if character is not None:
                    changed.setdefault(
                        q.id, Quotation(q.id, q.chapter, q.pieces, character.id, _SET)
                    )
                elif key == NARRATION:
                    changed.setdefault(
                        q.id, Quotation(q.id, q.chapter, q.pieces, None, SET_TO_NARRATION)
                    )
                elif key == NOBODY:
                    changed.setdefault(q.id, Quotation(q.id, q.chapter, q.pieces, None, _SET))
    gender_of: dict[str, str] = {}
    for key, gender in genders.items():
        if (c := index.get(key)) is not None:
            gender_of.setdefault(c.id, gender)
    if not changed and not gender_of:
        return speakers
    quotations = tuple(changed.get(q.id, q) for q in speakers.quotations)
    return _recounted(book, speakers, quotations, gender_of)


def _recounted(
    book: Book, speakers: Speakers, quotations: tuple[Quotation, ...], gender_of: Mapping[str, str]
) -> Speakers:
    """The speakers with these quotations, each character's quotations and words counted
    again, and its gender where voices.yaml sets it."""
    texts = {s.id: s.text for ch in book.chapters for s in ch.segments}
    count: dict[str, int] = {}
    words: dict[str, int] = {}
    for q in quotations:
        if q.speaker is not None:
            count[q.speaker] = count.get(q.speaker, 0) + 1
            words[q.speaker] = words.get(q.speaker, 0) + sum(
                len(WORD.findall(texts[p.segment], p.start, p.end)) for p in q.pieces
            )
    characters = tuple(
        Character(
            c.id,
            c.name,
            c.aliases,
            gender_of.get(c.id, c.gender),  # type: ignore[arg-type]
            _SET if c.id in gender_of else c.gender_evidence,
            count.get(c.id, 0),
            words.get(c.id, 0),
            c.narrator,
        )
        for c in speakers.characters
    )
    return Speakers(characters=characters, quotations=quotations)


def fallback_voice(config: VoicesConfig, how: How) -> str:
    """The voice that reads a character without one of its own, as a listing names it: the
    narration's (the default voice), or for the others a dialogue rule's that applies to
    the whole book."""
    if how != "narrator":
        for rule in config.rules:
            if rule.kind == "dialogue" and rule.file is rule.chapter is rule.id is None:
                return rule.voice
    return config.default


def role_json(role: Role | None, config: VoicesConfig) -> dict[str, Any]:
    """A character's voice as `narrate characters --json` and `narrate cast --json` give it."""
    if role is None:
        return {"name": config.default, "how": "fallback", "why": "not cast"}
    if role.voice is None:
        return {"name": fallback_voice(config, role.how), "how": role.how, "why": role.why}
    v = role.voice
    return {
        "name": v.name,
        "label": v.label,
        "engine": v.engine,
        "engine_voice": v.engine_voice,
        "how": role.how,
        "why": role.why,
    }


def role_text(role: Role | None, config: VoicesConfig) -> str:
    """A character's voice in `narrate characters`' table: 'gmw/en-gb+m3 (automatic)'."""
    if role is None or role.voice is None:
        how = role.how if role else "fallback"
        return f"{fallback_voice(config, how)} ({how})"
    shown = role.voice.name if role.how == "pinned" else role.voice.engine_voice
    return f"{shown} ({role.how})"


@dataclass(frozen=True)
class _Entries:
    """`characters:` in voices.yaml as its warnings name it: the file, each entry's line,
    and the characters found, by every name."""

    path: Path
    lines: Mapping[tuple[str | int, ...], int]
    index: Mapping[str, Character]

    def problem(self, loc: tuple[str | int, ...], message: str) -> Problem:
        return Problem(self.path, self.lines.get(loc), message)

    def unknown(self, name: str, loc: tuple[str | int, ...], where: str) -> list[Problem]:
        """A warning when no character found is called `name`."""
        if name_key(name) in self.index:
            return []
        return [
            self.problem(
                loc,
                f"{where}: no character found is called '{name}' "
                f"(`{narrate()} characters` lists them)",
            )
        ]


def character_problems(
    book: Book,
    speakers: Speakers,
    config: VoicesConfig,
    path: Path,
    lines: Mapping[tuple[str | int, ...], int],
    palette: Sequence[CastableVoice] = (),
) -> list[Problem]:
    """What in `characters:` matches nothing in the current seeds: warnings, each with its
    line (the seeds change; a name may come back)."""
    entries = _Entries(path, lines, character_index(speakers))
    problems = _name_problems(config.characters, entries)
    problems += _speaker_problems(book, speakers, config.characters, entries)
    if config.characters.auto and not palette:
        problems.append(
            entries.problem(
                ("characters", "auto"),
                f"characters.auto: the {auto_engine(config)} engine offers no voices to cast "
                "in the book's language; the characters are read by the fallback",
            )
        )
    return problems


def _name_problems(chars: CharactersConfig, entries: _Entries) -> list[Problem]:
    """Names in `voices`, `genders`, `merge` and `split` that no character is called, and
    a character given twice in `voices` or `genders`."""
    problems: list[Problem] = []
    for who in chars.voices:
        problems += entries.unknown(who, ("characters", "voices", who), f"characters.voices.{who}")
    for who in chars.genders:
        loc = ("characters", "genders", who)
        problems += entries.unknown(who, loc, f"characters.genders.{who}")
    lines = entries.lines
    for section, given in (("voices", chars.voices), ("genders", chars.genders)):
        seen: dict[str, str] = {}
        for who in given:
            c = entries.index.get(name_key(who))
            if c is None:
                continue
            if c.id in seen:
                problems.append(
                    entries.problem(
                        ("characters", section, who),
                        f"characters.{section}.{who}: {c.name} is given already, as "
                        f"'{seen[c.id]}' (line {lines.get(('characters', section, seen[c.id]))}); "
                        "the first is used",
                    )
                )
            else:
                seen[c.id] = who
    for i, group in enumerate(chars.merge):
        for j, name in enumerate(group):
            problems += entries.unknown(
                name, ("characters", "merge", i, j), f"characters.merge[{i}]"
            )
    for i, name in enumerate(chars.split):
        problems += entries.unknown(name, ("characters", "split", i), f"characters.split[{i}]")
    return problems


def _speaker_problems(
    book: Book, speakers: Speakers, chars: CharactersConfig, entries: _Entries
) -> list[Problem]:
    """Entries of `speakers` naming no part or segment with a quotation, or no character,
    or setting a quotation another entry set to someone else."""
    parts: dict[str, tuple[str, ...]] = {}  # part or segment id -> its quotations' ids
    for chapter in book.chapters if chars.speakers else ():
        for segment in chapter.segments:
            pieces = speech_pieces(segment, speakers) if speakers.in_segment(segment.id) else []
            held = [(n, p.quotation.id) for n, p in enumerate(pieces) if p.quotation]
            if held:
                parts[segment.id] = tuple(dict.fromkeys(q for _, q in held))
                parts.update((f"{segment.id}.{n}", (q,)) for n, q in held)
    problems: list[Problem] = []
    said: dict[str, tuple[str, str]] = {}  # quotation id -> the entry that set it, and who
    for part, who in chars.speakers.items():
        loc = ("characters", "speakers", part)
        if part not in parts:
            problems.append(
                entries.problem(
                    loc,
                    f"characters.speakers.{part}: no quotation is in a part or segment of "
                    f"this id (`{narrate()} cast` shows them)",
                )
            )
            continue
        if name_key(who) not in (NARRATION, NOBODY):
            problems += entries.unknown(who, loc, f"characters.speakers.{part}")
        for q in parts[part]:
            first_part, first_who = said.setdefault(q, (part, who))
            if first_part != part and name_key(first_who) != name_key(who):
                first_line = entries.lines.get(("characters", "speakers", first_part))
                problems.append(
                    entries.problem(
                        loc,
                        f"characters.speakers.{part}: the same quotation as {first_part} "
                        f"(line {first_line}), set "
                        f"to '{first_who}' there; a part sets every piece of its quotation, "
                        "and the piece first in the text is used",
                    )
                )
                break
    return problems
