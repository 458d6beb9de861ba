"""The segmenter on the real seeds, the real novel, Markdown, odd encodings and generated texts.

The coverage property (every input word accounted for exactly once) is checked everywhere a
Book is built, and the checker itself is shown to fail when a word is dropped or doubled.
"""

from __future__ import annotations

import codecs
import json
import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from narration.errors import InputError
from narration.model import MAX_UTTERANCE, Book, Chapter, Segment
from narration.reading import read_seed
from narration.segmenting import segment_book, segment_text
from narration.segmenting.coverage import words, words_accounted
from narration.segmenting.inline import expand_abbreviations
from narration.segmenting.outline import book_to_json, outline
from narration.segmenting.sentences import dialogue_spans, split_sentences

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
DATA = Path(__file__).resolve().parent / "data"
NOVEL = DATA / "news-from-nowhere.txt"
PAMPHLET = "01-kollontai-the-workers-opposition-in-russia.txt"
OVERVIEW = "02-the-workers-opposition-overview.txt"

PROSE = (
    "It was a fine day and the people went out into the fields to work together, "
    "singing as they went along the lanes."
)


def book_of(text: str, name: str = "book.txt") -> Book:
    chapters, removed = segment_text(text, name)
    return Book(tuple(chapters), tuple(removed))


def assert_covered(book: Book, texts: dict[str, str]) -> None:
    coverage = words_accounted(book, texts)
    assert coverage.ok, str(coverage)


def all_segments(book: Book) -> list[Segment]:
    return [s for ch in book.chapters for s in ch.segments]


def spoken_words(book: Book) -> set[str]:
    return {w for s in all_segments(book) for w in words(s.text)}


def assert_well_formed(book: Book) -> None:
    """What every stage after this one relies on."""
    ids = [s.id for s in all_segments(book)]
    assert len(ids) == len(set(ids))
    assert len({ch.id for ch in book.chapters}) == len(book.chapters)
    for ch in book.chapters:
        assert ch.id.isascii() and ch.segments
        for s in ch.segments:
            assert s.text and s.text == s.text.strip() and s.sentences
            assert all(0 < len(u) <= MAX_UTTERANCE for u in s.sentences)
            assert "".join(s.sentences).replace(" ", "") == s.text.replace(" ", "")
            for span in s.spans:
                assert 0 <= span.start < span.end <= len(s.text)
            assert (s.source is not None) <= (s.kind == "quote")


@pytest.fixture(scope="module")
def seeds_book() -> Book:
    return segment_book(SEEDS)


@pytest.fixture(scope="module")
def novel() -> tuple[Book, str, float]:
    text = read_seed(NOVEL)
    start = time.perf_counter()
    book = book_of(text, NOVEL.name)
    return book, text, time.perf_counter() - start


# ------------------------------------------------------------------------------------------
# The seeds


def test_pamphlet_is_one_chapter_with_title_author_heading_and_list(seeds_book: Book) -> None:
    pamphlet = [ch for ch in seeds_book.chapters if ch.file == PAMPHLET]
    assert len(pamphlet) == 1
    ch = pamphlet[0]
    assert (ch.number, ch.title, ch.author) == (
        1,
        "The Workers Opposition in Russia",
        "A. Kolontay",
    )
    assert ch.line == 3
    headings = [s.text for s in ch.segments if s.kind == "heading"]
    assert headings == ["What Is the Workers’ Opposition?"]
    assert ch.segments[0].kind == "heading"
    items = [s.text for s in ch.segments if s.kind == "list_item"]
    assert len(items) == 2
    assert items[0].startswith("1. Who enters into the Workers’ Opposition")
    assert items[1].startswith("2. Where is the root of the controversy")
    assert {s.kind for s in ch.segments} == {"heading", "narration", "list_item"}
    # viz. is read as a word, the en dashes and curly quotes are kept as written
    assert any("elements, namely: the peasant" in s.text for s in ch.segments)
    assert not any("viz" in s.text for s in ch.segments)


def test_pamphlet_footer_and_separator_removed_with_reasons(seeds_book: Book) -> None:
    removed = [(r.line, r.text, r.reason) for r in seeds_book.removed if r.file == PAMPHLET]
    assert (5, "* * *", "separator") in removed
    assert (44, "Top of the page", "web page boilerplate") in removed
    assert (46, "Last updated on 1 February 2023", "web page boilerplate") in removed
    spoken = " ".join(s.text for ch in seeds_book.chapters for s in ch.segments)
    assert "Top of the page" not in spoken and "Last updated" not in spoken


def test_overview_has_three_quote_blocks_with_sources(seeds_book: Book) -> None:
    (ch,) = [ch for ch in seeds_book.chapters if ch.file == OVERVIEW]
    assert (ch.number, ch.title, ch.author) == (2, "Workers' Opposition", None)
    quotes = [s for s in ch.segments if s.kind == "quote"]
    assert len(quotes) == 3
    statement, kollontai, serge = quotes
    assert statement.source is not None
    assert statement.source.author == "Workers' Opposition"
    assert statement.source.work == "Statement of 27 February 1921"
    assert statement.source.year == "1921"
    assert statement.text.startswith("A complete change is necessary in the policies")
    assert statement.text.endswith("freedom of speech, press and assembly for all who labour.")
    assert not statement.text.startswith('"')
    assert kollontai.source is not None and serge.source is not None
    assert (kollontai.source.author, kollontai.source.work, kollontai.source.year) == (
        "Alexandra Kollantai",
        "The Workers' Opposition",
        "1921",
    )
    assert kollontai.text.startswith("The workers ask — who are we?")
    assert (serge.source.author, serge.source.work, serge.source.year) == (
        "Victor Serge",
        "Memoirs of a Revolutionary",
        "1963",
    )
    assert serge.text.startswith("The Workers Opposition, led by Shliapnikov")
    # the sentence introducing the statement stays narration, just before it
    before = ch.segments[ch.segments.index(statement) - 1]
    assert before.kind == "narration"
    assert before.text == "The group also published a statement on 27th February, 1921:"
    # the attribution lines are not read verbatim
    for s in ch.segments:
        assert "(1)" not in s.text and "(2)" not in s.text
        assert "Memoirs of a Revolutionary (1963)" not in s.text
    numbers = [(r.text, r.reason) for r in seeds_book.removed if r.file == OVERVIEW]
    assert ("(1)", "note number of a source's attribution line") in numbers


def test_short_quotations_stay_in_the_narration_as_spans(seeds_book: Book) -> None:
    (ch,) = [ch for ch in seeds_book.chapters if ch.file == OVERVIEW]
    harmful = next(s for s in ch.segments if "harmful" in s.text)
    assert harmful.kind == "narration"
    assert '"harmful"' in [harmful.text[sp.start : sp.end] for sp in harmful.spans]
    rid = next(s for s in ch.segments if "rid Soviet institutions" in s.text)
    assert rid.kind == "narration"
    assert any(rid.text[sp.start : sp.end].startswith('"rid Soviet') for sp in rid.spans)
    (pamphlet,) = [c for c in seeds_book.chapters if c.file == PAMPHLET]
    first = next(s for s in pamphlet.segments if s.kind == "narration")
    assert "“Workers’ Opposition”" in [first.text[sp.start : sp.end] for sp in first.spans]


def test_seeds_account_for_every_word(seeds_book: Book) -> None:
    texts = {p.name: read_seed(p) for p in SEEDS.iterdir()}
    assert_covered(seeds_book, texts)
    assert_well_formed(seeds_book)


# ------------------------------------------------------------------------------------------
# The novel

NOVEL_TITLES = [
    "Chapter I: Discussion and Bed",
    "Chapter II: A Morning Bath",
    "Chapter III: The Guest House and Breakfast Therein",
    "Chapter IV: A Market by the Way",
    "Chapter V: Children on the Road",
    "Chapter VI: A Little Shopping",
    "Chapter VII: Trafalgar Square",
    "Chapter VIII: An Old Friend",
    "Chapter IX: Concerning Love",
    "Chapter X: Questions and Answers",
    "Chapter XI: Concerning Government",
    "Chapter XII: Concerning the Arrangement of Life",
    "Chapter XIII: Concerning Politics",
    "Chapter XIV: How Matters Are Managed",
    "Chapter XV: On the Lack of Incentive to Labour in a Communist Society",
    "Chapter XVI: Dinner in the Hall of the Bloomsbury Market",
    "Chapter XVII: How the Change Came",
    "Chapter XVIII: The Beginning of the New Life",
    "Chapter XIX: The Drive Back to Hammersmith",
    "Chapter XX: The Hammersmith Guest-House Again",
    "Chapter XXI: Going Up the River",
    "Chapter XXII: Hampton Court and a Praiser of Past Times",
    "Chapter XXIII: An Early Morning by Runnymede",
    "Chapter XXIV: Up the Thames: The Second Day",
    "Chapter XXV: The Third Day on the Thames",
    "Chapter XXVI: The Obstinate Refusers",
    "Chapter XXVII: The Upper Waters",
    "Chapter XXVIII: The Little River",
    "Chapter XXIX: A Resting-Place on the Upper Thames",
    "Chapter XXX: The Journey's End",
    "Chapter XXXI: An Old House Amongst New Folk",
    "Chapter XXXII: The Feast's Beginning — The End",
]


def test_novel_has_32_chapters_with_their_titles(novel: tuple[Book, str, float]) -> None:
    book, _, _ = novel
    assert [ch.title for ch in book.chapters] == NOVEL_TITLES
    assert [ch.number for ch in book.chapters] == list(range(1, 33))
    assert {ch.author for ch in book.chapters} == {"William Morris"}
    assert book.chapters[0].id == "chapter-i-discussion-and-bed"
    assert book.chapters[0].line == 77
    first = book.chapters[0].segments[0]
    assert first.text.startswith("Up at the League, says a friend,")
    assert first.line == 80
    assert book.chapters[-1].segments[-1].text.startswith("Yes, surely! and if others can")


def test_novel_speaks_no_gutenberg_header_footer_or_licence(
    novel: tuple[Book, str, float],
) -> None:
    book, _, _ = novel
    spoken = spoken_words(book)
    for word in ("gutenberg", "ebook", "license", "licence", "pglaf", "www", "trademark"):
        assert word not in spoken
    titles = {w for ch in book.chapters for w in words(ch.title)}
    assert "gutenberg" not in titles
    reasons = {r.reason for r in book.removed}
    assert {"Project Gutenberg header", "Project Gutenberg footer and licence"} <= reasons
    footer = next(r for r in book.removed if r.reason == "Project Gutenberg footer and licence")
    assert footer.text.startswith("***END OF THE PROJECT GUTENBERG EBOOK")
    assert "Section 5." in footer.text and footer.line == 7774


def test_novel_front_matter_and_footnotes_are_removed_not_read(
    novel: tuple[Book, str, float],
) -> None:
    """The title page and publication notes are not the book's opening: the podcast names
    the book, and 'LONGMANS, GREEN, AND CO.' is not worth hearing. The author's name on it
    is kept as every chapter's author; footnotes are listed, their markers not read."""
    book, _, _ = novel
    by_reason: dict[str, list[str]] = {}
    for r in book.removed:
        by_reason.setdefault(r.reason, []).append(r.text)
    assert "NEWS FROM NOWHERE\nOR\nAN EPOCH OF REST" in by_reason["title page"][0]
    assert any("PATERNOSTER ROW" in t for t in by_reason["title page"])
    assert by_reason["transcriber's note"][0].startswith("Transcribed from the 1908")
    assert by_reason["footnote marker"] == ["{1}", "{2}", "{3}"]
    assert by_reason["separator"] == ["*  * *"]
    assert "FOOTNOTES:" in by_reason["footnotes"]
    spoken = " ".join(s.text for s in all_segments(book))
    assert "{1}" not in spoken and "PATERNOSTER" not in spoken and "_" not in spoken
    assert "elegantly dressed people" in spoken


def test_novel_text_as_spoken(novel: tuple[Book, str, float]) -> None:
    book, _, _ = novel
    spoken = " ".join(s.text for s in all_segments(book))
    assert "after-lecture debates" in spoken  # a hyphen at a line end: rejoined, kept
    assert "the subject-matter of discussion" in spoken
    assert "(that is, the struggle for a slave's rations" in spoken  # (_i.e._, ...
    assert "_i.e._" not in spoken and "i.e." not in spoken
    assert "fellowship — but not before" in spoken  # fellowship--but
    assert "--" not in spoken
    assert "Or indeed was it a dream?" in spoken  # _was_


def test_novel_dialogue_kept_in_narration_with_spans(novel: tuple[Book, str, float]) -> None:
    book, _, _ = novel
    segments = all_segments(book)
    assert {s.kind for s in segments} == {"narration"}
    with_dialogue = [s for s in segments if s.spans]
    assert len(with_dialogue) > 500
    first = book.chapters[0].segments[1]
    quoted = [first.text[sp.start : sp.end] for sp in first.spans]
    assert quoted == ['"If I could but see a day of it,"', '"if I could but see it!"']
    said = next(s for s in segments if s.text.startswith('"H\'m," said I, "I have seen'))
    assert [said.text[sp.start : sp.end] for sp in said.spans] == [
        '"H\'m,"',
        '"I have seen it pretty muddy even at half-ebb."',
    ]


def test_novel_accounts_for_every_word_quickly(novel: tuple[Book, str, float]) -> None:
    book, text, seconds = novel
    assert_covered(book, {NOVEL.name: text})
    assert_well_formed(book)
    assert seconds < 2.0, f"segmenting the novel took {seconds:.2f} s"


def test_a_latin1_gutenberg_book_with_contents_illustrations_and_notes() -> None:
    path = DATA / "segment" / "gutenberg-latin1.txt"
    assert b"\r\n" in path.read_bytes() and "é".encode("latin-1") in path.read_bytes()
    text = read_seed(path)
    book = book_of(text, path.name)
    assert [(ch.title, ch.author, ch.line) for ch in book.chapters] == [
        ("Chapter I: The Café", "Jane Roe", 40),
        ("Chapter II: Señor García", "Jane Roe", 54),
    ]
    assert [ch.id for ch in book.chapters] == ["chapter-i-the-cafe", "chapter-ii-senor-garcia"]
    first, second, third = all_segments(book)
    assert first.line == 44 and second.line == 51 and third.line == 58
    assert first.text.startswith(
        "The café on the corner was where the señores met every morning, and the talk "
        "there — so the waiter said — was of nothing but the harvest, the rain, the price "
        'of bread, et cetera. "Good morning," said the first of them; "is it true, that is, '
        "is it really true,"
    )
    assert [(r.line, r.reason) for r in book.removed] == [
        (1, "Project Gutenberg header"),
        (21, "transcriber's note"),
        (27, "title page"),
        (29, "'by' before the author's name"),
        (31, "illustration marker"),
        (34, "table of contents"),
        (36, "table of contents"),
        (49, "illustration marker"),
        (61, "transcriber's note"),
        (64, "Project Gutenberg footer and licence"),
    ]
    assert_covered(book, {path.name: text})
    assert_well_formed(book)


# ------------------------------------------------------------------------------------------
# Markdown


def test_markdown_chapters_headings_quotes_lists_and_emphasis() -> None:
    path = DATA / "segment" / "essays.md"
    text = read_seed(path)
    book = book_of(text, path.name)
    assert [(ch.title, ch.author, ch.line) for ch in book.chapters] == [
        ("On Work and Rest", "Jane Doe", 1),
        ("Second Essay", None, 23),
    ]
    first, second = book.chapters
    assert [(s.kind, s.text) for s in first.segments] == [
        (
            "narration",
            "Some emphasis and strong words, a link, and underlined text that is "
            "hard-wrapped across lines.",
        ),
        ("heading", "A Section Heading"),
        (
            "quote",
            "We must not be afraid of dreaming the seemingly impossible if we want the "
            "seemingly impossible to become a reality.",
        ),
        ("list_item", "first point, read naturally"),
        ("list_item", "second point"),
        ("list_item", "1. numbered one"),
        ("list_item", "2. numbered two"),
    ]
    havel = first.segments[2].source
    assert havel is not None and havel.label() == "Vaclav Havel, Disturbing the Peace (1986)"
    quote = second.segments[1]
    assert quote.kind == "quote" and quote.source is not None
    assert quote.source.label() == "Anon, Proverbs (1900)"
    reasons = {r.reason: r.text for r in book.removed}
    assert reasons["link target (a web address)"] == 'https://example.org/page "title"'
    assert reasons["separator"] == "---"
    assert reasons["image"] == "![a picture](pic.png)"
    assert reasons["comment"] == "<!-- an editor's comment -->"
    assert reasons["'by' before the author's name"] == "by"
    assert_covered(book, {path.name: text})
    assert_well_formed(book)


def test_markdown_front_matter_is_not_read() -> None:
    text = f"---\ntitle: Essays\ntags:\n  - work\n---\n\n# First\n\n{PROSE}\n"
    book = book_of(text, "essays.md")
    assert [ch.title for ch in book.chapters] == ["First"]
    assert [(r.line, r.reason) for r in book.removed] == [(1, "metadata block (front matter)")]
    assert_covered(book, {"essays.md": text})


def test_markdown_blockquote_without_source_and_setext_headings() -> None:
    text = f"Title\n=====\n\n{PROSE}\n\nA Part\n------\n\n> Quoted words here.\n"
    book = book_of(text, "notes.md")
    (ch,) = book.chapters
    assert ch.title == "Title"
    assert [(s.kind, s.text, s.source) for s in ch.segments] == [
        ("narration", PROSE, None),
        ("heading", "A Part", None),
        ("quote", "Quoted words here.", None),
    ]
    assert_covered(book, {"notes.md": text})


# ------------------------------------------------------------------------------------------
# Chapter headings in plain text


@pytest.mark.parametrize(
    ("text", "titles"),
    [
        (
            f"CHAPTER I: THE BEGINNING\n\n{PROSE}\n\nCHAPTER II: THE END\n\n{PROSE}\n",
            ["Chapter I: The Beginning", "Chapter II: The End"],
        ),
        (f"Chapter 12\n\n{PROSE}\n\nChapter 13\n\n{PROSE}\n", ["Chapter 12", "Chapter 13"]),
        (
            f"CHAPTER IV.\n\nA MARKET BY THE WAY\n\n{PROSE}\n\nCHAPTER V.\n\nCHILDREN\n\n{PROSE}",
            ["Chapter IV: A Market by the Way", "Chapter V: Children"],
        ),
        (f"CHAPTER IV.\nA MARKET BY THE WAY\n\n{PROSE}\n", ["Chapter IV: A Market by the Way"]),
        (
            f"I\n\nTHE FIRST PART\n\n{PROSE}\n\nII.\n\nThe Second Part\n\n{PROSE}\n",
            ["I. The First Part", "II. The Second Part"],
        ),
        (
            f"PREFACE\n\n{PROSE}\n\nINTRODUCTION\n\n{PROSE}\n\nChapter One\n\n{PROSE}\n",
            ["Preface", "Introduction", "Chapter One"],
        ),
        (
            f"Preface\n\n{PROSE}\n\nChapter 1: A Start\n\n{PROSE}\n",
            ["Preface", "Chapter 1: A Start"],
        ),
    ],
)
def test_plain_text_chapter_headings(text: str, titles: list[str]) -> None:
    book = book_of(text)
    assert [ch.title for ch in book.chapters] == titles
    assert all(ch.segments[0].text == PROSE for ch in book.chapters)
    assert_covered(book, {"book.txt": text})


def test_not_chapter_headings() -> None:
    """A sentence starting 'Chapter 12', a numeral alone, 'said I.' on its own line."""
    text = (
        f"My Title\n\nChapter 12 describes the war in great detail.\n\nIV\n\n{PROSE}\n\n"
        f'"Would they?" said\nI.\n'
    )
    book = book_of(text)
    (ch,) = book.chapters
    assert ch.title == "My Title"
    assert [s.kind for s in ch.segments] == ["narration", "heading", "narration", "narration"]
    assert ch.segments[0].text == "Chapter 12 describes the war in great detail."
    assert_covered(book, {"book.txt": text})


def test_table_of_contents_is_removed() -> None:
    text = (
        f"MY BOOK\n\nCONTENTS\n\nCHAPTER I. THE START\nCHAPTER II. THE END\n\n"
        f"CHAPTER I. THE START\n\n{PROSE}\n\nCHAPTER II. THE END\n\n{PROSE}\n"
    )
    book = book_of(text)
    assert [ch.title for ch in book.chapters] == ["Chapter I: The Start", "Chapter II: The End"]
    assert [(r.line, r.reason) for r in book.removed] == [
        (1, "title page"),
        (3, "table of contents"),
        (5, "table of contents"),
    ]
    assert_covered(book, {"book.txt": text})
    # headings with nothing between them, without a CONTENTS line, are a table too
    text = f"Chapter 1\n\nChapter 2\n\nChapter 1\n\n{PROSE}\n\nChapter 2\n\n{PROSE}\n"
    book = book_of(text)
    assert [ch.line for ch in book.chapters] == [5, 9]
    assert [r.reason for r in book.removed] == ["table of contents"] * 2


def test_prose_before_the_first_chapter_is_the_opening() -> None:
    text = f"A BOOK\n\nBY JOHN SMITH\n\n{PROSE}\n\nCHAPTER I\n\n{PROSE}\n"
    book = book_of(text)
    assert [(ch.title, ch.author) for ch in book.chapters] == [
        ("A Book", "John Smith"),
        ("Chapter I", "John Smith"),
    ]
    assert [(r.text, r.reason) for r in book.removed] == [("BY", "'by' before the author's name")]
    assert_covered(book, {"book.txt": text})


def test_a_file_without_a_title_line_is_titled_from_its_name() -> None:
    book = book_of(f"{PROSE}\n", "03-the-long-walk.txt")
    assert book.chapters[0].title == "The Long Walk"
    assert book.chapters[0].line == 0
    assert_covered(book, {"03-the-long-walk.txt": f"{PROSE}\n"})


# ------------------------------------------------------------------------------------------
# Text as spoken, and what is removed


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("hard-\nwrapped lines\njoined up", "hard-wrapped lines joined up"),
        ("a dash--like this -- and - this", "a dash — like this — and — this"),
        ("_italic_ and =bold= and *stars* stay words", "italic and bold and stars stay words"),
        ("they _mis_managed it, a = b and x=y", "they mismanaged it, a = b and x=y"),
        ("viz. this, i.e. that, e.g. those, etc. and so on", None),
        ("I.e. this; e.g., that", "That is, this; for example, that"),
        ("apples, pears, etc. Then more.", "apples, pears, et cetera. Then more."),
        ("<speak>hello</speak> <break/>", "<speak>hello</speak> <break/>"),
        ("tabs\tand\u00a0no-break  spaces", "tabs and no-break spaces"),
        ("soft\u00adhyphen and zero\u200bwidth", "softhyphen and zerowidth"),
    ],
)
def test_text_as_spoken(raw: str, spoken: str | None) -> None:
    book = book_of(f"{raw}\n")
    (segment,) = book.chapters[0].segments
    if spoken is None:
        spoken = "namely, this, that is, that, for example, those, et cetera and so on"
    assert segment.text == spoken
    assert_covered(book, {"book.txt": f"{raw}\n"})


def test_curly_and_straight_quotes_are_handled_alike() -> None:
    straight = dialogue_spans('He said "yes" and "no."')
    curly = dialogue_spans("He said “yes” and “no.”")
    assert straight == curly and len(straight) == 2
    # an unclosed quotation (a speech continued in the next paragraph) runs to the end
    assert [(s.start, s.end) for s in dialogue_spans('"Go on, then,')] == [(0, 13)]


def test_markers_boilerplate_and_control_characters_are_removed_and_reported() -> None:
    text = (
        f"{PROSE} [Illustration: a boat] more{{2}} words.\n\n"
        "[Illustration: A picture of the river,\nspanning two lines]\n\n"
        "[Transcriber's Note: obvious typos have been corrected.]\n\n"
        "* * *\n\n"
        "Back to top\n\n"
        f"bell\x07 and escape\x1b here, {PROSE}\n\n"
        f"lost \ufffd character, {PROSE}\n"
    )
    book = book_of(text)
    reasons = [(r.line, r.reason, r.text) for r in book.removed]
    assert reasons == [
        (1, "illustration marker", "[Illustration: a boat]"),
        (1, "footnote marker", "{2}"),
        (3, "illustration marker", "[Illustration: A picture of the river,\nspanning two lines]"),
        (6, "transcriber's note", "[Transcriber's Note: obvious typos have been corrected.]"),
        (8, "separator", "* * *"),
        (10, "web page boilerplate", "Back to top"),
        (12, "control character", "\x07\x1b"),
        (
            14,
            "replacement character: a character was already lost before this file was saved",
            "\ufffd",
        ),
    ]
    texts = [s.text for s in all_segments(book)]
    assert texts == [
        f"{PROSE} more words.",
        f"bell and escape here, {PROSE}",
        f"lost character, {PROSE}",
    ]
    assert_covered(book, {"book.txt": text})
    assert "U+0007" in outline(book)  # shown readably, not sent to the terminal raw


def test_expand_abbreviations_reads_them_as_words() -> None:
    assert expand_abbreviations("Viz. one; e.g. two; i. e. three") == (
        "Namely, one; for example, two; i. e. three"  # only written compactly: see words()
    )
    assert expand_abbreviations("deviz. stays") == "deviz. stays"
    assert words("i.e.") == words("that is") == ["that", "is"]


# ------------------------------------------------------------------------------------------
# Sentences and utterances


def test_sentences_split_at_sentence_ends_not_abbreviations() -> None:
    text = 'Mr. Smith met A. Kolontay in St. Petersburg. "Go!" he said. Then no. 5 left.'
    assert split_sentences(text) == (
        "Mr. Smith met A. Kolontay in St. Petersburg.",
        '"Go!" he said.',
        "Then no. 5 left.",
    )
    assert split_sentences("It was said I. Then we went.") == ("It was said I.", "Then we went.")


def test_long_sentences_split_at_the_strongest_clause_boundary() -> None:
    clause = "the workers of the world gathered in the square to hear the news"
    text = f"{clause}, {clause}; {clause}, {clause} — {clause}, {clause}."
    parts = split_sentences(text)
    assert all(len(p) <= MAX_UTTERANCE for p in parts)
    assert parts[0].endswith(";")  # the semicolon wins over the commas
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")
    commas = ", ".join([clause] * 8) + "."
    assert all(p.endswith((",", ".")) for p in split_sentences(commas))


def test_pathological_paragraphs_segment_quickly_under_the_limit() -> None:
    huge = " ".join(f"word{i % 977}" for i in range(30_000))  # ~250 KB, no punctuation
    long_word = "x" * 250  # the longest a word may be (longer is not prose: refused below)
    text = f"{huge}\n\n{long_word}\n"
    start = time.perf_counter()
    book = book_of(text)
    seconds = time.perf_counter() - start
    assert len(huge) > 200_000 and seconds < 3.0, seconds
    big, word = all_segments(book)  # 30,001 words: cut into two parts between them
    assert all(len(u) <= MAX_UTTERANCE for u in big.sentences + word.sentences)
    assert all(not u.startswith(" ") and "word" in u for u in big.sentences)
    # words are never cut, except the one word longer than the limit
    assert " ".join(big.sentences) == huge
    assert "".join(word.sentences) == long_word and len(word.sentences) == 2
    assert_covered(book, {"book.txt": text})
    with pytest.raises(InputError, match=r"^book\.txt:3: 5,000 characters without a space"):
        book_of(f"{huge}\n\n{'x' * 5000}\n")


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab .,;:!?—-\"'Mr\n"), max_size=1500), st.integers(5, 60))
def test_utterances_never_exceed_the_limit_nor_lose_a_character(text: str, limit: int) -> None:
    parts = split_sentences(text, limit)
    assert all(0 < len(p) <= limit for p in parts)
    assert "".join(parts).replace(" ", "") == "".join(text.split())


# ------------------------------------------------------------------------------------------
# Ids


def test_segment_ids_are_stable_when_one_paragraph_is_edited(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    before = segment_book(seeds)
    path = seeds / PAMPHLET
    path.chmod(0o644)
    text = path.read_text(encoding="utf-8")
    edited = text.replace("The unions have been depopulated.", "The unions were emptied.")
    assert edited != text
    path.write_text(edited, encoding="utf-8")
    after = segment_book(seeds)
    old = [s.id for s in all_segments(before)]
    new = [s.id for s in all_segments(after)]
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][0].startswith("the-workers-opposition-in-russia-")
    assert [ch.id for ch in before.chapters] == [ch.id for ch in after.chapters]


def test_segment_and_chapter_ids_are_unique_and_deterministic(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    twice = f"Same Title\n\n{PROSE}\n\n{PROSE}\n"
    (seeds / "a.txt").write_text(twice, encoding="utf-8")
    (seeds / "b.txt").write_text(twice, encoding="utf-8")
    (seeds / "c.txt").write_text(f"Время\n\n{PROSE}\n", encoding="utf-8")
    book = segment_book(seeds)
    assert [ch.id for ch in book.chapters][:2] == ["same-title", "same-title-b"]
    a, b = book.chapters[0].segments, book.chapters[1].segments
    assert a[1].id == a[0].id + "-2"
    assert b[0].id.startswith("same-title-b-")
    assert book.chapters[2].id.startswith("chapter-") and book.chapters[2].id.isascii()
    again = segment_book(seeds)
    assert again == book
    assert json.dumps(book_to_json(again)) == json.dumps(book_to_json(book))


# ------------------------------------------------------------------------------------------
# Reading files: encodings and errors


def write_seed(tmp_path: Path, name: str, data: bytes) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir(exist_ok=True)
    (seeds / name).write_bytes(data)
    return seeds


TEXT = f"Café Title\n\n“Naïve” {PROSE}\n"


@pytest.mark.parametrize(
    "data",
    [
        TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + TEXT.encode("utf-8"),
        TEXT.replace("\n", "\r\n").encode("utf-8"),
        codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + TEXT.replace("\n", "\r\n").encode("utf-16-be"),
    ],
    ids=["utf-8", "utf-8-bom", "crlf", "utf-16-le", "utf-16-be"],
)
def test_encodings_decode_to_the_same_book(tmp_path: Path, data: bytes) -> None:
    book = segment_book(write_seed(tmp_path, "a.txt", data))
    (ch,) = book.chapters
    assert ch.title == "Café Title"
    assert ch.segments[0].text == f"“Naïve” {PROSE}"
    assert ch.segments[0].line == 3


def test_declared_latin1_encoding_is_honoured(tmp_path: Path) -> None:
    text = f"Title: Test\nCharacter set encoding: ISO-8859-1\n\n*** START OF THE PROJECT GUTENBERG EBOOK TEST ***\n\nCafé Story\n\n{PROSE} Señor.\n"
    seeds = write_seed(tmp_path, "a.txt", text.encode("latin-1"))
    book = segment_book(seeds)
    (ch,) = book.chapters
    assert ch.title == "Café Story" and ch.segments[0].text.endswith("Señor.")
    assert book.removed[0].reason == "Project Gutenberg header"
    assert_covered(book, {"a.txt": text})


def test_declared_ascii_accepts_utf8(tmp_path: Path) -> None:
    text = f"Character set encoding: ISO-646-US (US-ASCII)\n\n“{PROSE}”\n"
    book = segment_book(write_seed(tmp_path, "a.txt", text.encode("utf-8")))
    assert book.chapters[0].segments[-1].text.startswith("“It was")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.txt", b"", "a.txt: the file is empty"),
        ("a.txt", b"  \n\t\r\n \n", "a.txt: the file is empty"),
        (
            "a.txt",
            b"* * *\n\nTop of the page\n\nLast updated on 1 May 2020\n",
            "a.txt: nothing to read: every part of the file was removed (separator, web page boilerplate)",
        ),
        (
            "a.txt",
            b"Good line\nCaf\xe9 society\n",
            "a.txt:2: not valid UTF-8 at byte offset 13 (byte 0xE9)",
        ),
        ("a.txt", b"text\x00\x01\x02 binary", "a.txt:1: binary data (a NUL byte at byte offset 4)"),
        (
            "a.txt",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
            "a.txt: this is a PDF document, not a text file",
        ),
        (
            "a.md",
            b"Character set encoding: KLINGON-8\n\ntext\n",
            "a.md:1: declares the encoding 'KLINGON-8', which Python does not know",
        ),
    ],
)
def test_unreadable_seeds_fail_with_the_file_and_place(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    seeds = write_seed(tmp_path, name, data)
    with pytest.raises(InputError) as err:
        segment_book(seeds)
    where, _, rest = message.partition(": ")
    assert str(err.value).startswith(f"{seeds / where}: {rest}")


def test_missing_seeds_and_seed_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no seeds directory"):
        segment_book(tmp_path / "seeds")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "notes.docx").write_bytes(b"PK\x03\x04")
    (seeds / ".hidden.txt").write_text(f"Hidden\n\n{PROSE}\n", encoding="utf-8")
    with pytest.raises(InputError, match="no seed files"):
        segment_book(seeds)


def test_seed_files_in_name_order_hidden_and_subfolders_skipped(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    (seeds / "sub").mkdir(parents=True)
    (seeds / "sub" / "00-inner.txt").write_text(f"Inner\n\n{PROSE}\n", encoding="utf-8")
    (seeds / ".01-hidden.txt").write_text(f"Hidden\n\n{PROSE}\n", encoding="utf-8")
    (seeds / "10-ten.md").write_text(f"# Ten\n\n{PROSE}\n", encoding="utf-8")
    (seeds / "02-two.txt").write_text(f"Two\n\n{PROSE}\n", encoding="utf-8")
    (seeds / "notes.rtf").write_text("ignored", encoding="utf-8")
    book = segment_book(seeds)
    assert [(ch.number, ch.title, ch.file) for ch in book.chapters] == [
        (1, "Two", "02-two.txt"),
        (2, "Ten", "10-ten.md"),
    ]


# ------------------------------------------------------------------------------------------
# Inspecting it


def test_json_has_exactly_the_documented_shape(seeds_book: Book) -> None:
    data = json.loads(json.dumps(book_to_json(seeds_book)))
    assert set(data) == {"chapters", "removed", "notices"}
    for ch in data["chapters"]:
        assert {"id", "title", "author", "file", "segments"} <= set(ch)
        for s in ch["segments"]:
            assert {"id", "kind", "text", "source"} <= set(s)
            assert s["source"] is None or set(s["source"]) == {"author", "work", "year"}
    for r in data["removed"]:
        assert {"file", "text", "reason"} <= set(r)
    serge = data["chapters"][1]["segments"][-1]
    assert serge["kind"] == "quote"
    assert serge["source"] == {
        "author": "Victor Serge",
        "work": "Memoirs of a Revolutionary",
        "year": "1963",
    }


def test_outline_shows_chapters_headings_quotes_counts_and_removals(seeds_book: Book) -> None:
    text = outline(seeds_book)
    lines = text.splitlines()
    assert lines[0].startswith(f"1. The Workers Opposition in Russia — A. Kolontay  [{PAMPHLET}]")
    assert lines[0].endswith(", found by file)")  # the rule that found the chapter
    assert "     § What Is the Workers’ Opposition?" in lines
    assert "Victor Serge, Memoirs of a Revolutionary (1963)" in text
    assert "Workers' Opposition, Statement of 27 February 1921 (1921)" in text
    assert "Alexandra Kollantai, The Workers' Opposition (1921)" in text
    assert "17 segments (14 narration, 1 heading, 2 list_item)" in text
    assert "7 segments (4 narration, 3 quote)" in text
    assert any(line.startswith("Total: 2 chapters from 2 files, 24 segments") for line in lines)
    assert "  web page boilerplate: 2 (10 words)" in lines
    assert f"     {PAMPHLET}:44  Top of the page" in lines


# ------------------------------------------------------------------------------------------
# Never a word lost: the checker is strict, and the property holds on generated texts


def test_the_checker_fails_when_a_word_is_dropped_or_doubled(seeds_book: Book) -> None:
    texts = {p.name: read_seed(p) for p in SEEDS.iterdir()}
    assert words_accounted(seeds_book, texts).ok
    ch = seeds_book.chapters[0]
    k = next(i for i, s in enumerate(ch.segments) if s.text.startswith("The members of"))
    seg = ch.segments[k]
    dropped = replace(seg, text=seg.text.replace("members", "", 1))
    book = replace(
        seeds_book,
        chapters=(
            replace(ch, segments=(*ch.segments[:k], dropped, *ch.segments[k + 1 :])),
            *seeds_book.chapters[1:],
        ),
    )
    coverage = words_accounted(book, texts)
    assert not coverage.ok and coverage.missing[PAMPHLET] == {"members": 1}
    doubled = replace(
        seeds_book, chapters=(replace(ch, segments=(*ch.segments, seg)), *seeds_book.chapters[1:])
    )
    assert not words_accounted(doubled, texts).ok
    assert sum(words_accounted(doubled, texts).extra[PAMPHLET].values()) == len(words(seg.text))
    lost = replace(
        seeds_book, removed=tuple(r for r in seeds_book.removed if r.text != "Top of the page")
    )
    assert words_accounted(lost, texts).missing[PAMPHLET] == {
        "top": 1,
        "of": 1,
        "the": 1,
        "page": 1,
    }
    untitled: Chapter = replace(ch, line=0)  # a title not read from the text is not counted
    assert words_accounted(
        replace(seeds_book, chapters=(untitled, *seeds_book.chapters[1:])), texts
    ).missing[PAMPHLET] == {w: 1 for w in ("workers", "opposition", "russia")} | {"the": 1, "in": 1}


VOCAB = [
    "the", "workers", "said", "I", "viz.", "i.e.", "e.g.", "etc.", "Mr.", "A.", "Hammond",
    "café", "naïve", "Ärger", "дом", "東京", "123", "27th", "don't", "snake_case", "x²", "ﬁne",
    "<speak>", "<break/>", "&c.", "N.B.", "co-operation",
]  # fmt: skip
word = st.sampled_from(VOCAB) | st.text(
    st.characters(categories=("L", "N")), min_size=1, max_size=8
)
marked = word.flatmap(
    lambda w: st.sampled_from(
        [w, f"_{w}_", f"={w}=", f"*{w}*", f'"{w}"', f"“{w}”", f"{w},", f"{w};", f"{w}.",
         f"{w}--", f"({w})", f"{w}?", f"{w}\x07", f"[{w}]", "{1}" + w, f"{w}\u00ad"]
    )
)  # fmt: skip
sentence = st.lists(marked, min_size=1, max_size=30).map(" ".join)


@st.composite
def paragraph(draw: st.DrawFn) -> str:
    """Sentences hard-wrapped at a random width, some words hyphenated across lines."""
    text = " ".join(draw(st.lists(sentence, min_size=1, max_size=6)))
    width = draw(st.integers(10, 90))
    lines: list[str] = []
    cur = ""
    for w in text.split(" "):
        if cur and len(cur) + len(w) > width:
            if len(w) > 3 and w.isalpha() and draw(st.booleans()):
                lines.append(f"{cur} {w[:2]}-")
                cur = w[2:]
                continue
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    indent = draw(st.sampled_from(["", "  ", "\t", "\u00a0"]))
    return "\n".join(indent + line + draw(st.sampled_from(["", " ", "\t"])) for line in lines)


title_words = st.lists(
    st.sampled_from(["THE", "MORNING", "BATH", "OF", "A", "Love", "River", "and", "Ärger"]),
    min_size=1,
    max_size=6,
).map(" ".join)
roman = st.sampled_from(["I", "II", "IV", "IX", "XII", "XXXII"])
heading = st.one_of(
    st.builds(lambda r, t: f"CHAPTER {r}: {t.upper()}", roman, title_words),
    st.builds(lambda n: f"Chapter {n}", st.integers(1, 40)),
    st.builds(lambda r, t: f"CHAPTER {r}.\n\n{t.upper()}", roman, title_words),
    st.builds(lambda r, t: f"{r}\n\n{t.upper()}", roman, title_words),
    st.sampled_from(["PREFACE", "INTRODUCTION", "CONTENTS", "FOOTNOTES:", "By WILLIAM MORRIS"]),
    st.builds(lambda t: f"# {t}", title_words),
    st.builds(lambda t: f"## {t}", title_words),
    title_words.map(str.title),
    st.just("A. Kolontay"),
)
boilerplate = st.sampled_from(
    ["* * *", "*  * *", "-----", "Top of the page", "Last updated on 1 February 2023",
     "[Illustration: A picture\nof the river]", "[Transcriber's Note: typos fixed]",
     "Produced by Someone Else", "Back to top", "{1}  A footnote here.", "<!-- a comment -->",
     "*** START OF THE PROJECT GUTENBERG EBOOK X ***", "*** END OF THE PROJECT GUTENBERG EBOOK X ***",
     "> -- Victor Serge, Memoirs (1963)", "---\ntitle: x\n---", "A Title\n=======", "by Jane Doe",
     "CONTENTS\n\nChapter 1\nChapter 2", "Character set encoding: ISO-8859-1"]
)  # fmt: skip
attribution = st.builds(
    lambda n, a, w, y: f"({n}) {a}, {w} ({y})",
    st.integers(1, 9),
    st.sampled_from(["Victor Serge", "Alexandra Kollantai", "Jo Bloggs"]),
    st.sampled_from(["Memoirs of a Revolutionary", "The Workers' Opposition"]),
    st.integers(1800, 2020),
)
blockquote = st.builds(
    lambda p, src: "\n".join("> " + line for line in p.split("\n")) + src,
    paragraph(),
    st.sampled_from(["", "\n> -- Victor Serge, Memoirs (1963)", "\n-- Jo Bloggs, A Work (1921)"]),
)
document_quote = sentence.map(
    lambda s: f'The group also published a statement on 27th February, 1921: "{s}. {s}. {s}."'
)
list_item = st.builds(lambda n, s: f"{n}. {s}", st.integers(1, 12), sentence) | sentence.map(
    lambda s: f"- {s}"
)
block = st.one_of(
    paragraph(), paragraph(), heading, boilerplate, attribution, blockquote, document_quote,
    list_item,
)  # fmt: skip


@st.composite
def document(draw: st.DrawFn) -> str:
    blocks = draw(st.lists(block, min_size=1, max_size=12))
    text = "".join(b + draw(st.sampled_from(["\n\n", "\n\n\n", "\n \n", "\n"])) for b in blocks)
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return text


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document(), st.sampled_from(["gen.txt", "gen.md"]))
# a title page's author and a chapter naming its own: the first was lost
@example("By WILLIAM MORRIS\n\nCHAPTER I: THE\n\nby Jane Doe\n\n# THE\n\n", "gen.txt")
def test_every_word_is_accounted_for_in_generated_books(text: str, name: str) -> None:
    try:
        book = book_of(text, name)
    except InputError as err:
        assert "nothing to read" in str(err) or "empty" in str(err)
        return
    assert_covered(book, {name: text})
    assert_well_formed(book)


#: Inline HTML, character references and terminal escapes, with words and the characters
#: around them, for the coverage invariant.
MARKUP_PIECES = [
    *("<em>", "</em>", "<br>", "<br/>", "<p>", "</div>", '<a href="x">', "<img alt='A cat'>"),
    *("<script>x = 1</script>", "<style>p{}</style>", "<https://a.example/b>", "<b", "c>"),
    *("&amp;", "&#233;", "&nbsp;", "&#8203;", "&#0;", "&#57344;", "&NotEqualTilde;", "&bogus;"),
    *("\x1b[31m", "\x1b[0m", "\x1b]0;t\x07", "\x1bM", "\x1b", "\x9b2J", "[", "]"),
    *("word", "Two", "un", "able", " ", "\n", "\n\n", "# ", "> ", "[1]", "_", "&", "<"),
    *(">", ";", "#", ".", "-- ", "CHAPTER I", "<!-- c -->", "`", "<script>\n", "\n</script>\n"),
]


@settings(max_examples=250, deadline=None)
@given(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
    | st.text(
        st.sampled_from('ab\n "“”-_=*#>()[]{}:.,!?1IVXCHAPTER\t\r\u00a0\x07\u2028'), max_size=300
    )
    | st.lists(st.sampled_from(MARKUP_PIECES), max_size=60).map("".join),
    st.sampled_from(["any.txt", "any.md"]),
)
def test_every_word_is_accounted_for_in_arbitrary_text(text: str, name: str) -> None:
    try:
        book = book_of(text, name)
    except InputError:
        return
    assert_covered(book, {name: text})
    assert_well_formed(book)


def test_terminal_escape_sequences_are_removed_whole_and_listed() -> None:
    text = (
        "A Title\n\nThe log said \x1b[31mred\x1b[0m and then \x1b]0;title\x07 stopped;"
        " grep marked fo\x1b[01;31mo\x1b[0mbar, tput\x1b(B\x1b7\x1b8 reset.\n"
    )
    book = book_of(text, "log.txt")
    spoken = " ".join(s.text for s in all_segments(book))
    assert spoken == "The log said red and then stopped; grep marked foobar, tput reset."
    assert [(r.line, r.reason) for r in book.removed] == [(3, "terminal escape sequence")]
    assert book.removed[0].text == (
        "\x1b[31m\x1b[0m\x1b]0;title\x07\x1b[01;31m\x1b[0m\x1b(B\x1b7\x1b8"
    )
    assert_covered(book, {"log.txt": text})


def test_inline_html_in_markdown_is_markup_not_text() -> None:
    text = (
        "# The <em>Workers'</em> Opposition\n\n"
        'Some <b>bold</b> words,<br>a picture <img src="cat.png" alt="A cat"> and a'
        ' <a href="https://example.org/x">link</a> &mdash; caf&#233; &amp; co, see'
        " <https://example.org> <span class='x'>here</span>.\n\n"
        '<div align="center">\n<script>var x = 1;</script>\n</div>\n'
    )
    book = book_of(text, "book.md")
    (chapter,) = book.chapters
    assert chapter.title == "The Workers' Opposition"
    spoken = " ".join(s.text for s in chapter.segments)
    assert spoken == "Some bold words, a picture and a link — café & co, see here."
    reasons = Counter(r.reason for r in book.removed)
    assert reasons == {
        "HTML tag": 11,
        "image": 1,
        "link target (a web address)": 1,
        "script or style (not text)": 1,
    }
    assert_covered(book, {"book.md": text})
    # a word split by a tag stays two words, as the source's were: none is lost or made up
    assert book_of("Un<em>usual</em> words.", "x.md").chapters[0].segments[0].text == (
        "Un usual words."
    )
    # a reference is text, never structure: an escaped mark is read as the mark
    refs = book_of(
        "# Title\n\n&#35; not a heading, &lt;b&gt;not bold&lt;/b&gt;, &lt;!-- said --&gt;,"
        " &amp;lt; as written, &copyright; &#0; &#x110000; kept.\n",
        "x.md",
    )
    assert [c.title for c in refs.chapters] == ["Title"]
    assert refs.chapters[0].segments[0].text == (
        "# not a heading, <b>not bold</b>, <! — said — >, &lt; as written,"
        " &copyright; &#0; &#x110000; kept."
    )
    assert not refs.removed
    # a script over several paragraphs is removed whole; &Tab; is white space
    script = (
        "# Title\n\nBefore.\n\n<script>\nvar a = 1;\n\nvar b = 2;\n</script>\n\nAfter&Tab;all.\n"
    )
    scripted = book_of(script, "x.md")
    assert [s.text for s in scripted.chapters[0].segments] == ["Before.", "After all."]
    assert [r.reason for r in scripted.removed] == ["script or style (not text)"]
    assert_covered(scripted, {"x.md": script})
    # in plain text, angle brackets and ampersands are the text itself
    plain = book_of("Read <em> &amp; more.", "x.txt").chapters[0].segments[0].text
    assert plain == "Read <em> &amp; more."
