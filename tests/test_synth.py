"""Synthesis: keys, the clip cache, parallel deterministic rendering, verification, retries."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import itertools
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import wave
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutagen.mp3 import MP3

from narration.errors import OutputError, SynthesisError
from narration.layout import CACHE_ENV
from narration.layout import cache_dir as default_cache_dir
from narration.model import Clip, Line, Voice
from narration.pipeline import playback
from narration.pipeline.playback import play, preview_text
from narration.progress import ProgressReporter, Work, format_duration
from narration.synthesis import (
    ClipCache,
    ClipProblem,
    check_clip,
    clip_key,
    full_scale_samples,
    plausible_speech_seconds,
    speech_seconds,
    synthesize,
    wav_info,
)
from narration.synthesis import workers as worker_processes
from narration.synthesis.engines import FakeEngine, Fault, Pyttsx3Engine, write_wav

NARRATOR = Voice("narrator", "The Narrator", "gmw/en-us", 175, 50, 1.0)
SERGE = Voice("serge", "Victor Serge", "gmw/en+m3", 190, 40, 0.9)

TEXTS = [
    "What is the Workers' Opposition?",
    "In 1921 Alexandra Kollontai published a pamphlet.",
    "Comrades, preserve revolutionary order!",
    'Wait <break time="5s"/> and <speak>read</speak> the tags.',
    "The unions have been depopulated.",
    "Yes.",
]


def line(text: str) -> Line:
    return Line(text=text, spoken=text)


def book_jobs() -> list[tuple[Line, Voice, str]]:
    """Six lines in two voices, and the first line again (a duplicate)."""
    jobs = [(line(t), SERGE if i % 2 else NARRATOR, f"ch1-{i:04d}") for i, t in enumerate(TEXTS)]
    return [*jobs, (line(TEXTS[0]), NARRATOR, "ch2-0000")]


@pytest.fixture(scope="module")
def engine() -> Pyttsx3Engine:
    return Pyttsx3Engine()


@pytest.fixture(scope="module")
def first_build(
    engine: Pyttsx3Engine, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ClipCache, list[Clip], list]:
    cache = ClipCache(tmp_path_factory.mktemp("cache") / "clips")
    calls: list[tuple[int, int, int, Work]] = []
    clips = synthesize(
        book_jobs(), engine=engine, cache=cache, jobs=2, progress=lambda *a: calls.append(a)
    )
    return cache, clips, calls


# --------------------------------------------------------------------------- keys


def test_clip_key_covers_every_setting_that_changes_the_audio(engine: Pyttsx3Engine) -> None:
    base = clip_key("Hello there.", NARRATOR, engine)
    assert len(base) == 64 and base == clip_key("Hello there.", NARRATOR, engine)
    changed = [
        clip_key("Hello there!", NARRATOR, engine),
        clip_key("Hello there. ", NARRATOR, engine),  # the exact text, no normalising
        clip_key("Hello there.", replace(NARRATOR, engine_voice="gmw/en-us+f3"), engine),
        clip_key("Hello there.", replace(NARRATOR, rate=176), engine),
        clip_key("Hello there.", replace(NARRATOR, pitch=51), engine),
        clip_key("Hello there.", replace(NARRATOR, volume=0.99), engine),
        clip_key("Hello there.", NARRATOR, FakeEngine()),
    ]
    assert len({base, *changed}) == len(changed) + 1
    # renaming a voice or relabelling it in transcripts re-renders nothing
    assert (
        clip_key("Hello there.", replace(NARRATOR, name="reader", label="Reader"), engine) == base
    )
    assert clip_key("Hello there.", replace(NARRATOR, volume=1), engine) == base


def test_engine_version_is_part_of_the_key() -> None:
    class Upgraded(FakeEngine):
        version = "fake 2"

    assert clip_key("Hi.", NARRATOR, FakeEngine()) != clip_key("Hi.", NARRATOR, Upgraded())


# --------------------------------------------------------------------------- verification


def test_wav_problems_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.wav"
    with pytest.raises(ClipProblem, match="no WAV written"):
        check_clip(path, "Hello.", 175)
    path.write_bytes(b"")
    with pytest.raises(ClipProblem, match="zero-length file"):
        check_clip(path, "Hello.", 175)
    path.write_bytes(b"<html>oops</html>")
    with pytest.raises(ClipProblem, match="not a WAV file"):
        check_clip(path, "Hello.", 175)
    write_wav(path, b"", 22050)
    with pytest.raises(ClipProblem, match="empty WAV"):
        check_clip(path, "Hello.", 175)
    write_wav(path, b"\x00\x10" * 22050, sample_rate=44100)
    with pytest.raises(ClipProblem, match="expected 22,050 Hz mono 16-bit, got 44,100 Hz"):
        check_clip(path, "Hello.", 175)
    write_wav(path, b"\x00\x00" * 22050, 22050)
    with pytest.raises(ClipProblem, match=r"^silent; expected 0\.10-"):
        check_clip(path, "Hello.", 175)
    write_wav(path, b"\x00\x10" * 22050, 22050)
    full = path.read_bytes()
    path.write_bytes(full[:-1000])
    with pytest.raises(ClipProblem, match="truncated WAV"):
        wav_info(path)
    # a stereo file
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(b"\x00\x10" * 44100)
    with pytest.raises(ClipProblem, match="2 channel"):
        check_clip(path, "Hello.", 175)


def test_speech_bounds_allow_numbers_abbreviations_and_wordless_text() -> None:
    low, high = plausible_speech_seconds("Yes.", 175)
    assert 0 < low < 0.2 and high > 2.0
    assert plausible_speech_seconds("…", 175)[0] == 0  # nothing to say: silence is fine
    assert (
        plausible_speech_seconds("* * *", 175)[1] >= 1.65 * 1.2
    )  # espeak-ng names the stars: 1.65 s
    # "1921" and "NKVD" take longer to say than one word each
    assert (
        plausible_speech_seconds("In 1921 the NKVD.", 175)[1]
        > plausible_speech_seconds("In the old house.", 175)[1]
    )
    slow, fast = (
        plausible_speech_seconds("one two three four", 80),
        plausible_speech_seconds("one two three four", 450),
    )
    assert slow[0] > fast[0] * 5


def test_a_script_the_voice_spells_letter_by_letter_is_not_refused(
    engine: Pyttsx3Engine, tmp_path: Path
) -> None:
    """An English voice names each Hebrew or Han letter ("Hebrew letter shin"): 9 s for
    four short Hebrew words, which must pass the check like any other clip."""
    texts = [
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd, \u05d6\u05d4 \u05d8\u05e7\u05e1\u05d8.",
        "\u4f60\u597d\u4e16\u754c\uff0c\u8fd9\u662f\u6587\u672c\u3002",
        "Hebrew \u05e9\u05dc\u05d5\u05dd and Arabic \u0645\u0631\u062d\u0628\u0627 inside.",
    ]
    clips = synthesize(
        [(line(t), NARRATOR, f"rtl-{i}") for i, t in enumerate(texts)],
        engine=engine,
        cache=ClipCache(tmp_path),
        jobs=1,
    )
    spoken = []
    for text, clip in zip(texts, clips, strict=True):
        spoken.append(speech_seconds(clip.path.read_bytes()[wav_info(clip.path).data_offset :]))
        low, high = plausible_speech_seconds(text, NARRATOR.rate)
        assert low <= spoken[-1] <= high / 2, text  # and with room to spare
    assert spoken[0] > 5  # really spelled out


def test_speech_seconds_spans_first_to_last_sound() -> None:
    silence, tone = b"\x00\x00" * 1000, struct.pack("<h", 3000) * 2205
    assert speech_seconds(silence + tone + silence + tone + silence) == pytest.approx(
        (2 * 2205 + 1000) / 22050
    )
    quiet = struct.pack("<h", -40) * 441  # below the usual threshold: still sound
    assert speech_seconds(silence + quiet + silence) == pytest.approx(441 / 22050)
    assert speech_seconds(silence) == 0.0


# --------------------------------------------------------------------------- cache


def test_cache_directory_default_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert default_cache_dir(tmp_path) == tmp_path / ".narrate" / "cache" / "clips"
    assert ClipCache.for_project(tmp_path).root == tmp_path / ".narrate" / "cache" / "clips"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir(tmp_path) == (tmp_path / "elsewhere").resolve()


def test_cache_stores_atomically_and_treats_damage_as_missing(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path / "clips")
    fake = FakeEngine()
    key = clip_key("Some words here.", NARRATOR, fake)
    assert cache.get(key) is None and key not in cache
    tmp = cache.temp_path(key)
    assert tmp.parent == cache.path_for(key).parent and tmp.name.startswith(".")
    fake.render("Some words here.", NARRATOR, tmp)
    clip = cache.put(key, tmp)
    assert not tmp.exists() and clip.rendered and clip.path == cache.path_for(key)
    got = cache.get(key)
    assert got is not None and not got.rendered and got.frames == clip.frames > 22050
    assert got.seconds == pytest.approx(clip.frames / 22050)
    data = clip.path.read_bytes()
    clip.path.write_bytes(data[: len(data) // 2])  # a killed copy, a full disk
    assert cache.get(key) is None
    clip.path.write_bytes(b"\x00" * len(data))
    assert cache.get(key) is None
    clip.path.write_bytes(data)
    assert cache.get(key) is not None
    cache.temp_path(key).write_bytes(b"partial")  # leftover of a killed render
    assert list(cache.keys()) == [key]
    assert cache.clear() == 1
    assert list(cache.keys()) == [] and cache.get(key) is None
    assert not any(p.is_file() for p in cache.root.rglob("*"))
    assert ClipCache(tmp_path / "never").clear() == 0
    with pytest.raises(ValueError):
        cache.path_for("../../etc/passwd")


def test_unwritable_cache_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "output"
    blocker.write_text("a file where the cache folder should be")
    cache = ClipCache(blocker / ".cache" / "clips")
    with pytest.raises(
        OutputError, match=r"output/\.cache/clips: cannot create the clip cache \(Not a directory\)"
    ):
        synthesize([(line("Hello."), NARRATOR)], engine=FakeEngine(), cache=cache)


# --------------------------------------------------------------------------- real synthesis


def test_every_line_gets_a_verified_clip_in_order(
    first_build: tuple, capfd: pytest.CaptureFixture[str]
) -> None:
    cache, clips, calls = first_build
    jobs = book_jobs()
    assert len(clips) == len(jobs)
    for (ln, voice, _), clip in zip(jobs, clips, strict=True):
        assert clip.key == clip_key(ln.spoken, voice, Pyttsx3Engine())
        assert clip.path == cache.path_for(clip.key) and clip.sample_rate == 22050
        check_clip(clip.path, ln.spoken, voice.rate)
        low, high = plausible_speech_seconds(ln.spoken, voice.rate)
        assert low < clip.seconds < high + 1
    # the duplicate line is rendered once: only its first occurrence counts as rendered
    assert [c.rendered for c in clips] == [True] * 6 + [False]
    assert clips[6].path == clips[0].path
    chars = sum(len(ln.spoken) for ln, _, _ in jobs[:6])  # the duplicate is rendered once
    assert calls[0] == (0, 0, 6, Work(0, 0, chars)) and len(calls) == 7
    assert calls[-1] == (6, 0, 6, Work(chars, 0, chars))
    # each clip back adds its own line's characters
    done = sorted(c[3].done for c in calls)
    assert sorted(b - a for a, b in itertools.pairwise(done)) == sorted(
        len(ln.spoken) for ln, _, _ in jobs[:6]
    )
    assert capfd.readouterr().out == ""  # no "Audio saved to ..." from any worker


def test_second_build_renders_nothing_and_starts_no_worker(
    engine: Pyttsx3Engine, first_build: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, clips, _ = first_build
    calls: list[tuple[int, int, int]] = []

    def no_workers(*args: object) -> None:
        raise AssertionError("a worker was started for a fully cached build")

    monkeypatch.setattr(worker_processes, "WorkerPool", no_workers)
    started = time.monotonic()
    again = synthesize(book_jobs(), engine=engine, cache=cache, progress=lambda *a: calls.append(a))
    assert time.monotonic() - started < 0.5
    assert [c.rendered for c in again] == [False] * 7
    assert [c.path for c in again] == [c.path for c in clips]
    chars = sum(len(ln.spoken) for ln, _, _ in book_jobs()[:6])
    assert calls == [(6, 6, 6, Work(chars, chars, chars))]


def test_builds_are_byte_identical_whatever_the_jobs_or_order(
    engine: Pyttsx3Engine, first_build: tuple, tmp_path: Path
) -> None:
    _, clips, _ = first_build
    other = ClipCache(tmp_path / "other")
    jobs = list(reversed(book_jobs()))
    fresh = synthesize(jobs, engine=engine, cache=other, jobs=1)
    expected = {c.key: c.path.read_bytes() for c in clips}
    assert {c.key: c.path.read_bytes() for c in fresh} == expected
    # and a clip rendered alone, after other texts in the same worker, is the same too
    alone = ClipCache(tmp_path / "alone")
    mixed = [(line("Something else entirely, first."), SERGE), (line(TEXTS[2]), NARRATOR)]
    got = synthesize(mixed, engine=engine, cache=alone, jobs=1)[1]
    assert got.path.read_bytes() == expected[got.key]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the lean fork is Linux's")
def test_the_lean_fork_renders_what_os_fork_renders(tmp_path: Path) -> None:
    """A worker with one thread forks each clip's child through the C library (about 1 ms
    cheaper than os.fork); with another thread running it uses os.fork. Same bytes."""
    script = textwrap.dedent(
        """
        import os, sys, threading
        from pathlib import Path
        from narration.synthesis import workers as worker_processes
        from narration.synthesis.engines import Pyttsx3Engine
        from narration.model import Voice
        out = Path(sys.argv[1])
        engine = Pyttsx3Engine()
        engine.warm_up()
        voice = Voice("serge", "Victor Serge", "gmw/en+m3", 190, 40, 0.9)
        forks = []
        real_fork = os.fork
        os.fork = lambda: forks.append(1) or real_fork()
        text = "Comrades, preserve revolutionary order!"
        assert worker_processes._render_in_child(engine, text, voice, out / "lean.wav") == (0, "")
        lean = len(forks)
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        assert worker_processes._render_in_child(engine, text, voice, out / "os.wav") == (0, "")
        stop.set()
        other.join()
        print(lean, len(forks))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]  # the lean fork, then os.fork beside a thread
    lean, forked = (tmp_path / "lean.wav").read_bytes(), (tmp_path / "os.wav").read_bytes()
    assert len(lean) > 44 + 22_050 and lean == forked


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the lean fork is Linux's")
def test_a_failed_fork_is_an_oserror_and_leaks_no_pipe(
    engine: Pyttsx3Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fork() failing (EAGAIN: too many processes) raises as os.fork() would, and the
    clip's pipe is closed: a worker that retries does not run out of descriptors."""

    def failing_fork() -> int:
        ctypes.set_errno(errno.EAGAIN)
        return -1

    monkeypatch.setattr(worker_processes, "_libc_fork", lambda: failing_fork)
    monkeypatch.setattr(
        worker_processes.os, "listdir", lambda path: ["1"]
    )  # one thread: the lean path

    def open_fds() -> int:
        return sum(1 for _ in os.scandir("/proc/self/fd"))

    before = open_fds()
    for _ in range(3):
        with pytest.raises(BlockingIOError):
            worker_processes._render_in_child(engine, "Yes.", NARRATOR, tmp_path / "x.wav")
    assert open_fds() == before
    assert not (tmp_path / "x.wav").exists()


def test_workers_started_early_render_the_same_bytes_and_are_the_callers_to_close(
    engine: Pyttsx3Engine, first_build: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, clips, _ = first_build
    cache = ClipCache(tmp_path / "early")
    with worker_processes.WorkerPool(engine, cache, 2) as workers:

        def no_new_workers(*args: object) -> None:
            raise AssertionError("synthesize started workers of its own")

        monkeypatch.setattr(worker_processes, "WorkerPool", no_new_workers)
        fresh = synthesize(book_jobs(), engine=engine, cache=cache, workers=workers)
        assert all(w.proc.poll() is None for w in workers.workers)  # still the caller's
        procs = [w.proc for w in workers.workers]
    assert all(p.returncode is not None for p in procs)
    assert [c.path.read_bytes() for c in fresh] == [c.path.read_bytes() for c in clips]


def test_workers_never_given_a_clip_are_stopped_at_once(
    engine: Pyttsx3Engine, tmp_path: Path
) -> None:
    """A build starts its workers before its checks: a refused or fully cached build must
    not wait for them to finish starting, nor leave them behind."""
    workers = worker_processes.WorkerPool(engine, ClipCache(tmp_path / "unused"), 2)
    procs = [w.proc for w in workers.workers]
    started = time.monotonic()
    workers.close()
    assert time.monotonic() - started < 0.5
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2  # killed, not waited for
    assert not (tmp_path / "unused").exists()  # nothing written


def test_renamed_voice_reuses_clips_and_changed_rate_renders_only_its_lines(
    engine: Pyttsx3Engine, first_build: tuple
) -> None:
    cache, clips, _ = first_build
    renamed = [
        (ln, replace(v, name="kibalchich", label="V. S."), s) if v is SERGE else (ln, v, s)
        for ln, v, s in book_jobs()
    ]
    assert not any(c.rendered for c in synthesize(renamed, engine=engine, cache=cache))
    faster = replace(SERGE, rate=220)
    changed = [(ln, faster if v is SERGE else v, s) for ln, v, s in book_jobs()]
    result = synthesize(changed, engine=engine, cache=cache, jobs=2)
    assert [c.rendered for c in result] == [v is faster for _, v, _ in changed]
    for old, new, (_, voice, _) in zip(clips, result, changed, strict=True):
        if voice is faster:
            assert new.seconds < old.seconds  # really re-rendered at the new rate
        else:
            assert new.path == old.path


def test_a_corrupt_cache_entry_is_rendered_again(engine: Pyttsx3Engine, first_build: tuple) -> None:
    cache, clips, _ = first_build
    victim = clips[3].path
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 3])
    again = synthesize(book_jobs(), engine=engine, cache=cache)
    assert [c.rendered for c in again] == [i == 3 for i in range(7)]
    assert victim.read_bytes() == good


def test_unknown_voice_fails_at_once_naming_segment_voice_and_text(
    engine: Pyttsx3Engine, tmp_path: Path
) -> None:
    bad = replace(NARRATOR, name="ghost", engine_voice="gmw/en-us+nosuch")
    with pytest.raises(SynthesisError) as err:
        synthesize([(line("Hello."), bad, "ch3-0001")], engine=engine, cache=ClipCache(tmp_path))
    message = str(err.value)
    assert message.startswith("segment ch3-0001: no usable clip after 1 attempt: voice 'ghost': ")
    assert "no variant 'nosuch'" in message and "text: 'Hello.'" in message


def test_empty_text_or_a_silent_voice_is_refused_before_rendering(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path / "c")
    with pytest.raises(SynthesisError, match=r"segment ch1-0002: nothing to say for 'UN'"):
        synthesize([(Line("UN", "  "), NARRATOR, "ch1-0002")], engine=FakeEngine(), cache=cache)
    mute = replace(NARRATOR, volume=0.0)
    with pytest.raises(
        SynthesisError,
        match=r"segment ch1-0003: voice 'narrator' has volume 0.0: its clips would be silent gaps",
    ):
        synthesize([(line("Hi."), mute, "ch1-0003")], engine=FakeEngine(), cache=cache)
    assert not cache.root.exists()


# --------------------------------------------------------------------------- failures and retries


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("missing", "no WAV written"),
        ("empty", "empty WAV (no samples)"),
        ("short", "speech lasts"),
        ("silent", "silent; expected"),
        ("garbage", "not a WAV file"),
        ("error", "SynthesisError: fake engine: forced failure"),
        ("crash", "the engine crashed (SIGSEGV)"),
    ],
)
def test_a_bad_clip_is_rendered_again_until_it_is_good(mode: str, why: str, tmp_path: Path) -> None:
    text = "The unions have been depopulated, and only the strongest remained."
    fake = FakeEngine([Fault("unions", mode, times=2)], state_dir=tmp_path / "state")  # type: ignore[arg-type]
    retried: list[str] = []
    jobs = [(line("Fine words first."), NARRATOR, "ch1-0001"), (line(text), SERGE, "ch1-0002")]
    clips = synthesize(
        jobs, engine=fake, cache=ClipCache(tmp_path / "c"), jobs=2, on_retry=retried.append
    )
    assert fake.attempts(text) == 3
    assert all(c.rendered for c in clips)
    check_clip(clips[1].path, text, SERGE.rate)
    assert len(retried) == 1 and retried[0].startswith("segment ch1-0002: clip needed 3 attempts (")
    assert why in retried[0]


def test_when_retries_run_out_the_error_names_segment_voice_and_text(tmp_path: Path) -> None:
    text = "Workers, that part of the advanced guard."
    fake = FakeEngine([Fault("advanced", "empty")], state_dir=tmp_path / "state")
    jobs = [(line("Fine."), NARRATOR, "ch1-0001"), (line(text), SERGE, "ch1-0007")]
    with pytest.raises(SynthesisError) as err:
        synthesize(jobs, engine=fake, cache=ClipCache(tmp_path / "c"), retries=3)
    assert fake.attempts(text) == 4
    assert str(err.value) == (
        "segment ch1-0007: no usable clip after 4 attempts: empty WAV (no samples); "
        "voice 'serge' (gmw/en+m3, 190 wpm, pitch 40, volume 0.9); "
        "text: 'Workers, that part of the advanced guard.'"
    )
    assert err.value.exit_code != 0
    fewer = FakeEngine([Fault("advanced", "missing")], state_dir=tmp_path / "state2")
    with pytest.raises(SynthesisError, match="after 2 attempts: no WAV written"):
        synthesize(jobs, engine=fewer, cache=ClipCache(tmp_path / "c"), retries=1)
    assert fewer.attempts(text) == 2
    # nothing half-written was left in the cache, and the good clip was kept
    cached = sorted(p.name for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert len(cached) == 2 and not any(name.startswith(".") for name in cached)
    assert [Path(name).suffix for name in cached] == [".sha256", ".wav"]


class BrokenEngine(FakeEngine):
    """Defined here: the workers must find this module through the caller's sys.path."""

    def warm_up(self, threads: int = 1) -> None:
        raise RuntimeError("no sound card in this test")


def test_an_engine_that_cannot_start_or_a_dying_worker_is_a_clear_error(tmp_path: Path) -> None:
    jobs = [(line("Hello there."), NARRATOR, "ch1-0001")]
    with pytest.raises(
        SynthesisError,
        match=r"^engine 'fake' could not start: RuntimeError: no sound card in this test$",
    ):
        synthesize(jobs, engine=BrokenEngine(), cache=ClipCache(tmp_path / "a"))
    killer = FakeEngine([Fault("Hello", "kill-worker")], state_dir=tmp_path / "state")
    with pytest.raises(
        SynthesisError,
        match=r"^segment ch1-0001: no usable clip after 1 attempt: synthesis worker died \(exit code -9\); voice 'narrator'",
    ):
        synthesize(jobs, engine=killer, cache=ClipCache(tmp_path / "b"))


def test_fake_engine_builds_are_deterministic_across_worker_counts(tmp_path: Path) -> None:
    jobs = [(line(f"Sentence number {i} of the fake book."), NARRATOR) for i in range(12)]
    one = synthesize(jobs, engine=FakeEngine(), cache=ClipCache(tmp_path / "a"), jobs=1)
    two = synthesize(jobs[::-1], engine=FakeEngine(), cache=ClipCache(tmp_path / "b"), jobs=2)
    assert [c.path.read_bytes() for c in one] == [c.path.read_bytes() for c in two[::-1]]


# --------------------------------------------------------------------------- preview and play


def test_preview_renders_like_a_build_to_wav_or_mp3(
    engine: Pyttsx3Engine, first_build: tuple, tmp_path: Path
) -> None:
    cache, clips, _ = first_build
    wav = preview_text(TEXTS[1], SERGE, engine, tmp_path / "out" / "preview.wav")
    assert wav.read_bytes() == clips[1].path.read_bytes()  # same bytes as the build's clip
    mp3 = preview_text(TEXTS[1], SERGE, engine, tmp_path / "preview.mp3", cache=cache)
    audio = MP3(mp3)
    assert audio.info.sample_rate == 22050 and audio.info.channels == 1
    assert audio.info.length == pytest.approx(clips[1].seconds, abs=0.1)
    with pytest.raises(OutputError, match=r"preview.ogg: a preview is written as \.wav or \.mp3"):
        preview_text("Hi.", SERGE, engine, tmp_path / "preview.ogg")


def a_sound_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, present: bool) -> None:
    """This machine as one with an ALSA playback device, or with no sound at all."""
    devices = tmp_path / "snd"
    devices.mkdir()
    if present:
        (devices / "pcmC0D0p").touch()
    monkeypatch.setattr(playback, "SOUND_DEVICES", devices)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # no PulseAudio, no PipeWire
    monkeypatch.delenv("PULSE_SERVER", raising=False)


def test_play_uses_an_available_player_or_says_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_sound_card(tmp_path, monkeypatch, present=True)
    clip = tmp_path / "clip.wav"
    write_wav(clip, b"\x00\x10" * 2205, 22050)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    message = play(clip)
    assert message is not None and message.startswith(f"no audio player found to play {clip}")
    assert "aplay" in message
    log = tmp_path / "played.txt"
    player = bindir / "aplay"
    player.write_text(f'#!/bin/sh\necho "$@" > {log}\n')
    player.chmod(0o755)
    assert play(clip) is None
    assert log.read_text().split() == ["-q", str(clip)]
    player.write_text("#!/bin/sh\necho 'no such device' >&2\nexit 1\n")
    assert play(clip) == f"could not play {clip}: aplay exited with 1: no such device"


def test_play_without_a_sound_device_says_so_and_runs_no_player(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_sound_card(tmp_path, monkeypatch, present=False)
    clip = tmp_path / "clip.wav"
    write_wav(clip, b"\x00\x10" * 2205, 22050)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "played.txt"
    player = bindir / "aplay"  # a player that would "succeed" into the void
    player.write_text(f'#!/bin/sh\necho "$@" > {log}\n')
    player.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    message = play(clip)
    assert message == (
        f"cannot play {clip}: this machine has no sound device (no playback device in "
        f"{tmp_path / 'snd'}, and no PulseAudio or PipeWire server running); "
        "open the file where you can listen"
    )
    assert not log.exists()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "pipewire-0").touch()  # a desktop session's sound server
    assert play(clip) is None and log.exists()


# --------------------------------------------------------------------------- progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_prints_periodic_lines_in_a_log() -> None:
    out, clock = io.StringIO(), Clock()
    report = ProgressReporter(out, interval=10, clock=clock)
    report(40, 40, 100)
    for done in range(41, 101):
        clock.now += 0.5
        report(done, 40, 100)
    report.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "synthesis: 40/100 clips (0 rendered, 40 from cache, 60 left, ETA --)"
    assert lines[1] == "synthesis: 60/100 clips (20 rendered, 40 from cache, 40 left, ETA 0:20)"
    assert lines[-1] == "synthesis: 100/100 clips (60 rendered, 40 from cache, 0 left, done)"
    assert len(lines) == 4  # start, every 10 s, the end: a short log


def test_progress_estimates_from_characters_timed_from_the_first_clip_back() -> None:
    """A fake clock: the workers take 20 s to start (a model to load), then speak 100
    characters a second, through short clips and long ones. The ETA is the characters left at
    that rate, exact whatever the clips' sizes; clips per second since the first call would
    say 60 s left at the end of the short clips when 900 s are."""
    out, clock = io.StringIO(), Clock()
    report = ProgressReporter(out, interval=1000, clock=clock)
    sizes = [50] * 10 + [2000] * 45  # ten headings, then long paragraphs: 90,500 characters
    total = sum(sizes)
    report(0, 0, len(sizes), Work(0, 0, total))
    assert report.eta(clock.now) is None
    clock.now += 20  # the workers start
    done = 0
    etas = []
    for n, size in enumerate(sizes, 1):
        clock.now += size / 100
        done += size
        report(n, 0, len(sizes), Work(done, 0, total))
        etas.append(report.eta(clock.now))
    assert etas[0] is None  # one clip back: no rate yet (its time holds the start)
    for n, eta in enumerate(etas[1:], 2):
        left = (total - sum(sizes[:n])) / 100
        assert eta == pytest.approx(left), n
    assert "55/55 clips (55 rendered, 0 from cache, 0 left, done)" in out.getvalue()

    # cached clips are not a rate of speech: 40,000 characters from the cache, then 10 a second
    report = ProgressReporter(io.StringIO(), clock=clock)
    report(40, 40, 60, Work(40_000, 40_000, 60_000))
    clock.now += 30
    report(41, 40, 60, Work(41_000, 40_000, 60_000))
    clock.now += 100
    report(42, 40, 60, Work(42_000, 40_000, 60_000))
    assert report.eta(clock.now) == pytest.approx(1800)

    # without characters (assembly's chapters), each item weighs one, as before
    report = ProgressReporter(io.StringIO(), clock=clock, unit="chapters")
    report(0, 0, 4)
    clock.now += 5
    report(1, 0, 4)
    clock.now += 10
    report(2, 0, 4)
    assert report.eta(clock.now) == pytest.approx(20)


def test_progress_draws_a_bar_on_a_terminal_and_nothing_when_quiet() -> None:
    tty, clock = Tty(), Clock()
    with ProgressReporter(tty, clock=clock, width=10) as report:
        report(0, 0, 4)
        for done in range(1, 5):
            clock.now += 30
            report(done, 0, 4)
    text = tty.getvalue()
    assert text.startswith("\r[----------] synthesis: 0/4 clips")
    assert (
        "\r[#####-----] synthesis: 2/4 clips (2 rendered, 0 from cache, 2 left, ETA 1:00)" in text
    )
    assert text.endswith("\n") and text.count("\n") == 1
    assert text.rstrip().endswith("] synthesis: 4/4 clips (4 rendered, 0 from cache, 0 left, done)")
    quiet = Tty()
    with ProgressReporter(quiet, quiet=True) as report:
        report(1, 0, 2)
        report(2, 0, 2)
    assert quiet.getvalue() == ""
    assert format_duration(3723) == "1:02:03" and format_duration(42) == "0:42"


# --------------------------------------------------------------------------- engines side by side


def test_each_voice_is_rendered_by_its_own_engine_at_its_own_rate(tmp_path: Path) -> None:
    """Two engines in one book: a pool each, clips at each engine's rate, keyed apart.
    (Kokoro's real rendering is in test_kokoro.py; here two fakes stand in, so this runs on
    every install.)"""
    slow = FakeEngine(name="natural", sample_rate=24_000, fork_per_clip=False)
    fast = FakeEngine(name="robot")
    natural = replace(NARRATOR, name="nat", engine="natural")
    jobs = [
        (line("Read by the robot voice."), NARRATOR, "a"),
        (line("Read by the natural voice."), natural, "b"),
        (line("Read by the robot voice."), natural, "c"),  # same text, other engine
    ]
    cache = ClipCache(tmp_path / "c")
    clips = synthesize(jobs, engine={"pyttsx3": fast, "natural": slow}, cache=cache)
    assert [c.sample_rate for c in clips] == [22_050, 24_000, 24_000]
    assert len({c.key for c in clips}) == 3 and all(c.rendered for c in clips)
    assert wav_info(clips[1].path).sample_rate == 24_000
    with pytest.raises(SynthesisError, match="voice 'nat': no 'natural' engine was loaded"):
        synthesize(jobs, engine={"pyttsx3": fast}, cache=cache)


def test_an_engine_without_fork_renders_in_the_worker_itself(tmp_path: Path) -> None:
    """A crash takes the worker with it when there is no child per clip (and is named)."""
    jobs = [(line("Hello there."), NARRATOR, "ch1-0001")]
    forked = FakeEngine([Fault("Hello", "crash")], state_dir=tmp_path / "s1")
    with pytest.raises(SynthesisError, match=r"the engine crashed \(SIGSEGV\)"):
        synthesize(jobs, engine=forked, cache=ClipCache(tmp_path / "a"), retries=0)
    inline = FakeEngine([Fault("Hello", "crash")], state_dir=tmp_path / "s2", fork_per_clip=False)
    with pytest.raises(SynthesisError, match=r"synthesis worker died \(exit code -11\)"):
        synthesize(jobs, engine=inline, cache=ClipCache(tmp_path / "b"), retries=0)
    flaky = FakeEngine(
        [Fault("Hello", "error", times=1)], state_dir=tmp_path / "s3", fork_per_clip=False
    )
    (clip,) = synthesize(jobs, engine=flaky, cache=ClipCache(tmp_path / "c"))
    assert clip.rendered and flaky.attempts("Hello there.") == 2


def test_a_clip_of_noise_at_full_scale_is_refused(tmp_path: Path) -> None:
    """What a wrong onnxruntime gives Kokoro, clipped to 16 bits: not speech."""
    import numpy as np

    noise = np.random.default_rng(1).normal(0, 3e6, 24_000 * 3).clip(-32768, 32767)
    path = tmp_path / "noise.wav"
    write_wav(path, noise.astype("<i2").tobytes(), 24_000)
    with pytest.raises(ClipProblem, match=r"of the samples at full scale: noise, not speech"):
        check_clip(path, "Eight words of text that take three seconds.", 170, 24_000)
    with pytest.raises(ClipProblem, match="expected 22,050 Hz mono 16-bit, got 24,000 Hz"):
        check_clip(path, "Eight words of text that take three seconds.", 170)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([32767, -32768, 32766, -32767, 0, 255, -1, 127, 32512, -32513])
        | st.integers(-32768, 32767),
        max_size=400,
    ),
    st.booleans(),
)
def test_full_scale_samples_counts_what_array_count_does(values: list[int], odd: bool) -> None:
    """The bytes-level count of full-scale samples against a sample-at-a-time count (an
    odd trailing byte, which a WAV's PCM never has, is ignored)."""
    import array

    samples = array.array("h", values)
    if sys.byteorder == "big":
        samples.byteswap()
    pcm = samples.tobytes() + (b"\x7f" if odd else b"")
    expected = values.count(32767) + values.count(-32768)
    assert full_scale_samples(pcm) == expected


def test_clips_cached_before_digests_are_checked_once_and_given_one(tmp_path: Path) -> None:
    """A cache from a narrate that kept no digests: each clip passes a render's checks and
    gets its digest; one that fails them (silent) is rendered again."""
    engine = Pyttsx3Engine()
    texts = ("The first line.", "A second line, longer.")
    jobs = [(line(t), NARRATOR, f"s{i}") for i, t in enumerate(texts)]
    cache = ClipCache(tmp_path / "clips")
    made = synthesize(jobs, engine=engine, cache=cache, jobs=1)
    for clip in made:
        clip.path.with_suffix(".sha256").unlink()  # as an older narrate left them
    info = wav_info(made[1].path)
    data = bytearray(made[1].path.read_bytes())
    data[info.data_offset :] = bytes(len(data) - info.data_offset)
    made[1].path.write_bytes(bytes(data))
    cache = ClipCache(tmp_path / "clips")
    again = synthesize(jobs, engine=engine, cache=cache, jobs=1)
    assert [c.rendered for c in again] == [False, True]
    assert cache.damaged == [made[1].key]
    for clip in again:
        seal = clip.path.with_suffix(".sha256").read_text(encoding="ascii").split()
        assert seal[0] == hashlib.sha256(clip.path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the scheduler loop


def test_keep_running_keeps_each_slot_fed_in_order_and_stops_at_an_error() -> None:
    """narration.processes.keep_running, as synthesis drives its workers: `depth` tasks per
    slot, each slot's oldest finished first, refilled as it finishes, `more` asked when all
    are idle; an error from `finish` stops the loop."""
    from collections import deque

    from narration.processes import keep_running

    queues = {"a": deque([1, 2, 3, 4, 5]), "b": deque([10])}
    log: list[tuple[str, str, int]] = []
    later = [deque([6])]

    def more() -> bool:
        if later:
            queues["b"].extend(later.pop())
            return True
        return False

    keep_running(
        ["a", "b"],
        lambda s: queues[s].popleft() if queues[s] else None,
        lambda s, t: log.append(("start", s, t)),
        lambda busy: busy,
        lambda s, t: log.append(("finish", s, t)),
        depth=2,
        more=more,
    )
    starts = [(s, t) for what, s, t in log if what == "start"]
    finishes = [(s, t) for what, s, t in log if what == "finish"]
    assert starts[:3] == [("a", 1), ("a", 2), ("b", 10)]  # each slot filled to depth in turn
    assert finishes[:3] == [("a", 1), ("b", 10), ("a", 2)]  # oldest first on each slot
    assert log.index(("start", "a", 3)) == log.index(("finish", "a", 1)) + 1  # refilled at once
    assert sorted(finishes) == sorted(starts) and ("b", 6) in finishes  # `more` brought it
    with pytest.raises(SynthesisError, match="stop"):

        def fail(slot: str, task: int) -> None:
            raise SynthesisError("stop")

        keep_running(["x"], lambda s: 1, lambda s, t: None, lambda busy: busy, fail)
