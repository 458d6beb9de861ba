"""Who speaks, as users see it: `narrate characters`, what `narrate cast` gains, the build's
report of it, and a voices.yaml that asks a dialogue rule for an author."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from narration.cli import main
from narration.pipeline.checks import check_project
from narration.pipeline.project import open_project

from .support import start_epub, tree_digest, words_of

#: A short chapter with an explicit attribution after the quotation ("said Holmes"), a name
#: before its verb ("Watson replied"), a quotation interrupted by its attribution, and a
#: pronoun ("she said") that must resolve to the woman just named.
NOVEL = """The Red Lamp

Holmes stood by the window of our rooms in Baker Street, and Watson sat by the fire with \
the evening paper. It was a grey day, and Holmes had not spoken to Watson since breakfast.

"You have been in the country, I perceive," said Holmes.

"How on earth did you know that?" Watson replied.

"Your boots tell me so," said Holmes. "And your hat has seen rain this week."

Mrs. Hudson came in with the tray and set it down on the table by Watson.

"There is a lady to see you, sir," she said. "She will not give her name."

"Show her up, Mrs. Hudson," said Holmes.
"""

VOICES = """voices:
  narrator: {voice: gmw/en-us}
  talk: {voice: gmw/en-us, pitch: 70}
default: narrator
"""

DIALOGUE_RULE = """rules:
  - kind: dialogue
    voice: talk
"""

#: Each quotation's words, its speaker's id and evidence, in reading order.
SPOKEN = [
    ("You have been in the country, I perceive,", "holmes", "explicit: said Holmes"),
    ("How on earth did you know that?", "watson", "explicit: Watson replied"),
    ("Your boots tell me so,", "holmes", "explicit: said Holmes"),
    ("And your hat has seen rain this week.", "holmes", "explicit: said Holmes"),
    ("There is a lady to see you, sir,", "mrs-hudson", "explicit: she said"),
    ("She will not give her name.", "mrs-hudson", "explicit: she said"),
    ("Show her up, Mrs. Hudson,", "holmes", "explicit: said Holmes"),
]


def novel_project(
    tmp_path: Path, voices: str = VOICES, text: str = NOVEL, raw: bytes | None = None
) -> Path:
    root = tmp_path / "novel"
    (root / "seeds").mkdir(parents=True)
    (root / "seeds" / "novel.txt").write_bytes(raw if raw is not None else text.encode("utf-8"))
    (root / "voices.yaml").write_text(voices, encoding="utf-8")
    return root


def assert_offsets(data: dict, texts: dict[str, str], spoken: list[tuple[str, str, str]]) -> None:
    """Every entry's span holds its words in its file; every quotation, held in an entry or
    one on its own, reads the quotation's words at [start:end] of its file."""
    found = []
    for chapter in data["chapters"]:
        for s in chapter["segments"]:
            span = s["span"]
            if s["kind"] == "announcement":
                assert span is None
                continue
            text = texts[span["file"]]
            assert span["file"].startswith(chapter["file"])
            assert words_of(text[span["start"] : span["end"]]) == words_of(s["text"]), s
            if s["speaker"]:
                found.append((text[span["start"] : span["end"]], s["speaker"]))
            for q in s["quotations"]:
                found.append((text[q["start"] : q["end"]], q["speaker"]))
    assert [(words_of(t), who) for t, who in found] == [(words_of(t), who) for t, who, _ in spoken]


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_characters_json(tmp_path: Path) -> None:
    """`narrate characters --json`: each character with its names, gender and evidence,
    most quoted first."""
    root = novel_project(tmp_path)
    data = json.loads(run("characters", "-p", str(root), "--json"))
    assert list(data) == ["characters"]
    people = {c["id"]: c for c in data["characters"]}
    assert [c["id"] for c in data["characters"]] == ["holmes", "watson", "mrs-hudson"]
    assert people["holmes"] == {
        "id": "holmes",
        "name": "Holmes",
        "aliases": ["Holmes"],
        "gender": "unknown",  # nothing in the text says (no "he said", no title)
        "gender_evidence": None,
        "quotations": 3,
        "words": 26,  # 8 + 5 + 8 + 5
        "narrator": False,
        # voices.yaml casts no character: the dialogue reads in the narration's voice
        "voice": {
            "name": "narrator",
            "how": "fallback",
            "why": "not cast (characters.auto is off)",
        },
    }
    hudson = people["mrs-hudson"]
    assert (hudson["name"], hudson["gender"], hudson["gender_evidence"]) == (
        "Mrs. Hudson",
        "female",
        "title",
    )
    assert hudson["quotations"] == 1 and hudson["words"] == 14  # one quotation, two pieces
    assert people["watson"]["quotations"] == 1


def test_characters_table(tmp_path: Path) -> None:
    """The plain listing a user reviews: a header, one row per character, the tally."""
    root = novel_project(tmp_path)
    lines = run("characters", "-p", str(root)).splitlines()
    assert lines[0].split() == [
        "id",
        "name",
        "gender",
        "evidence",
        "quotes",
        "words",
        "voice",
        "also",
        "called",
    ]
    assert lines[1].split()[:2] == ["holmes", "Holmes"]
    assert lines[3].split() == [
        *("mrs-hudson", "Mrs.", "Hudson", "female", "title", "1", "14"),
        *("narrator", "(fallback)"),
    ]
    assert lines[-1] == "3 characters, 5 of 5 quotations attributed."


def test_cast_json_dialogue_pieces(tmp_path: Path) -> None:
    """With a dialogue rule, each piece that is a quotation carries its speaker and
    evidence; the narration pieces between carry none, and hold no quotation."""
    root = novel_project(tmp_path, VOICES + DIALOGUE_RULE)
    data = json.loads(run("cast", "-p", str(root), "--json"))
    assert [c["id"] for c in data["characters"]] == ["holmes", "watson", "mrs-hudson"]
    assert set(data["characters"][0]) == {
        "id",
        "name",
        "aliases",
        "gender",
        "gender_evidence",
        "quotations",
        "words",
        "narrator",
        "voice",
    }
    segments = data["chapters"][0]["segments"]
    announce = segments[0]
    assert announce["kind"] == "announcement"
    assert (announce["span"], announce["speaker"], announce["quotations"]) == (None, None, [])
    spoken = [
        (s["text"].strip('"'), s["speaker"], s["attribution"])
        for s in segments
        if s["kind"] == "dialogue"
    ]
    assert spoken == SPOKEN
    for s in segments:
        if s["kind"] == "narration":
            assert (s["speaker"], s["attribution"], s["quotations"]) == (None, None, [])


def test_cast_json_quotations_held(tmp_path: Path) -> None:
    """Without a dialogue rule no segment is split: each lists the quotations it holds."""
    root = novel_project(tmp_path)
    data = json.loads(run("cast", "-p", str(root), "--json"))
    segments = data["chapters"][0]["segments"]
    held = [
        (q["speaker"], q["attribution"])
        for s in segments
        for q in s["quotations"]
        if set(q) == {"start", "end", "speaker", "attribution"}
    ]
    assert held == [(who, why) for _, who, why in SPOKEN]
    assert all(s["speaker"] is None for s in segments)  # no entry is a quotation on its own


def test_cast_json_whole_paragraph_is_a_quotation(tmp_path: Path) -> None:
    """A paragraph that is all one quotation's piece (a speech running on from the
    paragraph before, left open there) carries its speaker on the entry itself; the
    paragraph it runs on from lists its two pieces."""
    text = NOVEL + (
        '\n"Watson," said Holmes, "I have been expecting her. She wrote on Tuesday.\n\n'
        '"She will ask for our help, and we shall give it."\n'
    )
    root = novel_project(tmp_path, text=text)
    data = json.loads(run("cast", "-p", str(root), "--json"))
    opened, went_on = data["chapters"][0]["segments"][-2:]
    assert opened["speaker"] is None
    assert [(q["speaker"], q["attribution"]) for q in opened["quotations"]] == [
        ("holmes", "explicit: said Holmes")
    ] * 2
    assert went_on["text"] == '"She will ask for our help, and we shall give it."'
    assert (went_on["speaker"], went_on["attribution"]) == ("holmes", "explicit: said Holmes")
    assert went_on["quotations"] == []


def test_cast_outline_says_who_speaks(tmp_path: Path) -> None:
    root = novel_project(tmp_path, VOICES + DIALOGUE_RULE)
    out = run("cast", "-p", str(root))
    assert out.count("said by Holmes (explicit: said Holmes)") == 4
    assert "said by Watson (explicit: Watson replied)" in out
    assert out.count("said by Mrs. Hudson (explicit: she said)") == 2
    assert "Speakers: 3 characters, 5 of 5 quotations attributed" in out


@pytest.mark.parametrize("key", ["author", "work"])
def test_dialogue_rule_with_an_author_is_refused(tmp_path: Path, key: str) -> None:
    """`author:` on a dialogue rule was silently ignored (the rule took all the dialogue):
    now one line naming voices.yaml and the line, exit 2 as every configuration error, and
    output/ untouched."""
    root = novel_project(tmp_path, VOICES + DIALOGUE_RULE + f"    {key}: Holmes\n")
    (root / "output").mkdir()
    (root / "output" / "keep.txt").write_text("earlier build", encoding="utf-8")
    before = tree_digest(root / "output")
    for command in (["cast"], ["build", "-q"]):
        result = CliRunner().invoke(main, [*command, "-p", str(root)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith(f"Error: {root / 'voices.yaml'}:8: rules[0].{key}: ")
        assert "dialogue" in lines[0] and "Traceback" not in result.output
    assert tree_digest(root / "output") == before


def test_build_reports_speakers_and_reads_every_line(tmp_path: Path) -> None:
    """The build finds who speaks and says so (summary, build.json and its own stage),
    and the clips are the cast's lines, as without it."""
    root = novel_project(tmp_path, VOICES + DIALOGUE_RULE)
    result = CliRunner().invoke(main, ["build", "-p", str(root)])
    assert result.exit_code == 0, result.output
    assert "Speakers: 3 characters, 5 of 5 quotations attributed" in result.stdout
    report = json.loads((root / "output" / "build.json").read_text(encoding="utf-8"))
    assert report["speakers"] == {
        "characters": 3,
        "quotations": 5,
        "attributed": 5,
        "own_voices": 0,
        "pool_voices": 0,
    }
    assert "speakers" in report["stages"]
    checked = check_project(open_project(root))
    assert report["totals"]["clips"] == sum(len(p.lines) for cc in checked.cast for p in cc.parts)
    assert report["totals"]["segments"] == 7  # the chapter's paragraphs


@pytest.mark.parametrize("rules", ["", DIALOGUE_RULE])
def test_cast_json_offsets_text_seed(tmp_path: Path, rules: str) -> None:
    """Offsets index the seed's text: each quotation at [start:end], split at or held."""
    root = novel_project(tmp_path, VOICES + rules)
    data = json.loads(run("cast", "-p", str(root), "--json"))
    assert_offsets(data, {"novel.txt": NOVEL}, SPOKEN)


def test_cast_json_offsets_crlf_seed(tmp_path: Path) -> None:
    """A seed with a byte-order mark and CRLF line ends: offsets count each CRLF as two
    characters and leave the mark out, as Python reads the file with newline=''."""
    raw = "\ufeff" + NOVEL.replace("\n", "\r\n")
    root = novel_project(tmp_path, VOICES + DIALOGUE_RULE, raw=raw.encode("utf-8"))
    data = json.loads(run("cast", "-p", str(root), "--json"))
    text = (root / "seeds" / "novel.txt").read_bytes().decode("utf-8-sig")
    assert "\r\n" in text
    assert_offsets(data, {"novel.txt": text}, SPOKEN)
    last = data["chapters"][0]["segments"][-1]["span"]
    assert last["end"] == len(text.rstrip()), "the last entry ends on the file's last mark"


#: The chapter as an EPUB document: curly quotes, a name in italics, entities.
XHTML = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>The Red Lamp</title></head>
<body>
<section>
<h2>The Red Lamp</h2>
<p>Holmes stood by the window of our rooms in <i>Baker Street</i>, and Watson sat by the \
fire with the evening paper. It was a grey day, and Holmes had not spoken to Watson since \
breakfast.</p>
<p>“You have been in the country, I perceive,” said Holmes.</p>
<p>“How on earth did you know that?” Watson replied.</p>
<p>“Your boots tell me so,” said Holmes. “And your hat has seen rain this week.”</p>
<p>Mrs. Hudson came in with the tray and set it down on the table by Watson.</p>
<p>“There is a lady to see you, sir,” she said. “She will not give her name.”</p>
<p>“Show her up, Mrs.&#160;Hudson,” said Holmes.</p>
</section>
</body>
</html>
"""


def test_cast_json_offsets_epub_seed(tmp_path: Path) -> None:
    """An EPUB: `file` names the document inside the book, and offsets index its body's
    text nodes in document order (read here with the standard library's XML parser)."""
    root = novel_project(tmp_path, VOICES + DIALOGUE_RULE)
    (root / "seeds" / "novel.txt").unlink()
    with zipfile.ZipFile(root / "seeds" / "book.epub", "w") as z:
        start_epub(z, "OEBPS/content.opf")
        z.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Red</dc:title>'
            "<dc:language>en</dc:language></metadata><manifest>"
            '<item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>'
            '</manifest><spine><itemref idref="c1"/></spine></package>',
        )
        z.writestr("OEBPS/text/ch1.xhtml", XHTML)
    data = json.loads(run("cast", "-p", str(root), "--json"))
    # offsets index the document's text content: all its text nodes, the head's title too
    document = "".join(ElementTree.fromstring(XHTML.encode()).itertext())
    spoken = [(t.replace("Mrs. ", "Mrs.\u00a0"), who, why) for t, who, why in SPOKEN]
    assert_offsets(data, {"book.epub/OEBPS/text/ch1.xhtml": document}, spoken)


def test_preview_takes_every_id_segments_and_cast_print(tmp_path: Path) -> None:
    """A dialogue rule splits a paragraph into `<id>.0`, `.1`…; `narrate segments` prints the
    paragraph's own id. Preview takes both: the whole id reads its pieces in order, each in
    its voice (real espeak-ng renders), as one clip."""
    import wave

    import numpy as np

    root = novel_project(tmp_path, VOICES + DIALOGUE_RULE)
    runner = CliRunner()
    segments = json.loads(runner.invoke(main, ["segments", "-p", str(root), "--json"]).stdout)
    cast = json.loads(runner.invoke(main, ["cast", "-p", str(root), "--json"]).stdout)
    segment_ids = [s["id"] for c in segments["chapters"] for s in c["segments"]]
    part_ids = [s["id"] for c in cast["chapters"] for s in c["segments"]]

    def preview(segment_id: str) -> np.ndarray:
        result = runner.invoke(main, ["preview", "-p", str(root), segment_id])
        assert result.exit_code == 0, f"{segment_id}: {result.output}"
        with wave.open(result.stdout.strip()) as w:
            assert w.getframerate() == 22050
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")

    clips = {i: preview(i) for i in dict.fromkeys(segment_ids + part_ids)}
    assert all(clip.size > 0.3 * 22050 for clip in clips.values())

    split = "the-red-lamp-4ad10696"  # "Your boots…," said Holmes. "And your hat…"
    pieces = [i for i in part_ids if i.startswith(f"{split}.")]
    assert split not in part_ids and pieces == [f"{split}.0", f"{split}.1", f"{split}.2"]
    whole = clips[split]
    # each piece's speech is in the whole clip, sample for sample, in reading order
    found = []
    for piece in pieces:
        mid = clips[piece].size // 2
        window = clips[piece][mid - 1000 : mid + 1000].tobytes()
        at = whole.tobytes().find(window)
        assert at >= 0 and at % 2 == 0, piece
        assert whole.tobytes().find(window, at + 1) == -1, piece
        found.append(at)
    assert found == sorted(found)
    # trimmed of the pieces' own lead and tail silence, with a sentence pause between them
    assert whole.size < sum(clips[p].size for p in pieces)
    assert whole.size > sum(clips[p].size for p in pieces) * 0.5

    result = runner.invoke(main, ["preview", "-p", str(root), f"{split}.9"])
    assert result.exit_code == 1 and f"no segment '{split}.9'" in result.output
