"""output/ is the show and nothing else, an older project's cache and state move out of it
without rendering anything again, and every command is safe beside a running build.

Real processes throughout: `narrate` started with this checkout's code (tests/support.py's
narrate_argv), the seeds' project read by espeak-ng, and a build stopped with real signals.
The reference build (cold, with the audiobook: the session's, conftest's seeds_m4b_build,
made in-process) gives the clips every later build starts from, so only the SIGHUP trial
renders anything.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from narration.layout import is_published

from .support import narrate_argv, narrate_env, new_project


@dataclass(frozen=True)
class Reference:
    root: Path
    products: dict[str, str]  # output/'s files by sha256 (build.json aside)
    clips: int


def products(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.iterdir())
        if p.is_file() and p.name != "build.json"
    }


def narrate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        narrate_argv(*args),
        capture_output=True,
        text=True,
        env=narrate_env(),
        timeout=timeout,
        check=False,
    )


def report(root: Path) -> dict:
    return json.loads((root / "output" / "build.json").read_text(encoding="utf-8"))


def assert_only_the_show(root: Path) -> None:
    """output/ holds only published files: no folder, nothing hidden, no temp file."""
    out = root / "output"
    strays = [p.name for p in out.iterdir() if not (p.is_file() and is_published(p.name))]
    assert strays == [], f"output/ holds what a static host should not serve: {strays}"


def temp_files(root: Path) -> list[str]:
    return [
        str(p.relative_to(root))
        for folder in (root / "output", root / ".narrate" / "state")
        if folder.is_dir()
        for p in folder.iterdir()
        if ".tmp" in p.name
    ]


@pytest.fixture(scope="module")
def reference(seeds_m4b_build: tuple[Path, dict]) -> Reference:
    """The seeds built cold with the audiobook (the session's, conftest's seeds_m4b_build:
    read-only here): the output every other build must match."""
    root, built = seeds_m4b_build
    # the clips the book is read with, as its cold build rendered them (the session's cache
    # may hold more: other modules' builds render into it)
    clips = built["totals"]["rendered"]
    return Reference(root, products(root / "output"), clips)


def warm_project(root: Path, reference: Reference) -> Path:
    """A new project of the seeds with the reference's clips in its own cache."""
    new_project(root)
    shutil.copytree(reference.root / ".narrate" / "cache", root / ".narrate" / "cache")
    return root


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        narrate_argv("build", "-p", str(root), *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=narrate_env(),
    )


def wait_until(proc: subprocess.Popen[str], seen: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not seen():
        assert proc.poll() is None, f"the build ended before {what}: {proc.stderr.read()}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.005)


def holds_lock(root: Path, proc: subprocess.Popen[str]) -> Callable[[], bool]:
    """The build is past its checks: its pid is in .narrate/lock."""
    lock = root / ".narrate" / "lock"
    return lambda: lock.is_file() and lock.read_text().strip() == str(proc.pid)


# --------------------------------------------------------------------------- output/


@pytest.mark.slow
def test_output_holds_only_the_show_and_narrate_keeps_the_rest(reference: Reference) -> None:
    """After a real build with the audiobook: the MP3s, transcripts, chapters, the M4B, the
    feed, the page, the cover and build.json; the cache and state are in .narrate/."""
    root = reference.root
    assert_only_the_show(root)
    names = set(reference.products) | {"build.json"}
    assert {"feed.xml", "index.html", "cover.png", "build.json"} <= names
    assert {n.rsplit(".", 1)[-1] for n in names} == {
        "mp3",
        "vtt",
        "json",
        "m4b",
        "xml",
        "html",
        "png",
    }
    assert reference.clips > 50
    state = {p.suffix for p in (root / ".narrate" / "state").iterdir() if p.is_file()}
    assert state == {".json", ".aac"}
    pieces = root / ".narrate" / "state" / "pieces"  # each chapter's MP3 in pieces
    assert {p.suffix for p in pieces.iterdir()} == {".json", ".mp3", ".gain"}


def test_is_published_names_the_shows_files_only() -> None:
    for name in ("feed.xml", "index.html", "cover.jpg", "build.json", "01-one.mp3", "02-a.vtt"):
        assert is_published(name), name
    assert is_published("10-x.chapters.json") and is_published("my-book.m4b")
    hidden = (".lock", ".cache", ".state", "previews", ".01-one.mp3.tmp123", ".01-a.timeline.tmp9")
    for name in (*hidden, "01-one.wav", "notes.txt", "feed.xml.bak"):
        assert not is_published(name), name


def test_init_ignores_output_and_narrate(tmp_path: Path) -> None:
    done = narrate("init", str(tmp_path / "new"))
    assert done.returncode == 0, done.stderr
    ignored = (tmp_path / "new" / ".gitignore").read_text(encoding="utf-8").split()
    assert ignored == ["output/", ".narrate/"]


@pytest.mark.slow
def test_an_older_projects_cache_and_state_move_and_nothing_is_made_again(
    reference: Reference, tmp_path: Path
) -> None:
    """A project built by an older narrate (cache in output/.cache/clips, state in
    output/.state, previews and lock in output/): its next build renders no clip, encodes
    no chapter, keeps every file as it was, and leaves output/ holding only the show."""
    root = tmp_path / "old"
    shutil.copytree(reference.root, root)  # times kept: the state's facts still hold
    out, work = root / "output", root / ".narrate"
    (out / ".cache").mkdir()
    (work / "cache" / "clips").rename(out / ".cache" / "clips")
    (work / "state").rename(out / ".state")
    (out / "previews").mkdir()
    (out / "previews" / "preview-narrator.wav").write_bytes(b"RIFF")
    (out / ".lock").touch()
    shutil.rmtree(work)
    times = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if is_published(p.name)}
    done = narrate("build", "-p", str(root), "--m4b", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        "Warning: moved output/.cache/clips/ to .narrate/cache/clips/, output/.state/ to "
        ".narrate/state/, output/previews/ to .narrate/previews/: output/ holds only the "
        "show now (git-ignore .narrate/)"
    )
    totals = report(root)["totals"]
    assert (totals["rendered"], totals["cached"], totals["encoded"]) == (0, reference.clips, 0)
    assert report(root)["audiobook"]["written"] is False
    assert_only_the_show(root)
    assert products(out) == reference.products
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "build.json"}
    assert kept == {k: v for k, v in times.items() if k != "build.json"}
    assert len(list((work / "cache" / "clips").glob("*/*.wav"))) == reference.clips
    assert (work / "previews" / "preview-narrator.wav").read_bytes() == b"RIFF"


# --------------------------------------------------------------------------- beside a build


@pytest.mark.slow
def test_clean_init_and_a_second_build_refuse_while_a_build_runs(
    reference: Reference, tmp_path: Path
) -> None:
    """While a real build holds the lock: `clean`, `clean --all`, `init` over the project and
    a second `build` each refuse with one line naming the build's pid, exit 1 and remove
    nothing; the build then finishes with the reference's bytes."""
    root = warm_project(tmp_path / "book", reference)
    build = start(root, "--m4b", "--quiet", "-j", "1")  # one process: a long assembly
    try:
        wait_until(build, holds_lock(root, build), "the build take its lock")
        for args in (
            ("clean", "-p", str(root)),
            ("clean", "--all", "-p", str(root)),
            ("init", str(root)),
            ("build", "-p", str(root), "--quiet"),
        ):
            assert build.poll() is None, f"the build ended before `{' '.join(args)}`: untested"
            done = narrate(*args)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            message = done.stderr.strip()
            assert "\n" not in message and "Traceback" not in message, message
            assert f"a narrate build (pid {build.pid}) is running on this project" in message
            assert done.stdout == ""
        assert build.poll() is None, "the build ended before the last refusal: untested"
        assert build.wait(timeout=300) == 0, build.stderr.read()  # type: ignore[union-attr]
    finally:
        build.kill()
        build.wait()
    assert products(root / "output") == reference.products
    assert report(root)["totals"]["rendered"] == 0
    assert len(list((root / ".narrate" / "cache" / "clips").glob("*/*.wav"))) == reference.clips
    assert not (root / "seeds" / "01-example.md").exists()  # init wrote nothing
    # and once it has finished, clean --all removes output/ and .narrate/, nothing else
    done = narrate("clean", "--all", "-p", str(root))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in root.iterdir()) == [
        "narrate.lock",
        "podcast.yaml",
        "seeds",
        "voices.yaml",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "stage"), [(signal.SIGTERM, "assembly"), (signal.SIGHUP, "synthesis")]
)
def test_sigterm_or_sighup_ends_a_build_as_ctrl_c_does(
    reference: Reference, tmp_path: Path, signum: int, stage: str
) -> None:
    """A plain `kill` (or a closed terminal) mid-build: one line, exit 128 + the signal, no
    temporary file left in output/ or the state; the next build resumes from the cache and
    its output is byte for byte the reference's."""
    root = tmp_path / "book"
    if stage == "assembly":
        warm_project(root, reference)
        state = root / ".narrate" / "state"
        seen = lambda: state.is_dir() and any(".timeline.tmp" in p.name for p in state.iterdir())  # noqa: E731
    else:
        new_project(root)
        clips = root / ".narrate" / "cache" / "clips"
        seen = lambda: clips.is_dir() and len(list(clips.glob("*/*.wav"))) >= 10  # noqa: E731
    build = start(root, "--m4b", "--quiet", "-j", "1")
    try:
        wait_until(build, seen, f"the build in its {stage}")
        build.send_signal(signum)
        code = build.wait(timeout=60)
        stderr = build.stderr.read()  # type: ignore[union-attr]
    finally:
        build.kill()
        build.wait()
    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr
    assert stderr == f"Error: stopped by {name}; the next build resumes from the cache\n"
    assert temp_files(root) == []
    if (root / "output").exists():
        assert_only_the_show(root)
    assert not (root / "output" / "build.json").exists()
    done = narrate("build", "-p", str(root), "--m4b", "--quiet")
    assert done.returncode == 0, done.stderr
    rendered = report(root)["totals"]["rendered"]
    assert rendered == 0 if stage == "assembly" else 0 < rendered <= reference.clips - 10
    assert products(root / "output") == reference.products
    assert temp_files(root) == []
