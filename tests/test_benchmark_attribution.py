"""benchmarks/attribution.py's figures on a made-up PDNC folder, so the benchmark's metrics
cannot rot while CI never runs it on PDNC itself. The novel here is written for the test."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from narration.model import Character

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "attribution.py"
_spec = importlib.util.spec_from_file_location("bench_attribution", _PATH)
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_attribution"] = bench
_spec.loader.exec_module(bench)

# Third person: Tom and Mary speak; Old Sam, a major character, never does.
PIER = (
    "Chapter 1\n\n"
    "The pier was empty in the rain.\n\n"
    '"Good morning," said Tom Pike. "The boat is late."\n\n'
    'Mary Lane looked at the water. "Then we wait."\n\n'
    '"We could walk," said Tom.\n'
)
# First person: the narrator, Ann Roe, speaks once.
ROE = (
    "Chapter 1\n\n"
    "I walked down to the pier in the rain, and I found Tom Pike there.\n\n"
    '"The boat is late," said Tom Pike.\n\n'
    '"Then we wait," I said.\n\n'
    '"We could walk," said Mary Lane.\n'
)
CHARACTERS = [
    ("Tom Pike", "{'Tom Pike', 'Tom', 'Mr. Pike'}", "M", "major"),
    ("Mary Lane", "{'Mary Lane', 'Mary'}", "F", "major"),
    ("Old Sam", "{'Old Sam'}", "M", "major"),
    ("Ann Roe", "{'Ann Roe', '_narr'}", "F", "intermediate"),
]


def write_pdnc(root: Path, novels: dict[str, tuple[str, int, list[tuple[list[str], str, str]]]]):
    """A PDNC folder: for each novel its text, narrative person and quotations (the
    sub-quotations' texts, found in the text in order; speaker; quote type)."""
    with (root / "PDNC-Novel-Index.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Novel Code", "Novel Title", "Narrative Person", "Folder Name"])
        for name, (_, person, _) in novels.items():
            w.writerow([name[:4].upper(), name, f"{person}.0", name])
    for name, (text, _, quotes) in novels.items():
        folder = root / "data" / name
        folder.mkdir(parents=True)
        (folder / "novel_text.txt").write_text(text, encoding="utf-8")
        with (folder / "character_info.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["Character ID", "Main Name", "Aliases", "Gender", "Category"])
            for i, row in enumerate(CHARACTERS):
                w.writerow([i, *row])
        with (folder / "quotation_info.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["quoteID", "quoteByteSpans", "speaker", "quoteType"])
            at = 0
            for i, (subs, speaker, kind) in enumerate(quotes):
                spans = []
                for sub in subs:
                    start = text.index(sub, at)
                    at = start + len(sub)
                    spans.append([start, at])
                w.writerow([f"Q{i}", json.dumps(spans), speaker, kind])


PIER_QUOTES = [
    (["Good morning,", "The boat is late."], "Tom Pike", "Explicit"),
    (["Then we wait."], "Mary Lane", "Implicit"),
    (["We could walk,"], "Tom", "Explicit"),  # an alias, as a few PDNC rows give
]


def character(cid: str, name: str, aliases: tuple[str, ...], gender: str, narrator=False):
    return Character(cid, name, aliases, gender, None, 0, 0, narrator)  # type: ignore[arg-type]


def test_figures_from_hand_made_attributions(tmp_path):
    write_pdnc(tmp_path, {"Pier": (PIER, 3, PIER_QUOTES)})
    novel = bench.read_novel(tmp_path, "Pier", False)
    spans = [(q.start, q.end) for q in novel.quotes]
    assert [PIER[a:b] for a, b in spans] == [
        "Good morning,",
        "The boat is late.",
        "Then we wait.",
        "We could walk,",
    ]
    assert [q.speaker for q in novel.quotes] == ["Tom Pike", "Tom Pike", "Mary Lane", "Tom Pike"]
    extra = PIER.index("rain")  # a piece in narration: a false detection
    pieces = (
        bench.Piece(spans[0][0], spans[0][1] - 1, "tom", "explicit"),  # right
        bench.Piece(spans[1][0] + 2, spans[1][1], "tom", "explicit"),  # right
        bench.Piece(extra, extra + 4, "mary", "turn-taking"),  # no sub-quotation
        bench.Piece(spans[2][0], spans[2][1], None, None),  # abstained
        bench.Piece(spans[3][0], spans[3][1], "mary", "turn-taking"),  # wrong, and wrong gender
    )
    pieces = tuple(sorted(pieces, key=lambda p: p.start))
    characters = (
        character("tom", "Tom", ("Tom", "Mr. Pike"), "male"),
        character("mary", "Mary Lane", ("Mary Lane",), "female"),
        character("pike", "Mr Pike", ("Mr Pike",), "unknown"),  # a second narrate Tom
        character("stranger", "Bill", ("Bill",), "male"),
    )
    s = bench.score(novel, bench.Found(pieces, characters))
    assert s.mapping == {
        "tom": "Tom Pike",
        "mary": "Mary Lane",
        "pike": "Tom Pike",
        "stranger": None,
    }
    c = s.counts
    assert (c.quotes, c.found, c.pieces, c.pieces_right) == (4, 4, 5, 4)
    assert (c.correct, c.attributed, c.explicit, c.explicit_correct) == (2, 3, 3, 2)
    assert (c.implicit, c.implicit_correct, c.anaphoric) == (1, 0, 0)
    assert (c.gendered, c.gender_agrees, c.majors, c.majors_found) == (3, 2, 3, 2)
    f = bench.figures(c)
    assert f["accuracy"] == 0.5 and f["precision"] == 2 / 3 and f["coverage"] == 0.75
    assert f["precision_detection"] == 0.8 and f["recall"] == 1.0
    assert f["f1"] == pytest.approx(2 * 0.8 / 1.8)
    assert f["explicit"] == 2 / 3 and f["implicit"] == 0.0 and f["anaphoric"] is None
    assert f["gender"] == 2 / 3 and f["majors"] == 2 / 3
    # Totals add counts: a second novel like it doubles each count, and no ratio moves.
    total = bench.totals({"Pier": s, "Emma": s})
    assert list(total) == ["tuned (1)", "held out (1)", "all (2)"]
    assert total["all (2)"].quotes == 8 and bench.figures(total["all (2)"]) == f


def test_names_map_through_aliases_then_words(tmp_path):
    write_pdnc(tmp_path, {"Pier": (PIER, 3, PIER_QUOTES)})
    novel = bench.read_novel(tmp_path, "Pier", False)
    # PDNC's two parts of one person ("Christopher Robin - Story" and "- External"): the
    # one with more sub-quotations.
    story = bench.GoldCharacter(
        "Tom Pike - Story", frozenset({"tom pike - story"}), frozenset(), "F", "minor", False
    )
    story = dataclasses.replace(story, forms=story.aliases | {bench.bare(a) for a in story.aliases})
    novel = dataclasses.replace(novel, characters=(story, *novel.characters))
    ours = [
        character("a", "Miss Lane", ("Miss Lane",), "female"),  # Mary Lane, by words
        character("b", "Mr. Lane", ("Mr. Lane",), "male"),  # no man named Lane
        character("c", "Sam", ("Sam",), "male"),  # Old Sam, by words
        character("d", "the Mr. Pike", ("the Mr. Pike",), "male"),  # an alias, "the" aside
        character("e", "Tom Pike", ("Tom Pike",), "male"),  # both Toms: the one quoted
        character("f", "Lane Pike", ("Lane Pike",), "unknown"),  # in no one alias
    ]
    mapping, _ = bench.map_characters(novel, ours)
    assert mapping == {
        "a": "Mary Lane",
        "b": None,
        "c": "Old Sam",
        "d": "Tom Pike",
        "e": "Tom Pike",
        "f": None,
    }


def test_narrator_maps_only_where_pdnc_marks_it(tmp_path):
    write_pdnc(tmp_path, {"Pier": (PIER, 3, PIER_QUOTES)})
    narrator = character("narrator", "Narrator", ("I",), "unknown", narrator=True)
    novel = bench.read_novel(tmp_path, "Pier", True)
    mapping, notes = bench.map_characters(novel, [narrator])
    assert mapping == {"narrator": "Ann Roe"} and notes == []
    third = bench.read_novel(tmp_path, "Pier", False)
    assert bench.map_characters(third, [narrator]) == ({"narrator": None}, [])
    unknown = bench.read_novel(tmp_path, "Pier", None)
    mapping, notes = bench.map_characters(unknown, [narrator])
    assert mapping == {"narrator": None} and "cannot be known" in notes[0]


ROE_QUOTES = [
    (["The boat is late,"], "Tom Pike", "Explicit"),
    (["Then we wait,"], "Ann Roe", "Explicit"),
    (["We could walk,"], "Mary Lane", "Anaphoric"),
]


def test_pieces_are_placed_in_the_file(tmp_path):
    """narrate's pieces (offsets into Segment.text) land on the file's words."""
    from narration.model import Quotation, QuotePiece, Speakers
    from narration.segmenting import segment_book

    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "novel.txt").write_text("Some front matter.\n\n\n" + ROE)
    book = segment_book(tmp_path / "seeds")
    quotations = []
    for seg in (s for ch in book.chapters for s in ch.segments):
        for n, sub in enumerate(("The boat is late", "Then we wait", "We could walk")):
            if sub in seg.text:
                at = seg.text.index(sub)
                piece = QuotePiece(seg.id, at, at + len(sub) + 1)  # the comma
                quotations.append(Quotation(f"q{n}", "c", (piece,), f"s{n}", "explicit"))
    assert len(quotations) == 3
    text = (tmp_path / "seeds" / "novel.txt").read_text()
    found = bench.found_in(book, Speakers((), tuple(quotations)))
    placed = [(text[p.start : p.end], p.speaker) for p in found.pieces]
    assert placed == [
        ("The boat is late,", "s0"),
        ("Then we wait,", "s1"),
        ("We could walk,", "s2"),
    ]


def test_the_command_prints_the_table_of_a_first_person_novel(tmp_path, capsys, monkeypatch):
    write_pdnc(tmp_path, {"Roe": (ROE, 1, ROE_QUOTES), "Emma": (PIER, 3, PIER_QUOTES)})
    characters = (
        character("tom-pike", "Tom Pike", ("Tom Pike",), "male"),
        character("narrator", "Narrator", ("I",), "female", narrator=True),
        character("mary", "Mary", ("Mary",), "male"),  # found, but its gender wrong
    )

    def narrate(novel, scratch):
        """Each sub-quotation found; the first two attributed right, the last one wrong."""
        speakers = ["tom-pike", "narrator", "tom-pike"] if novel.name == "Roe" else [None] * 4
        pieces = (
            bench.Piece(q.start, q.end, s, None)
            for q, s in zip(novel.quotes, speakers, strict=True)
        )
        return bench.Found(tuple(pieces), characters)

    monkeypatch.setattr(bench, "run_narrate", narrate)
    assert bench.main([str(tmp_path), "--novels", "Roe", "--no-timing"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| Roe |"))
    # detection P R F1; accuracy, explicit, anaphoric, implicit; precision, coverage; gender
    # (the wrong Tom is a man too); majors (Tom and Mary of Tom, Mary and Old Sam).
    assert row == (
        "| Roe | held out | 3 | 1.00 | 1.00 | 1.00 | 0.67 | 1.00 | 0.00 | - | 0.67 | 1.00 | "
        "0.67 | 0.67 |"
    )
    assert "| **held out (1)** |  | 3 |" in out and "| **all (1)** |" in out
    assert "tuned (" not in out  # no tuned novel in this run
    assert "MISS  accuracy >= 0.7: 0.667" in out and "PASS  f1 >= 0.95: 1.000" in out
    assert bench.main([str(tmp_path), "--no-timing", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["novels"]["Roe"]["mapping"] == {
        "tom-pike": "Tom Pike",
        "narrator": "Ann Roe",
        "mary": "Mary Lane",
    }
    assert payload["totals"]["tuned (1)"]["counts"]["quotes"] == 4
    assert payload["totals"]["all (2)"]["figures"]["accuracy"] == 2 / 7
    assert payload["novels"]["Roe"]["figures"]["gender"] == 2 / 3


def test_timing_runs_each_side_in_its_own_process(tmp_path, capsys):
    write_pdnc(tmp_path, {"Pier": (PIER, 3, PIER_QUOTES)})
    assert bench.main([str(tmp_path), "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("| Pier | 32 |") == 1  # the speed table's row: its words
    assert "attribution adds <= 25% time (Pier, 32 words)" in out
    assert bench.main([str(tmp_path), "--repeat", "1", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)["novels"]["Pier"]["timing"]
    assert t["segments_seconds"] > 0 and t["speakers_seconds"] > 0 and len(t["ratios"]) == 1
    # Each process's own peak (not this one's, which a child's getrusage would inherit).
    assert 5 < t["base_mb"] <= t["segments_mb"] < 500 and t["speakers_mb"] > 5
    assert t["added_mb"] == t["speakers_mb"] - t["segments_mb"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "data" / "Pier" / "novel_text.txt").unlink(), "novel_text.txt: missing"),
        (
            lambda d: (d / "data" / "Pier" / "character_info.csv").write_text(
                "Character ID,Main Name,Aliases,Gender,Category\n0,Tom,{'Tom',,M,major\n"
            ),
            "character_info.csv:2: Aliases is not a Python literal",
        ),
        (
            lambda d: (d / "data" / "Pier" / "quotation_info.csv").write_text(
                'quoteID,quoteByteSpans,speaker,quoteType\nQ0,"[[0, 99999]]",Tom,Explicit\n'
            ),
            "quotation_info.csv:2: a span is not [start, end] in the text",
        ),
        (
            lambda d: (d / "data" / "Pier" / "quotation_info.csv").write_text(
                'quoteID,quoteByteSpans,speaker,quoteType\nQ0,"[[0, 5]]",Nobody,Explicit\n'
            ),
            "quotation_info.csv:2: speaker is no one character's name",
        ),
    ],
)
def test_bad_pdnc_files_give_one_line_naming_the_file(tmp_path, capsys, damage, message):
    write_pdnc(tmp_path, {"Pier": (PIER, 3, PIER_QUOTES)})
    damage(tmp_path)
    assert bench.main([str(tmp_path), "--no-timing"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err[-1].startswith("attribution: ") and err[-1].endswith(message)
    assert captured.out == ""


def test_a_missing_pdnc_dir_or_novel_is_one_line(tmp_path, capsys):
    assert bench.main([str(tmp_path / "nowhere"), "--no-timing"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("nowhere: missing (PDNC_DIR: a checkout of the PDNC repository)")
    )
    write_pdnc(tmp_path, {"Pier": (PIER, 3, PIER_QUOTES)})
    assert bench.main([str(tmp_path), "--novels", "Pier,Nope", "--no-timing"]) == 2
    assert capsys.readouterr().err.strip().endswith("data: no novel Nope")
