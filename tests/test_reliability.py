"""Reliability: a killed build loses nothing, builds at once do not collide, a damaged cache
or a full disk is caught, and hostile text, names and configuration never crash a build.

Everything goes through the real command line: `narrate build` as installed (the console
script beside this Python) in a subprocess, with the real engine wherever the engine takes
part in what is tested (the kill trials, concurrency, the cache, a full disk, the edge-case
text); the FakeEngine builds the projects whose point is escaping and file names.

Kill trials, two modes
----------------------
`test_sigkill_at_random_moments_then_resume` builds a small real project (three short
chapters, two voices) once without interruption to measure it, then runs `narrate build`
again and again, killing its whole process group with SIGKILL at a random moment drawn from
a seeded `random.Random`: during segmenting, synthesis, assembly or feed writing (each
aimed at from the measured stage durations and what the build prints), or at any moment of
a rebuild over the output of an earlier edition of the book. After every kill: each file
under its final name in output/ is one complete version of itself (old or new, byte for
byte; every MP3 parses with mutagen and lasts what its build said), and feed.xml and
index.html name no file that is missing. Then the build is run to its end, and output/
must be byte-identical (sha256 of every file; build.json without its timings and counts,
nothing in .narrate/) to a clean build made in a separate project with its
own cache, and narrate.lock identical too.

* default (CI): 6 trials, one of each kind of moment, about 15-20 s (the whole file about
  50-70 s on 2 cores).
* long: ``NARRATE_LONG_TESTS=1 pytest tests/test_reliability.py`` runs 24 trials (four of
  each kind of moment), about 45-60 s more.
* ``NARRATE_KILL_SEED=<int>`` draws another reproducible series of moments (default 8).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import miniaudio
import mutagen.id3
import mutagen.mp3
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from narration.casting import cast_book
from narration.cli import main
from narration.config import load_voices
from narration.errors import ConfigError, NarrateError
from narration.model import MAX_UTTERANCE
from narration.pipeline.project import load_config, open_project
from narration.publishing.page import read_vtt
from narration.segmenting import segment_book
from narration.synthesis import ClipProblem, engines, wav_info
from narration.synthesis.engines import FakeEngine, settings_catalog

from .support import narrate_env

NARRATE = Path(sys.executable).with_name("narrate")
LONG = os.environ.get("NARRATE_LONG_TESTS", "").strip() not in ("", "0")
TRIALS = 24 if LONG else 6
KILL_SEED = int(os.environ.get("NARRATE_KILL_SEED", "8"))
BASE_URL = "https://example.org/book/"

# --------------------------------------------------------------------------- a small book

VOICES_YAML = """\
voices:
  narrator: {label: Narrator, voice: gmw/en-us, rate: 175, pitch: 45}
  memoir: {label: Victor Serge, voice: gmw/en-gb-scotland, variant: m7, rate: 165, pitch: 32}
default: narrator
rules:
  - {name: memoir, kind: quote, voice: memoir}
"""
#: The same two roles in voices the FakeEngine has (it renders any variant, lists none).
FAKE_VOICES_YAML = VOICES_YAML.replace("gmw/en-gb-scotland", "gmw/en")

PODCAST_YAML = f"""\
title: Small Hours
author: Anna Writer
language: en
year: 1921
base_url: {BASE_URL}
"""

SEEDS = {
    "01-first.txt": (
        "The First Part\n\nBy Anna Writer\n\n"
        "The morning was cold and the river ran high. Nobody came to the bridge.\n\n"
        '"We should wait," she said. The others agreed, and sat down by the fire.\n'
    ),
    "02-second.md": (
        "# The Second Part\n\nA short chapter with a quotation.\n\n"
        "> Work is the root of all things.\n>\n"
        "> -- Victor Serge, Memoirs of a Revolutionary (1963)\n\n"
        "And then the day ended.\n"
    ),
    "03-third.txt": "The Third Part\n\nOne last paragraph, read quickly. Then silence.\n",
}
#: An earlier edition: same chapters, two of them worded differently.
EDITED = {
    **SEEDS,
    "01-first.txt": SEEDS["01-first.txt"].replace("ran high", "ran low"),
    "03-third.txt": SEEDS["03-third.txt"].replace("read quickly", "read slowly"),
}


def write_project(root: Path, seeds: dict[str, str] = SEEDS, voices: str = VOICES_YAML) -> Path:
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    for old in (root / "seeds").iterdir():
        old.unlink()
    for name, text in seeds.items():
        (root / "seeds" / name).write_text(text, encoding="utf-8")
    (root / "voices.yaml").write_text(voices, encoding="utf-8")
    (root / "podcast.yaml").write_text(PODCAST_YAML, encoding="utf-8")
    return root


def child_env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """`narrate` (the console script) importing this checkout's code."""
    env = narrate_env(**extra)
    if cache is not None:
        env["NARRATE_CACHE_DIR"] = str(cache)
    return env


def narrate_build(
    root: Path, *args: str, cache: Path | None = None, timeout: float = 180, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """`narrate build --project ROOT` to its end, in a subprocess."""
    return subprocess.run(
        [str(NARRATE), "build", "--project", str(root), *args],
        capture_output=True,
        text=True,
        env=child_env(cache),
        timeout=timeout,
        check=False,
        **kw,
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalized_build_json(data: bytes) -> bytes:
    """build.json without what legitimately differs between a resumed and a clean build:
    the stage timings, and how many clips were rendered or cached and chapters and pieces
    encoded."""
    report = json.loads(data)
    report.pop("stages", None)
    counts = ("rendered", "cached", "encoded", "pieces_encoded")
    report["totals"] = {k: v for k, v in report["totals"].items() if k not in counts}
    report["chapters"] = [
        {k: v for k, v in ch.items() if k not in counts} for ch in report["chapters"]
    ]
    return json.dumps(report, sort_keys=True).encode()


def products(out: Path) -> dict[str, str]:
    """sha256 of every file the build delivers: not hidden (a killed build's temp files)."""
    found = {}
    if not out.is_dir():
        return found
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        data = p.read_bytes()
        found[rel.as_posix()] = sha(
            normalized_build_json(data) if rel.name == "build.json" else data
        )
    return found


def snapshot(out: Path) -> dict[str, tuple[str, int]]:
    """Every file under out/, hidden ones too (not the lock file, which each build opens),
    with sha256 and mtime: to prove nothing was written."""
    return {
        p.relative_to(out).as_posix(): (sha(p.read_bytes()), p.stat().st_mtime_ns)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).as_posix() != ".lock"
    }


@dataclass
class Edition:
    """What a complete build delivers: products, lock, and each MP3's length in seconds."""

    root: Path
    products: dict[str, str]
    lock: bytes
    seconds: dict[str, float]
    #: when, in seconds from its start, the build was seen entering each stage (see watching)
    marks: dict[str, float] = field(default_factory=dict)


def edition_of(root: Path, marks: dict[str, float] | None = None) -> Edition:
    out = root / "output"
    report = json.loads((out / "build.json").read_text(encoding="utf-8"))
    return Edition(
        root=root,
        products=products(out),
        lock=(root / "narrate.lock").read_bytes(),
        seconds={ch["mp3"]: ch["seconds"] for ch in report["chapters"]},
        marks=marks or {},
    )


def clean_build(root: Path) -> Edition:
    """A build to its end, watched: its stage marks time the kill trials."""
    run = start_build(root, watch=watching(root, None))
    assert run.finish() == 0, run.stderr
    marks = {name: at - run.started for name, at in run.events.items()}
    assert set(marks) == {"synthesis", "assembly", "feed", "done"}, marks
    return edition_of(root, marks)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Edition:
    """A clean, uninterrupted build of the small book with the real engine: the yardstick."""
    return clean_build(write_project(tmp_path_factory.mktemp("reference") / "book"))


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> Edition:
    """A complete build of the book's earlier edition (EDITED), to rebuild over."""
    return clean_build(write_project(tmp_path_factory.mktemp("earlier") / "book", EDITED))


@pytest.fixture(scope="module")
def rebuild_marks(
    tmp_path_factory: pytest.TempPathFactory, reference: Edition, earlier: Edition
) -> dict[str, float]:
    """When an uninterrupted rebuild over the earlier edition reached each stage: the
    rebuild trials aim at its windows, which are shorter than a clean build's (only what
    changed is made again)."""
    root = tmp_path_factory.mktemp("rebuild") / "book"
    reset(root, "rebuild-any", earlier)
    run = start_build(root, watch=watching(root, reference))
    assert run.finish() == 0, run.stderr
    ended = time.monotonic()
    marks = {name: at - run.started for name, at in run.events.items() if name != "done"}
    marks["done"] = ended - run.started  # its build.json is there from the start
    assert set(marks) == {"synthesis", "assembly", "feed", "done"}, marks
    return marks


# --------------------------------------------------------------------------- what must hold


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v for k, v in attrs if k in ("href", "src") and v]


def local_targets(out: Path) -> list[tuple[str, str]]:
    """(document, file name) for every file of output/ that feed.xml or index.html names."""
    named = []
    feed = out / "feed.xml"
    if feed.is_file():
        for el in ET.parse(feed).iter():
            for key in ("url", "href"):
                value = el.get(key, "")
                if value.startswith(BASE_URL) and value != BASE_URL:
                    named.append(("feed.xml", unquote(value[len(BASE_URL) :])))
    page = out / "index.html"
    if page.is_file():
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for link in parser.links:
            if link.startswith(BASE_URL):
                link = link[len(BASE_URL) :]
            elif re.match(r"[a-z][a-z0-9+.-]*:|#|/", link):
                continue
            link = unquote(link.split("#")[0].split("?")[0])
            if link:
                named.append(("index.html", link))
    return named


def assert_consistent(out: Path, editions: list[Edition], when: str) -> None:
    """No file under its final name is partial: each is, byte for byte, one complete version
    of itself; every MP3 parses and lasts what its build said; the feed and the page name
    only files that are there."""
    for name, digest in products(out).items():
        matches = [e for e in editions if e.products.get(name) == digest]
        if not matches and name in ("feed.xml", "index.html"):
            # published part-way, chapter by chapter: a whole document listing the episodes
            # finished so far, each file it names there at the length it gives (below)
            text = (out / name).read_text(encoding="utf-8")
            assert text.rstrip().endswith("</rss>" if name == "feed.xml" else "</html>"), when
            if name == "feed.xml":
                for enclosure in ET.parse(out / name).iter("enclosure"):
                    file = unquote(enclosure.get("url", "")[len(BASE_URL) :])
                    size = int(enclosure.get("length", "-1"))
                    assert size == (out / file).stat().st_size, f"{when}: {file} length"
            continue
        assert matches, f"{when}: output/{name} is no complete version of itself"
        if name.endswith(".mp3"):
            mp3 = mutagen.mp3.MP3(out / name)
            assert mp3.tags is not None and "TIT2" in mp3.tags, f"{when}: {name} untagged"
            assert mp3.info.length == pytest.approx(matches[0].seconds[name], abs=0.1), when
    for document, name in local_targets(out):
        assert (out / name).is_file(), f"{when}: {document} names {name}, which is not there"
    feed = out / "feed.xml"
    if feed.is_file() and len(editions) == 1:  # only one edition: the feed is its own
        for enclosure in ET.parse(feed).iter("enclosure"):
            name = unquote(enclosure.get("url", "")[len(BASE_URL) :])
            assert int(enclosure.get("length", "-1")) == (out / name).stat().st_size, when


def assert_same_as(root: Path, ref: Edition, when: str) -> None:
    got = products(root / "output")
    assert got == ref.products, f"{when}: " + ", ".join(
        sorted(k for k in set(got) | set(ref.products) if got.get(k) != ref.products.get(k))
    )
    assert (root / "narrate.lock").read_bytes() == ref.lock, f"{when}: narrate.lock differs"


def cache_entries(root: Path) -> list[Path]:
    return sorted(root.glob("[0-9a-f][0-9a-f]/*.wav"))


def assert_cache_sound(root: Path, expected: int) -> None:
    """Every cached clip a whole 22,050 Hz mono WAV with samples, beside the digest of its
    bytes; no half-moved leftovers."""
    entries = cache_entries(root)
    assert len(entries) == expected, [p.name for p in entries]
    for path in entries:
        info = wav_info(path)
        assert (info.sample_rate, info.channels, info.frames > 0) == (22050, 1, True), path
        seal = path.with_suffix(".sha256").read_text(encoding="ascii").split()
        assert seal[0] == sha(path.read_bytes()), path
    files = {p for p in root.rglob("*") if p.is_file()}
    leftovers = files - set(entries) - {p.with_suffix(".sha256") for p in entries}
    assert not leftovers, leftovers


# --------------------------------------------------------------------------- processes


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes in the process group `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class Running:
    """`narrate build` (or a hooked copy of it) started in its own session; stderr read live,
    and `watch` conditions on the project's files polled every 2 ms while it runs: the time
    each first held goes in `events` (what the build was doing, seen from outside)."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        watch: dict[str, Callable[[], bool]] | None = None,
    ) -> None:
        self.events: dict[str, float] = {}
        self.lines: list[str] = []
        self.watch = dict(watch or {})
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def _poll(self) -> None:
        while self.proc.poll() is None and self.watch:
            for name, condition in list(self.watch.items()):
                with contextlib.suppress(OSError):
                    if condition():
                        self.events[name] = time.monotonic()
                        del self.watch[name]
            time.sleep(0.002)

    def wait_for(self, event: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while event not in self.events and self.proc.poll() is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return event in self.events

    def kill_all(self) -> None:
        kill_group(self.proc.pid)
        self.finish()

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def start_build(
    root: Path,
    *args: str,
    cache: Path | None = None,
    watch: dict[str, Callable[[], bool]] | None = None,
) -> Running:
    argv = [str(NARRATE), "build", "--project", str(root), *args]
    return Running(argv, child_env(cache), watch)


def watching(root: Path, ref: Edition | None) -> dict[str, Callable[[], bool]]:
    """What shows from outside that a build of `root` reached a stage (see Running): a clip
    being rendered, a chapter being encoded beside its final name, every chapter in place
    (as `ref` has them, or as many as there are seeds), build.json written."""
    out = root / "output"
    clips = root / ".narrate" / "cache" / "clips"
    known = {p.name for p in clips.glob("*/*.wav")}
    if ref is not None:
        mp3s = [n for n in ref.products if n.endswith(".mp3")]
        seen: dict[tuple[str, int, int], str] = {}

        def digest(name: str) -> str:  # hashed again only when the file changed
            st = (out / name).stat()
            key = (name, st.st_mtime_ns, st.st_size)
            if key not in seen:
                seen[key] = sha((out / name).read_bytes())
            return seen[key]

        placed: Callable[[], bool] = lambda: all(  # noqa: E731
            (out / n).is_file() and digest(n) == ref.products[n] for n in mp3s
        )
    else:
        chapters = len(list((root / "seeds").iterdir()))
        placed = lambda: (  # noqa: E731
            len(list(out.glob("[0-9][0-9]-*.mp3"))) == chapters and not any(out.glob(".*.mp3.tmp*"))
        )
    return {
        "synthesis": lambda: any(
            p.suffix == ".tmp" or p.name not in known for p in clips.glob("*/*")
        ),
        "assembly": lambda: any(out.glob(".*.mp3.tmp*")),
        "feed": placed,
        "done": (out / "build.json").is_file,
    }


#: `narrate build` with one library function wrapped: HOOK_BEFORE runs first (with the
#: call's arguments as `args`, `kwargs`), so a test can kill or hold the build at a precise
#: point. With NARRATE_TEST_FAKE=1 the FakeEngine stands in for the real one.
HOOKED = """
import os, signal, sys, time
from pathlib import Path
import importlib
if os.environ.get("NARRATE_TEST_FAKE") == "1":
    from narration.synthesis import engines
    engines.get_engine = lambda name="pyttsx3": engines.FakeEngine()
module = importlib.import_module(os.environ["HOOK_MODULE"])
real = getattr(module, os.environ["HOOK_FUNCTION"])
def hooked(*args, **kwargs):
    exec(os.environ["HOOK_BEFORE"])
    return real(*args, **kwargs)
setattr(module, os.environ["HOOK_FUNCTION"], hooked)
from narration.cli import main
main(sys.argv[1:], prog_name="narrate")
"""
KILL_ME = "os.kill(os.getpid(), signal.SIGKILL)"


def start_hooked(
    root: Path,
    module: str,
    function: str,
    before: str,
    *args: str,
    fake: bool = False,
    watch: dict[str, Callable[[], bool]] | None = None,
) -> Running:
    env = child_env(
        HOOK_MODULE=module,
        HOOK_FUNCTION=function,
        HOOK_BEFORE=before,
        NARRATE_TEST_FAKE="1" if fake else "0",
    )
    argv = [sys.executable, "-c", HOOKED, "build", "--project", str(root), *args]
    return Running(argv, env, watch)


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process builds (CliRunner) render with the FakeEngine."""
    monkeypatch.setattr(engines, "get_engine", lambda name="pyttsx3": FakeEngine())


def cli_build(root: Path, *args: str) -> Any:
    result = CliRunner().invoke(main, ["build", "--project", str(root), "--quiet", *args])
    assert result.exit_code == 0, result.output
    return result


# --------------------------------------------------------------------------- SIGKILL trials

#: What each trial aims at, in turn: a fresh build killed in one stage, or a rebuild over
#: the earlier edition's output killed during its assembly or at any moment.
KINDS = ("segmenting", "synthesis", "assembly", "feed", "rebuild-assembly", "rebuild-any")


@dataclass
class Trial:
    number: int
    kind: str
    delay: float  # seconds after the aimed-at event
    stage: str = ""  # where the build was found to be when it died
    resume: float = 0.0


def reset(trial_root: Path, kind: str, earlier: Edition) -> None:
    """The project as the trial starts: the final seeds, and output/ as the kind wants."""
    out, work = trial_root / "output", trial_root / ".narrate"
    write_project(trial_root)
    (trial_root / "narrate.lock").unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    if kind.startswith("rebuild"):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(earlier.root / "output", out)  # copy2: the state's facts still hold
        shutil.copytree(earlier.root / ".narrate", work, ignore=shutil.ignore_patterns("lock"))
        shutil.copy2(earlier.root / "narrate.lock", trial_root / "narrate.lock")
    elif kind in ("segmenting", "synthesis"):  # cold: the clips are rendered again
        shutil.rmtree(work, ignore_errors=True)
    else:  # warm cache, nothing else: straight on to assembly
        shutil.rmtree(work / "state", ignore_errors=True)


def kill_at_random(
    trial_root: Path,
    trial: Trial,
    rng: random.Random,
    ref: Edition,
    earlier: Edition,
    rebuild_marks: dict[str, float],
) -> Running:
    """Start the build, wait for the event the trial aims at, kill it a random time later:
    within the time the reference build (or rebuild) spent between that event and the next."""
    marks = rebuild_marks if trial.kind.startswith("rebuild") else ref.marks
    following = {"synthesis": "assembly", "assembly": "feed", "feed": "done"}
    run = start_build(trial_root, watch=watching(trial_root, ref))
    if trial.kind == "segmenting":
        anchor = run.started
        trial.delay = rng.uniform(0.5, 1.0) * marks["synthesis"]
    elif trial.kind == "rebuild-any":
        anchor = run.started
        trial.delay = rng.uniform(0.1, 1.0) * marks["done"]
    else:
        event = trial.kind.removeprefix("rebuild-")
        assert run.wait_for(event), f"trial {trial.number}: never saw {event}: {run.stderr}"
        anchor = run.events[event]
        trial.delay = rng.uniform(0, marks[following[event]] - marks[event])
    time.sleep(max(0.0, anchor + trial.delay - time.monotonic()))
    run.kill_all()
    out = trial_root / "output"
    got = products(out)
    trial.stage = next(
        stage
        for stage, reached in (
            ("finished", got == ref.products),
            ("feed", "feed" in run.events),
            ("assembly", "assembly" in run.events),
            ("synthesis", "synthesis" in run.events),
            ("segmenting", True),
        )
        if reached
    )
    return run


def test_sigkill_at_random_moments_then_resume(
    tmp_path: Path, reference: Edition, earlier: Edition, rebuild_marks: dict[str, float]
) -> None:
    rng = random.Random(KILL_SEED)
    root = tmp_path / "book"
    trials = [Trial(n + 1, KINDS[n % len(KINDS)], 0.0) for n in range(TRIALS)]
    for trial in trials:
        reset(root, trial.kind, earlier)
        editions = [reference, earlier] if trial.kind.startswith("rebuild") else [reference]
        when = f"trial {trial.number} ({trial.kind})"
        assert_consistent(root / "output", editions, f"{when}, before")
        kill_at_random(root, trial, rng, reference, earlier, rebuild_marks)
        when += f", killed {trial.delay:.3f} s in, during {trial.stage}"
        assert_consistent(root / "output", editions, when)
        start = time.monotonic()
        resumed = narrate_build(root)
        trial.resume = time.monotonic() - start
        assert resumed.returncode == 0, f"{when}: the next build failed: {resumed.stderr}"
        assert_same_as(root, reference, when)
    summary = "\n".join(
        f"  {t.number:2d} {t.kind:<17} +{t.delay:6.3f} s  died in {t.stage:<10} "
        f"resumed in {t.resume:.1f} s"
        for t in trials
    )
    print(f"\n{len(trials)} SIGKILL trials (seed {KILL_SEED}):\n{summary}")
    stages = {t.stage for t in trials} - {"finished"}
    # the moments really are spread over the build, not all before or after it
    assert len(stages) >= 3, summary
    assert sum(t.stage == "finished" for t in trials) <= len(trials) // 3, summary


# --------------------------------------------------------------------------- precise kills


def test_killed_just_before_the_feed_the_old_feed_names_only_files_still_there(
    tmp_path: Path, fake_engine: None
) -> None:
    root = write_project(
        tmp_path / "book",
        {**SEEDS, "04-extra.txt": "An Extra Part\n\nA chapter soon dropped.\n"},
        FAKE_VOICES_YAML,
    )
    cli_build(root)
    (root / "seeds" / "04-extra.txt").unlink()
    run = start_hooked(root, "narration.publishing.feed", "write_feed", KILL_ME, fake=True)
    assert run.finish() == -signal.SIGKILL
    out = root / "output"
    assert (out / "feed.xml").is_file()
    for document, name in local_targets(out):
        assert (out / name).is_file(), f"{document} names {name}, which is not there"


def test_ctrl_c_while_the_workers_start_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    """A build starts its synthesis workers first: Ctrl-C (SIGINT to the whole process group,
    as a terminal sends it) while they load must still end in the one-line message."""
    for n, delay in enumerate((0.15, 0.25, 0.4)):
        root = write_project(tmp_path / f"book{n}")
        run = start_build(root, cache=tmp_path / f"cache{n}")
        time.sleep(delay)
        os.killpg(run.proc.pid, signal.SIGINT)
        code = run.finish()
        assert "Traceback" not in run.stderr, f"Ctrl-C {delay} s in:\n{run.stderr}"
        if code != 0:  # unless the signal came in the instant a worker was being started
            assert "interrupted; the next build resumes from the cache" in run.stderr
            assert code == 130, f"Ctrl-C {delay} s in: exit {code}, as shells expect 130"
            assert not (root / "output" / "feed.xml").exists()


def test_a_resumed_build_leaves_no_temporary_files_of_the_killed_one(
    tmp_path: Path, fake_engine: None
) -> None:
    root = write_project(tmp_path / "book", voices=FAKE_VOICES_YAML)
    # killed as the transcript is written: the chapter's MP3 is encoded, not yet renamed
    before = "if str(args[0]).endswith('.vtt'): " + KILL_ME
    run = start_hooked(
        root, "narration.assembly.chapter", "replace_file", before, "-j", "1", fake=True
    )
    assert run.finish() == -signal.SIGKILL
    out = root / "output"
    assert list(out.glob(".01-*.mp3.tmp*")), "the kill should have left a temporary MP3"
    cli_build(root)
    state = root / ".narrate" / "state"
    leftovers = [p.name for p in [*out.iterdir(), *state.iterdir()] if ".tmp" in p.name]
    assert leftovers == []


@pytest.mark.parametrize(
    "stage",
    ["synthesis", "assembly"],
)
def test_killing_only_the_build_process_leaves_no_worker_behind(
    tmp_path: Path, reference: Edition, stage: str
) -> None:
    """`kill -9 <pid of narrate>`: its synthesis or assembly workers must not live on."""
    if stage == "synthesis":  # enough clips that the workers are busy when it dies
        sentences = " ".join(
            f"Sentence number {n} is here, and it is read aloud." for n in range(60)
        )
        root = write_project(tmp_path / "book", {"01-many.txt": f"Many Words\n\n{sentences}\n"})
    else:  # a warm cache: straight on to encoding
        root = write_project(tmp_path / "book")
        shutil.copytree(reference.root / ".narrate" / "cache", root / ".narrate" / "cache")
    run = start_build(root, "--jobs", "2", watch=watching(root, reference))
    try:
        assert run.wait_for(stage), run.stderr
        time.sleep(0.1)  # the workers are up and busy
        workers = [p for p in session_members(run.proc.pid) if p != run.proc.pid]
        assert workers, f"no {stage} worker was running: nothing tested"
        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.wait(timeout=10)
        deadline = time.monotonic() + 3  # the synthesis workers go within 0.1 s
        while session_members(run.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session_members(run.proc.pid) == [], f"{stage} workers outlived the build"
    finally:
        run.kill_all()  # what would be left: the stderr pipe closes with the last of them


# --------------------------------------------------------------------------- concurrency


def test_a_second_build_on_the_same_project_waits_or_says_so_and_both_end_well(
    tmp_path: Path, reference: Edition
) -> None:
    """The first build is held mid-way (under its lock, before assembly) while a second one
    starts: the second either exits at once with one clear line, or waits for the first
    and then finishes; either way the output and the cache end up right."""
    root = write_project(tmp_path / "book")
    holding, release = tmp_path / "holding", tmp_path / "release"
    hold = (
        f"Path({str(holding)!r}).touch()\n"
        f"while not Path({str(release)!r}).exists(): time.sleep(0.02)"
    )
    first = start_hooked(
        root, "narration.assembly", "assemble_book", hold, watch={"holding": holding.exists}
    )
    second = None
    try:
        assert first.wait_for("holding"), first.stderr  # it holds the lock, mid-build
        second = start_build(root, "--quiet")
        with contextlib.suppress(subprocess.TimeoutExpired):
            second.proc.wait(timeout=8)  # ample for a refusal: the check takes < 1 s
        refused = second.proc.returncode is not None
        if refused:
            assert second.finish() == 1, second.stderr
            message = second.stderr.strip()
            assert "Traceback" not in message and "\n" not in message, message
            assert re.fullmatch(
                r"Error: \S+: a narrate build \(pid \d+\) is running on this project; "
                r"build again once it has finished",
                message,
            ), message
    finally:
        release.touch()
    assert first.finish() == 0, first.stderr
    if not refused:  # it waited: now it runs, after the first
        assert second.finish() == 0, second.stderr
    assert_same_as(root, reference, "after both builds")
    clips = root / ".narrate" / "cache" / "clips"
    assert_cache_sound(clips, len(cache_entries(reference.root / ".narrate" / "cache" / "clips")))
    again = narrate_build(root, "--quiet")
    assert again.returncode == 0, again.stderr
    report = json.loads((root / "output" / "build.json").read_text(encoding="utf-8"))
    assert report["totals"]["rendered"] == report["totals"]["encoded"] == 0
    assert_same_as(root, reference, "after one more build")


def test_two_projects_building_at_once_share_one_cache_safely(
    tmp_path: Path, reference: Edition
) -> None:
    """Two builds rendering the same clips into one $NARRATE_CACHE_DIR at the same time."""
    cache = tmp_path / "shared-cache"
    roots = [write_project(tmp_path / name) for name in ("one", "two")]
    runs = [start_build(root, cache=cache) for root in roots]
    for run in runs:
        assert run.finish() == 0, run.stderr
    for root in roots:
        assert_same_as(root, reference, root.name)
        assert not (root / ".narrate" / "cache").exists()
    unique = len(cache_entries(reference.root / ".narrate" / "cache" / "clips"))
    assert_cache_sound(cache, unique)


# --------------------------------------------------------------------------- damaged cache


def test_a_truncated_or_emptied_cache_entry_is_rendered_again_not_shipped(
    tmp_path: Path, reference: Edition
) -> None:
    root = tmp_path / "book"
    shutil.copytree(reference.root, root)
    clips = root / ".narrate" / "cache" / "clips"
    entries = cache_entries(clips)
    damaged = {entries[0]: "half", entries[len(entries) // 2]: "header", entries[-1]: "empty"}
    for path, how in damaged.items():
        data = path.read_bytes()
        cut = {"half": len(data) // 2, "header": 44, "empty": 0}[how]
        path.write_bytes(data[:cut])
        with pytest.raises(ClipProblem):
            wav_info(path)
    out = root / "output"
    for p in out.glob("*.mp3"):
        p.unlink()
    # every chapter is assembled again (no piece kept), from whatever the cache gives
    shutil.rmtree(root / ".narrate" / "state")
    result = narrate_build(root)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "build.json").read_text(encoding="utf-8"))
    assert report["totals"]["rendered"] == len(damaged)
    assert_same_as(root, reference, "rebuilt over a damaged cache")
    for name, seconds in reference.seconds.items():
        assert mutagen.mp3.MP3(out / name).info.length == pytest.approx(seconds, abs=0.05)
    assert_cache_sound(clips, len(entries))


def test_a_cached_clip_whose_samples_changed_on_disk_is_rendered_again(
    tmp_path: Path, reference: Edition
) -> None:
    """A header still valid, the samples zeroed or one flipped: only the digest kept beside
    the clip can tell, and the build says which it rendered again."""
    root = tmp_path / "book"
    shutil.copytree(reference.root, root)  # times kept: the copied clips stay trusted
    clips = root / ".narrate" / "cache" / "clips"
    entries = cache_entries(clips)
    zeroed, flipped = entries[1], entries[-2]
    info = wav_info(zeroed)
    data = bytearray(zeroed.read_bytes())
    data[info.data_offset :] = bytes(len(data) - info.data_offset)
    zeroed.write_bytes(bytes(data))
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    out = root / "output"
    for p in out.glob("*.mp3"):
        p.unlink()
    # every chapter is assembled again (no piece kept), from whatever the cache gives
    shutil.rmtree(root / ".narrate" / "state")
    result = narrate_build(root)
    assert result.returncode == 0, result.stderr
    assert "2 cached clips were damaged on disk (bytes changed since they were made" in (
        result.stderr
    ), result.stderr
    report = json.loads((out / "build.json").read_text(encoding="utf-8"))
    assert report["totals"]["rendered"] == 2
    assert_same_as(root, reference, "rebuilt over changed clips")
    assert_cache_sound(clips, len(entries))
    again = narrate_build(root)  # a no-op: nothing is found changed, nothing rendered
    assert again.returncode == 0 and "damaged" not in again.stderr, again.stderr
    assert json.loads((out / "build.json").read_text())["totals"]["rendered"] == 0


def test_a_clip_rotted_without_a_trace_in_its_size_or_time_is_caught_in_assembly(
    tmp_path: Path, reference: Edition
) -> None:
    """One byte changed in place, its time set back: the file system shows nothing, the
    digest checked where assembly reads the samples does; the clip is rendered again."""
    root = tmp_path / "book"
    shutil.copytree(reference.root, root)
    out = root / "output"
    clips = root / ".narrate" / "cache" / "clips"
    rotted = cache_entries(clips)[3]
    before = rotted.stat()
    with open(rotted, "r+b") as f:
        f.seek(before.st_size // 2)
        byte = f.read(1)
        f.seek(before.st_size // 2)
        f.write(bytes([byte[0] ^ 0x10]))
    os.utime(rotted, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (rotted.stat().st_size, rotted.stat().st_mtime_ns) == (
        before.st_size,
        before.st_mtime_ns,
    )
    for p in out.glob("*.mp3"):
        p.unlink()
    shutil.rmtree(root / ".narrate" / "state")  # every chapter is assembled again
    result = narrate_build(root)
    assert result.returncode == 0, result.stderr
    assert "1 cached clip had changed on disk without a trace" in result.stderr, result.stderr
    assert json.loads((out / "build.json").read_text())["totals"]["rendered"] == 1
    assert_same_as(root, reference, "rebuilt over a rotted clip")
    assert_cache_sound(clips, len(cache_entries(clips)))


# --------------------------------------------------------------------------- disk full


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG

    return apply


def build_on_a_full_disk(
    tmp_path: Path, reference: Edition, earlier: Edition, where: str
) -> tuple[Path, subprocess.CompletedProcess[str], dict[str, tuple[str, int]], bytes]:
    """A rebuild whose writes fail past RLIMIT_FSIZE (EFBIG, for real), like a disk filling up
    mid-build: in synthesis (over the earlier edition's output, a clip of the new text is
    too big to write), in assembly (the new text's clips cached, so the first big write is an
    MP3), or at the feed (only the show's description grew)."""
    root = tmp_path / "book"
    if where in ("synthesis", "assembly"):
        shutil.copytree(earlier.root, root)
        write_project(root)
        if where == "assembly":
            shutil.copytree(
                reference.root / ".narrate" / "cache",
                root / ".narrate" / "cache",
                dirs_exist_ok=True,
            )
        limit = 100_000  # under every MP3 (110-210 KB) and long clip, over the rest
    else:
        shutil.copytree(reference.root, root)
        (root / "podcast.yaml").write_text(
            PODCAST_YAML + "description: " + "Read aloud, slowly. " * 250 + "\n",
            encoding="utf-8",
        )
        limit = 7_000  # over narrate.lock, under the new feed.xml
    before = snapshot(root / "output")
    lock = (root / "narrate.lock").read_bytes()
    result = subprocess.run(
        [str(NARRATE), "build", "--project", str(root), "--quiet"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=180,
        preexec_fn=_file_size_limit(limit),
        check=False,
    )
    return root, result, before, lock


FULL_DISK_ERRORS = {
    "synthesis": r"Error: segment [\w-]+: no usable clip after \d attempts: "
    rf"OSError: \[Errno 27\] {os.strerror(errno.EFBIG)}; voice 'narrator' .+",
    "assembly": r"Error: \S*/output/\d\d-[a-z-]+\.mp3: .+",
    "feed": rf"Error: \S*/output/feed\.xml: {os.strerror(errno.EFBIG)}",
}


@pytest.mark.parametrize("where", sorted(FULL_DISK_ERRORS))
def test_a_full_disk_stops_the_build_with_one_line_and_the_previous_output_stays(
    tmp_path: Path, reference: Edition, earlier: Edition, where: str
) -> None:
    root, result, before, lock = build_on_a_full_disk(tmp_path, reference, earlier, where)
    assert result.returncode == 1, result.stderr
    message = result.stderr.strip()
    assert "Traceback" not in message and "\n" not in message, message
    assert re.fullmatch(FULL_DISK_ERRORS[where], message), message
    after = snapshot(root / "output")
    if where == "synthesis":  # the clips that could be written are in the cache, whole
        after = {k: v for k, v in after.items() if not k.startswith(".cache/")}
        before = {k: v for k, v in before.items() if not k.startswith(".cache/")}
    assert after == before  # not a byte or a date changed, no leftovers
    assert (root / "narrate.lock").read_bytes() == lock
    again = narrate_build(root, "--quiet")  # room again: the build completes
    assert again.returncode == 0, again.stderr
    if where != "feed":
        assert_same_as(root, reference, "after the disk was freed")
    assert_cache_sound(
        root / ".narrate" / "cache" / "clips",
        len(cache_entries(root / ".narrate" / "cache" / "clips")),
    )


def test_a_full_disk_in_assembly_says_so(
    tmp_path: Path, reference: Edition, earlier: Edition
) -> None:
    _, result, _, _ = build_on_a_full_disk(tmp_path, reference, earlier, "assembly")
    reasons = "|".join(os.strerror(e) for e in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT))
    assert re.search(rf": ({reasons})$", result.stderr.strip()), result.stderr


# --------------------------------------------------------------------------- hostile text

NASTY = (
    "Edge Cases\n\n"
    "Emoji first \U0001f389\U0001f680 then words \U0001f469\u200d\U0001f469\u200d\U0001f467 "
    "and a flag \U0001f1eb\U0001f1f7.\n\n"
    "Hebrew \u05e9\u05dc\u05d5\u05dd and Arabic \u0645\u0631\u062d\u0628\u0627 inside English, "
    "with a right-to-left mark\u200f here.\n\n"
    "Combining marks: cafe\u0301 nai\u0308ve, and Zalgo t\u0336\u0334e\u0335x\u0337t.\n\n"
    "Bell\x07 and escape\x1b and a form feed\x0c there.\n\n"
    "<speak>Hello there</speak>\n\n"
    'Wait <break time="10s"/> now.\n\n' + "x" * 250 + "\n"  # the longest word allowed
)


def longest_quiet(samples: np.ndarray, rate: int, floor_db: float = -45.0) -> float:
    """The longest stretch, in seconds, whose 10 ms windows all stay under floor_db."""
    win = rate // 100
    frames = samples[: len(samples) // win * win].reshape(-1, win)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12
    quiet = 20 * np.log10(rms) < floor_db
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best * win / rate


def test_hostile_text_through_segment_and_cast(tmp_path: Path) -> None:
    """A 200 KB paragraph without punctuation and the nasty mix become utterances the engine
    takes: none over the limit, none empty, no control character, nothing but NFC."""
    rng = random.Random(3)
    vocabulary = ["river", "bridge", "workers", "morning", "the", "and", "of", "slowly"]
    huge = " ".join(rng.choice(vocabulary) for _ in range(35_000))
    assert len(huge) > 200_000 and not re.search(r"[.,;:!?]", huge)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "01-huge.txt").write_text(f"Huge\n\n{huge}\n", encoding="utf-8")
    (seeds / "02-nasty.txt").write_text(NASTY, encoding="utf-8")
    (tmp_path / "voices.yaml").write_text(VOICES_YAML, encoding="utf-8")
    start = time.perf_counter()
    cast = cast_book(
        segment_book(seeds), load_voices(tmp_path / "voices.yaml", catalog=settings_catalog())
    )
    seconds = time.perf_counter() - start
    assert seconds < 5.0, seconds
    lines = [line for cc in cast for part in cc.parts for line in part.lines]
    for line in lines:
        assert 0 < len(line.spoken) <= MAX_UTTERANCE and line.spoken.strip(), line
        assert not any(unicodedata.category(c) == "Cc" for c in line.spoken), line
        assert unicodedata.is_normalized("NFC", line.spoken), line
    big = next(p for p in cast[0].parts if p.kind == "narration")
    assert " ".join(line.text for line in big.lines) == huge  # every word, in order
    spoken = [line.spoken for line in lines]
    assert "<speak>Hello there</speak>" in spoken  # read as the text it is
    assert any("break time" in s and "10s" in s for s in spoken)


def test_hostile_text_builds_with_the_real_engine_and_no_markup_is_obeyed(
    tmp_path: Path,
) -> None:
    root = write_project(tmp_path / "book", {"01-nasty.txt": NASTY})
    result = narrate_build(root, "--quiet")
    assert result.returncode == 0, result.stderr
    out = root / "output"
    (mp3,) = out.glob("*.mp3")
    report = json.loads((out / "build.json").read_text(encoding="utf-8"))
    assert mutagen.mp3.MP3(mp3).info.length == pytest.approx(report["totals"]["seconds"], abs=0.1)
    vtt = mp3.with_suffix(".vtt")
    raw = vtt.read_text(encoding="utf-8")
    assert "&lt;speak&gt;Hello there&lt;/speak&gt;" in raw and "<speak>" not in raw
    cues = read_vtt(vtt)
    decoded = miniaudio.decode_file(
        str(mp3), output_format=miniaudio.SampleFormat.FLOAT32, nchannels=1, sample_rate=44100
    )
    audio = np.asarray(decoded.samples, dtype=np.float32)
    rate = 44100

    def span(cue: Any) -> np.ndarray:
        return audio[int(cue.start * rate) : int(cue.end * rate)]

    (pause,) = [c for c in cues if "break time" in c.text]
    assert pause.end - pause.start < 4.0, pause  # no ten seconds of <break/>
    assert longest_quiet(span(pause), rate) < 0.8
    (speak,) = [c for c in cues if "speak>" in c.text]
    assert speak.text == "<speak>Hello there</speak>"
    # the whole chapter before its 3 s tail: no silence longer than the pauses (1.2 s at most)
    assert longest_quiet(audio[: len(audio) - int(3.2 * rate)], rate) < 1.6
    # the 250-letter word is read, in two utterances, not dropped
    assert "".join(c.text for c in cues if set(c.text) == {"x"}) == "x" * 250
    assert report["totals"]["seconds"] > 30


def test_a_paragraph_only_in_a_right_to_left_script_builds(tmp_path: Path) -> None:
    rtl = (
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd, \u05d6\u05d4 \u05d8\u05e7\u05e1\u05d8."
    )
    root = write_project(tmp_path / "book", {"01-rtl.txt": f"Shalom\n\n{rtl}\n"})
    result = narrate_build(root, "--quiet")
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- escaping

TRICKY_SHOW = "Bread & Roses: <the> \"strike\" at O'Brien's"
TRICKY_AUTHOR = "Kollontai & <Serge> \"A\" 'B'"
TRICKY_TITLE = "Bread & <Roses>: O'Brien's Strike"
TRICKY_SEEDS = {
    "01-bread.txt": (
        f"{TRICKY_TITLE}\n\nBy Anna O'Brien\n\n"
        "Text with <script>alert(1)</script> & \"quotes\" and 'apostrophes' & <b>tags</b>.\n"
    ),
    "02-quote.md": (
        '# The <Workers\'> & "Co"\n\nBefore the quote.\n\n'
        '> The <Workers\'> & "Co" were right.\n>\n'
        "> -- Victor <Serge> & Co, \"Memoirs\" & 'Notes' (1963)\n"
    ),
}


def test_markup_characters_are_escaped_in_feed_page_tags_and_transcripts(
    tmp_path: Path,
) -> None:
    root = write_project(tmp_path / "book", TRICKY_SEEDS, VOICES_YAML)
    (root / "podcast.yaml").write_text(
        yaml.safe_dump(
            {
                "title": TRICKY_SHOW,
                "author": TRICKY_AUTHOR,
                "description": "Read <i>aloud</i> & \"well\" 'enough'",
                "base_url": BASE_URL,
            }
        ),
        encoding="utf-8",
    )
    cli_build(root)
    out = root / "output"
    titles = [TRICKY_TITLE, 'The <Workers\'> & "Co"']
    # feed: well-formed XML; every text comes back exactly as written
    tree = ET.parse(out / "feed.xml")
    channel = tree.getroot().find("channel")
    assert channel is not None and channel.findtext("title") == TRICKY_SHOW
    itunes = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
    assert channel.findtext(f"{itunes}author") == TRICKY_AUTHOR
    assert [item.findtext("title") for item in channel.iter("item")] == titles
    assert not any(el.tag in ("script", "b", "the", "Roses", "Serge") for el in tree.iter())
    # page: no element the texts spell out, every text escaped
    page = (out / "index.html").read_text(encoding="utf-8")
    tags: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: Any) -> None:
            tags.append(tag)

    Tags().feed(page)
    assert tags.count("script") == page.count("<script") == 1  # the page's own only
    assert not {"roses", "the", "serge", "workers'"} & set(tags), tags
    assert "Bread &amp; &lt;Roses&gt;: O&#x27;Brien&#x27;s Strike" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in page  # the inlined transcript
    # ID3 tags hold the text itself, not an escaped copy
    mp3s = sorted(out.glob("*.mp3"))
    assert [p.name for p in mp3s] == [
        "01-bread-roses-o-brien-s-strike.mp3",
        "02-the-workers-co.mp3",
    ]
    first = mutagen.id3.ID3(mp3s[0])
    assert str(first["TIT2"]) == TRICKY_TITLE
    assert str(first["TPE1"]) == "Anna O'Brien"
    assert str(first["TALB"]) == TRICKY_SHOW
    assert str(mutagen.id3.ID3(mp3s[1])["TPE1"]) == TRICKY_AUTHOR
    assert TRICKY_TITLE in [str(f.sub_frames["TIT2"]) for f in first.getall("CHAP")]
    # transcript: WebVTT escapes & and <; JSON chapters are JSON
    vtt = mp3s[0].with_suffix(".vtt").read_text(encoding="utf-8")
    assert "<script>" not in vtt and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in vtt
    assert "<b>" not in vtt
    quote_vtt = mp3s[1].with_suffix(".vtt").read_text(encoding="utf-8")
    assert "<Serge>" not in quote_vtt and "<Workers'>" not in quote_vtt
    marks = json.loads(mp3s[0].with_name(mp3s[0].stem + ".chapters.json").read_text("utf-8"))
    assert TRICKY_TITLE in [c["title"] for c in marks["chapters"]]


def test_a_by_line_the_segmenter_cannot_read_is_never_taken_for_the_title(
    tmp_path: Path,
) -> None:
    """'By Kollontai & Serge' once made the title, and the real title the author."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    body = "Text with words, and more words here.\n"
    (seeds / "01-a.txt").write_text(f"O'Brien's Strike\n\nBy Kollontai & Serge\n\n{body}")
    (seeds / "02-b.txt").write_text(f"By Kollontai & Serge\n\nO'Brien's Strike\n\n{body}")
    for chapter in segment_book(seeds).chapters:
        assert (chapter.title, chapter.author) == ("O'Brien's Strike", None), chapter
        assert chapter.segments[0].text == "By Kollontai & Serge"  # still read, not lost


# --------------------------------------------------------------------------- file names

PROSE = "It was a long day, and the work went on until the evening came down over the town."


def test_file_names_with_spaces_accents_or_no_extension_get_distinct_ascii_files(
    tmp_path: Path, fake_engine: None
) -> None:
    seeds = {
        "01 Été à Paris.txt": f"{PROSE}\n",  # no title line: titled from the file name
        "02 Été à Paris.md": f"{PROSE} Again.\n",  # the same title from its name
        "03 Introduction": f"Introduction\n\n{PROSE}\n",  # no extension
        "04-intro.md": f"# Introduction\n\n{PROSE} Once more.\n",  # the same title
        "Chapter 5. The End": f"{PROSE} The end.\n",  # a dot, but no extension
        "notes.docx": "PK not a text",  # a document of another kind: not read
        "06-draft.txt~": "An editor's backup: not read.\n",
    }
    root = write_project(tmp_path / "book", seeds, FAKE_VOICES_YAML)
    cli_build(root)
    out = root / "output"
    report = json.loads((out / "build.json").read_text(encoding="utf-8"))
    files = [ch["file"] for ch in report["chapters"]]
    assert files == [n for n in sorted(seeds) if n[0].isdigit() and not n.endswith("~")] + [
        "Chapter 5. The End"
    ]
    mp3s = [ch["mp3"] for ch in report["chapters"]]
    assert len(set(mp3s)) == len(mp3s) == 5, mp3s
    for name in mp3s:
        assert name.isascii() and re.fullmatch(r"\d\d-[a-z0-9]+(-[a-z0-9]+)*\.mp3", name), name
        assert (out / name).is_file()
    titles = [str(mutagen.id3.ID3(out / n)["TIT2"]) for n in mp3s]
    assert titles[:4] == ["Été À Paris", "Été À Paris", "Introduction", "Introduction"]
    assert titles[4] == "Chapter 5 The End"  # titled from its whole name
    enclosures = [e.get("url", "") for e in ET.parse(out / "feed.xml").iter("enclosure")]
    assert sorted(unquote(u[len(BASE_URL) :]) for u in enclosures) == sorted(mp3s)


# --------------------------------------------------------------------------- configuration

GOOD_VOICES = yaml.safe_load(VOICES_YAML)
GOOD_PODCAST = yaml.safe_load(PODCAST_YAML)

#: Template pieces, so the fuzzer reaches the announcement check with format syntax.
_template = st.lists(
    st.sampled_from(
        [
            "{",
            "}",
            "{number}",
            "{title}",
            "number",
            "author",
            ".",
            "[0]",
            ":",
            ">",
            "999999999",
            "!r",
            "!z",
            "{{",
            "}}",
            "Chapter ",
            ", ",
            "{title.upper}",
            "{0}",
            "{}",
        ]
    ),
    max_size=6,
).map("".join)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | _template
    | st.sampled_from(
        [
            "gmw/en-us",
            "http://[x",
            "https://example.org/",
            "/[/",
            "/(a+)+$/",
            "quote",
            "m3",
            "2021-02-30",
            "narrator",
            "memoir",
            "Arts",
            "Books",
            "x@y.z",
            "*.txt",
            "",
            " ",
        ]
    )
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


@st.composite
def _mutated(draw: st.DrawFn, good: dict[str, Any]) -> dict[str, Any]:
    """A valid document with a few values replaced, keys removed or keys added."""
    doc = json.loads(json.dumps(good))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if action == "replace":
            parent[last] = draw(_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][draw(st.text(max_size=10))] = draw(_values)
        elif isinstance(parent[last], list):
            parent[last].append(draw(_values))
    return doc


def _check_config(root: Path, book: Any) -> None:
    """A valid config (that casts the book) or a ConfigError naming the file; nothing else."""
    try:
        voices, _ = load_config(
            open_project(root),
            settings_catalog(["gmw/en-us", "gmw/en-gb-scotland"], ["m3", "m7", "f2"]),
        )
    except ConfigError as exc:
        assert exc.problems and str(exc)
        for problem in exc.problems:
            assert problem.path.name in ("voices.yaml", "podcast.yaml"), problem
        return
    try:
        cast_book(book, voices)
    except NarrateError as exc:  # e.g. a lexicon that leaves nothing to say: a clear error
        assert str(exc)


@pytest.fixture(scope="module")
def config_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = write_project(tmp_path_factory.mktemp("config") / "book")
    return root, segment_book(root / "seeds")


ALIAS_BOMB = "".join(
    f"{a}: &{a} [{', '.join([f'*{b}'] * 9) if b else ', '.join('x' * 9)}]\n"
    for a, b in zip("abcdefg", ["", *"abcdef"], strict=True)
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    voices=_mutated(GOOD_VOICES) | st.text(max_size=60).map(lambda t: {"voices": t}),
    podcast=_mutated(GOOD_PODCAST),
    raw=st.sampled_from([None, "", "voices: &a {narrator: *a}\ndefault: narrator\n"]),
)
@example(voices=GOOD_VOICES, podcast=GOOD_PODCAST, raw="voices: " + "[" * 5000 + "]" * 5000)
@example(voices=GOOD_VOICES, podcast=GOOD_PODCAST, raw="rules: &r [*r]\n" + VOICES_YAML[:-1])
@example(voices=GOOD_VOICES, podcast=GOOD_PODCAST, raw=ALIAS_BOMB + VOICES_YAML)
@example(
    voices={**GOOD_VOICES, "announce": {"chapter": "{year.real}"}}, podcast=GOOD_PODCAST, raw=None
)
@example(
    voices={**GOOD_VOICES, "announce": {"chapter": "{number:>999999999}"}},
    podcast=GOOD_PODCAST,
    raw=None,
)
@example(voices=GOOD_VOICES, podcast={**GOOD_PODCAST, "link": "http://[x"}, raw=None)
@example(voices=GOOD_VOICES, podcast={**GOOD_PODCAST, "base_url": "http://[x"}, raw=None)
def test_config_loader_fuzzed_gives_a_config_or_an_error_never_a_crash(
    config_root: tuple[Path, Any], voices: dict[str, Any], podcast: dict[str, Any], raw: str | None
) -> None:
    root, book = config_root
    text = raw if raw is not None else yaml.safe_dump(voices, allow_unicode=True)
    (root / "voices.yaml").write_text(text, encoding="utf-8")
    (root / "podcast.yaml").write_text(yaml.safe_dump(podcast, allow_unicode=True), "utf-8")
    start = time.perf_counter()
    _check_config(root, book)
    # no hang: a width of 999999999 made into a string would take minutes and a gigabyte;
    # a check takes under a second, and 5 s was crossed on a machine running two suites
    assert time.perf_counter() - start < 30.0


@pytest.mark.parametrize(
    ("voices", "podcast", "pattern"),
    [
        (
            "voices: &a {narrator: *a}\ndefault: narrator\n",
            PODCAST_YAML,
            r"voices\.yaml:1: nested more than 64 levels deep",
        ),
        (ALIAS_BOMB + VOICES_YAML, PODCAST_YAML, r"voices\.yaml:\d+: too large"),
        (
            VOICES_YAML + "announce: {chapter: '{title.upper}'}\n",
            PODCAST_YAML,
            r"voices\.yaml:7: announce\.chapter: bad template \(unknown field \{title\.upper\}\)",
        ),
        (
            VOICES_YAML + "announce: {quote: 'From {author:>999999999}'}\n",
            PODCAST_YAML,
            r"voices\.yaml:7: announce\.quote: bad template \(\{author:>999999999\}",
        ),
        (
            VOICES_YAML,
            PODCAST_YAML + "link: 'http://[x'\n",
            r"podcast\.yaml:6: link: 'http://\[x' is not an http\(s\) URL",
        ),
        (
            VOICES_YAML,
            PODCAST_YAML.replace(BASE_URL, "'http://[x/'"),
            r"podcast\.yaml:5: base_url: 'http://\[x/' is not an http\(s\) URL",
        ),
    ],
    ids=[
        "recursive-alias",
        "alias-bomb",
        "template-attribute",
        "template-width",
        "link-unparseable",
        "base-url-unparseable",
    ],
)
def test_hostile_configuration_is_one_error_through_the_cli(
    tmp_path: Path, voices: str, podcast: str, pattern: str
) -> None:
    root = write_project(tmp_path / "book")
    (root / "voices.yaml").write_text(voices, encoding="utf-8")
    (root / "podcast.yaml").write_text(podcast, encoding="utf-8")
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["build", "--project", str(root), "--quiet"])
    assert time.perf_counter() - start < 5.0
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, RecursionError)
    assert re.search(pattern, result.output), result.output
    assert not (root / "output").exists()


def test_an_unparseable_base_url_option_is_one_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "book")
    result = CliRunner().invoke(
        main, ["build", "--project", str(root), "--quiet", "--base-url", "http://[::1/book/"]
    )
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        "Error: --base-url: 'http://[::1/book/' is not an http(s) URL like "
        "https://example.org/book/"
    )
    assert not (root / "output").exists()
