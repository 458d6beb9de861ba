"""The audiobook: the seeds built with --m4b by the real engine, the M4B read back by mutagen,
by an ffmpeg binary (imageio-ffmpeg's, pip-only: the demuxer players use) and by PyAV,
decoded and measured with pyloudnorm, compared with the MP3 chapters it is made beside,
rebuilt the ways users rebuild, and played from the show page in headless Chromium.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mutagen.mp3
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from mutagen.mp4 import MP4

from narration.assembly import aac, m4b
from narration.cli import main

from .support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    build,
    copy_build,
    decode,
    lufs,
    new_project,
    start_server,
    stop,
    true_peak_db,
)

RATE = 44100
BOOK = "the-workers-opposition.m4b"


def mp3_chapters(out: Path, report: dict) -> list[tuple[float, str]]:
    """The MP3 chapters' marks placed in the book: each episode's own marks plus the
    preceding episodes' durations (as mutagen reads them, not as narrate says)."""
    marks: list[tuple[float, str]] = []
    offset = 0.0
    for chapter in report["chapters"]:
        mp3 = out / chapter["mp3"]
        sidecar = json.loads(mp3.with_suffix(".chapters.json").read_text(encoding="utf-8"))
        marks += [(offset + c["startTime"], c["title"]) for c in sidecar["chapters"]]
        offset += mutagen.mp3.MP3(mp3).info.length
    return marks


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_chapters(path: Path) -> tuple[list[tuple[float, str]], float]:
    """Chapters and duration as the ffmpeg binary's demuxer reads them."""
    run = subprocess.run(
        [ffmpeg(), "-hide_banner", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    chapters = []
    for block in run.stdout.split("[CHAPTER]")[1:]:
        fields = dict(line.split("=", 1) for line in block.strip().splitlines() if "=" in line)
        num, den = fields["TIMEBASE"].split("/")
        chapters.append((int(fields["START"]) * int(num) / int(den), fields["title"]))
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", run.stderr).groups()  # type: ignore[union-attr]
    return chapters, int(h) * 3600 + int(m) * 60 + float(s)


def atoms(data: bytes, at: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(type, start, size) of the top-level boxes of an MP4."""
    end = len(data) if end is None else end
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        yield kind.decode("latin-1"), at, size
        at += size


def pcm(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])


@pytest.fixture(scope="module")
def built(seeds_m4b_build: tuple[Path, dict]) -> tuple[Path, dict]:
    """The session's cold build of the seeds with --m4b (conftest): read here, rebuilt only
    in a copy or in projects of their own that take its clips."""
    return seeds_m4b_build


@pytest.mark.slow
def test_the_m4b_has_every_mp3_chapter_mark_where_the_episodes_put_it(
    built: tuple[Path, dict],
) -> None:
    root, report = built
    out = root / "output"
    path = out / BOOK
    assert report["audiobook"]["file"] == BOOK
    expected = mp3_chapters(out, report)
    assert len(expected) == 7  # two chapters; sections and quote blocks in each

    got = [(c.start, c.title) for c in MP4(path).chapters]  # the Nero chpl atom
    ff, ff_duration = ffmpeg_chapters(path)  # the QuickTime chapter track
    assert [t for _, t in got] == [t for _, t in expected] == [t for _, t in ff]
    for (a, title), (b, _), (c, _) in zip(got, expected, ff, strict=True):
        assert abs(a - b) < 0.05, (title, a, b)
        assert abs(a - c) < 0.001, (title, a, c)

    mp3_total = sum(mutagen.mp3.MP3(out / c["mp3"]).info.length for c in report["chapters"])
    assert abs(ff_duration - mp3_total) < 1.0
    assert abs(MP4(path).info.length - mp3_total) < 1.0
    assert abs(report["audiobook"]["seconds"] - mp3_total) < 1.0
    assert report["audiobook"]["size"] == path.stat().st_size


@pytest.mark.slow
def test_the_m4b_is_tagged_as_an_audiobook_with_the_cover(built: tuple[Path, dict]) -> None:
    root, _ = built
    out = root / "output"
    data = (out / BOOK).read_bytes()
    tags = MP4(out / BOOK).tags
    assert tags is not None
    assert tags["\xa9nam"] == ["The Workers' Opposition"]
    assert tags["\xa9alb"] == ["The Workers' Opposition"]
    assert tags["\xa9ART"] == tags["aART"] == ["Alexandra Kollontai"]
    assert tags["\xa9gen"] == ["Audiobook"]
    assert tags["\xa9day"] == ["1921"]
    assert tags["stik"] == [2]  # media kind: audiobook
    assert tags["trkn"] == [(1, 1)] and tags["disk"] == [(1, 1)]
    narrators = tags["\xa9wrt"][0].split(", ")
    assert "Victor Serge" in narrators and "Narrator" in narrators
    assert tags["\xa9nrt"] == tags["\xa9wrt"]
    assert tags["desc"][0].startswith("Alexandra Kollontai's 1921 pamphlet")
    (cover,) = [p for p in out.iterdir() if p.name.startswith("cover.")]
    assert bytes(tags["covr"][0]) == cover.read_bytes()

    # an audiobook file, its index first (players start it at once, over HTTP too), and
    # no wall-clock time or encoder version in it (two builds give the same bytes)
    boxes = [kind for kind, _, _ in atoms(data)]
    assert data[8:12] == b"M4B "
    assert boxes.index("moov") < boxes.index("mdat")
    _, moov, size = next(a for a in atoms(data) if a[0] == "moov")
    _, mvhd, _ = next(a for a in atoms(data, moov + 8, moov + size) if a[0] == "mvhd")
    version = data[mvhd + 8]
    created, modified = struct.unpack(">II", data[mvhd + 12 : mvhd + 20])
    assert (version, created, modified) == (0, 0, 0)
    assert b"Lavf" not in data


@pytest.mark.slow
def test_the_m4b_is_the_mp3s_audio_at_mono_podcast_loudness(built: tuple[Path, dict]) -> None:
    """Decoded, it measures -19 +/- 1 LUFS under the -1 dBTP ceiling, and each chapter is its
    MP3's audio where its marks say (the same levelled samples, encoded twice)."""
    root, report = built
    out = root / "output"
    x = pcm(out / BOOK)
    assert abs(lufs(x) + 19.0) <= 1.0
    assert true_peak_db(x) <= -1.0
    starts = [c.start for c in MP4(out / BOOK).chapters]
    first = 0  # each episode's first mark in the book: where its audio starts there
    for chapter in report["chapters"]:
        mp3 = out / chapter["mp3"]
        y = decode(mp3)
        start = round(starts[first] * RATE)
        n = min(y.size, x.size - start) - RATE
        assert np.corrcoef(x[start + RATE : start + n], y[RATE:n])[0, 1] > 0.98, mp3.name
        first += len(json.loads(mp3.with_suffix(".chapters.json").read_text())["chapters"])


def own_clips(root: Path, tmp_path: Path) -> Path:
    """A copy of the session build's clips for this test's builds to use and add to: the
    session's cache stays the clips of the seeds alone (test_workspace counts them)."""
    clips = tmp_path / "clips"
    shutil.copytree(root / ".narrate" / "cache" / "clips", clips)
    return clips


@pytest.mark.slow
def test_builds_give_the_same_m4b_and_a_rebuild_that_changes_nothing_keeps_it(
    built: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = built
    book = root / "output" / BOOK
    copy, _ = copy_build(built, tmp_path / "again")
    before = (copy / "output" / BOOK).stat().st_mtime_ns
    report = build(copy, "--m4b")
    assert report["audiobook"]["written"] is False
    assert (copy / "output" / BOOK).stat().st_mtime_ns == before

    # another clean build, on one process (the clips from the first: their own test is
    # test_build's), and through podcast.yaml rather than the flag
    other = new_project(tmp_path / "other")
    with open(other / "podcast.yaml", "a", encoding="utf-8") as fh:
        fh.write("\nm4b: true\n")
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(own_clips(root, tmp_path)))
    report = build(other, "-j", "1")
    assert report["audiobook"]["written"] is True
    assert (other / "output" / BOOK).read_bytes() == book.read_bytes()

    # off: the M4B goes, and the page no longer offers it
    build(other, "--no-m4b")
    assert not (other / "output" / BOOK).exists()
    assert ".m4b" not in (other / "output" / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_turned_on_later_only_the_audio_is_encoded_for_it(
    built: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A book built without the M4B, then with: the MP3s are kept as they are, and the M4B
    is the one a build with it from the start makes."""
    root, _ = built
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(own_clips(root, tmp_path)))
    other = new_project(tmp_path / "later")
    build(other)
    out = other / "output"
    mp3s = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*.mp3")}
    report = build(other, "--m4b")
    assert [c["encoded"] for c in report["chapters"]] == [False, False]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*.mp3")} == mp3s
    assert (out / BOOK).read_bytes() == (root / "output" / BOOK).read_bytes()


@pytest.mark.slow
def test_a_changed_chapter_is_encoded_again_and_the_m4b_rebuilt(
    built: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = built
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(own_clips(root, tmp_path)))
    other = tmp_path / "changed"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("cache", "lock"))
    state = other / ".narrate" / "state"
    first, second = sorted(state.glob("*.aac"))
    kept = first.stat().st_mtime_ns, hashlib.sha256(first.read_bytes()).hexdigest()
    was = second.read_bytes()
    seed = sorted((other / "seeds").iterdir())[-1]
    text = seed.read_text(encoding="utf-8")
    seed.write_text(text.rstrip() + "\n\nOne more sentence, added for the test.\n", "utf-8")
    report = build(other, "--m4b")
    assert [c["encoded"] for c in report["chapters"]] == [False, True]
    assert report["audiobook"]["written"] is True
    assert (first.stat().st_mtime_ns, hashlib.sha256(first.read_bytes()).hexdigest()) == kept
    assert second.read_bytes() != was
    out = other / "output"
    got = [c.start for c in MP4(out / BOOK).chapters]
    want = [t for t, _ in mp3_chapters(out, report)]
    assert len(got) == len(want) and max(abs(a - b) for a, b in zip(got, want, strict=True)) < 0.05
    assert (out / BOOK).read_bytes() != (root / "output" / BOOK).read_bytes()


@pytest.mark.slow
def test_a_chapter_aac_rotted_on_disk_is_refused_then_encoded_again(
    built: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its size and time unchanged: found when the M4B is joined, named, removed, and made
    again by the next build, which gives the same M4B as before."""
    import os

    root, _ = built
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(own_clips(root, tmp_path)))
    other = tmp_path / "rot"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("cache", "lock"))
    out = other / "output"
    (out / BOOK).unlink()  # so that the M4B is joined again
    aac_file = sorted((other / ".narrate" / "state").glob("*.aac"))[1]
    st = aac_file.stat()
    data = bytearray(aac_file.read_bytes())
    data[len(data) // 2] ^= 0x10
    aac_file.write_bytes(bytes(data))
    os.utime(aac_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = CliRunner().invoke(main, ["build", "-p", str(other), "--m4b", "-q"])
    assert result.exit_code == 1
    assert f"{aac_file.name}: damaged on disk" in result.output
    assert "Traceback" not in result.output
    assert not aac_file.exists()
    build(other, "--m4b")
    assert (out / BOOK).read_bytes() == (root / "output" / BOOK).read_bytes()


# --------------------------------------------------------------------------- timing


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=RATE // 2, max_value=RATE * 7200), min_size=1, max_size=60))
def test_chapters_start_within_half_a_frame_of_the_mp3s_and_never_need_a_frame_more(
    heard: list[int],
) -> None:
    """Whatever the chapters' lengths, each is ended on a frame it has (frames_for gives it
    one to spare), and every chapter starts within 512 samples (12 ms) of where the MP3s'
    durations, summed, start it: no drift over a long book."""
    chapters = [m4b.BookChapter("t", Path("x"), "", h, ()) for h in heard]
    ends = m4b._ends(chapters)
    first, total = 0, 0
    for k, (h, end) in enumerate(zip(heard, ends, strict=True)):
        decoded = h + aac.PRIMING if k == 0 else h
        assert 0 < end - first <= aac.frames_for(decoded)
        start = max(0, first * aac.FRAME - aac.PRIMING)
        assert abs(start - total) <= aac.FRAME // 2
        first, total = end, total + h


def test_the_encoder_gives_whole_frames_and_the_same_bytes_every_time() -> None:
    rng = np.random.default_rng(7)
    chunks = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (5000, 1, 30000)]
    one = aac.encode(iter(chunks), 40000, 81, 64)
    two = aac.encode(iter(chunks), 40000, 81, 64)
    assert one == two
    assert len(one.packets) == aac.frames_for(40000)
    assert aac.unpack(aac.pack(one), Path("x.aac")) == one
    with pytest.raises(Exception, match=r"x\.aac: damaged"):
        aac.unpack(aac.pack(one)[:-3], Path("x.aac"))


# --------------------------------------------------------------------------- in Chromium


@pytest.mark.slow
def test_the_show_page_plays_the_m4b_in_chromium(built: tuple[Path, dict]) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM}: this test plays the M4B in Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    root, report = built
    out = root / "output"
    proc, printed = start_server(out)
    try:
        base = re.search(r"http://\S+/", printed[0]).group(0)  # type: ignore[union-attr]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                problems: list[str] = []
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(base)
                section = page.locator("#audiobook")
                href = section.locator("a[download]").get_attribute("href")
                assert href == BOOK
                page.evaluate(
                    "() => { const a = document.querySelector('#audiobook audio');"
                    " a.muted = true; return a.play(); }"
                )
                page.wait_for_function(
                    "document.querySelector('#audiobook audio').currentTime > 0.5",
                    timeout=20_000,
                )
                duration = page.evaluate("document.querySelector('#audiobook audio').duration")
                assert abs(duration - report["audiobook"]["seconds"]) < 0.1
                # a chapter of the whole book seeks its player there (byte ranges served)
                starts = [c.start for c in MP4(out / BOOK).chapters]
                section.locator("summary").click()
                section.locator(".mark").nth(3).click()
                page.wait_for_function(
                    f"document.querySelector('#audiobook audio').currentTime > {starts[3]}",
                    timeout=20_000,
                )
                at = page.evaluate("document.querySelector('#audiobook audio').currentTime")
                assert starts[3] <= at < starts[3] + 2.0
                error = page.evaluate("document.querySelector('#audiobook audio').error")
                assert error is None and problems == []
            finally:
                browser.close()
    finally:
        stop(proc)
