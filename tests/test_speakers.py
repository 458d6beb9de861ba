"""Who speaks: quotations found, characters found, each quotation attributed (or not) with
its evidence, on hand-made passages through the real segmenter."""

from __future__ import annotations

import copy
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from narration.errors import InputError
from narration.model import Book, Speakers
from narration.segmenting import segment_text
from narration.segmenting.offsets import Offsets
from narration.segmenting.speakers import find_speakers

from .support import book_from


def _book(text: str) -> Book:
    chapters, removed = segment_text(text, "novel.txt")
    return Book(chapters=tuple(chapters), removed=tuple(removed))


def _speakers(text: str) -> tuple[Book, Speakers]:
    book = _book(text)
    return book, find_speakers(book)


def _quoted(book: Book, speakers: Speakers) -> list[tuple[str, str | None, str | None]]:
    """Each quotation as (its text, pieces joined by " / "), its speaker's name, evidence."""
    texts = {s.id: s.text for ch in book.chapters for s in ch.segments}
    names = {c.id: c.name for c in speakers.characters}
    return [
        (
            " / ".join(texts[p.segment][p.start : p.end] for p in q.pieces),
            names[q.speaker] if q.speaker else None,
            q.attribution,
        )
        for q in speakers.quotations
    ]


HOLMES = """\
Mr. Sherlock Holmes looked up from his chair by the fire as Dr. Watson came in.

"You have been in Afghanistan, I perceive," said Holmes.

"How on earth did you know that?" Watson asked.

Holmes rose and went to the window. "Never mind," said he, smiling. "The question
is what you will do now."

"I shall take the rooms," Watson replied.

"Then it is settled."

"It is."

They sat on in silence for a long while after that, the fire burning low and the rain
beating on the window, and neither of them felt any need to say another word about the
rooms, the rent or the long voyage home.

Mrs. Hudson came in with the tea. "Will the gentlemen want supper?" she said.
"""


def test_explicit_names_and_pronouns() -> None:
    book, speakers = _speakers(HOLMES)
    got = _quoted(book, speakers)
    assert got[0] == (
        "You have been in Afghanistan, I perceive,",
        "Holmes",
        "explicit: said Holmes",
    )
    assert got[1][1:] == ("Watson", "explicit: Watson asked")
    # interrupted by its attribution: one quotation, two pieces, one speaker
    assert got[2][0] == "Never mind, / The question is what you will do now."
    assert got[2][1:] == ("Holmes", "explicit: said he")
    assert got[3][1] == "Watson"
    assert got[-1][1:] == ("Mrs. Hudson", "explicit: she said")


def test_turn_taking_between_two_speakers() -> None:
    book, speakers = _speakers(HOLMES)
    got = _quoted(book, speakers)
    # "Then it is settled." follows Watson's reply and answers it; "It is." answers that
    assert got[4][1:] == ("Holmes", "turn-taking")
    assert got[5][1:] == ("Watson", "turn-taking")


def test_characters_with_gender_and_evidence() -> None:
    _, speakers = _speakers(HOLMES)
    by_name = {c.name: c for c in speakers.characters}
    assert by_name["Mrs. Hudson"].gender == "female"
    assert by_name["Mrs. Hudson"].gender_evidence == "title"
    assert by_name["Holmes"].quotations == 3
    assert by_name["Holmes"].words == len(
        ["You", "have", "been", "in", "Afghanistan", "I", "perceive"]
    ) + len(["Never", "mind", "The", "question", "is", "what", "you", "will", "do", "now"]) + len(
        ["Then", "it", "is", "settled"]
    )


def test_names_merged_where_the_text_links_them() -> None:
    text = (
        "Mr. Fitzwilliam Darcy came in. Mr. Darcy bowed. Darcy sat down beside Mrs. Bennet.\n\n"
        "Mrs. Bennet smiled at Mr. Bennet, and Mr. Bennet frowned at Mr. Darcy.\n\n"
        '"A fine day," said Mr. Darcy.\n\n"Indeed," said Mrs. Bennet.\n\n'
        '"Very fine," said Mr. Bennet.\n\n"So it is," said Darcy.\n'
    )
    _, speakers = _speakers(text)
    people = {c.name: c for c in speakers.characters}
    darcy = next(c for c in speakers.characters if "Darcy" in c.aliases)
    assert {"Mr. Darcy", "Darcy"} <= set(darcy.aliases)
    assert darcy.quotations == 2
    assert people["Mrs. Bennet"].id != people["Mr. Bennet"].id
    assert people["Mrs. Bennet"].gender == "female" and people["Mr. Bennet"].gender == "male"


def test_scare_quotes_and_titles_are_not_quotations() -> None:
    text = (
        'John says the "work" will do me good, and the house is "debased Romanesque" at '
        "best.\n\n"
        '"Then do let us go downstairs," I said, and I went.\n\n'
        "I sat and read for an hour, and I thought of John and of the garden, and I waited.\n"
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert [g[0] for g in got] == ["Then do let us go downstairs,"]
    narrator = next(c for c in speakers.characters if c.narrator)
    assert got[0][1] == narrator.name
    assert got[0][2] == "explicit: I said"


def test_single_quotes_and_apostrophes() -> None:
    text = (
        "‘I don’t know,’ said Alice, ‘what the Smiths’ house is like.’\n\n"
        "‘’Tis a fine house,’ said the Hatter. ‘Fine as the Queen’s.’\n\n"
        "Alice thought about it for a while, and Alice said nothing more to anybody.\n"
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert got[0][0] == "I don’t know, / what the Smiths’ house is like."
    assert got[0][1] == "Alice"
    assert got[1][0] == "’Tis a fine house, / Fine as the Queen’s."
    assert got[1][1:] == ("Hatter", "explicit: said the Hatter")


def test_straight_single_quotes_and_apostrophes() -> None:
    text = (
        "'I don't know,' said Alice, 'what the Smiths' house is like.'\n\n"
        "''Tis a fine house,' said the Hatter. 'Fine as the Queen's, at six o'clock.'\n\n"
        "Alice thought about it for a while, and Alice said nothing more to anybody.\n"
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert got[0][:2] == ("I don't know, / what the Smiths' house is like.", "Alice")
    assert got[1][0] == "'Tis a fine house, / Fine as the Queen's, at six o'clock."


def test_a_speech_over_paragraphs_is_one_quotation() -> None:
    text = (
        '"It was a dark night," said Ishmael, "and the sea was high.\n\n'
        '"We rowed until dawn, and then we slept.\n\n'
        '"In the morning the whale was gone."\n\n'
        "Ishmael stopped, and Ishmael looked at the fire for a long time.\n"
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert len(got) == 1
    assert got[0][0].count(" / ") == 3
    assert got[0][1] == "Ishmael"


def test_nested_quotes_stay_inside() -> None:
    text = (
        "\"He told me, 'Never again,' and left,\" said Mary.\n\n"
        "Mary was sad, and Mary said nothing else that evening to Mr. Brown.\n"
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert got[0][0] == "He told me, 'Never again,' and left,"
    assert got[0][1] == "Mary"


def test_vocative_answered() -> None:
    text = (
        "Mr. Brown and Mary sat in the garden, and Mr. Brown read the paper.\n\n"
        '"Is it late?" said Mr. Brown.\n\n'
        '"Not yet," Mary replied.\n\n'
        '"Then read to me, Mary."\n\n'
        '"Gladly."\n'
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert got[2][1] == "Mr. Brown"
    assert got[3][1] == "Mary"


def test_weak_evidence_abstains_and_never_the_wrong_gender() -> None:
    text = (
        "Mr. Brown and Mr. Green walked to the station, and Mr. Brown bought the tickets.\n\n"
        '"A long way," she said.\n\n'
        "The train came.\n\n"
        '"Who was that?"\n'
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert got[0][1] is None  # "she": nobody female named
    assert got[1][1] is None


def test_attribution_changes_no_segment() -> None:
    book = _book(HOLMES)
    before = copy.deepcopy(book)
    find_speakers(book)
    assert book == before


_WORDS = st.sampled_from(
    ["the", "said", "Holmes", "Watson", "she", "he", "and", "I", "it", "was", "Mr.", "Brown"]
)
_PUNCT = st.sampled_from(["", ",", ".", "!", "?", "'", "’", "‘", '"', "“", "”", "--"])


@st.composite
def _paragraphs(draw: st.DrawFn) -> str:
    paras = []
    for _ in range(draw(st.integers(1, 6))):
        words = draw(st.lists(st.tuples(_PUNCT, _WORDS, _PUNCT), min_size=3, max_size=25))
        paras.append(" ".join(f"{a}{w}{b}" for a, w, b in words))
    return "\n\n".join(paras) + "\n"


@settings(max_examples=60, deadline=None)
@given(_paragraphs())
def test_every_piece_holds_its_text(text: str) -> None:
    """Attribution never changes, moves or loses a word: segments are as the segmenter made
    them, and every quotation piece is a non-empty stretch of its segment's text, pieces in
    reading order, none overlapping."""
    try:
        book = _book(text)
    except InputError:  # a generated text the segmenter refuses (no words): not this test's
        return
    before = copy.deepcopy(book)
    speakers = find_speakers(book)
    assert book == before
    texts = {s.id: s.text for ch in book.chapters for s in ch.segments}
    order = {s.id: n for n, s in enumerate(s for ch in book.chapters for s in ch.segments)}
    last = (-1, -1)
    ids = {c.id for c in speakers.characters}
    for q in speakers.quotations:
        assert q.speaker is None or q.speaker in ids
        for p in q.pieces:
            seg = texts[p.segment]
            assert 0 <= p.start < p.end <= len(seg)
            assert seg[p.start : p.end].strip()
            here = (order[p.segment], p.start)
            assert here > last
            last = (order[p.segment], p.end - 1)


def test_a_title_and_surname_is_one_person_per_title() -> None:
    text = (
        "Mrs. Bennet sat with Miss Bennet by the fire, and Mr. Bennet read by the window.\n\n"
        '"A fine evening," said Mrs. Bennet.\n\n"Very fine," said Miss Bennet.\n\n'
        '"Too fine to last," said Mr. Bennet.\n\n'
        "Dr. Grimesby Roylott came in. Dr. Roylott looked at Miss Roylott, and he frowned.\n\n"
        '"Go upstairs," said Dr. Roylott. He was angry, and he waited.\n\n'
        '"I shall," said Miss Roylott.\n'
    )
    _, speakers = _speakers(text)
    people = {alias: c for c in speakers.characters for alias in c.aliases}
    assert people["Mrs. Bennet"].id != people["Miss Bennet"].id
    assert people["Mrs. Bennet"].id != people["Mr. Bennet"].id
    assert people["Miss Bennet"].gender == "female"
    assert people["Dr. Roylott"].id != people["Miss Roylott"].id
    assert people["Dr. Roylott"].gender != "female"
    assert people["Miss Roylott"].gender == "female"


def test_an_action_beside_a_quotation_is_narration_not_explicit() -> None:
    text = (
        "Mr. Holmes sat by the lamp, and Mr. Holmes smoked for a long time in silence.\n\n"
        '"Come in," Holmes placed the lamp on the table.\n\n'
        '"Thank you," said Holmes.\n'
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert got[0][2] == "narration: Holmes placed"
    assert got[1][2] == "explicit: said Holmes"


def test_a_quoted_word_after_a_verb_further_back_is_no_quotation() -> None:
    text = (
        'As Holmes had remarked, the initials "H. B." were scrawled on the box, and '
        "nobody in the house could read them.\n\n"
        '"Whose are they?" said Holmes.\n'
    )
    book, speakers = _speakers(text)
    assert [g[0] for g in _quoted(book, speakers)] == ["Whose are they?"]


def test_turn_taking_passes_over_someone_from_outside() -> None:
    text = (
        "Mr. Brown and Mary stood at the door of the inn, and Mr. Brown looked at the sky.\n\n"
        '"Is it late?" said Mr. Brown.\n\n'
        '"Not yet," Mary replied.\n\n'
        '"The horses are ready," said the coachman.\n\n'
        '"Then let us go."\n'
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert got[2][1:] == (None, None)


def test_a_quotation_inside_a_quotation_in_the_same_marks() -> None:
    text = (
        '"They were fed on undisguised "charity" as it was called, and glad of it," said '
        "Dick.\n\nDick laughed, and Dick rowed on for a while without a word.\n"
    )
    book, speakers = _speakers(text)
    got = _quoted(book, speakers)
    assert got == [
        (
            'They were fed on undisguised "charity" as it was called, and glad of it,',
            "Dick",
            "explicit: said Dick",
        )
    ]


def test_a_quotation_ending_with_two_hyphens_ends_after_both(tmp_path: Path) -> None:
    book = book_from(tmp_path, {"novel.txt": 'Dick looked up.\n\n"Anybody bringing--" he began.\n'})
    speakers = find_speakers(book)
    where = Offsets(book.texts)
    segments = {s.id: s for ch in book.chapters for s in ch.segments}
    (quotation,) = speakers.quotations
    (piece,) = quotation.pieces
    at = where.range(segments[piece.segment], piece.start, piece.end)
    assert at is not None
    assert book.texts["novel.txt"][at.start : at.end] == "Anybody bringing--"


def test_a_place_the_narration_calls_she_is_no_character() -> None:
    places = " ".join(
        f"{w} Monteriano she was lovely that {d}."
        for w, d in (
            ("In", "spring"),
            ("At", "noon"),
            ("From", "afar"),
            ("Near", "dusk"),
            ("In", "summer"),
            ("At", "night"),
        )
    )
    text = (
        f"{places}\n\nPhilip walked up the hill, and Philip stopped at the gate.\n\n"
        '"What a town," said Philip.\n'
    )
    _, speakers = _speakers(text)
    names = {alias for c in speakers.characters for alias in c.aliases}
    assert "Philip" in names
    assert "Monteriano" not in names
