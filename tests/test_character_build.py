"""A voice per character, end to end: a project made by `narrate init`, a short story with a
first-person narrator and three characters (two men, one woman), built with the real
engines, its transcript and `narrate characters --json` read back; then a paragraph added
and the book built again."""

from __future__ import annotations

import json
from pathlib import Path

import miniaudio
import numpy as np
import pyloudnorm
import pytest
from click.testing import CliRunner

from narration.cli import main
from narration.synthesis.engines import kokoro as kk

from .support import vtt_cues

STORY = """# The Lamp at Harrow Farm

I came to Harrow Farm on a wet evening in October, and I found the kitchen full of people.

"You are late," said Mr. Blake. "The road is bad, I suppose."

"The road is very bad," I said. "I walked the last two miles of it."

Mrs. Grey set a cup of tea before me. She smiled at Mr. Blake across the table.

"He will want his supper," said Mrs. Grey. "Sam, bring the bread."

Sam stood up from the fire. He was a big young man with red hands.

"There is no bread left," said Sam. "Mr. Blake ate all of it."

"I did no such thing," said Mr. Blake.

"Then the dog has it," said Mrs. Grey.

I laughed, and I said, "I am not hungry at all."

"Nonsense," said Mrs. Grey. "Everyone is hungry in this weather."

Sam went out to the dairy. He came back with cheese and a loaf.

"Here is the bread," said Sam. "It was in the dairy all along."

"You see," said Mr. Blake. "Nobody ate it."

"I will bake more tomorrow," said Sam.
"""

#: Each quotation's opening words and who says it, in reading order.
SAID = [
    ("You are late", "Mr. Blake"),
    ("The road is bad", "Mr. Blake"),
    ("The road is very bad", "Narrator"),
    ("I walked", "Narrator"),
    ("He will want", "Mrs. Grey"),
    ("Sam, bring", "Mrs. Grey"),
    ("There is no bread", "Sam"),
    ("Mr. Blake ate", "Sam"),
    ("I did no such", "Mr. Blake"),
    ("Then the dog", "Mrs. Grey"),
    ("I am not hungry", "Narrator"),
    ("Nonsense", "Mrs. Grey"),
    ("Everyone is hungry", "Mrs. Grey"),
    ("Here is the bread", "Sam"),
    ("It was in the dairy", "Sam"),
    ("You see", "Mr. Blake"),
    ("Nobody ate it", "Mr. Blake"),
    ("I will bake", "Sam"),
]

#: An espeak-ng narrator, the characters cast from Kokoro's voices: engines mix.
KOKORO_VOICES = """voices:
  narrator: {voice: gmw/en-us, variant: m3, label: Narrator}
default: narrator
characters:
  auto: true
  engine: kokoro
"""


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def story_project(tmp_path: Path, voices: str | None = None) -> Path:
    root = tmp_path / "story"
    run("init", str(root))
    (root / "seeds" / "01-example.md").unlink()
    (root / "seeds" / "01-story.md").write_text(STORY, encoding="utf-8")
    if voices is not None:
        (root / "voices.yaml").write_text(voices, encoding="utf-8")
    return root


def build(root: Path) -> dict:
    run("build", "-p", str(root), "--quiet")
    return json.loads((root / "output" / "build.json").read_text(encoding="utf-8"))


def said_by(root: Path) -> list[tuple[str, str | None]]:
    """Each quoted cue's first words and the voice the transcript names for it."""
    (vtt,) = sorted((root / "output").glob("*.vtt"))
    out = []
    for _, voice, text in vtt_cues(vtt):
        for start, _who in SAID:
            if text.lstrip('"“').startswith(start):
                out.append((start, voice))
    return out


def voice_levels(root: Path) -> dict[str, float]:
    """Each voice's loudness in the chapter's MP3 (LUFS), decoded as players decode it,
    measured over its cues."""
    (mp3,) = sorted((root / "output").glob("*.mp3"))
    (vtt,) = sorted((root / "output").glob("*.vtt"))
    decoded = miniaudio.decode_file(
        str(mp3), output_format=miniaudio.SampleFormat.FLOAT32, nchannels=1, sample_rate=44100
    )
    x = np.frombuffer(decoded.samples, dtype=np.float32).astype(np.float64)
    import webvtt

    parts: dict[str, list[np.ndarray]] = {}
    for cue in webvtt.read(str(vtt)).captions[:-1]:  # the last runs on over the tail
        # to the millisecond (webvtt-py's start_in_seconds are whole seconds)
        a = cue.start_time.in_milliseconds() * 441 // 10
        b = cue.end_time.in_milliseconds() * 441 // 10
        parts.setdefault(cue.voice, []).append(x[a:b])
    meter = pyloudnorm.Meter(44100)
    return {v: float(meter.integrated_loudness(np.concatenate(p))) for v, p in parts.items()}


def check_story(root: Path, female: set[str]) -> dict[str, dict]:
    """The cast every build of the story must give; returns the characters by id."""
    characters = {
        c["id"]: c for c in json.loads(run("characters", "-p", str(root), "--json"))["characters"]
    }
    assert {"mr-blake", "mrs-grey", "sam", "narrator"} <= set(characters)
    voices = {cid: characters[cid]["voice"] for cid in ("mr-blake", "mrs-grey", "sam")}
    assert {v["how"] for v in voices.values()} == {"automatic"}
    engine_voices = [v["engine_voice"] for v in voices.values()]
    assert len(set(engine_voices)) == 3, "one voice each"
    assert voices["mrs-grey"]["engine_voice"] in female
    assert not {voices["mr-blake"]["engine_voice"], voices["sam"]["engine_voice"]} & female
    narrator = characters["narrator"]
    assert (narrator["narrator"], narrator["voice"]["how"]) == (True, "narrator")
    assert narrator["voice"]["name"] == "narrator"
    # the transcript: every quotation in its speaker's voice, the narrator's in the
    # narration's ("Narrator", the voice's label)
    assert said_by(root) == SAID
    # every character's voice levelled like every voice: within 1 LU of the others
    levels = voice_levels(root)
    assert set(levels) == {"Narrator", "Mr. Blake", "Mrs. Grey", "Sam"}
    assert max(levels.values()) - min(levels.values()) <= 1.0, levels
    return characters


def test_espeak_story_gives_each_character_a_voice_kept_across_a_rebuild(
    tmp_path: Path,
) -> None:
    root = story_project(tmp_path)
    listed = json.loads(run("voices", "--engine", "pyttsx3", "--json"))
    female = {
        f"{v['id']}+{variant['id']}"
        for v in listed["voices"]
        for variant in listed["variants"]
        if variant["gender"] == "female"
    }
    cold = build(root)
    assert cold["totals"]["rendered"] > 0
    before = check_story(root, female)
    # a paragraph of narration added elsewhere: every voice kept, only it rendered
    text = STORY.replace(
        "Sam went out to the dairy.",
        "The rain beat on the window all the while.\n\nSam went out to the dairy.",
    )
    (root / "seeds" / "01-story.md").write_text(text, encoding="utf-8")
    again = build(root)
    assert again["totals"]["rendered"] == 1, again["totals"]
    after = check_story(root, female)
    assert {k: c["voice"] for k, c in after.items()} == {k: c["voice"] for k, c in before.items()}


@pytest.mark.kokoro
@pytest.mark.skipif(
    bool(kk.missing_packages()),
    reason="the kokoro extra is not installed "
    f"({', '.join(kk.missing_packages())} missing): make kokoro",
)
def test_kokoro_story_gives_each_character_a_voice_of_its_gender(tmp_path: Path) -> None:
    root = story_project(tmp_path, KOKORO_VOICES)
    female = {v.engine_voice for v in kk.castable_voices("en") if v.gender == "female"}
    build(root)
    characters = check_story(root, female)
    assert all(
        characters[c]["voice"]["engine"] == "kokoro" for c in ("mr-blake", "mrs-grey", "sam")
    )


def test_names_and_part_ids_that_match_nothing_are_warned_with_their_lines(
    tmp_path: Path,
) -> None:
    """A pinned name, a merge or split name, or a part id voices.yaml gives that the seeds
    do not hold: a warning with its line, and the rest still cast."""
    voices = (
        "voices:\n"  # 1
        "  narrator: {voice: gmw/en-us}\n"  # 2
        "  grey: {voice: gmw/en-gb-x-rp, variant: f3}\n"  # 3
        "default: narrator\n"  # 4
        "characters:\n"  # 5
        "  voices:\n"  # 6
        "    Mrs Grey: grey\n"  # 7
        "    Mr. Greene: grey\n"  # 8
        "  split: [Blakey]\n"  # 9
        "  speakers:\n"  # 10
        "    no-such-part.1: Sam\n"  # 11
    )
    root = story_project(tmp_path, voices)
    result = CliRunner().invoke(main, ["characters", "-p", str(root), "--json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert [w.split(": ", 2)[1].rsplit(":", 1)[1] for w in warnings] == ["8", "9", "11"]
    assert "characters.voices.Mr. Greene: no character found is called 'Mr. Greene'" in warnings[0]
    assert "characters.speakers.no-such-part.1: no quotation" in warnings[2]
    grey = {c["id"]: c for c in json.loads(result.stdout)["characters"]}["mrs-grey"]
    assert (grey["voice"]["name"], grey["voice"]["how"]) == ("grey", "pinned")


def test_preview_reads_a_line_in_a_character_s_voice(tmp_path: Path) -> None:
    """`narrate preview --voice "mrs grey" TEXT`: a character, by any of its names, in the
    voice the cast gives it (a real espeak-ng render); a name nobody has is one line."""
    import wave

    root = story_project(tmp_path)
    wav = Path(run("preview", "-p", str(root), "--voice", "mrs grey", "Is that you, Tom?").strip())
    with wave.open(str(wav)) as w:
        assert w.getnframes() > 0.5 * w.getframerate()
    result = CliRunner().invoke(main, ["preview", "-p", str(root), "--voice", "Nobody", "Hi."])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "no voice or character 'Nobody'" in result.output


def test_a_dialogue_rule_in_a_book_without_quotations_is_warned_unused(tmp_path: Path) -> None:
    """A dialogue rule matches the quotations narrate finds: in a text whose only quote
    marks are scare quotes it matches nothing, and says so with its line."""
    voices = (
        "voices:\n  narrator: {voice: gmw/en-us}\n  talk: {voice: gmw/en-gb-x-rp}\n"
        "default: narrator\nrules:\n  - {kind: dialogue, voice: talk}\n"
    )
    root = story_project(tmp_path, voices)
    (root / "seeds" / "01-story.md").write_text(
        '# Notes\n\nThe so-called "reform" changed nothing in the town.\n', encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["cast", "-p", str(root)])
    assert result.exit_code == 0, result.output
    assert "voices.yaml:6: rules[0] matches no segment in the current seeds" in result.stderr
