"""Who speaks: the quotations of a book, its characters and the speaker of each quotation,
found from the text alone (offline, deterministic, no model).

    quotes.py      which quoted stretches are speech, and which pieces are one quotation
    names.py       titles, word lists and the mentions of names in the text
    characters.py  names merged into characters, and their genders
    evidence.py    the patterns that name a speaker ("said Ellen", a vocative)
    attribute.py   each quotation's speaker, with its evidence, by sieves
    review.py      what `narrate characters` and `narrate speakers` show of them

Contract: `find_speakers(book)` returns `Speakers`: the characters (most quoted first) and
every quotation in reading order. It reads the Book only: it changes no segment, so no
clip, and it runs whatever voices.yaml says.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from narration.model import Book, Character, Quotation, Speakers
from narration.segmenting.ids import unique_id
from narration.segmenting.inline import WORD
from narration.segmenting.speakers.attribute import Attributor, Turn, around
from narration.segmenting.speakers.characters import Cast, Person, build_cast, pronoun_votes
from narration.segmenting.speakers.evidence import (
    explicit_who,
    first_person_narrator,
    two_speakers,
    vocatives,
)
from narration.segmenting.speakers.names import Mention, name_mentions, name_words, outside
from narration.segmenting.speakers.quotes import (
    Paragraph,
    Stretch,
    chapter_paragraphs,
    quotation_pieces,
    quote_style,
)

#: A name is a character when it is addressed this often, if it never speaks or has a title.
_ADDRESSED = 2
#: A name the narration uses this often, its gender known, is a character too.
_NARRATED = 5


@dataclass(frozen=True)
class ChapterQuotes:
    """A chapter's paragraphs and its quotations, as the speakers are found."""

    id: str
    paragraphs: list[Paragraph]
    quotations: list[list[Stretch]]


def find_speakers(
    book: Book, merge: Sequence[Sequence[str]] = (), split: Sequence[str] = ()
) -> Speakers:
    """The book's characters and who speaks each quotation. `merge` and `split` are the
    user's corrections (voices.yaml's `characters:`): groups of names that are one
    character, and names that are a character of their own."""
    texts = [s.text for ch in book.chapters for s in ch.segments if s.kind == "narration"]
    style = quote_style(texts)
    chapters: list[ChapterQuotes] = []
    for ch in book.chapters:
        paragraphs = chapter_paragraphs(ch, style)
        chapters.append(
            ChapterQuotes(ch.id, paragraphs, quotation_pieces(paragraphs, two_speakers))
        )
    speakers, called = _said_and_called(chapters)
    # a word an attribution names as a speaker, or speech addresses more than once, is a
    # name, however seldom the book writes it ("Guest," they call the narrator)
    valid = (
        name_words(texts)
        | {w for name in speakers for w in name.split()}
        | {w for name, n in called.items() if n >= _ADDRESSED for w in name.split()}
    )
    mentions, narration, names = _mentions(chapters, valid)
    cast = build_cast(mentions, speakers, called, merge, split)
    for text, outside_names in narration:
        pronoun_votes(text, outside_names, cast)
    _keep_people(cast)
    narrator, runs = _attribute(cast, chapters, names, [text for text, _ in narration])
    quotations: list[Quotation] = []
    for chapter, turns in zip(chapters, runs, strict=True):
        for t, q in zip(turns, chapter.quotations, strict=True):
            quotations.append(
                Quotation(
                    id=f"{chapter.id}.q{t.index + 1}",
                    chapter=chapter.id,
                    pieces=tuple(piece.piece for piece in q),
                    speaker=t.speaker.key if t.speaker else None,
                    attribution=t.evidence,
                )
            )
    return _finish(cast, narrator, quotations, chapters)


def _said_and_called(chapters: list[ChapterQuotes]) -> tuple[Counter[str], Counter[str]]:
    """The names attributions give as speakers, and the names speech addresses after a
    comma ("But now, Guest, we are…"), with how often."""
    speakers: Counter[str] = Counter()
    called: Counter[str] = Counter()
    for chapter in chapters:
        paragraphs, quotations = chapter.paragraphs, chapter.quotations
        for q in quotations:
            near = around(q, paragraphs)
            found = explicit_who(near.before, near.betweens, near.after)
            if found:
                for m in name_mentions(found.who)[:1]:
                    speakers[m.text] += 1
            for piece in q:
                inner = paragraphs[piece.paragraph].segment.text[piece.start : piece.end]
                for who, inside in vocatives(inner):
                    if inside:
                        called[who] += 1
    return speakers, called


def _mentions(
    chapters: list[ChapterQuotes], valid: frozenset[str]
) -> tuple[list[Mention], list[tuple[str, list[Mention]]], dict[str, list[Mention]]]:
    """Every name in the paragraphs; each paragraph's narration (its quotations blanked)
    with the names outside them; and the names by segment id, found once."""
    mentions: list[Mention] = []
    narration: list[tuple[str, list[Mention]]] = []
    names: dict[str, list[Mention]] = {}
    for chapter in chapters:
        paragraphs, quotations = chapter.paragraphs, chapter.quotations
        spans_by_para: dict[int, list[tuple[int, int]]] = {}
        for q in quotations:
            for piece in q:
                spans_by_para.setdefault(piece.paragraph, []).append((piece.start, piece.end))
        for k, para in enumerate(paragraphs):
            found_here = names[para.segment.id] = name_mentions(para.segment.text, valid)
            mentions.extend(found_here)
            spans = spans_by_para.get(k, [])
            narration.append((_blank(para.segment.text, spans), outside(found_here, spans)))
    return mentions, narration, names


def _keep_people(cast: Cast) -> None:
    """Only the names that are people stay in the cast: titled, speaking, addressed, or
    often in the narration with a gender its pronouns give ("John is a physician", "John
    laughs at me")."""
    people = {
        key: p
        for key, p in cast.people.items()
        if p.titled
        or p.fixed
        or p.speaks
        or p.addressed >= _ADDRESSED
        or (
            p.narrated >= _NARRATED
            and p.gender()[0] != "unknown"
            and p.located * 3 < p.narrated  # not a place ("in India", "she" too)
        )
    }
    cast.people = people
    cast.by_name = {alias: key for alias, key in cast.by_name.items() if key in people}


def _attribute(
    cast: Cast,
    chapters: list[ChapterQuotes],
    names: dict[str, list[Mention]],
    narration: list[str],
) -> tuple[Person | None, list[list[Turn]]]:
    """Who speaks each quotation, chapter by chapter, and the narrator if the book is told
    in the first person (the person the others address when they answer "I", if one)."""
    narrator = None
    if first_person_narrator(narration):
        narrator = Person(key="narrator", narrator=True)
        narrator.names["Narrator"] = 1
    runs = [Attributor(cast, narrator, names).chapter(c.paragraphs, c.quotations) for c in chapters]
    named = _narrator_name(runs, narrator) if narrator else None
    if named is not None:
        # the narrator is the person the others address when they answer "I": read again
        # with "I" as that person, so turn-taking sees one speaker, not two
        named.narrator = True
        narrator = named
        runs = [
            Attributor(cast, narrator, names).chapter(c.paragraphs, c.quotations) for c in chapters
        ]
    return narrator, runs


def _narrator_name(runs: list[list[Turn]], narrator: Person) -> Person | None:
    """The person a first-person narrator is: whom the turns next to the narrator's own
    ("I said") address, when one name stands out."""
    votes: Counter[str] = Counter()
    people: dict[str, Person] = {}
    for turns in runs:
        for n, t in enumerate(turns):
            if t.speaker is not narrator:
                continue
            for m in (n - 1, n + 1):
                if 0 <= m < len(turns) and turns[m].speaker is not narrator:
                    for p in turns[m].addressed:
                        if p is not turns[m].speaker:
                            votes[p.key] += 1
                            people[p.key] = p
    # others speak of the narrator as "I" too: a name attributions use is not the narrator
    for key in list(votes):
        p = people[key]
        if p.speaks > max(1, votes[key] // 10) or p.narrated * 4 > sum(p.names.values()):
            del votes[key]
    ranked = votes.most_common(2)
    if not ranked or ranked[0][1] < 3:
        return None
    if len(ranked) > 1 and ranked[1][1] * 2 > ranked[0][1]:
        return None
    return people[ranked[0][0]]


def _finish(
    cast: Cast,
    narrator: Person | None,
    quotations: list[Quotation],
    chapters: list[ChapterQuotes],
) -> Speakers:
    """Characters with stable ids, most quoted first; quotations naming them by id."""
    texts = {p.segment.id: p.segment.text for c in chapters for p in c.paragraphs}
    count: Counter[str] = Counter()
    words: Counter[str] = Counter()
    for q in quotations:
        if q.speaker:
            count[q.speaker] += 1
            words[q.speaker] += sum(
                len(WORD.findall(texts[p.segment][p.start : p.end])) for p in q.pieces
            )
    people = list(cast.people.values())
    if narrator is not None and narrator.key not in cast.people:
        people.append(narrator)
    ids: dict[str, str] = {}
    used: set[str] = set()
    characters: list[Character] = []
    for p in sorted(people, key=lambda p: (-count[p.key], -sum(p.names.values()), p.name)):
        unnamed = p.narrator and p.key == "narrator"
        cid = unique_id(_slug("narrator" if unnamed else p.name), used)
        ids[p.key] = cid
        gender, evidence = p.gender()
        characters.append(
            Character(
                id=cid,
                name="Narrator" if unnamed else p.name,
                aliases=("I",) if unnamed else tuple(sorted(p.names)),
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
