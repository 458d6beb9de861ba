"""Chapters found in one plain-text book as a reader finds them, and what the book says
about itself: each heading style, contents lists, parts, title blocks, page numbers, a book
with no structure, a Gutenberg header; every word still accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from narration.cli import main
from narration.model import FOUND_BY
from narration.segmenting.chapters import MAX_PART_WORDS

from .support import assert_every_word_once, book_from

PROSE = (
    "It was a fine day and the people went out into the fields to work together, "
    "singing as they went along the lanes."
)
PG_HEAD = (
    "The Project Gutenberg EBook of {title}, by {author}\n\n"
    "This eBook is for the use of anyone anywhere at no cost.\n\n"
    "Title: {title}\n{subtitle}\nAuthor: {author}\n\nRelease Date: May 1, 2008 [EBook #99999]\n\n"
    "Language: {language}\n\nCharacter set encoding: {encoding}\n\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK {upper} ***\n\n\n\n\nProduced by A. Volunteer\n\n\n\n"
)
PG_TAIL = (
    "\n\n\nEnd of the Project Gutenberg EBook of {title}\n\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK {upper} ***\n\nUpdated editions will replace "
    "the previous one--the old editions will be renamed.\n"
)


def gutenberg(body: str, title: str = "The Lantern", author: str = "Jane Doe", **kw: str) -> str:
    fields = {
        "title": title,
        "author": author,
        "upper": title.upper(),
        "subtitle": kw.get("subtitle", ""),
        "language": kw.get("language", "English"),
        "encoding": kw.get("encoding", "UTF-8"),
    }
    return PG_HEAD.format(**fields) + body + PG_TAIL.format(**fields)


def paragraphs(n: int, seed: int = 0) -> str:
    return "\n\n".join(f"{PROSE} This is paragraph {seed + k}." for k in range(n))


def titles(book) -> list[str]:
    return [ch.title for ch in book.chapters]


def test_named_headings_with_page_numbers_like_jekyll(tmp_path: Path) -> None:
    """Dr Jekyll and Mr Hyde (ebook 42): chapters named in centred capitals, no numbers;
    "N)" page numbers on lines of their own, one inside a sentence; a centred title block."""
    body = (
        "[Editor's Note: ebook #43 is the same title and easier to read.]\n\n\n\n"
        "                     STRANGE CASE OF\n                     DR. JEKYLL AND\n"
        "                        MR. HYDE\n\n                           BY\n"
        "                  ROBERT LOUIS STEVENSON\n\n\n\n\n1)\n\n\n\n"
        "                    STORY OF THE DOOR\n\n"
        f"{paragraphs(20)}\n\nbut even resisted the calls\n\n2)\n\nof business, that they might "
        f"enjoy them.\n\n{paragraphs(3, 10)}\n\n3)\n\n{paragraphs(2, 20)}\n\n\n\n"
        f"                   SEARCH FOR MR. HYDE\n\n{paragraphs(20, 30)}\n\n4)\n\n"
        f"{paragraphs(2, 40)}\n\n\n\n                 THE CAREW MURDER CASE\n\n{paragraphs(20, 50)}\n"
    )
    book = book_from(
        tmp_path,
        {"jekyll.txt": gutenberg(body, "Dr. Jekyll and Mr. Hyde", "Robert Louis Stevenson")},
    )
    assert titles(book) == ["Story of the Door", "Search for Mr. Hyde", "The Carew Murder Case"]
    assert {ch.found_by for ch in book.chapters} == {"named-heading"}
    assert book.facts.title == "Dr. Jekyll and Mr. Hyde"
    assert book.facts.author == "Robert Louis Stevenson"
    assert book.facts.language == "en"
    spoken = " ".join(s.text for ch in book.chapters for s in ch.segments)
    assert "STRANGE" not in spoken and "Stevenson" not in spoken and "Editor" not in spoken
    assert "1)" not in spoken and "2)" not in spoken
    # the page break inside a sentence is gone and the sentence is one paragraph again
    assert any(
        s.text == "but even resisted the calls of business, that they might enjoy them."
        for s in book.chapters[0].segments
    )
    reasons = {r.reason for r in book.removed}
    assert {
        "page number",
        "title page",
        "transcriber's note",
        "Project Gutenberg header",
    } <= reasons
    assert_every_word_once(book, tmp_path / "seeds")


def test_contents_list_names_unnumbered_headings(tmp_path: Path) -> None:
    body = (
        "CONTENTS\n\n    The Old House .......... 1\n    A Walk by the River ..... 12\n"
        "    Home Again .............. 30\n\n\n"
        f"The Old House\n\n{paragraphs(2)}\n\nSome Notes\n\n{paragraphs(1, 5)}\n\n\n"
        f"A Walk by the River\n\n{paragraphs(2, 10)}\n\n\nHome Again\n\n{paragraphs(2, 20)}\n"
    )
    book = book_from(tmp_path, {"book.txt": gutenberg(body)})
    assert titles(book) == ["The Old House", "A Walk by the River", "Home Again"]
    assert [ch.found_by for ch in book.chapters] == ["contents"] * 3
    # a title-case line the contents does not name stays a heading inside its chapter
    assert [s.text for s in book.chapters[0].segments if s.kind == "heading"] == ["Some Notes"]
    assert [r.reason for r in book.removed].count("table of contents") >= 2
    assert not book.notices
    assert_every_word_once(book, tmp_path / "seeds")


def test_contents_that_disagree_with_the_headings_are_named(tmp_path: Path) -> None:
    body = (
        "CONTENTS\n\nCHAPTER I. The Start\nCHAPTER II. The Toil of Trace and Tail\n\n\n"
        f"CHAPTER I. THE START\n\n{paragraphs(2)}\n\n"
        f"CHAPTER II. THE TOIL OF TRACE AND TRAIL\n\n{paragraphs(2, 9)}\n\n"
        f"CHAPTER III. AN END\n\n{paragraphs(2, 19)}\n"
    )
    book = book_from(tmp_path, {"book.txt": body})
    assert len(book.chapters) == 3  # the text's headings win
    (notice,) = book.notices
    text = str(notice)
    assert text.startswith("book.txt:3: the contents list names 2 entries")
    assert "'CHAPTER II. The Toil of Trace and Tail'" in text
    assert "'Chapter II: The Toil of Trace and Trail'" in text
    assert "'Chapter III: An End'" in text
    assert_every_word_once(book, tmp_path / "seeds")


def test_staves_letters_before_chapters_and_numbered_titles(tmp_path: Path) -> None:
    carol = (
        f"STAVE I:  MARLEY'S GHOST\n\n{paragraphs(2)}\n\n\n"
        f"STAVE TWO.\n\nTHE FIRST OF THE THREE SPIRITS\n\n{paragraphs(2, 5)}\n"
    )
    frank = (
        f"Letter 1\n\n_To Mrs. Saville, England._\n\n{paragraphs(2)}\n\n\n"
        f"Letter 2\n\n{paragraphs(2, 5)}\n\n\nChapter 1\n\n{paragraphs(2, 9)}\n\n\n"
        f"Chapter the Second\n\n{paragraphs(2, 14)}\n"
    )
    book = book_from(tmp_path, {"1-carol.txt": carol, "2-frank.txt": frank})
    assert titles(book) == [
        "Stave I: Marley's Ghost",
        "Stave Two: The First of the Three Spirits",
        "Letter 1",
        "Letter 2",
        "Chapter 1",
        "Chapter the Second",
    ]
    assert {ch.found_by for ch in book.chapters} == {"numbered-heading"}
    assert_every_word_once(book, tmp_path / "seeds")


@pytest.mark.parametrize("mark", [")", ".", ""])
def test_numerals_alone_counting_up_are_chapters(tmp_path: Path, mark: str) -> None:
    body = "".join(f"\n\n\n{n}{mark}\n\n{paragraphs(2, n * 10)}" for n in range(1, 5))
    book = book_from(tmp_path, {"book.txt": f"A Short Book\n\nby Ann Other{body}\n"})
    assert titles(book) == ["1", "2", "3", "4"]
    assert book.chapters[0].author == "Ann Other"
    assert_every_word_once(book, tmp_path / "seeds")


def test_parts_above_chapters_are_title_prefixes(tmp_path: Path) -> None:
    body = (
        f"PART ONE--The Old Buccaneer\n\n\n\n1\n\nThe Old Sea-dog\n\n{paragraphs(2)}\n\n\n"
        f"2\n\nBlack Dog Appears\n\n{paragraphs(2, 5)}\n\n\n\nPART TWO--The Sea-cook\n\n\n\n"
        f"3\n\nI Go to Bristol\n\n{paragraphs(2, 10)}\n"
    )
    book = book_from(tmp_path, {"island.txt": body})
    assert titles(book) == [
        "Part One: The Old Buccaneer — 1. The Old Sea-dog",
        "Part One: The Old Buccaneer — 2. Black Dog Appears",
        "Part Two: The Sea-cook — 3. I Go to Bristol",
    ]
    assert [ch.part for ch in book.chapters] == [
        "Part One: The Old Buccaneer",
        "Part One: The Old Buccaneer",
        "Part Two: The Sea-cook",
    ]
    # numbering that starts again in each part is followed too
    again = body.replace("3\n\nI Go", "1\n\nI Go")
    book = book_from(tmp_path / "again", {"island.txt": again})
    assert titles(book)[-1] == "Part Two: The Sea-cook — 1. I Go to Bristol"
    assert_every_word_once(book, tmp_path / "again" / "seeds")


def test_latin1_crlf_gutenberg_file_with_a_subtitle(tmp_path: Path) -> None:
    body = (
        "\n\n\n                         FRANKENSTEIN;\n\n                 OR, THE MODERN "
        "PROMETHEUS.\n\n                    by Mary Shelley\n\n\n\n"
        f"CHAPTER I.\n\n{paragraphs(2)} Caf\u00e9 na\u00efve.\n\n\nCHAPTER II.\n\n{paragraphs(2, 5)}\n"
    )
    text = gutenberg(
        body,
        "Frankenstein",
        "Mary Wollstonecraft Shelley",
        subtitle="       or, The Modern Prometheus\n",
        language="French",
        encoding="ISO-8859-1",
    )
    data = text.replace("\n", "\r\n").encode("latin-1")
    book = book_from(tmp_path, {"84.txt": data})
    assert titles(book) == ["Chapter I", "Chapter II"]
    assert book.facts.title == "Frankenstein"
    assert book.facts.subtitle == "or, The Modern Prometheus"
    assert book.facts.language == "fr"
    assert "Café naïve." in book.chapters[0].segments[-1].text
    assert book.chapters[0].author == "Mary Shelley"
    assert_every_word_once(book, tmp_path / "seeds")


def test_a_book_with_no_headings_is_cut_into_parts_at_scene_breaks(tmp_path: Path) -> None:
    words_each = len(f"{PROSE} This is paragraph 0.".split())
    per_scene = 40
    scenes = [paragraphs(per_scene, k * per_scene) for k in range(20)]
    body = "\n\n* * *\n\n".join(scenes)
    total = words_each * per_scene * 20
    assert total > 2 * MAX_PART_WORDS
    book = book_from(tmp_path, {"yellow.txt": gutenberg(body, "The Yellow Wallpaper")})
    n = len(book.chapters)
    assert n == -(-total // MAX_PART_WORDS)
    assert titles(book) == [f"The Yellow Wallpaper, part {k}" for k in range(1, n + 1)]
    assert {ch.found_by for ch in book.chapters} == {"length-cut"}
    sizes = [sum(len(s.text.split()) for s in ch.segments) for ch in book.chapters]
    assert max(sizes) <= MAX_PART_WORDS and min(sizes) > MAX_PART_WORDS / 2
    # every cut falls at a scene break: a part ends with a scene's last paragraph
    for ch in book.chapters[:-1]:
        assert ch.segments[-1].text.endswith(f"paragraph {per_scene - 1}.") or any(
            ch.segments[-1].text.endswith(f"paragraph {k * per_scene - 1}.") for k in range(1, 21)
        )
    assert_every_word_once(book, tmp_path / "seeds")


def test_segments_json_says_which_rule_found_each_chapter(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "01-a.txt").write_text(f"{PROSE}\n", encoding="utf-8")
    (tmp_path / "seeds" / "02-b.txt").write_text(
        f"PREFACE\n\n{PROSE}\n\nCHAPTER I\n\n{PROSE}\n", encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["segments", "-p", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    found = [ch["found_by"] for ch in json.loads(result.output)["chapters"]]
    assert found == ["file", "named-heading", "numbered-heading"]
    assert set(found) <= set(FOUND_BY)


HEADINGS = {
    "chapter": lambda n, t: f"CHAPTER {n}.\n\n{t.upper()}",
    "roman": lambda n, t: f"{['I', 'II', 'III', 'IV', 'V', 'VI', 'VII', 'VIII'][n - 1]}.\n\n{t}",
    "paren": lambda n, t: f"{n})\n\n{t}",
    "stave": lambda n, t: (
        f"STAVE {['ONE', 'TWO', 'THREE', 'FOUR', 'FIVE', 'SIX', 'SEVEN', 'EIGHT'][n - 1]}: {t.upper()}"
    ),
    "named": lambda n, t: f"                {t.upper()}",
}
TITLE_WORDS = ["Door", "Window", "River", "Garden", "Letter Home", "Night", "Market", "Storm"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    style=st.sampled_from(sorted(HEADINGS)),
    n=st.integers(2, 6),
    contents=st.booleans(),
    title_block=st.booleans(),
    header=st.booleans(),
    lengths=st.lists(st.integers(1, 4), min_size=6, max_size=6),
)
def test_every_heading_style_keeps_every_word(
    tmp_path_factory,
    style: str,
    n: int,
    contents: bool,
    title_block: bool,
    header: bool,
    lengths: list[int],
) -> None:
    """Generated books in each heading style, with or without a contents list, a title
    block and a Gutenberg header: the chapters are the headings, and no word is lost."""
    tmp = tmp_path_factory.mktemp("gen")
    names = [f"The {TITLE_WORDS[k]}" for k in range(n)]
    parts = []
    if title_block:
        parts.append(
            "                 THE LANTERN\n\n                      BY\n             JANE DOE"
        )
    if contents:
        parts.append(
            "CONTENTS\n\n"
            + "\n".join(f"   {k + 1}. {t} ...... {k * 9 + 1}" for k, t in enumerate(names))
        )
    for k, name in enumerate(names):
        words_needed = 520 if style == "named" else 0  # named headings: a book's length
        count = max(lengths[k], words_needed // 25 + 1)
        parts.append(f"\n\n{HEADINGS[style](k + 1, name)}\n\n{paragraphs(count, k * 100)}")
    text = "\n\n\n".join(parts) + "\n"
    if header:
        text = gutenberg(text)
    book = book_from(tmp, {"book.txt": text})
    assert len(book.chapters) == n, [c.title for c in book.chapters]
    assert all(
        name.lower() in ch.title.lower() or style == "paren"
        for name, ch in zip(names, book.chapters, strict=True)
    )
    spoken = " ".join(s.text for ch in book.chapters for s in ch.segments)
    assert "CONTENTS" not in spoken and "LANTERN" not in spoken.upper().split("THE LANTERN")[0]
    assert_every_word_once(book, tmp / "seeds")
