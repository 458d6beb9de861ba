"""Casting: the first matching rule gives the voice; announcements; lexicon; JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from narration.casting import Lexicon, cast_book, cast_to_json, render_template
from narration.cli import main
from narration.config import load_voices
from narration.model import Book, Chapter, Segment, Source, Span
from narration.synthesis.engines import settings_catalog

CONFIG = """\
voices:
  narrator: {voice: gmw/en-us, label: Narrator}
  kollontai: {voice: gmw/en-gb-x-rp, variant: f2, label: Alexandra Kollontai}
  serge: {voice: gmw/en-gb-scotland, label: Victor Serge}
  statement: {voice: gmw/en, label: The statement}
  dialogue: {voice: gmw/en-029}
default: narrator
rules:
  - {name: pamphlet, file: "01-*", voice: kollontai}
  - {kind: quote, author: "/koll?[oa]nt/", voice: kollontai}
  - {kind: quote, author: serge, voice: serge, announce: false}
  - {kind: quote, work: statement, voice: statement}
lexicon:
  Kolontay: Kollontai
  US: United States
"""


def seg(id: str, kind: str, text: str, source: Source | None = None, spans=()) -> Segment:
    return Segment(id=id, kind=kind, text=text, sentences=(text,), source=source, spans=spans)


O1 = 'The US group said "harmful" twice.'
BOOK = Book(
    chapters=(
        Chapter(
            id="pamphlet",
            number=1,
            title="The Pamphlet",
            author="A. Kolontay",
            file="01-p.txt",
            segments=(
                seg("p1", "heading", "What is it?"),
                seg("p2", "narration", "Kolontay writes to us."),
            ),
        ),
        Chapter(
            id="overview",
            number=2,
            title="Overview",
            author=None,
            file="02-o.txt",
            segments=(
                seg("o1", "narration", O1, spans=(Span(O1.index('"'), O1.rindex('"') + 1),)),
                seg(
                    "o2",
                    "quote",
                    "A change.",
                    Source("Workers' Opposition", "Statement of 27 February 1921", "1921"),
                ),
                seg(
                    "o3",
                    "quote",
                    "The workers ask.",
                    Source("Alexandra Kollantai", "The Workers' Opposition", "1921"),
                ),
                seg(
                    "o4",
                    "quote",
                    "I had long discussions.",
                    Source("Victor Serge", "Memoirs of a Revolutionary", "1963"),
                ),
            ),
        ),
    ),
    removed=(),
)


@pytest.fixture
def config(tmp_path: Path):
    path = tmp_path / "voices.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_voices(path, catalog=settings_catalog())


def parts_by_id(cast):
    return {p.id: p for cc in cast for p in cc.parts}


def test_first_matching_rule_wins(config) -> None:
    parts = parts_by_id(cast_book(BOOK, config))
    assert parts["p1"].voice.name == "kollontai" and parts["p1"].rule == "rules[0] pamphlet"
    assert parts["o1"].voice.name == "narrator" and parts["o1"].rule == "default"
    assert parts["o2"].voice.name == "statement" and parts["o2"].rule == "rules[3]"
    assert parts["o3"].voice.name == "kollontai" and parts["o3"].rule == "rules[1]"
    assert parts["o4"].voice.name == "serge"


def test_announcements_read_by_narrator(config) -> None:
    cast = cast_book(BOOK, config)
    ids = [p.id for p in cast[1].parts]
    assert ids[0] == "overview.announce"
    assert cast[1].parts[0].lines[0].text == "Chapter 2. Overview."
    assert cast[0].parts[0].lines[0].text == "Chapter 1. The Pamphlet. By A. Kolontay."
    parts = parts_by_id(cast)
    assert (
        parts["o3.announce"].lines[0].text
        == "From Alexandra Kollantai, The Workers' Opposition, 1921."
    )
    assert parts["o3.announce"].voice.name == "narrator"
    assert ids.index("o3.announce") == ids.index("o3") - 1
    assert "o4.announce" not in parts  # the serge rule turns announcements off


def test_lexicon_changes_spoken_text_only(config) -> None:
    parts = parts_by_id(cast_book(BOOK, config))
    line = parts["p2"].lines[0]
    assert line.text == "Kolontay writes to us." and line.spoken == "Kollontai writes to us."
    # a capitalised key matches that spelling only: "US" yes, "us" no
    assert parts["o1"].lines[0].spoken.startswith("The United States group")
    assert parts["pamphlet.announce"].lines[0].spoken.endswith("By A. Kollontai.")


def test_lexicon_whole_words() -> None:
    lex = Lexicon({"comintern": "Comin-tern", "Kolontay": "Kollontai"})
    assert (
        lex.apply("The Comintern, COMINTERN and Cominterns.")
        == "The Comin-tern, Comin-tern and Cominterns."
    )
    assert lex.apply("kolontay Kolontay") == "kolontay Kollontai"


def test_templates_drop_unknown_fields() -> None:
    assert (
        render_template(
            "From {author}, {work}, {year}.", {"author": "A", "work": "W", "year": None}
        )
        == "From A, W."
    )
    assert (
        render_template(
            "Chapter {number}. {title}. By {author}.", {"number": 3, "title": "T", "author": None}
        )
        == "Chapter 3. T."
    )


def test_dialogue_rule_splits_narration_at_speech_not_at_scare_quotes(tmp_path: Path) -> None:
    """A dialogue rule reads the quotations narrate finds, quote marks with them; a word in
    scare quotes ('said "harmful" twice') stays in the narration."""
    path = tmp_path / "voices.yaml"
    text = CONFIG.replace("rules:\n", "rules:\n  - {kind: dialogue, voice: dialogue}\n")
    path.write_text(text, encoding="utf-8")
    config = load_voices(path, catalog=settings_catalog())
    said = '"Go home now," said Anna to the porter. "It is late."'
    book = Book(
        chapters=(
            *BOOK.chapters,
            Chapter(
                id="story",
                number=3,
                title="Story",
                author=None,
                file="03-s.txt",
                segments=(seg("s1", "narration", said),),
            ),
        ),
        removed=(),
    )
    cast = cast_book(book, config)
    o1 = [p for p in cast[1].parts if p.segment is not None and p.segment.id == "o1"]
    assert [(p.id, p.voice.name) for p in o1] == [("o1", "narrator")]
    pieces = [p for p in cast[2].parts if p.segment is not None]
    assert [(p.id, p.voice.name, p.lines[0].text) for p in pieces] == [
        ("s1.0", "dialogue", '"Go home now,"'),
        ("s1.1", "narrator", "said Anna to the porter."),
        ("s1.2", "dialogue", '"It is late."'),
    ]


def test_cast_json_shape(config) -> None:
    data = cast_to_json(cast_book(BOOK, config))
    seg = data["chapters"][1]["segments"][2]
    assert set(seg) == {"id", "kind", "text", "source", "voice", "rule"} | {
        "span",
        "speaker",
        "attribution",
        "quotations",
    }
    assert data["characters"] == []
    assert json.loads(json.dumps(data)) == data


def test_seeds_cast(make_project) -> None:
    """The shipped voices.yaml on the seeds: four distinct voices as the issue asks."""
    root = make_project()
    result = CliRunner().invoke(main, ["cast", "--json", "--project", str(root)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    pamphlet, overview = data["chapters"]
    quotes = {s["source"]["author"]: s for s in overview["segments"] if s["kind"] == "quote"}
    assert set(quotes) == {"Workers' Opposition", "Alexandra Kollantai", "Victor Serge"}
    narration = {s["voice"] for s in overview["segments"] if s["kind"] == "narration"}
    assert narration == {"narrator"}
    statement, serge = quotes["Workers' Opposition"]["voice"], quotes["Victor Serge"]["voice"]
    assert len({statement, serge, "narrator"}) == 3
    body = {s["voice"] for s in pamphlet["segments"] if s["kind"] == "narration"}
    assert body == {quotes["Alexandra Kollantai"]["voice"]} == {"kollontai"}
    announcements = [s for s in overview["segments"] if s["kind"] == "announcement"]
    assert len(announcements) == 4  # the chapter opening and one per quote
    assert {s["voice"] for s in announcements} == {"narrator"}


def test_editing_one_rule_changes_exactly_its_segments(make_project) -> None:
    root = make_project()
    runner = CliRunner()
    before = json.loads(runner.invoke(main, ["cast", "--json", "-p", str(root)]).stdout)
    text = (root / "voices.yaml").read_text(encoding="utf-8")
    (root / "voices.yaml").write_text(
        text.replace(
            "    author: serge\n    voice: serge", "    author: serge\n    voice: statement"
        ),
        encoding="utf-8",
    )
    after = json.loads(runner.invoke(main, ["cast", "--json", "-p", str(root)]).stdout)
    changed = [
        (a["id"], a["voice"], b["voice"])
        for ca, cb in zip(before["chapters"], after["chapters"], strict=True)
        for a, b in zip(ca["segments"], cb["segments"], strict=True)
        if a != b
    ]
    serge_ids = [
        s["id"]
        for c in before["chapters"]
        for s in c["segments"]
        if s["source"] and s["source"]["author"] == "Victor Serge" and s["kind"] == "quote"
    ]
    assert changed == [(i, "serge", "statement") for i in serge_ids]


@pytest.mark.parametrize(
    ("title", "announced"),
    [
        ("Chapter Four", "Chapter Four. By A. Kollontai."),
        ("Part II", "Part II. By A. Kollontai."),
        ("3. The Union", "3. The Union. By A. Kollontai."),
        ("The Pamphlet", "Chapter 1. The Pamphlet. By A. Kollontai."),
        ("1921 in Russia", "Chapter 1. 1921 in Russia. By A. Kollontai."),
    ],
)
def test_a_title_that_says_its_number_is_not_numbered_again(
    config, title: str, announced: str
) -> None:
    from dataclasses import replace

    chapter = replace(BOOK.chapters[0], title=title)
    cast = cast_book(Book(chapters=(chapter,), removed=()), config)
    assert cast[0].parts[0].lines[0].spoken == announced
