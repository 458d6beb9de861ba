"""The whole pipeline on the real seeds with the real engine, through the command line.

The session's cold build of the seeds (conftest's seeds_build) is read here; the tests then
rebuild a copy of it the way users do (nothing changed, one voice's rate changed, changed
back) and compare a second project built from scratch with its own clip cache and one
synthesis worker: the same inputs must give the same bytes, whatever the engine rendered
before and however the work was spread.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import feedparser
import mutagen.mp3
import pytest
from click.testing import CliRunner

from narration import layout
from narration.cli import main
from narration.synthesis import workers as worker_processes

from .support import build, copy_build, decode, lufs, new_project, products, true_peak_db


@pytest.fixture(scope="module")
def built(seeds_build: tuple[Path, dict]) -> tuple[Path, dict]:
    """The session's cold build of the seeds (conftest): read here, rebuilt only in a copy."""
    return seeds_build


@pytest.mark.slow
def test_the_seeds_chapters_play_at_mono_podcast_loudness(built: tuple[Path, dict]) -> None:
    """-19 LUFS (mono: as loud as a stereo show at -16), true peak at most -1 dBTP, as a
    player decodes the MP3 (measured by pyloudnorm and SciPy, not by narrate)."""
    root, report = built
    for chapter in report["chapters"]:
        x = decode(root / "output" / chapter["mp3"])
        assert abs(lufs(x) + 19) <= 1.0, (chapter["mp3"], lufs(x))
        assert true_peak_db(x) <= -1.0 + 0.1, (chapter["mp3"], true_peak_db(x))


@pytest.mark.slow
def test_cold_build_renders_every_line_and_delivers_every_file(built: tuple[Path, dict]) -> None:
    root, report = built
    out = root / "output"
    totals = report["totals"]
    assert totals["chapters"] == 2 and totals["encoded"] == 2
    assert totals["clips"] == totals["rendered"] > 50 and totals["cached"] == 0
    assert set(report["stages"]) == {"check", "speakers", "synthesis", "cover", "assembly", "feed"}
    (engine,) = report["engines"]
    assert engine["name"] == "pyttsx3" and "espeak-ng" in engine["version"]
    for chapter in report["chapters"]:
        mp3 = out / chapter["mp3"]
        stem = mp3.name[: -len(".mp3")]
        assert (out / f"{stem}.vtt").is_file() and (out / f"{stem}.chapters.json").is_file()
        length = mutagen.mp3.MP3(mp3).info.length
        assert abs(length - chapter["seconds"]) < 0.1, (mp3.name, length, chapter["seconds"])
    # ten minutes of speech at 160-175 wpm plus pauses: no chapter silently lost or cut short
    assert 9 * 60 < totals["seconds"] < 15 * 60
    assert {"Narrator", "Alexandra Kollontai", "Victor Serge"} <= {
        v for c in report["chapters"] for v in c["voices"]
    }
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert len(feed.entries) == 2
    for entry in feed.entries:
        name = entry.enclosures[0].href.rsplit("/", 1)[1]
        assert int(entry.enclosures[0].length) == (out / name).stat().st_size
    assert (out / "index.html").is_file()


@pytest.mark.slow
def test_rebuilds_do_only_what_changed(
    built: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, first = copy_build(built, tmp_path / "book")
    out = root / "output"
    before = products(out)
    started: list[int] = []

    class CountedPool(worker_processes.WorkerPool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(len(self.workers))

    monkeypatch.setattr(worker_processes, "WorkerPool", CountedPool)

    again = build(root)
    assert again["totals"]["rendered"] == 0 and again["totals"]["encoded"] == 0
    assert products(out) == before, "a no-op rebuild rewrote files"
    assert started == [], "a build with nothing changed started synthesis workers"

    # Serge reads a little faster: only his clips are rendered again, only chapter 2 encoded.
    voices = root / "voices.yaml"
    original = voices.read_text(encoding="utf-8")
    serge = original.index("  serge:")
    rate = re.compile(r"rate: (\d+)")
    m = rate.search(original, serge)
    assert m is not None
    voices.write_text(
        original[: m.start()] + f"rate: {int(m.group(1)) + 15}" + original[m.end() :],
        encoding="utf-8",
    )
    changed = build(root)
    assert len(started) == 1, "the workers start once, before the checks, for the changed voice"
    serge_clips = sum(
        1
        for line in (root / "output" / "02-workers-opposition.vtt")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.startswith("<v Victor Serge>")
    )
    assert serge_clips > 0
    assert changed["totals"]["rendered"] == serge_clips
    encoded = [c["mp3"] for c in changed["chapters"] if c["encoded"]]
    assert encoded == ["02-workers-opposition.mp3"]
    now = products(out)
    ch1 = [k for k in before if k.startswith("01-")]
    assert ch1 and all(now[k] == before[k] for k in ch1), "chapter 1 was rewritten"
    assert now["02-workers-opposition.mp3"][0] != before["02-workers-opposition.mp3"][0]

    # Back to the original rate: every clip is in the cache, and the bytes are the first build's.
    voices.write_text(original, encoding="utf-8")
    back = build(root)
    assert back["totals"]["rendered"] == 0
    assert {k: v[0] for k, v in products(out).items()} == {k: v[0] for k, v in before.items()}
    assert first["totals"]["seconds"] == back["totals"]["seconds"]


@pytest.mark.slow
def test_the_users_cover_goes_out_as_given(
    built: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cover in seeds/ is checked before the build writes anything and then published as
    it is: output/cover.jpg, the MP3s' embedded picture and the feed's image."""
    from PIL import Image

    root = new_project(tmp_path / "book")
    Image.new("RGB", (1400, 1400), (150, 30, 30)).save(root / "seeds" / "cover.jpg", quality=90)
    mine = (root / "seeds" / "cover.jpg").read_bytes()
    monkeypatch.setenv(layout.CACHE_ENV, str(built[0] / ".narrate" / "cache" / "clips"))
    report = build(root)
    assert report["totals"]["rendered"] == 0  # the first project's clips
    out = root / "output"
    assert (out / "cover.jpg").read_bytes() == mine and not (out / "cover.png").exists()
    for chapter in report["chapters"]:
        tags = mutagen.mp3.MP3(out / chapter["mp3"]).tags
        assert tags is not None and tags.getall("APIC")[0].data == mine
    assert feedparser.parse(str(out / "feed.xml")).feed.image.href.endswith("/cover.jpg")


def test_a_refused_build_stops_its_early_workers_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers start before the checks: when the checks refuse, they must be gone, and
    neither output/ nor the clip cache may exist."""
    root = new_project(tmp_path / "book")
    voices = root / "voices.yaml"
    voices.write_text(voices.read_text(encoding="utf-8") + "\nsurprise: 1\n", encoding="utf-8")
    procs: list[Any] = []

    class RecordedPool(worker_processes.WorkerPool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            procs.extend(w.proc for w in self.workers)

    monkeypatch.setattr(worker_processes, "WorkerPool", RecordedPool)
    monkeypatch.delenv(layout.CACHE_ENV, raising=False)  # the cache is .narrate/cache/clips
    result = CliRunner().invoke(main, ["build", "-p", str(root)])
    assert result.exit_code != 0 and "voices.yaml" in result.output, result.output
    assert "surprise" in result.output
    assert procs, "no workers were started early"
    assert all(p.poll() is not None for p in procs), "a worker outlived the refused build"
    assert not (root / "output").exists() and not (root / ".narrate").exists()


@pytest.mark.slow
def test_a_fresh_build_elsewhere_is_byte_identical(
    built: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Own clip cache, one synthesis worker instead of one per core: the same bytes."""
    root, _ = built
    other = new_project(tmp_path / "elsewhere")
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(tmp_path / "cache"))
    report = build(other, "--jobs", "1")
    assert report["totals"]["rendered"] == report["totals"]["clips"]
    assert any((tmp_path / "cache").rglob("*.wav"))
    mine = {k: v[0] for k, v in products(root / "output").items()}
    theirs = {k: v[0] for k, v in products(other / "output").items()}
    assert mine.keys() == theirs.keys()
    differ = [k for k in mine if mine[k] != theirs[k]]
    assert not differ, f"differ between two clean builds: {differ}"
    assert not any(other.rglob("*.wav")), "NARRATE_CACHE_DIR was ignored"
