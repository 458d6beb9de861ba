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
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from narration.casting.characters import (
    SET_TO_NARRATION,
    Role,
    cast_characters,
    casts_characters,
    role_json,
    speech_pieces,
    with_speakers_set,
)
from narration.config import RuleConfig, VoicesConfig, text_matches
from narration.errors import Problem
from narration.invocation import narrate
from narration.model import (
    MAX_UTTERANCE,
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
from narration.segmenting.locate import Offsets


def rule_label(index: int, rule: RuleConfig) -> str:
    """How `narrate cast` names a rule: its position, and its name if it has one."""
    return f"rules[{index}]" + (f" {rule.name}" if rule.name else "")


def rule_matches(rule: RuleConfig, chapter: Chapter, segment: Segment) -> bool:
    """True when every matcher the rule sets agrees with the segment (matchers are ANDed)."""
    if rule.kind == "dialogue":
        # Dialogue rules match quotations inside narration, handled by `_speech_parts`.
        return False
    if rule.file is not None and not fnmatch.fnmatchcase(chapter.file, rule.file):
        return False
    if rule.chapter is not None and not fnmatch.fnmatchcase(chapter.id, rule.chapter):
        return False
    if rule.kind is not None and rule.kind != segment.kind:
        return False
    if rule.id is not None and rule.id != segment.id:
        return False
    source = segment.source
    if rule.author is not None and not text_matches(rule.author, source.author if source else None):
        return False
    return not (
        rule.work is not None and not text_matches(rule.work, source.work if source else None)
    )


def _dialogue_rule_matches(rule: RuleConfig, chapter: Chapter, segment: Segment) -> bool:
    if rule.kind != "dialogue" or segment.kind != "narration":
        return False
    if rule.file is not None and not fnmatch.fnmatchcase(chapter.file, rule.file):
        return False
    if rule.chapter is not None and not fnmatch.fnmatchcase(chapter.id, rule.chapter):
        return False
    return rule.id is None or rule.id == segment.id


class Lexicon:
    """Whole-word pronunciation fixes. A key in lower case matches any case; a key with
    capitals matches only that spelling (so `US: U S` leaves the word "us" alone)."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._exact = {k: v for k, v in entries.items() if k != k.lower()}
        self._folded = {k.casefold(): v for k, v in entries.items() if k == k.lower()}
        keys = sorted(entries, key=len, reverse=True)
        self._pattern = (
            re.compile(
                r"(?<![\w])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w])",
                re.IGNORECASE,
            )
            if keys
            else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def apply(self, text: str) -> str:
        if self._pattern is None:
            return text

        def replace(match: re.Match[str]) -> str:
            word = match.group(0)
            if word in self._exact:
                return self._exact[word]
            return self._folded.get(word.casefold(), word)

        return self._pattern.sub(replace, text)


_FIELD = re.compile(r"\{(\w+)\}")

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


def _split_long(text: str) -> list[str]:
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
        for i, rule in enumerate(self.config.rules):
            if rule_matches(rule, chapter, segment):
                return self.voices[rule.voice], rule_label(i, rule), rule
        return self.voices[self.config.default], "default", None

    def announcer(self) -> Voice:
        return self.voices[self.config.announce.voice or self.config.default]


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

    dialogue = next(
        (
            (caster.voices[rule.voice], rule_label(i, rule))
            for i, rule in enumerate(caster.config.rules)
            if _dialogue_rule_matches(rule, chapter, segment)
        ),
        None,
    )
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


def cast_chapter(chapter: Chapter, config: VoicesConfig, caster: _Caster) -> CastChapter:
    announce = config.announce
    narrator = caster.announcer()
    parts: list[CastSegment] = []
    if announce.chapter:
        # "Chapter Four" is not announced as "Chapter 4. Chapter Four."
        number = None if says_its_number(chapter.title) else chapter.number
        text = render_template(
            announce.chapter,
            {"number": number, "title": chapter.title, "author": chapter.author},
        )
        if text:
            parts.append(
                CastSegment(
                    id=f"{chapter.id}.announce",
                    kind="announcement",
                    voice=narrator,
                    rule="announce.chapter",
                    lines=caster.lines(_split_long(text), narrator),
                )
            )
    for segment in chapter.segments:
        voice, why, rule = caster.choose(chapter, segment)
        if (
            segment.kind == "quote"
            and segment.source is not None
            and announce.quote
            and (rule is None or rule.announce)
        ):
            src = segment.source
            # "Statement of 27 February 1921, 1921" says the year twice
            year = None if src.year and src.work and src.year in src.work else src.year
            text = render_template(
                announce.quote, {"author": src.author, "work": src.work, "year": year}
            )
            if text:
                parts.append(
                    CastSegment(
                        id=f"{segment.id}.announce",
                        kind="announcement",
                        voice=narrator,
                        rule="announce.quote",
                        lines=caster.lines(_split_long(text), narrator),
                        source=src,
                    )
                )
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


def unused_rules(
    book: Book,
    config: VoicesConfig,
    path: Path,
    lines: Mapping[Any, int] | None = None,
    speakers: Speakers | None = None,
) -> list[Problem]:
    """Rules that match nothing in the current seeds: warnings, not errors. A dialogue rule
    matches a narration segment holding a quotation (any narration one, without
    `speakers`)."""
    warnings = []
    for i, rule in enumerate(config.rules):
        hit = any(
            rule_matches(rule, ch, seg)
            or (
                _dialogue_rule_matches(rule, ch, seg)
                and (speakers is None or bool(speakers.in_segment(seg.id)))
            )
            for ch in book.chapters
            for seg in ch.segments
        )
        if not hit:
            line = (lines or {}).get(("rules", i))
            warnings.append(
                Problem(
                    path, line, f"{rule_label(i, rule)} matches no segment in the current seeds"
                )
            )
    return warnings


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
