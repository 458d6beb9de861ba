"""Who speaks: the quotations of a book, its characters and the speaker of each quotation,
found from the text alone (offline, deterministic, no model).

    quotes.py      which quoted stretches are speech, and which pieces are one quotation
    characters.py  names merged into characters, and their genders
    attribute.py   each quotation's speaker, with its evidence, by sieves

Contract: `find_speakers(book)` returns `Speakers`: the characters (most quoted first) and
every quotation in reading order. It reads the Book only: it changes no segment, so no
clip, and it runs whatever voices.yaml says.
"""

from __future__ import annotations

import re
from collections import Counter

from ..inline import WORD
from ..model import Book, Character, Quotation, QuotePiece, Speakers
from .attribute import Attributor, explicit_who, first_person_narrator, vocatives
from .characters import Cast, Mention, Person, build_cast, name_mentions, name_words, pronoun_votes
from .quotes import Paragraph, chapter_paragraphs, quotation_pieces, quote_style

#: A name is a character when it is addressed this often, if it never speaks or has a title.
_ADDRESSED = 2


def find_speakers(book: Book) -> Speakers:
    texts = [s.text for ch in book.chapters for s in ch.segments if s.kind == "narration"]
    style = quote_style(texts)
    chapters: list[tuple[str, list[Paragraph], list[list[tuple[int, QuotePiece]]]]] = []
    for ch in book.chapters:
        paragraphs = chapter_paragraphs(ch, style)
        chapters.append((ch.id, paragraphs, quotation_pieces(paragraphs)))
    valid = name_words(texts)
    mentions: list[Mention] = []
    speakers: Counter[str] = Counter()
    addressed: Counter[str] = Counter()
    narration: list[str] = []
    for _, paragraphs, quotations in chapters:
        for para in paragraphs:
            mentions.extend(name_mentions(para.segment.text, valid))
        spans_by_para: dict[int, list[tuple[int, int]]] = {}
        for q in quotations:
            for k, piece in q:
                spans_by_para.setdefault(k, []).append((piece.start, piece.end))
            k0, p0 = q[0]
            kl, pl = q[-1]
            found = explicit_who(
                paragraphs[k0].segment.text[: p0.start],
                [],
                paragraphs[kl].segment.text[pl.end :],
            )
            if found and found[0][:1].isupper() and found[0] not in ("I", "He", "She"):
                speakers[found[0]] += 1
            for k, piece in q:
                for who in vocatives(paragraphs[k].segment.text[piece.start : piece.end]):
                    addressed[who] += 1
        for k, para in enumerate(paragraphs):
            narration.append(_blank(para.segment.text, spans_by_para.get(k, [])))
    cast = build_cast(mentions, speakers, addressed)
    people = {
        key: p
        for key, p in cast.people.items()
        if p.titled or p.speaks or p.addressed >= _ADDRESSED
    }
    cast.people = people
    cast.by_name = {alias: key for alias, key in cast.by_name.items() if key in people}
    for text in narration:
        pronoun_votes(text, name_mentions(text, valid), cast)
    narrator = None
    if first_person_narrator(narration):
        narrator = Person(key="narrator", narrator=True)
        narrator.names["Narrator"] = 1
    attributor = Attributor(cast, narrator, valid)
    quotations: list[Quotation] = []
    for chapter_id, paragraphs, pieces in chapters:
        turns = attributor.chapter(paragraphs, pieces)
        for t, q in zip(turns, pieces, strict=True):
            quotations.append(
                Quotation(
                    id=f"{chapter_id}.q{t.index + 1}",
                    chapter=chapter_id,
                    pieces=tuple(piece for _, piece in q),
                    speaker=t.speaker.key if t.speaker else None,
                    attribution=t.evidence,
                )
            )
    return _finish(cast, narrator, quotations, chapters)


def _finish(
    cast: Cast,
    narrator: Person | None,
    quotations: list[Quotation],
    chapters: list[tuple[str, list[Paragraph], list[list[tuple[int, QuotePiece]]]]],
) -> Speakers:
    """Characters with stable ids, most quoted first; quotations naming them by id."""
    texts = {p.segment.id: p.segment.text for _, ps, _ in chapters for p in ps}
    count: Counter[str] = Counter()
    words: Counter[str] = Counter()
    for q in quotations:
        if q.speaker:
            count[q.speaker] += 1
            words[q.speaker] += sum(
                len(WORD.findall(texts[p.segment][p.start : p.end])) for p in q.pieces
            )
    people = list(cast.people.values()) + ([narrator] if narrator else [])
    ids: dict[str, str] = {}
    used: set[str] = set()
    characters: list[Character] = []
    for p in sorted(people, key=lambda p: (-count[p.key], -sum(p.names.values()), p.name)):
        cid = _unique(_slug(p.name if not p.narrator else "narrator"), used)
        ids[p.key] = cid
        gender, evidence = p.gender()
        characters.append(
            Character(
                id=cid,
                name=p.name if not p.narrator else "Narrator",
                aliases=tuple(sorted(p.names)) if not p.narrator else ("I",),
                gender=gender,  # type: ignore[arg-type]
                gender_evidence=evidence,
                quotations=count[p.key],
                words=words[p.key],
                narrator=p.narrator,
            )
        )
    quotations = [
        Quotation(q.id, q.chapter, q.pieces, ids[q.speaker] if q.speaker else None, q.attribution)
        for q in quotations
    ]
    return Speakers(characters=tuple(characters), quotations=tuple(quotations))


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for s, e in spans:
        for i in range(max(0, s - 1), min(len(chars), e + 1)):
            chars[i] = " "
    return "".join(chars)


def _slug(name: str) -> str:
    s = re.sub(r"[^\w]+", "-", name.lower().replace(".", "")).strip("-")
    return s or "character"


def _unique(base: str, used: set[str]) -> str:
    out, n = base, 2
    while out in used:
        out, n = f"{base}-{n}", n + 1
    used.add(out)
    return out
