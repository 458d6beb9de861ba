"""Casting: give every segment of the Book a Voice, by the rules in voices.yaml.

Contract: `cast_book(book, config, speakers, roles)` returns one CastChapter per Chapter,
in order. Each CastChapter's parts are the chapter's segments, each with the voice of the
first rule that matches it (else the default voice), and the announcements the narrator
reads: the chapter opening and the source before each quote block. A narration segment
holding quotations is cut into parts at them when voices.yaml casts characters or has a
dialogue rule for it: each quotation read by its speaker's voice (characters.py). Every
part's lines are its sentences, with the lexicon applied to what the engine is given
(`Line.spoken`) and the original kept for transcripts (`Line.text`). Casting is pure: same
book, speakers and config, same cast.

Here: a chapter cast. The rules and what they match are rules.py's (a new kind of casting
rule goes there), the announcements' templates announce.py's, the pronunciation fixes
lexicon.py's, the characters' voices characters.py's, and what `narrate cast` shows
show.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from narration.casting.announce import render_template, says_its_number, split_long
from narration.casting.characters import (
    SET_TO_NARRATION,
    Role,
    cast_characters,
    casts_characters,
    speech_pieces,
    with_speakers_set,
)
from narration.casting.lexicon import Lexicon
from narration.casting.rules import dialogue_rule, first_rule, rule_label, unused_rules
from narration.casting.show import cast_outline, cast_to_json, characters_json
from narration.config import RuleConfig, VoicesConfig
from narration.model import (
    Book,
    CastChapter,
    CastSegment,
    Chapter,
    Line,
    Segment,
    Source,
    Speakers,
    Voice,
    Within,
)


@dataclass(frozen=True)
class _Caster:
    config: VoicesConfig
    voices: Mapping[str, Voice]
    lexicons: Mapping[str, Lexicon]
    speakers: Speakers
    roles: Mapping[str, Role]

    def lines(self, sentences: Iterable[str], voice: Voice) -> tuple[Line, ...]:
        lexicon = self.lexicons.get(voice.name)
        if lexicon is None:  # a character's voice from the engine: the shared lexicon
            lexicon = self.lexicons[f"engine:{voice.engine}"]
        return tuple(Line(text=s, spoken=lexicon.apply(s)) for s in sentences if s.strip())

    def choose(self, chapter: Chapter, segment: Segment) -> tuple[Voice, str, RuleConfig | None]:
        found = first_rule(self.config.rules, chapter, segment)
        if found is None:
            return self.voices[self.config.default], "default", None
        i, rule = found
        return self.voices[rule.voice], rule_label(i, rule), rule

    def announcer(self) -> Voice:
        return self.voices[self.config.announce.voice or self.config.default]

    def announcement(
        self, of: str, rule: str, text: str, source: Source | None = None
    ) -> CastSegment:
        """What the narrator says before `of` (a chapter or a quote block)."""
        narrator = self.announcer()
        return CastSegment(
            id=f"{of}.announce",
            kind="announcement",
            voice=narrator,
            rule=rule,
            lines=self.lines(split_long(text), narrator),
            source=source,
        )


def _build_caster(
    config: VoicesConfig, speakers: Speakers, roles: Mapping[str, Role] | None
) -> _Caster:
    voices = {name: vc.as_voice(name) for name, vc in config.voices.items()}
    lexicons = {name: Lexicon(config.lexicon_for(name)) for name in config.voices}
    for engine in {"pyttsx3", "kokoro", *config.engines}:
        lexicons[f"engine:{engine}"] = Lexicon(config.shared_lexicon(engine))
    if roles is None:
        roles = cast_characters(speakers, config, (), voices)
    return _Caster(config, voices, lexicons, speakers, roles)


def _speech_parts(
    caster: _Caster, chapter: Chapter, segment: Segment, base: Voice, base_rule: str
) -> list[CastSegment] | None:
    """A narration segment cut at its quotations, each read by its speaker's voice (a
    character cast in voices.yaml), else by a matching dialogue rule's, else by the
    narration's; None when voices.yaml neither casts characters nor has a dialogue rule
    for it (the segment is read whole)."""
    from narration.segmenting.sentences import split_sentences

    found = dialogue_rule(caster.config.rules, chapter, segment)
    dialogue = (caster.voices[found[1].voice], rule_label(*found)) if found else None
    if dialogue is None and not casts_characters(caster.config):
        return None
    pieces = speech_pieces(segment, caster.speakers)
    if not any(p.quotation for p in pieces):
        return None
    parts: list[CastSegment] = []
    for n, piece in enumerate(pieces):
        who, why = base, base_rule
        if piece.quotation is not None:
            who, why = dialogue or (base, base_rule)
            q = piece.quotation
            role = caster.roles.get(q.speaker) if q.speaker else None
            if q.attribution == SET_TO_NARRATION or (role is not None and role.how == "narrator"):
                who, why = base, f"characters: narrator ({base_rule})"
            elif role is not None and role.voice is not None:
                who, why = role.voice, f"characters: {role.how}"
        text = segment.text[piece.start : piece.end]
        lines = caster.lines(split_sentences(text.strip()), who)
        if lines:
            parts.append(
                CastSegment(
                    id=f"{segment.id}.{n}",
                    kind="dialogue" if piece.quotation is not None else segment.kind,
                    voice=who,
                    rule=why,
                    lines=lines,
                    segment=segment,
                    within=Within(
                        piece.start + len(text) - len(text.lstrip()),
                        piece.end - len(text) + len(text.rstrip()),
                    ),
                )
            )
    return parts


def _chapter_announcement(chapter: Chapter, caster: _Caster) -> CastSegment | None:
    """What the narrator says as a chapter opens, from `announce.chapter`."""
    template = caster.config.announce.chapter
    if not template:
        return None
    # "Chapter Four" is not announced as "Chapter 4. Chapter Four."
    number = None if says_its_number(chapter.title) else chapter.number
    text = render_template(
        template, {"number": number, "title": chapter.title, "author": chapter.author}
    )
    if not text:
        return None
    return caster.announcement(chapter.id, "announce.chapter", text)


def _quote_announcement(
    segment: Segment, rule: RuleConfig | None, caster: _Caster
) -> CastSegment | None:
    """What the narrator says before a quote block with a source, from `announce.quote`
    (unless the rule that casts the quote says not to)."""
    src = segment.source
    template = caster.config.announce.quote
    if segment.kind != "quote" or src is None or not template:
        return None
    if rule is not None and not rule.announce:
        return None
    # "Statement of 27 February 1921, 1921" says the year twice
    year = None if src.year and src.work and src.year in src.work else src.year
    text = render_template(template, {"author": src.author, "work": src.work, "year": year})
    if not text:
        return None
    return caster.announcement(segment.id, "announce.quote", text, src)


def cast_chapter(chapter: Chapter, config: VoicesConfig, caster: _Caster) -> CastChapter:
    """A chapter's parts: its announcement, then each segment with its voice (a narration
    segment cut at its quotations when voices.yaml says who reads them), each quote block
    with a source after its announcement."""
    opening = _chapter_announcement(chapter, caster)
    parts: list[CastSegment] = [opening] if opening is not None else []
    for segment in chapter.segments:
        voice, why, rule = caster.choose(chapter, segment)
        announcement = _quote_announcement(segment, rule, caster)
        if announcement is not None:
            parts.append(announcement)
        split = (
            _speech_parts(caster, chapter, segment, voice, why)
            if segment.kind == "narration"
            else None
        )
        if split is not None:
            parts.extend(split)
            continue
        lines = caster.lines(segment.sentences, voice)
        if lines:
            parts.append(
                CastSegment(
                    id=segment.id,
                    kind=segment.kind,
                    voice=voice,
                    rule=why,
                    lines=lines,
                    source=segment.source,
                    segment=segment,
                )
            )
    return CastChapter(chapter=chapter, parts=tuple(parts))


def cast_book(
    book: Book,
    config: VoicesConfig,
    speakers: Speakers | None = None,
    roles: Mapping[str, Role] | None = None,
) -> list[CastChapter]:
    """`speakers`: who speaks (find_speakers' with voices.yaml's corrections; found here when
    not given); `roles`: the characters' voices (cast_characters'; without the engine's
    voices when not given, so only pinned characters have one)."""
    if speakers is None:
        from narration.segmenting.speakers import find_speakers

        chars = config.characters
        speakers = with_speakers_set(book, find_speakers(book, chars.merge, chars.split), config)
    caster = _build_caster(config, speakers, roles)
    return [cast_chapter(ch, config, caster) for ch in book.chapters]


__all__ = [
    "Lexicon",
    "cast_book",
    "cast_chapter",
    "cast_outline",
    "cast_to_json",
    "characters_json",
    "render_template",
    "unused_rules",
]
