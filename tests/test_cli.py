"""The command line: a clear one-line error naming the file for bad input, a non-zero exit,
no traceback, and output/ untouched. These refuse before synthesis, so they are quick."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from narration.cli import main

from .support import tree_digest


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def with_previous_output(root: Path) -> dict[str, str]:
    out = root / "output"
    out.mkdir()
    (out / "01-previous.mp3").write_bytes(b"ID3previous")
    (out / "feed.xml").write_text("<rss/>", encoding="utf-8")
    return tree_digest(out)


def refused(root: Path, pattern: str, code: int = 1) -> None:
    before = with_previous_output(root)
    result = run("build", "-p", str(root), "--quiet")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert re.search(pattern, message), message
    assert tree_digest(root / "output") == before


def test_no_seeds_folder(make_project) -> None:
    refused(make_project(seeds=False), r"seeds: no seeds directory")


def test_empty_seeds_folder(make_project) -> None:
    root = make_project(seeds=False)
    (root / "seeds").mkdir()
    refused(root, r"seeds: no seed files")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"03-extra\.txt: .*empty"),
        (b"   \n\n\t  \r\n", r"03-extra\.txt: .*(empty|nothing)"),
        (
            b"Top of the page\n\nLast updated on 1 February 2023\n",
            r"03-extra\.txt: .*(nothing|boilerplate)",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"03-extra\.txt: this is .*not a text file"),
        (
            b"Caf\xe9 au lait, cr\xe8me br\xfbl\xe9e.\n",
            r"03-extra\.txt:1: not valid UTF-8 at byte offset 3",
        ),
        (
            b"Good text.\n\nMore good text, then " + b"\xff\xfe bad.\n",
            r"03-extra\.txt:3: not valid UTF-8 at byte offset 33",
        ),
        (b"ELF\x00\x01\x02binary", r"03-extra\.txt(:\d+)?: binary data"),
        (
            b"!!! ... ?? \xe2\x80\x94 ;;\n\n1 2 3 4 (5) 6.\n",
            r"03-extra\.txt: nothing to read: no words",
        ),
    ],
    ids=[
        "empty",
        "whitespace",
        "boilerplate",
        "png",
        "latin1-undeclared",
        "invalid-utf8-middle",
        "nul",
        "no-words",
    ],
)
def test_bad_seed_file(make_project, content: bytes, pattern: str) -> None:
    root = make_project()
    (root / "seeds" / "03-extra.txt").write_bytes(content)
    refused(root, pattern)


def test_utf16_with_bom_is_read(make_project) -> None:
    root = make_project()
    (root / "seeds" / "03-extra.txt").write_bytes(
        "\ufeffA Title\n\nSome text in UTF-16.\n".encode("utf-16-le")
    )
    result = run("segments", "--json", "-p", str(root))
    assert result.exit_code == 0, result.output
    chapters = json.loads(result.stdout)["chapters"]
    assert chapters[-1]["segments"][-1]["text"] == "Some text in UTF-16."


def test_declared_latin1_is_read(make_project) -> None:
    root = make_project()
    (root / "seeds" / "03-extra.txt").write_bytes(
        b"Title: Caf\xe9\n\nCharacter set encoding: ISO-8859-1\n\nThe caf\xe9 was open.\n"
    )
    result = run("segments", "--json", "-p", str(root))
    assert result.exit_code == 0, result.output
    assert "café" in result.stdout


def test_output_symlink_escaping_project_is_refused(make_project, tmp_path: Path) -> None:
    root = make_project()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "output").symlink_to(elsewhere)
    result = run("build", "-p", str(root), "--quiet")
    assert result.exit_code == 1
    assert re.search(r"output.*escapes the project", result.output)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://example.org/", "http://", "https://exa mple.org/"]
)
def test_bad_base_url_is_refused(make_project, url: str) -> None:
    root = make_project()
    before = with_previous_output(root)
    result = run("build", "-p", str(root), "--quiet", "--base-url", url)
    assert result.exit_code == 1, result.output
    assert "--base-url" in result.output and "is not an http(s) URL" in result.output
    assert tree_digest(root / "output") == before


def test_cover_that_is_not_an_image_is_refused(make_project) -> None:
    root = make_project()
    (root / "seeds" / "cover.jpg").write_bytes(b"this is not a jpeg")
    refused(root, r"cover\.jpg: .*(not|cannot).*image")


@pytest.mark.parametrize("size", [(900, 1300), (1300, 900)])
def test_a_cover_too_small_even_centred_on_a_square_is_refused_with_its_size(
    make_project, size: tuple[int, int]
) -> None:
    """A portrait or landscape cover is centred on a square, never enlarged: its longer side
    must reach 1400 px, and the refusal says what square it would have made."""
    from PIL import Image

    root = make_project()
    Image.new("RGB", size, (120, 20, 30)).save(root / "seeds" / "cover.jpg", quality=90)
    w, h = size
    refused(
        root,
        rf"cover\.jpg: cover is {w}x{h} px \(a square of 1300x1300 once centred\); "
        r"podcast apps need a square of at least 1400x1400",
    )


def test_segments_refuses_a_setting_the_voices_engine_does_not_take(make_project) -> None:
    """`narrate segments` reads only voices.yaml's `reading:`, yet checks the file as every
    command does: the engines judge their voices' settings, not the configuration."""
    root = make_project()
    voices = root / "voices.yaml"
    voices.write_text(
        "voices:\n  narrator:\n    voice: gmw/en-us\n    speed: 1.2\ndefault: narrator\n"
    )
    result = run("segments", "-p", str(root))
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: {voices}:4: voices.narrator.speed: pyttsx3 voices have no speed; "
        "set rate (words a minute)"
    )


def test_init_scaffolds_a_project_that_checks(tmp_path: Path) -> None:
    root = tmp_path / "newbook"
    result = run("init", str(root))
    assert result.exit_code == 0, result.output
    assert (root / "voices.yaml").read_text(encoding="utf-8").startswith("# voices.yaml")
    assert (root / "seeds" / "01-example.md").is_file()
    cast = run("cast", "--json", "-p", str(root))
    assert cast.exit_code == 0, cast.output
    kinds = {
        s["kind"]: s["voice"] for c in json.loads(cast.stdout)["chapters"] for s in c["segments"]
    }
    assert kinds["quote"] == "quotes" and kinds["narration"] == "narrator"
    again = run("init", str(root))
    assert again.exit_code == 1 and "already exists" in again.output


def test_init_beside_the_users_texts_adds_no_example_to_their_book(tmp_path: Path) -> None:
    root = tmp_path / "novel"
    (root / "seeds").mkdir(parents=True)
    (root / "seeds" / "novel.txt").write_text("CHAPTER I\n\nIt was a dark night.\n")
    result = run("init", str(root))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (root / "seeds").iterdir()) == ["novel.txt"]
    assert (root / "voices.yaml").is_file() and "example" not in result.output


def test_voices_lists_english(tmp_path: Path) -> None:
    result = run("voices", "--lang", "en", "--json")
    assert result.exit_code == 0, result.output
    voices = json.loads(result.stdout)["voices"]
    assert {"gmw/en-us", "gmw/en-gb-scotland"} <= {v["id"] for v in voices}
    assert all(any(lang.startswith("en") for lang in v["languages"]) for v in voices)


def test_voices_show_accents_and_the_variants_genders_not_a_false_male() -> None:
    data = json.loads(run("voices", "--lang", "en", "--json").stdout)
    by_id = {v["id"]: v for v in data["voices"]}
    assert "gmw/en-shaw" not in by_id
    assert by_id["gmw/en-gb-scotland"]["accent"] == "Scottish"
    assert by_id["gmw/en-us"] == {
        "id": "gmw/en-us",
        "name": "English (America)",
        "languages": ["en-us", "en"],
        "gender": None,
        "accent": "American",
    }
    variants = {v["id"]: v for v in data["variants"]}
    assert variants["f3"] == {"id": "f3", "name": "female3", "gender": "female", "castable": True}
    assert variants["whisper"]["gender"] == "male" and not variants["whisper"]["castable"]
    assert variants["fast"]["gender"] is None
    text = run("voices", "--lang", "en")
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    row = next(line for line in lines if line.startswith("gmw/en-gb-scotland "))
    assert re.split(r"\s{2,}", row)[1:4] == ["English (Scotland)", "-", "Scottish"]
    assert not any(line.startswith("gmw/en-shaw") for line in lines)
    female = next(line for line in lines if line.startswith("  female: "))
    male = next(line for line in lines if line.startswith("  male: "))
    assert "f3*" in female.split(", ") and "whisperf" in female.split(", ")
    assert "m3*" in male and "whisper" in male.split(", ") and "f3" not in male
    assert "a variant gives it" in text.output


def test_voices_option_prefers_the_projects_file_over_one_in_the_working_dir(
    make_project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project()
    text = (root / "voices.yaml").read_text(encoding="utf-8")
    (root / "alt.yaml").write_text(text.replace("label: Narrator", "label: Alt Narrator"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "alt.yaml").write_text("not: a cast\n", encoding="utf-8")
    (elsewhere / "mine.yaml").write_text(text.replace("rate: 170", "rate: 171"))
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["cast", "-p", str(root), "--voices", "alt.yaml"])
    assert result.exit_code == 0, result.output
    # a path from the working directory when the project has no such file
    result = CliRunner().invoke(main, ["cast", "-p", str(root), "--voices", "mine.yaml"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["build", "-p", str(root), "--voices", "missing.yaml"])
    assert result.exit_code == 2 and "missing.yaml: not found" in result.output
    assert not (root / "output").exists()


def test_counts_agree_with_their_nouns(make_project) -> None:
    from narration.pipeline.report import BuildReport

    one = {"segments": 1, "clips": 1, "rendered": 1, "cached": 0, "encoded": True, "seconds": 3.0}
    one |= {"pieces": 1, "pieces_encoded": 1}
    report = BuildReport(chapters=[one])
    assert report.summary().startswith(
        "Built 1 chapter, 0.1 min of audio, in 0.0 s: 1 clip rendered, 0 from cache, "
        "1 chapter encoded."
    )
    report = BuildReport(chapters=[one, {**one, "rendered": 0, "cached": 1, "encoded": False}])
    assert "Built 2 chapters" in report.summary() and "1 clip rendered" in report.summary()
    assert "1 chapter encoded." in report.summary()
    # a chapter made again from some of the pieces an earlier build kept
    report = BuildReport(chapters=[{**one, "pieces": 30, "pieces_encoded": 4}])
    assert "1 chapter encoded (4 of 30 pieces). Feed:" in report.summary()
    root = make_project()
    # where an older narrate kept its cache: clean empties it too (moved to .narrate/ first)
    clip = root / "output" / ".cache" / "clips" / "ab" / ("ab" + "0" * 62 + ".wav")
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"RIFF")
    result = CliRunner().invoke(main, ["clean", "-p", str(root)])
    assert result.exit_code == 0 and "removed 1 cached clip from" in result.output


def test_preview_into_a_folder_that_does_not_exist_says_so(make_project, tmp_path: Path) -> None:
    root = make_project()
    out = tmp_path / "no" / "such" / "clip.wav"
    result = CliRunner().invoke(
        main, ["preview", "-p", str(root), "--voice", "serge", "Hello.", "-o", str(out)]
    )
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == f"Error: {out.parent}: no such folder for the preview (--out {out})"
    )
    assert not (tmp_path / "no").exists()


def test_a_command_run_inside_seeds_finds_its_project(
    make_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project()
    monkeypatch.chdir(root / "seeds")
    result = CliRunner().invoke(main, ["segments", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["chapters"]) == 2
    result = CliRunner().invoke(main, ["cast"])
    assert result.exit_code == 0, result.output
    assert not (root / "seeds" / "output").exists()


def test_a_line_that_is_not_prose_is_refused_naming_its_line(make_project) -> None:
    """A 200 kB line without a space used to build into hours of spelled-out noise."""
    import base64

    root = make_project()
    blob = base64.b64encode(bytes(range(256)) * 600).decode()
    (root / "seeds" / "03-attachment.txt").write_text(
        f"An Attachment\n\nThe file follows.\n\n{blob}\n\nThe end.\n", encoding="utf-8"
    )
    before = tree_digest(root / "output")
    result = CliRunner().invoke(main, ["build", "-p", str(root), "--quiet"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert re.search(
        r"03-attachment\.txt:5: 204,800 characters without a space \(AAECAwQFBgcICQoLDA0ODxAR\.\.\.\): "
        r"this is not prose",
        line,
    ), line
    assert tree_digest(root / "output") == before


def test_files_in_seeds_narrate_cannot_read_are_named_not_skipped(make_project) -> None:
    root = make_project()
    seeds = root / "seeds"
    (seeds / "book.pdf").write_bytes(b"%PDF-1.7\n")
    (seeds / "notes.docx").write_bytes(b"PK\x03\x04")
    (seeds / "novel.mobi").write_bytes(b"BOOKMOBI")
    (seeds / "extra").mkdir()
    (seeds / "gone.txt").symlink_to(seeds / "nowhere.txt")
    (seeds / ".DS_Store").write_bytes(b"\x00")  # hidden: not a seed, not a mistake
    (seeds / "cover.png").write_bytes(b"\x89PNG")  # the cover
    for command in (["segments"], ["cast"]):
        result = CliRunner().invoke(main, [*command, "-p", str(root)])
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["segments", "-p", str(root)])
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        "Warning: seeds/book.pdf: a PDF: narrate cannot read it "
        "(.txt, .md, .epub, .html, .xhtml, .htm only); it is not read",
        "Warning: seeds/extra: a folder: narrate reads only the files directly in seeds/",
        "Warning: seeds/gone.txt: a broken link: its target does not exist; it is not read",
        "Warning: seeds/notes.docx: a Word document: narrate cannot read it "
        "(.txt, .md, .epub, .html, .xhtml, .htm only); it is not read",
        "Warning: seeds/novel.mobi: a Kindle book (MOBI): narrate cannot read it "
        "(.txt, .md, .epub, .html, .xhtml, .htm only); it is not read",
    ]


def _console_script(bin_dir: Path) -> Path:
    """A `narrate` console script as pip writes one, running this checkout's narration."""
    bin_dir.mkdir(parents=True)
    script = bin_dir / "narrate"
    repo = Path(__file__).resolve().parent.parent
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(repo)!r})\n"
        "from narration.cli import main\nif __name__ == '__main__':\n    sys.exit(main())\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def test_init_prints_a_build_command_that_runs_as_printed(tmp_path: Path) -> None:
    """After `make build` narrate is .venv/bin/narrate, not on PATH: init's hint says so, and
    the line it prints, typed into a shell, builds the new project."""
    _console_script(tmp_path / ".venv" / "bin")
    env = {**os.environ, "PATH": "/usr/bin:/bin", "NARRATE_CACHE_DIR": str(tmp_path / "cache")}
    init = subprocess.run(
        [".venv/bin/narrate", "init", "my book"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    hint = init.stdout.strip().splitlines()[-1]
    typed = hint.split("and run: ", 1)[1]
    assert typed == ".venv/bin/narrate build -p 'my book'"
    # Messages that name another command name it the same way.
    serve = subprocess.run(
        [".venv/bin/narrate", "serve", "-p", "my book"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "run `.venv/bin/narrate build` first" in serve.stderr

    built = subprocess.run(
        typed, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "my book" / "output" / "feed.xml").is_file()
    # With the venv on PATH (activated, or pip installed), the bare name is what to type.
    on_path = {**env, "PATH": f"{tmp_path / '.venv' / 'bin'}:/usr/bin:/bin"}
    again = subprocess.run(
        ["narrate", "init", "other"],
        cwd=tmp_path,
        env=on_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.stdout.strip().endswith("and run: narrate build -p other"), again.stdout
