"""Voices for characters (`characters:` in voices.yaml): the automatic cast, its stability,
pinned voices, the narrator's own speech, the fallback, and every mistake with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from narration.casting import cast_book
from narration.casting.characters import cast_characters, speech_pieces, with_speakers_set
from narration.config import load_voices
from narration.errors import ConfigError
from narration.model import (
    Book,
    CastableVoice,
    Chapter,
    Character,
    Quotation,
    QuotePiece,
    Segment,
    Speakers,
)
from narration.segmenting.speakers import find_speakers
from narration.synthesis.engines import EngineSet, settings_catalog

VOICES = """voices:
  narrator: {voice: gmw/en-us, variant: m3, rate: 160}
  talk: {voice: gmw/en-gb-scotland, variant: f2}
  lizzy: {voice: gmw/en-gb-x-rp, variant: f4, label: Lizzy}
default: narrator
"""


def palette(engine: str = "pyttsx3") -> list[CastableVoice]:
    """Eight male and five female voices in the engine's order, most distinct first."""
    out = []
    for gender, variants in (
        ("male", ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]),
        ("female", ["f1", "f2", "f3"]),
    ):
        for n, accent in enumerate(("gmw/en-gb-scotland", "gmw/en-us", "gmw/en-029")):
            for variant in variants:
                if n and variant not in ("m1", "f1"):
                    continue
                out.append(
                    CastableVoice(
                        engine, f"{accent}+{variant}", gender, accent, f"{accent} {variant}"
                    )
                )
    return out


def config(tmp_path: Path, characters: str = "characters:\n  auto: true\n", rest: str = ""):
    path = tmp_path / "voices.yaml"
    path.write_text(VOICES + characters + rest, encoding="utf-8")
    return load_voices(path, catalog=EngineSet().catalog)


def person(cid: str, gender: str, quotations: int, narrator: bool = False, aliases=()) -> Character:
    name = cid.replace("-", " ").title()
    return Character(
        cid, name, (name, *aliases), gender, "title", quotations, quotations * 5, narrator
    )  # type: ignore[arg-type]


def speakers_of(*people: tuple[Character, int]) -> Speakers:
    """Characters, and one quotation for each at the position given (its first speech)."""
    quotations = []
    for n, (c, _at) in enumerate(sorted(people, key=lambda p: p[1])):
        quotations.append(Quotation(f"c.q{n}", "c", (QuotePiece("p0", 0, 1),), c.id, "explicit"))
    return Speakers(characters=tuple(c for c, _ in people), quotations=tuple(quotations))


def test_each_main_character_gets_its_own_voice_of_its_gender(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    speakers = speakers_of(
        (person("holmes", "male", 40), 0),
        (person("watson", "male", 30), 1),
        (person("irene", "female", 12), 2),
        (person("lestrade", "male", 5), 3),
    )
    roles = cast_characters(speakers, cfg, palette())
    voices = {cid: r.voice.engine_voice for cid, r in roles.items() if r.voice}
    assert set(voices) == {"holmes", "watson", "irene", "lestrade"}
    assert len(set(voices.values())) == 4, "one voice each"
    assert voices["irene"].split("+")[1].startswith("f")
    assert all(voices[c].split("+")[1].startswith("m") for c in ("holmes", "watson", "lestrade"))
    assert {r.how for r in roles.values()} == {"automatic"}
    assert roles["irene"].voice.label == "Irene"
    # the narrator's own voice and variant is never given to a character
    assert "gmw/en-us+m3" not in voices.values()
    # the pace of the default voice (espeak-ng's rate), the pitch the variant's
    assert {roles[c].voice.rate for c in voices} == {160}


def test_minor_characters_share_a_small_pool_apart_from_the_main_voices(tmp_path: Path) -> None:
    cfg = config(tmp_path, "characters:\n  auto: true\n  min_quotations: 3\n  pool: 2\n")
    mains = [(person(f"man-{n}", "male", 10), n) for n in range(3)]
    minors = [(person(f"minor-{n}", "male", 1), 10 + n) for n in range(8)]
    roles = cast_characters(speakers_of(*mains, *minors), cfg, palette())
    main_voices = {roles[c.id].voice.engine_voice for c, _ in mains}
    pool_voices = {roles[c.id].voice.engine_voice for c, _ in minors}
    assert len(main_voices) == 3 and len(pool_voices) <= 2 and not main_voices & pool_voices
    assert {roles[c.id].how for c, _ in minors} == {"shared pool"}
    assert "fewer than 3 quotations" in roles["minor-0"].why
    # each minor character keeps its pool voice (and its own name in the transcript)
    assert roles["minor-0"].voice.label == "Minor 0"


def test_narrator_unknown_gender_and_auto_off_fall_back(tmp_path: Path) -> None:
    speakers = speakers_of(
        (person("narrator", "male", 30, narrator=True), 0),
        (person("the-stranger", "unknown", 9), 1),
        (person("ann", "female", 9), 2),
    )
    roles = cast_characters(speakers, config(tmp_path), palette())
    assert (roles["narrator"].how, roles["narrator"].voice) == ("narrator", None)
    assert (roles["the-stranger"].how, roles["the-stranger"].voice) == ("fallback", None)
    assert roles["ann"].how == "automatic"
    off = cast_characters(speakers, config(tmp_path, "characters:\n  auto: false\n"), palette())
    assert {r.how for r in off.values()} == {"narrator", "fallback"}


def test_a_pinned_character_reads_with_its_voice_by_any_of_its_names(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "characters:\n  auto: true\n  voices:\n    miss eliza.: lizzy\n    narrator: talk\n",
    )
    speakers = speakers_of(
        (person("elizabeth-bennet", "female", 50, aliases=("Miss Eliza.",)), 0),
        (person("narrator", "male", 3, narrator=True), 1),
    )
    roles = cast_characters(speakers, cfg, palette())
    assert (roles["elizabeth-bennet"].how, roles["elizabeth-bennet"].voice.name) == (
        "pinned",
        "lizzy",
    )
    assert (roles["narrator"].how, roles["narrator"].voice.name) == ("pinned", "talk")


def test_no_voice_of_its_gender_falls_back(tmp_path: Path) -> None:
    males_only = [v for v in palette() if v.gender == "male"]
    roles = cast_characters(
        speakers_of((person("ann", "female", 9), 0)), config(tmp_path), males_only
    )
    assert roles["ann"].how == "fallback" and "no other female voice" in roles["ann"].why


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=12),
    genders=st.lists(st.sampled_from(["male", "female", "unknown"]), min_size=12, max_size=12),
    new_count=st.integers(min_value=1, max_value=200),
    new_gender=st.sampled_from(["male", "female"]),
)
def test_a_character_who_speaks_later_never_moves_anyone_s_voice(
    tmp_path_factory: pytest.TempPathFactory,
    counts: list[int],
    genders: list[str],
    new_count: int,
    new_gender: str,
) -> None:
    """Stability: a character added after the others (a new chapter, a name merged in
    later) leaves every voice as it was, however often it speaks; and the counts of the
    others changing within their class (main or minor) move nothing either."""
    cfg = config(tmp_path_factory.mktemp("v"))
    people = [(person(f"p-{n}", genders[n], c), n) for n, c in enumerate(counts)]
    before = cast_characters(speakers_of(*people), cfg, palette())
    after = cast_characters(
        speakers_of(*people, (person("newcomer", new_gender, new_count), 99)), cfg, palette()
    )
    assert {k: after[k] for k in before} == before
    # pinning a character moves no one else's voice (it keeps its own, unused)
    pinned_cfg = config(
        tmp_path_factory.mktemp("v"), "characters:\n  auto: true\n  voices:\n    p-0: talk\n"
    )
    pinned = cast_characters(speakers_of(*people), pinned_cfg, palette())
    assert {k: r for k, r in pinned.items() if k != "p-0"} == {
        k: r for k, r in before.items() if k != "p-0"
    }
    busier = [
        (person(f"p-{n}", genders[n], c + 100 if c >= 3 else c), n) for n, c in enumerate(counts)
    ]
    again = cast_characters(speakers_of(*busier), cfg, palette())
    assert {k: (r.voice.engine_voice if r.voice else None) for k, r in again.items()} == {
        k: (r.voice.engine_voice if r.voice else None) for k, r in before.items()
    }


STORY = (
    '"Where have you been all day?" asked Martha.\n\n'
    '"In the town," said Tom. "The market was full."\n\n'
    'I said, "It is late for that." I sat down, and I looked at the fire I had made.\n\n'
    '"Never mind," said Martha.'
)


def paragraphs_book(texts: list[str]) -> tuple[Book, list[Segment]]:
    """A one-chapter book of narration paragraphs p0, p1…, and its segments."""
    segments = tuple(
        Segment(id=f"p{n}", kind="narration", text=t, sentences=(t,)) for n, t in enumerate(texts)
    )
    chapter = Chapter(id="ch", number=1, title="Ch", author=None, file="01.txt", segments=segments)
    return Book(chapters=(chapter,), removed=()), list(segments)


def story_book() -> tuple[Book, list[Segment]]:
    return paragraphs_book(STORY.split("\n\n"))


def test_speech_pieces_carry_their_quote_marks() -> None:
    book, segments = story_book()
    speakers = find_speakers(book)
    text = segments[1].text
    assert [text[p.start : p.end] for p in speech_pieces(segments[1], speakers)] == [
        '"In the town,"',
        " said Tom. ",
        '"The market was full."',
    ]


def test_quotations_are_read_by_their_characters_and_narration_stays_whole(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, "characters:\n  voices:\n    Martha: lizzy\n    Tom: talk\n")
    book, _ = story_book()
    cast = cast_book(book, cfg)
    parts = [(p.id, p.voice.name, p.rule) for p in cast[0].parts if p.segment is not None]
    assert parts == [
        ("p0.0", "lizzy", "characters: pinned"),
        ("p0.1", "narrator", "default"),
        ("p1.0", "talk", "characters: pinned"),
        ("p1.1", "narrator", "default"),
        ("p1.2", "talk", "characters: pinned"),
        ("p2.0", "narrator", "default"),
        ("p2.1", "narrator", "characters: narrator (default)"),
        ("p2.2", "narrator", "default"),
        ("p3.0", "lizzy", "characters: pinned"),
        ("p3.1", "narrator", "default"),
    ]


def test_one_quotation_s_speaker_is_set_by_its_part_id(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "characters:\n  voices:\n    Martha: lizzy\n    Tom: talk\n"
        "  speakers:\n    p3.0: tom\n    p2.1: unknown\n",
        "rules:\n  - {kind: dialogue, voice: lizzy}\n",
    )
    book, _ = story_book()
    parts = {p.id: p for p in cast_book(book, cfg)[0].parts}
    assert parts["p3.0"].voice.name == "talk"
    # nobody in particular: the dialogue rule's voice, the fallback
    assert (parts["p2.1"].voice.name, parts["p2.1"].rule) == ("lizzy", "rules[0]")


def test_seeds_voices_yaml_casts_no_character() -> None:
    cfg = load_voices(Path(__file__).parents[1] / "voices.yaml", catalog=settings_catalog())
    assert not cfg.characters.auto and not cfg.characters.voices and not cfg.characters.speakers


@pytest.mark.parametrize(
    ("characters", "line", "message"),
    [
        (
            "characters:\n  voices:\n    Martha: lizy\n",
            8,
            "characters.voices.Martha: voice 'lizy' is not defined under 'voices' (did you mean 'lizzy'?)",
        ),
        (
            "characters:\n  auto: yes please\n",
            7,
            "characters.auto: Input should be a valid boolean",
        ),
        ("characters:\n  atuo: true\n", 7, "unknown key 'atuo' (did you mean 'auto'?)"),
        (
            "characters:\n  merge:\n    - [Long John]\n",
            8,
            "characters.merge[0]: list two names or more",
        ),
        ("characters:\n  pool: 0\n", 7, "characters.pool: must be between 1 and 20"),
        (
            "characters:\n  genders:\n    Ann: woman\n",
            8,
            "characters.genders.Ann: Input should be 'female' or 'male'",
        ),
        (
            "rules:\n  - {speaker: Martha, voice: lizzy}\n",
            7,
            "unknown key 'speaker'; a rule matches segments, not speakers: give a character "
            "its voice under characters: voices:",
        ),
        ("characters:\n  engine: festival\n", 7, "characters.engine: unknown engine 'festival'"),
    ],
)
def test_each_mistake_in_characters_is_reported_with_its_line(
    tmp_path: Path, characters: str, line: int, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, characters)
    problems = info.value.problems
    assert len(problems) == 1, problems
    assert problems[0].line == line
    assert message in problems[0].message


def test_merge_and_split_correct_the_characters_before_attribution() -> None:
    """Long John and Silver are one man; Archer (a bare surname, given to Newland Archer,
    the Archer the book names most) is his father."""
    texts = [
        '"Where is the ship?" said Long John to the boy. Long John was in a hurry.',
        '"On the shore," said Newland Archer. Newland Archer looked at the sea.',
        '"Come on," said Silver. Silver laughed.',
        '"No," said Archer, who was his father.',
    ]
    book, _ = paragraphs_book(texts)
    found = find_speakers(book)
    assert [q.speaker for q in found.quotations] == [
        "long-john",
        "newland-archer",
        "silver",
        "newland-archer",
    ]
    fixed = find_speakers(book, merge=[["Long John", "Silver"]], split=["Archer"])
    assert [q.speaker for q in fixed.quotations] == [
        "long-john",
        "newland-archer",
        "long-john",
        "archer",
    ]
    people = {c.id: c for c in fixed.characters}
    assert people["long-john"].aliases == ("Long John", "Silver")
    assert people["newland-archer"].aliases == ("Newland Archer",)


def test_genders_in_voices_yaml_cast_a_character_of_unknown_gender(tmp_path: Path) -> None:
    cfg = config(tmp_path, "characters:\n  auto: true\n  genders:\n    THE STRANGER: female\n")
    book, _ = story_book()
    speakers = speakers_of((person("the-stranger", "unknown", 9), 0))
    assert cast_characters(speakers, cfg, palette())["the-stranger"].how == "fallback"
    fixed = with_speakers_set(book, speakers, cfg)
    (stranger,) = fixed.characters
    assert (stranger.gender, stranger.gender_evidence) == ("female", "set in voices.yaml")
    role = cast_characters(fixed, cfg, palette())["the-stranger"]
    assert role.voice is not None and role.voice.engine_voice.split("+")[1].startswith("f")


def test_merge_and_split_take_names_in_any_case() -> None:
    texts = [
        '"Where is the ship?" said Long John to the boy. Long John was in a hurry.',
        '"Come on," said Silver. Silver laughed.',
        '"Merry Christmas," said Mrs. Fezziwig. Fezziwig danced.',
        '"Ha," said Fezziwig.',
    ]
    book, _ = paragraphs_book(texts)
    assert [c.id for c in find_speakers(book).characters if c.id.endswith("fezziwig")] == [
        "fezziwig"
    ]
    fixed = find_speakers(book, merge=[["long john", "SILVER"]], split=["mrs fezziwig"])
    people = {c.id: c for c in fixed.characters}
    assert people["long-john"].aliases == ("Long John", "Silver")
    assert people["mrs-fezziwig"].gender == "female"
    assert people["fezziwig"].aliases == ("Fezziwig",)
