"""Synthesis: one verified WAV per Line, rendered in parallel, cached by content, never twice.

* `clip_key` addresses a clip by everything that shapes its audio (the exact spoken text,
  every voice setting, the engine and its versions, and what else the engine says matters,
  such as Kokoro's voice tensors) and nothing else: renaming a voice or changing its
  transcript label does not re-render it.
* `ClipCache` keeps the WAVs under `<project>/.narrate/cache/clips` (or `$NARRATE_CACHE_DIR`),
  written atomically; a truncated or corrupt entry reads as missing and is rendered again.
* `synthesize` renders what is not cached on worker processes, one pool per engine (a book
  may mix them), one worker per core. espeak-ng keeps state from one utterance to the next,
  so each of its workers loads and warms the engine once and forks a child per clip: every
  clip starts from the same state, and a build gives the same bytes whatever the order, the
  number of workers, or what was rendered before. An engine that needs no fork (Kokoro)
  renders in the worker itself, with the cores split between its workers as threads. A
  clip is verified (a real mono 16-bit WAV at the engine's rate whose speech lasts plausibly
  long for its words at the voice's pace, and not noise) before it enters the cache; a bad
  one is rendered again, and after `retries` more attempts the build stops with a
  SynthesisError naming the segment, the voice and the text: a build never ships a silent
  gap.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from narration.errors import OutputError, SynthesisError
from narration.layout import cache_dir
from narration.model import Clip, Line, Voice
from narration.progress import Work
from narration.synthesis.engines import (
    CHANNELS,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    Engine,
    EngineVoice,
    Unrecoverable,
    get_engine,
    key_fields,
    list_voices,
)

__all__ = [
    "ClipCache",
    "ClipProblem",
    "Engine",
    "EngineVoice",
    "WavInfo",
    "WorkerPool",
    "check_clip",
    "clip_key",
    "get_engine",
    "list_voices",
    "play",
    "preview_text",
    "speech_bounds",
    "synthesize",
    "wav_info",
]

KEY_SCHEMA = 1  # bump if the key's recipe changes
CLIP_TIMEOUT = 120  # seconds one child may spend on one utterance before it is killed
WORKER_NICE = 5  # workers yield to the build's process (its checks) when cores are short


class ProgressFn(Protocol):
    """progress(done, cached, total, work): unique clips, and the characters they hold."""

    def __call__(self, done: int, cached: int, total: int, work: Work, /) -> None: ...


@dataclass(frozen=True)
class ClipJob:
    """One line to render in one voice: `label` names it in messages (its segment id), and
    `group` (its chapter's index) orders the work: groups are rendered in order, each as
    soon as the one before has all its clips started."""

    line: Line
    voice: Voice
    label: str
    group: int = 0


#: A ClipJob, or (line, voice[, label]) as tests write it.
Job = ClipJob | tuple[Line, Voice] | tuple[Line, Voice, str]
#: One engine for every voice (tests), or the engine of each voice by its `engine` name.
Engines = Engine | Mapping[str, Engine]
#: The lowest sample rate a clip may have (every engine renders at 22,050 Hz or more).
MIN_CLIP_RATE = 8_000


# --------------------------------------------------------------------------- keys and WAVs


def clip_key(spoken: str, voice: Voice, engine: Engine) -> str:
    """sha256 of the exact spoken text, every voice setting, the engine's name and version,
    and whatever else the engine says shapes the voice (Kokoro: speed and voice tensors)."""
    recipe: dict[str, Any] = {
        "schema": KEY_SCHEMA,
        "text": spoken,
        "engine_voice": voice.engine_voice,
        "rate": int(voice.rate),
        "pitch": int(voice.pitch),
        "volume": repr(float(voice.volume)),
        "engine": engine.name,
        "engine_version": engine.version,
    }
    extra = key_fields(engine, voice)
    if extra:  # absent for espeak-ng, so its clips keep their keys
        recipe["voice_fields"] = extra
    blob = json.dumps(recipe, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ClipProblem(ValueError):
    """Why a WAV is not a usable clip; the message is shown to the user."""


@dataclass(frozen=True)
class WavInfo:
    frames: int
    sample_rate: int
    channels: int
    sample_width: int
    data_offset: int


def wav_info(path: Path) -> WavInfo:
    """Parse a WAV's header; ClipProblem if it is missing, not a PCM WAV, or truncated."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise ClipProblem("no WAV written") from None
    except OSError as exc:
        raise ClipProblem(f"cannot read the WAV ({exc.strerror})") from None
    return _parse_wav(head, size)


def _parse_wav(head: bytes, size: int) -> WavInfo:
    """The header in `head` (the file's first bytes) of a file of `size` bytes."""
    if size == 0:
        raise ClipProblem("zero-length file")
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ClipProblem("not a WAV file")
    riff_size = struct.unpack_from("<I", head, 4)[0]
    if riff_size + 8 > size:
        raise ClipProblem(f"truncated WAV ({size} bytes, header says {riff_size + 8})")
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            if length < 16 or body + 16 > len(head):
                raise ClipProblem("bad WAV format chunk")
            fmt = struct.unpack_from("<HHIIHH", head, body)
        elif chunk == b"data":
            if fmt is None:
                raise ClipProblem("WAV data before its format chunk")
            tag, channels, rate, _, block, bits = fmt
            if tag != 1:
                raise ClipProblem(f"WAV is not PCM (format {tag})")
            if body + length > size:
                raise ClipProblem(f"truncated WAV ({size - body} of {length} data bytes)")
            if block == 0 or length % block:
                raise ClipProblem("WAV data is not a whole number of frames")
            return WavInfo(length // block, rate, channels, bits // 8, body)
        pos = body + length + (length & 1)
    raise ClipProblem("WAV has no data chunk")


_LETTERS = re.compile(r"[^\W\d_]+|\d+|[^\w\s]", re.UNICODE)


def speech_bounds(spoken: str, rate: int) -> tuple[float, float]:
    """Shortest and longest plausible speech, in seconds, for `spoken` at `rate` wpm.

    Measured with espeak-ng on 250 sentences of the seeds and a novel at 80, 175 and 450 wpm
    and four voices: the speech (first to last sound) lasted 0.47-0.85x words * 60 / rate,
    and at most 1.6x the generous upper count below. Numbers are read as several words
    ("1921", "$3,000,000"), capitals may be spelled ("NKVD"), symbols may be named ("* * *"):
    the lower count takes each word or number as one word, the upper counts digits, letters
    of capitalised abbreviations and symbols. A voice may name each letter of a script it
    does not read ("Hebrew letter shin": 0.7 s a letter measured for Hebrew, 0.65 for Han in
    an English voice), so letters beyond Latin, Greek and Cyrillic count three words each.
    Text with no word at all may be silent.
    """
    low_words, high_words = 0, 0.0
    for token in _LETTERS.findall(spoken):
        if token[0].isdigit():
            low_words += 1
            high_words += 2 * len(token)
        elif token[0].isalpha():
            low_words += 1
            spelled = token.isupper() and len(token) > 1
            high_words += len(token) if spelled else max(1.0, len(token) / 3)
            high_words += 3 * sum(1 for c in token if _foreign_letter(c))
        else:
            high_words += 1
    per_word = 60.0 / max(rate, 1)
    return 0.3 * low_words * per_word, 2.0 + 2.5 * high_words * per_word


def _foreign_letter(char: str) -> bool:
    """A letter outside the Latin, Greek and Cyrillic scripts (which voices read as words)."""
    if char < "\u0250":  # ASCII and Latin-1, Latin Extended-A and -B
        return False
    script = unicodedata.name(char, "").split(" ", 1)[0]
    return script not in ("LATIN", "GREEK", "CYRILLIC", "MODIFIER", "COMBINING")


#: Maps a 16-bit sample's high byte to 1 when the sample is at least 256 away from zero.
_LOUD_HIGH_BYTE = bytes(0 if b in (0x00, 0xFF) else 1 for b in range(256))


def speech_seconds(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> float:
    """From the first to the last sound in 16-bit little-endian mono PCM.

    A sound is a sample at least 256 from zero (-42 dBFS; espeak-ng's silence is exactly 0,
    its speech peaks near -4 dBFS, Kokoro's near -6 dBFS as narrate levels it); a very quiet
    clip falls back to any non-zero sample. Done with bytes operations, so the worker, which
    forks per clip, stays small (no numpy).
    """
    loud = pcm[1::2].translate(_LOUD_HIGH_BYTE)
    first = loud.find(1)
    if first >= 0:
        return (loud.rfind(1) - first + 1) / sample_rate
    body = pcm[: len(pcm) - len(pcm) % 2]
    lead = len(body) - len(body.lstrip(b"\x00"))
    if lead == len(body):
        return 0.0
    trail = len(body) - len(body.rstrip(b"\x00"))
    return ((len(body) - trail - 1) // 2 - lead // 2 + 1) / sample_rate


def _byte_is(value: int) -> bytes:
    return bytes(1 if b == value else 0 for b in range(256))


_IS_7F, _IS_FF, _IS_80, _IS_00 = (_byte_is(v) for v in (0x7F, 0xFF, 0x80, 0x00))


def full_scale_samples(pcm: bytes) -> int:
    """How many samples of 16-bit little-endian PCM are at full scale (32767 or -32768).

    With bytes operations, as speech_seconds (a sample at a time through array.count
    took a second of a seeds' build): where no high byte is 0x7F or 0x80, none; else the
    low and high bytes' matches, as bits of two integers, are ANDed and counted.
    """
    high = pcm[1::2]
    if b"\x7f" not in high and b"\x80" not in high:
        return 0
    low = pcm[0 : 2 * len(high) : 2]
    count = 0
    for hi_table, lo_table in ((_IS_7F, _IS_FF), (_IS_80, _IS_00)):
        hi = int.from_bytes(high.translate(hi_table), "little")
        lo = int.from_bytes(low.translate(lo_table), "little")
        count += (hi & lo).bit_count()
    return count


def _clip_format(info: WavInfo, sample_rate: int | None = None) -> bool:
    """Mono 16-bit at `sample_rate` (None: at any rate an engine renders)."""
    if sample_rate is None:
        rate_ok = info.sample_rate >= MIN_CLIP_RATE
    else:
        rate_ok = info.sample_rate == sample_rate
    return rate_ok and (info.channels, info.sample_width) == (CHANNELS, SAMPLE_WIDTH)


#: Share of samples at full scale beyond which a clip is noise, not speech (espeak-ng and
#: Kokoro as narrate levels them never reach full scale).
MAX_CLIPPED = 0.001


def check_clip(path: Path, spoken: str, rate: int, sample_rate: int = SAMPLE_RATE) -> WavInfo:
    """Verify a rendered clip (an engine's rate: `sample_rate`); ClipProblem saying what is
    wrong with it."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ClipProblem("no WAV written") from None
    except OSError as exc:
        raise ClipProblem(f"cannot read the WAV ({exc.strerror})") from None
    info = _parse_wav(data[:4096], len(data))
    if not _clip_format(info, sample_rate):
        raise ClipProblem(
            f"expected {sample_rate:,} Hz mono 16-bit, got {info.sample_rate:,} Hz, "
            f"{info.channels} channel(s), {8 * info.sample_width}-bit"
        )
    if info.frames == 0:
        raise ClipProblem("empty WAV (no samples)")
    low, high = speech_bounds(spoken, rate)
    pcm = data[info.data_offset : info.data_offset + info.frames * info.sample_width]
    speech = speech_seconds(pcm, info.sample_rate)
    if speech < low or speech > high:
        what = "silent" if speech == 0 else f"speech lasts {speech:.2f} s"
        raise ClipProblem(f"{what}; expected {low:.2f}-{high:.2f} s at {rate} wpm")
    clipped = full_scale_samples(pcm)
    if clipped > MAX_CLIPPED * info.frames + 2:
        raise ClipProblem(
            f"{clipped / info.frames:.1%} of the samples at full scale: noise, not speech"
        )
    return info


# --------------------------------------------------------------------------- cache


class ClipCache:
    """Content-addressed WAVs: <root>/<key[:2]>/<key>.wav, each entered by an atomic rename.

    Beside each WAV, <key>.sha256 holds the digest of its bytes, taken when it was verified,
    with the file's size and modification time then. A reused clip whose size and time are
    unchanged is trusted without reading it (a no-op build of a novel reads no audio; a
    cache copied with its times, as cp -a and rsync -a do, stays trusted); any other is
    hashed again, and if its bytes changed (samples zeroed on disk, a bad copy) it is not
    used: rendered again, and counted in `damaged`. What keeps its size and time (bit rot)
    is caught where assembly reads the samples: each Clip carries its digest.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.damaged: list[str] = []  # keys of clips found changed on disk, rendered again

    @classmethod
    def for_project(cls, project: Path) -> ClipCache:
        return cls(cache_dir(project))

    def __repr__(self) -> str:
        return f"ClipCache({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{16,128}", key):
            raise ValueError(f"not a clip key: {key!r}")
        return self.root / key[:2] / f"{key}.wav"

    def temp_path(self, key: str, attempt: int = 0) -> Path:
        """A fresh name beside the final one (same file system, so the rename is atomic).

        Leftovers of killed renders start with a dot and end in .tmp: never read, removed
        by clear().
        """
        final = self.path_for(key)
        self._mkdir(final.parent)
        return final.with_name(f".{key[:20]}.{os.getpid()}.{attempt}.tmp")

    def ensure(self) -> None:
        """Create the cache folder; OutputError (not a traceback) if it cannot be."""
        self._mkdir(self.root)

    @staticmethod
    def _mkdir(folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = exc.strerror or exc
            raise OutputError(f"{folder}: cannot create the clip cache ({why})") from None

    def get(
        self, key: str, verify: Callable[[Path], object] | None = None, just_made: bool = False
    ) -> Clip | None:
        """The cached clip, or None if absent, truncated, not a clip WAV, or changed since it
        was verified. `verify(path)` (raising ClipProblem) checks a clip that has no digest
        yet (cached by a narrate before digests), which is then given one. `just_made`: a
        worker verified and cached it a moment ago (another build may have renamed its own
        render over it since, before sealing it: not a damaged clip)."""
        path = self.path_for(key)
        try:
            info = wav_info(path)
            stat = os.stat(path)
        except (ClipProblem, OSError):
            return None
        if not _clip_format(info) or info.frames == 0:
            return None
        seal = _read_seal(path)
        digest = seal[0] if seal is not None else None
        if just_made:
            digest = digest or _file_digest(path)
        elif seal is None or seal[1:] != _stat_fields(stat):
            digest = _file_digest(path)
            if digest is None:
                return None
            if seal is not None and seal[0] != digest:
                self.damaged.append(key)
                return None
            if seal is None and verify is not None:
                try:
                    verify(path)
                except ClipProblem:
                    self.damaged.append(key)
                    return None
            _write_seal(path, digest, stat)  # best effort: unsealed, it is hashed next time
        return Clip(key, path, info.frames, info.sample_rate, False, digest)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, src: Path) -> Clip:
        """Move a verified WAV (from temp_path) into the cache atomically, with its digest."""
        info = wav_info(src)
        final = self.path_for(key)
        digest = _file_digest(src)
        try:
            os.replace(src, final)
            if digest is not None:
                _write_seal(final, digest, os.stat(final))
        except OSError as exc:
            raise OutputError(f"{final}: cannot write to the clip cache ({exc.strerror})") from None
        return Clip(key, final, info.frames, info.sample_rate, True, digest)

    def intact(self, clip: Clip) -> bool:
        """Whether the clip's file still has the bytes it was verified with (reads it)."""
        return clip.digest is not None and _file_digest(clip.path) == clip.digest

    def discard(self, key: str) -> None:
        """Forget a clip (a damaged one), so the next synthesis renders it again."""
        path = self.path_for(key)
        for p in (path, _seal_path(path)):
            p.unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if shard.is_dir():
                for entry in sorted(shard.glob("*.wav")):
                    yield entry.stem

    def clear(self) -> int:
        """Delete every clip (and leftovers of killed renders); returns how many clips."""
        count = 0
        if not self.root.is_dir():
            return 0
        for shard in self.root.iterdir():
            if shard.is_dir() and re.fullmatch(r"[0-9a-f]{2}", shard.name):
                count += sum(1 for _ in shard.glob("*.wav"))
                shutil.rmtree(shard, ignore_errors=True)
        return count


_Seal = tuple[str, int, int]  # sha256, size, mtime_ns


def _stat_fields(stat: os.stat_result) -> tuple[int, int]:
    return (stat.st_size, stat.st_mtime_ns)


def _seal_path(wav: Path) -> Path:
    return wav.with_suffix(".sha256")


def _file_digest(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def _read_seal(wav: Path) -> _Seal | None:
    try:
        fields = _seal_path(wav).read_text(encoding="ascii").split()
        digest, numbers = fields[0], tuple(int(n) for n in fields[1:])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if len(numbers) != 2 or not re.fullmatch(r"[0-9a-f]{64}", digest):
        return None
    return (digest, *numbers)


def _write_seal(wav: Path, digest: str, stat: os.stat_result) -> None:
    """<key>.sha256: the digest and the stat it was taken at, replaced atomically."""
    seal = _seal_path(wav)
    tmp = seal.with_name(f".{seal.name}.{os.getpid()}.tmp")
    text = " ".join([digest, *map(str, _stat_fields(stat))]) + "\n"
    try:
        tmp.write_text(text, encoding="ascii")
        os.replace(tmp, seal)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


# --------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class ClipTask:
    """One clip to render: its place among the build's unique clips, cache key, text, voice."""

    index: int  # position in the list of unique clips
    key: str
    text: str
    voice: Voice


_OK, _FAILED, _FATAL = "ok", "failed", "fatal"
_PERMANENT = 3  # child exit code: the voice does not exist, retrying cannot help


@functools.lru_cache(maxsize=1)
def _libc_fork() -> Callable[[], int] | None:
    """The C library's fork(), called with the GIL held (PyDLL); None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fork = ctypes.PyDLL(None, use_errno=True).fork
    except (OSError, AttributeError):
        return None
    fork.restype, fork.argtypes = ctypes.c_int, []
    return fork  # type: ignore[no-any-return]


def _fork() -> int:
    """fork() for a child that renders one clip and leaves with os._exit.

    os.fork() also readies the child to live on as a Python process (it re-initialises the
    interpreter's thread state and locks and runs every at-fork hook, such as reseeding
    `random`): in a child forked per clip that costs about 1 ms of CPU and 200 copied
    pages, as much as espeak-ng spends on a short sentence. None of it matters to a child
    that makes a few calls on the one thread it has and exits, so a worker with no other
    thread forks through the C library; with any other thread (an engine may start one),
    os.fork() it is. An error is raised as OSError, as os.fork() would.
    """
    fork = _libc_fork()
    try:
        alone = fork is not None and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        alone = False
    if not alone or fork is None:
        return os.fork()
    pid = fork()
    if pid < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return pid


def _render_in_child(engine: Engine, text: str, voice: Voice, path: Path) -> tuple[int, str]:
    """Fork a child of this (warmed) process to render one clip; (exit code, message)."""
    read_end, write_end = os.pipe()
    try:
        pid = _fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # child: from here on, only os._exit
        code = 1
        try:
            os.close(read_end)
            signal.alarm(CLIP_TIMEOUT)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # the driver's "Audio saved to ..." and any C chatter
            os.dup2(write_end, 2)  # espeak-ng's complaints become the error message
            engine.render(text, voice, path)
            code = 0
        except Unrecoverable as exc:
            os.write(write_end, str(exc).encode("utf-8", "replace"))
            code = _PERMANENT
        except BaseException as exc:
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"))
        finally:
            os._exit(code)
    os.close(write_end)
    message = b""
    with os.fdopen(read_end, "rb") as pipe:
        for chunk in iter(lambda: pipe.read(65536), b""):
            message = (message + chunk)[-4000:]
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message.decode("utf-8", "replace").strip()


def _render_here(engine: Engine, text: str, voice: Voice, path: Path) -> tuple[int, str]:
    """Render one clip in this worker (an engine that needs no fork); (exit code, message)
    as _render_in_child gives them."""
    try:
        engine.render(text, voice, path)
    except Unrecoverable as exc:
        return _PERMANENT, str(exc)
    except Exception as exc:
        return 1, f"{type(exc).__name__}: {exc}"
    return 0, ""


def _describe_exit(code: int, message: str) -> str:
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        if -code == signal.SIGALRM:
            return f"the engine did not finish within {CLIP_TIMEOUT} s"
        return f"the engine crashed ({sig})"
    return message.splitlines()[-1] if message else f"the engine failed (exit code {code})"


def _render_task(engine: Engine, cache: ClipCache, task: ClipTask, retries: int) -> tuple[Any, ...]:
    """Render, verify and cache one clip, with up to `retries` fresh attempts after the first."""
    problems: list[str] = []
    for attempt in range(1, retries + 2):
        tmp = cache.temp_path(task.key, attempt)
        try:
            render = _render_in_child if engine.fork_per_clip else _render_here
            code, message = render(engine, task.text, task.voice, tmp)
            if code == 0:
                try:
                    check_clip(tmp, task.text, pace(engine, task.voice), engine.sample_rate)
                    clip = cache.put(task.key, tmp)
                    return (_OK, task.index, clip.frames, attempt, problems)
                except ClipProblem as exc:
                    problems.append(str(exc))
            else:
                problems.append(_describe_exit(code, message))
                if code == _PERMANENT:
                    break
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return (_FAILED, task.index, attempt, problems)


def _worker_main(task_fd: int, result_fd: int) -> None:
    """A worker process: warm the engine once, then render each task (in a forked child when
    the engine asks for one).

    Started by WorkerPool as `python -c` with two pipe descriptors: tasks come in on one (first
    the caller's sys.path, then the engine, the cache folder, the retries and the engine's
    threads), results go out on the other. Its stdout is not the channel, so nothing an
    engine prints can corrupt it.
    """
    # A worker may fork per clip: keep an engine's numpy (FakeEngine) from starting threads.
    # (Kokoro's onnxruntime sets its own thread count.)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    # the parent handles Ctrl-C and a closed terminal, and stops us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A build starts us beside its own checks: they go first while both want a core.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(WORKER_NICE)
    tasks = Connection(task_fd, writable=False)
    results = Connection(result_fd, readable=False)
    try:
        # the caller's import path first, so an engine class defined in its script unpickles
        sys.path[:] = [*tasks.recv(), *(p for p in sys.path if p)]
        engine, cache_root, retries, threads = tasks.recv()
        warm_up = getattr(engine, "warm_up", None)
        if callable(warm_up):
            warm_up(threads)
    except BaseException as exc:
        why = str(exc) if isinstance(exc, SynthesisError) else f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            results.send((_FATAL, why))
        return
    cache = ClipCache(Path(cache_root))
    while True:
        try:
            task = tasks.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            result = _render_task(engine, cache, task, retries)
        except (OutputError, OSError) as exc:  # e.g. the cache's disk is full
            result = (_FAILED, task.index, 1, [str(exc)])
        try:
            results.send(result)
        except OSError:
            return


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    tasks: Connection  # we send
    results: Connection  # we receive


class WorkerPool:
    """Synthesis worker processes of one engine, each with the engine loaded and warmed,
    started fresh so no engine state leaks in from the caller.

    Plain `python -c` subprocesses rather than multiprocessing's spawn, which would run the
    caller's main script again in each worker (a trap for unguarded scripts). Starting one
    takes about 0.2 s (an interpreter, this module, the engine's warm-up), so a build starts
    them before its checks and hands them to `synthesize`: their start-up overlaps the
    checks. They start with Ctrl-C ignored (the build handles it and stops them), so one
    pressed while they load prints no traceback of theirs. A context manager; a pool that
    was never given a clip is killed on the way out rather than waited for.

    An engine that renders in the worker itself (Kokoro) gets the cores split between the
    workers as its threads: two workers of one thread on two cores, or one of two with -j 1.
    """

    def __init__(
        self,
        engine: Engine,
        cache: ClipCache,
        size: int | None = None,
        retries: int = 3,
        *,
        threads: int | None = None,
    ) -> None:
        package_parent = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        self.engine_name = engine.name
        self.engine_version = ""  # its engine's version, where a caller keeps it
        self.cache_root = cache.root
        self.used = False
        self.workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._free: deque[_Worker] | None = None
        self._ready: threading.Semaphore | None = None
        count = max(1, size or _cores())
        threads = max(1, threads or _cores() // count)
        try:
            for _ in range(count):
                task_r, task_w = os.pipe()
                result_r, result_w = os.pipe()
                code = (
                    "import sys; from narration.synthesis.synth import _worker_main; "
                    "_worker_main(int(sys.argv[1]), int(sys.argv[2]))"
                )
                try:
                    with _sigint_ignored():
                        proc = subprocess.Popen(
                            [sys.executable, "-c", code, str(task_r), str(result_w)],
                            pass_fds=(task_r, result_w),
                            stdin=subprocess.DEVNULL,
                            env=env,
                        )
                finally:
                    os.close(task_r)
                    os.close(result_w)
                worker = _Worker(
                    proc, Connection(task_w, readable=False), Connection(result_r, writable=False)
                )
                self.workers.append(worker)
                with contextlib.suppress(BrokenPipeError):  # died at start: seen at recv
                    worker.tasks.send([p for p in sys.path if p])
                    worker.tasks.send((engine, str(cache.root), max(0, retries), threads))
        except BaseException:
            self.close()
            raise

    def render_one(self, task: ClipTask) -> tuple[Any, ...]:
        """Render one clip on a free worker and wait for it: for callers that are workers
        themselves (a Dask worker's threads, narration/cluster/), one task per thread.
        The worker's reply: ("ok", index, frames, attempts, problems), or ("failed", index,
        attempts, problems), the clip then in this pool's cache."""
        with self._lock:
            if self._free is None:
                self._free = deque(self.workers)
                self._ready = threading.Semaphore(len(self.workers))
        assert self._ready is not None
        with self._ready:
            with self._lock:
                worker = self._free.popleft()
            try:
                worker.tasks.send(task)
                message = worker.results.recv()
            except (EOFError, OSError):
                code = worker.proc.poll()
                return (_FAILED, task.index, 1, [f"synthesis worker died (exit code {code})"])
            finally:
                with self._lock:
                    self._free.append(worker)
        if message[0] == _FATAL:
            raise _engine_failed(self.engine_name, message[1])
        return message  # type: ignore[no-any-return]

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers: each first finishes the clips it was sent (at most two, within
        5 s); a pool that was never sent one is killed at once."""
        for worker in self.workers:
            if not self.used:
                with contextlib.suppress(OSError):
                    worker.proc.kill()
            with contextlib.suppress(OSError, ValueError):
                worker.tasks.send(None)
            worker.tasks.close()
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            worker.results.close()
        self.workers = []


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while a worker is started (from the main thread; signal dispositions
    belong to it): the worker inherits that, so Ctrl-C cannot interrupt it mid-import."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def _normalize(jobs_in: Sequence[Job]) -> list[ClipJob]:
    jobs = []
    for i, job in enumerate(jobs_in):
        if isinstance(job, ClipJob):
            jobs.append(job)
        elif len(job) == 3:
            line, voice, label = job  # type: ignore[misc]
            jobs.append(ClipJob(line, voice, str(label)))
        else:
            line, voice = job  # type: ignore[misc]
            jobs.append(ClipJob(line, voice, f"line {i + 1}"))
    return jobs


def _retried(job: ClipJob, attempts: int, problems: list[str]) -> str:
    """What `on_retry` hears of a clip that was rendered after failed attempts."""
    return f"segment {job.label}: clip needed {attempts} attempts ({'; '.join(problems)})"


def _engine_failed(name: str, why: str) -> SynthesisError:
    """A worker's engine that could not start: no clip of it can be rendered."""
    return SynthesisError(f"engine '{name}' could not start: {why}")


def _failure(job: ClipJob, attempts: int, problems: list[str]) -> SynthesisError:
    voice = job.voice
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    why = problems[-1] if problems else "unknown failure"
    history = ""
    if len(set(problems)) > 1:
        history = " (earlier: " + "; ".join(dict.fromkeys(problems[:-1])) + ")"
    return SynthesisError(
        f"segment {job.label}: no usable clip after {tries}: {why}{history}; "
        f"voice '{voice.name}' ({voice.settings()}); text: {job.line.spoken!r}"
    )


def pace(engine: Engine, voice: Voice) -> int:
    """Words per minute the voice speaks at, as the engine says (espeak-ng: its rate)."""
    words_per_minute = getattr(engine, "words_per_minute", None)
    return int(words_per_minute(voice)) if callable(words_per_minute) else int(voice.rate)


def engine_for(engines: Engines, voice: Voice) -> Engine:
    """The engine that renders `voice`: the one given, or the voice's own from a mapping."""
    if not isinstance(engines, Mapping):
        return engines
    engine = engines.get(voice.engine)
    if engine is None:
        raise SynthesisError(
            f"voice '{voice.name}': no '{voice.engine}' engine was loaded for this build"
        )
    return engine


def synthesize(
    jobs_in: Sequence[Job],
    *,
    engine: Engines,
    cache: ClipCache,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    retries: int = 3,
    on_retry: Callable[[str], None] | None = None,
    workers: WorkerPool | Sequence[WorkerPool] | None = None,
    cluster: RemoteRenderer | None = None,
    on_group: Callable[[int, list[Clip]], None] | None = None,
) -> list[Clip]:
    """One verified Clip per (Line, Voice[, segment id]), in order; renders only what's missing.

    `engine` renders every voice, or maps engine names to engines and each voice is rendered
    by its own (`Voice.engine`); the engines' workers render side by side.
    Identical lines (same key) are rendered once: the first occurrence carries
    `rendered=True`, the others `rendered=False`, so counting `rendered` counts renders.
    `jobs` worker processes per engine (default: one per core, never more than clips to
    render); `retries` re-renders after a failed attempt; `progress(done, cached, total,
    work)` counts unique clips and the characters they speak; `on_retry(message)` hears about
    clips that needed more than one attempt. `workers`, pools started earlier with the same
    cache, are used for their engines instead of new ones (and `jobs` and `retries` are
    theirs); the caller closes them.
    `cluster` renders the missing clips elsewhere (narration/cluster/: a Dask cluster);
    they come back here, are checked as a fresh render is, and cached.
    Jobs are rendered group by group (ClipJob.group: a chapter), the longest first within
    each; `on_group(group, clips)` hears of each group as soon as all its clips are there
    (in its jobs' order; called from this thread), so a caller can go on with a chapter
    while later ones render.
    """
    items = _normalize(jobs_in)
    for job in items:
        if job.voice.volume <= 0:
            raise SynthesisError(
                f"segment {job.label}: voice '{job.voice.name}' has volume {job.voice.volume}: "
                "its clips would be silent gaps (set a volume above 0 in voices.yaml)"
            )
        if not job.line.spoken.strip():
            raise SynthesisError(
                f"segment {job.label}: nothing to say for {job.line.text!r} "
                f"(voice '{job.voice.name}'; did the lexicon remove every word?)"
            )
    renderers = [engine_for(engine, job.voice) for job in items]
    keys = [
        clip_key(job.line.spoken, job.voice, eng) for job, eng in zip(items, renderers, strict=True)
    ]
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    clips: dict[str, Clip] = {}
    todo: dict[str, tuple[Engine, list[tuple[ClipTask, ClipJob]]]] = {}
    for n, (key, i) in enumerate(first.items()):
        eng, line, voice = renderers[i], items[i].line, items[i].voice
        hit = cache.get(key, functools.partial(_verify, eng, line.spoken, voice))
        if hit is not None:
            clips[key] = hit
        else:
            group = todo.setdefault(eng.name, (eng, []))[1]
            group.append((ClipTask(n, key, line.spoken, voice), items[i]))
    total, cached = len(first), len(clips)
    weight = {key: len(items[i].line.spoken) for key, i in first.items()}
    chars = sum(weight.values())
    chars_cached = chars_done = sum(weight[key] for key in clips)
    if progress:
        progress(cached, cached, total, Work(chars_done, chars_cached, chars))

    # each group's clips still to come, and the groups waiting on each clip
    members: dict[int, list[int]] = {}
    for i, job in enumerate(items):
        members.setdefault(job.group, []).append(i)
    missing: dict[int, set[str]] = {}
    waiting: dict[str, list[int]] = {}
    for g, indices in members.items():
        missing[g] = {keys[i] for i in indices if keys[i] not in clips}
        for key in missing[g]:
            waiting.setdefault(key, []).append(g)

    def group_clips(g: int) -> list[Clip]:
        return [
            clips[keys[i]] if first[keys[i]] == i else replace(clips[keys[i]], rendered=False)
            for i in members[g]
        ]

    def ready(g: int) -> None:
        if on_group is not None:
            on_group(g, group_clips(g))

    for g in sorted(members):
        if not missing[g]:
            ready(g)

    def finished(task: ClipTask, clip: Clip) -> None:
        nonlocal chars_done
        if task.key not in clips:
            chars_done += weight[task.key]
        clips[task.key] = clip
        if progress:
            progress(len(clips), cached, total, Work(chars_done, chars_cached, chars))
        for g in waiting.pop(task.key, ()):
            missing[g].discard(task.key)
            if not missing[g]:
                ready(g)

    if todo and cluster is not None:
        _render_remote(todo, cache, cluster, finished, on_retry)
    elif todo:
        given = list(workers) if isinstance(workers, list | tuple) else [workers] if workers else []
        _render_all(todo, cache, jobs, retries, finished, on_retry, given)
    result = []
    for i, key in enumerate(keys):
        clip = clips[key]
        result.append(clip if first[key] == i else replace(clip, rendered=False))
    return result


class RemoteRenderer(Protocol):
    """Where clips can be rendered besides this machine's workers: `render` takes (engine
    name, task) pairs and yields, as each finishes, an object with the task, `ok`, the WAV's
    bytes (`wav`) and the sha256 taken where it was checked (`digest`), `attempts` and
    `problems`."""

    def render(self, tasks: Sequence[tuple[str, ClipTask]]) -> Iterator[Any]: ...


def _render_remote(
    todo: Mapping[str, tuple[Engine, list[tuple[ClipTask, ClipJob]]]],
    cache: ClipCache,
    cluster: RemoteRenderer,
    finished: Callable[[ClipTask, Clip], None],
    on_retry: Callable[[str], None] | None,
) -> None:
    """The clips rendered by `cluster` (each checked by the worker's pool that rendered it,
    as a local worker checks its own), verified to be the bytes it checked and put in the
    cache; stop at the first that fails."""
    cache.ensure()
    owner: dict[int, tuple[Engine, ClipJob]] = {}
    tasks: list[tuple[str, ClipTask]] = []
    for name, (engine, group) in todo.items():
        for task, job in group:
            owner[task.index] = (engine, job)
            tasks.append((name, task))
    # group by group, the longest first within each, as locally: the last to finish are short
    tasks.sort(
        key=lambda p: (
            owner[p[1].index][1].group,
            -len(p[1].text) / max(1, pace(owner[p[1].index][0], p[1].voice)),
        )
    )
    for result in cluster.render(tasks):
        task = result.task
        engine, job = owner[task.index]
        if not result.ok or result.wav is None:
            raise _failure(job, result.attempts, result.problems)
        tmp = cache.temp_path(task.key)
        try:
            try:
                tmp.write_bytes(result.wav)
            except OSError as exc:
                raise OutputError(
                    f"{tmp}: cannot write to the clip cache ({exc.strerror})"
                ) from None
            if hashlib.sha256(result.wav).hexdigest() != result.digest:
                why = "the clip the cluster sent is not the one its worker checked"
                raise _failure(job, result.attempts, [why])
            clip = cache.put(task.key, tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if result.problems and on_retry:
            on_retry(_retried(job, result.attempts, result.problems))
        finished(task, replace(clip, rendered=True))


def _verify(engine: Engine, spoken: str, voice: Voice, path: Path) -> None:
    """The check a fresh render passes, for a cached clip that has no digest yet."""
    check_clip(path, spoken, pace(engine, voice), engine.sample_rate)


def _cores() -> int:
    """Cores this process may use (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _render_all(
    todo: Mapping[str, tuple[Engine, list[tuple[ClipTask, ClipJob]]]],
    cache: ClipCache,
    jobs: int | None,
    retries: int,
    finished: Callable[[ClipTask, Clip], None],
    on_retry: Callable[[str], None] | None,
    given: Sequence[WorkerPool] = (),
) -> None:
    """Feed each engine's tasks to its workers, two in flight each; stop at the first failed
    clip.

    Group by group (a book's chapters in order, so the first can be assembled while the
    rest render), the longest clips first within each, so the last ones to finish are short
    and no worker waits long for another at the end (the bytes do not depend on the order).
    """
    cache.ensure()
    for pool in given:
        if Path(pool.cache_root) != Path(cache.root):
            raise ValueError(f"workers started for {pool.cache_root}, not for {cache.root}")
    pending: dict[str, deque[ClipTask]] = {}
    owner: dict[int, tuple[ClipTask, ClipJob]] = {}
    started: list[WorkerPool] = []
    inflight: dict[Connection, list[int]] = {}
    worker_of: dict[Connection, _Worker] = {}
    engine_of: dict[Connection, str] = {}
    try:
        for name, (engine, group) in todo.items():
            pending[name] = deque(
                task
                for task, _ in sorted(
                    group,
                    key=lambda p, e=engine: (
                        p[1].group,
                        -len(p[0].text) / max(1, pace(e, p[0].voice)),
                        p[0].index,
                    ),
                )
            )
            owner.update((task.index, (task, job)) for task, job in group)
            pool = next((p for p in given if p.engine_name == name), None)
            if pool is None:
                size = max(1, min(jobs or _cores(), len(group)))
                pool = WorkerPool(engine, cache, size, retries)
                started.append(pool)
            pool.used = True
            for w in pool.workers:
                inflight[w.results] = []
                worker_of[w.results] = w
                engine_of[w.results] = name

        def feed(conn: Connection) -> None:
            queue = pending[engine_of[conn]]
            if queue:
                task = queue.popleft()
                inflight[conn].append(task.index)
                with contextlib.suppress(BrokenPipeError):  # a dead worker: its recv says so
                    worker_of[conn].tasks.send(task)

        for conn in inflight:
            feed(conn)  # one rendering and one queued: the worker never waits for us
            feed(conn)
        while any(inflight.values()):
            for conn in wait([c for c, busy in inflight.items() if busy]):
                assert isinstance(conn, Connection)
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    proc = worker_of[conn].proc
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=1)
                    job = owner[inflight[conn][0]][1]
                    why = f"synthesis worker died (exit code {proc.returncode})"
                    raise _failure(job, 1, [why]) from None
                if message[0] == _FATAL:
                    raise _engine_failed(engine_of[conn], message[1])
                status, index, attempts, problems = message[0], message[1], message[-2], message[-1]
                inflight[conn].remove(index)
                task, job = owner[index]
                if status != _OK:
                    raise _failure(job, attempts, problems)
                if problems and on_retry:
                    on_retry(_retried(job, attempts, problems))
                hit = cache.get(task.key, just_made=True)
                if hit is None:  # removed or broken between the worker's rename and now
                    raise _failure(job, attempts, ["clip vanished from the cache"])
                finished(task, replace(hit, rendered=True))
                feed(conn)
    finally:
        for pool in started:
            pool.close()


# --------------------------------------------------------------------------- preview and play


@dataclass(frozen=True)
class PreviewPiece:
    """One piece of a preview: its text as the engine reads it, in its voice."""

    spoken: str
    voice: Voice
    engine: Engine


def preview_text(
    text: str, voice: Voice, engine: Engine, out: Path, *, cache: ClipCache | None = None
) -> Path:
    """Render `text` like a build would (same worker path, so the same bytes) to `out`.

    `out` ending in .mp3 is encoded with lameenc (64 kbps, at espeak-ng's 22,050 Hz); any
    other name gets the WAV. With `cache`, the clip is taken from or added to it.
    """
    return preview_pieces([PreviewPiece(text, voice, engine)], out, cache=cache)


#: Joins several rendered clips into one stretch of audio: its 16-bit PCM and sample rate.
JoinClips = Callable[[Sequence[Clip]], tuple[bytes, int]]


def preview_pieces(
    pieces: Sequence[PreviewPiece],
    out: Path,
    *,
    join: JoinClips | None = None,
    cache: ClipCache | None = None,
) -> Path:
    """Render the pieces of one segment in order, as one clip, to `out`.

    One piece is written as its clip (the build's bytes). Several (a segment the cast split
    between voices), each read by its voice's own engine, are joined by `join` (the
    assembly's way of laying them out, which the caller gives: synthesis knows no timeline).
    """
    out = Path(out)
    if out.suffix.lower() not in (".wav", ".mp3"):
        raise OutputError(f"{out}: a preview is written as .wav or .mp3")
    if not pieces:
        raise SynthesisError(f"{out}: nothing to preview")
    if len(pieces) > 1 and join is None:
        raise SynthesisError(f"{out}: {len(pieces)} pieces and no way to join them")
    with tempfile.TemporaryDirectory(prefix="narrate-preview-") as scratch:
        store = cache or ClipCache(Path(scratch))
        clips = [
            synthesize(
                [(Line(text=p.spoken, spoken=p.spoken), p.voice, "preview")],
                engine=p.engine,
                cache=store,
                jobs=1,
            )[0]
            for p in pieces
        ]
        if len(clips) == 1:
            info = wav_info(clips[0].path)
            with open(clips[0].path, "rb") as f:
                f.seek(info.data_offset)
                pcm = f.read(info.frames * info.sample_width)
            rate, wav = info.sample_rate, clips[0].path.read_bytes()
        else:
            assert join is not None
            pcm, rate = join(clips)
            wav = _wav_bytes(pcm, rate)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
            tmp.write_bytes(_encode_mp3(pcm, rate) if out.suffix.lower() == ".mp3" else wav)
            os.replace(tmp, out)
        except OSError as exc:
            raise OutputError(f"{out}: cannot write the preview ({exc.strerror})") from None
    return out


def _wav_bytes(pcm: bytes, rate: int) -> bytes:
    """A canonical mono 16-bit PCM WAV of `pcm`."""
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16,
        b"data", len(pcm),
    )  # fmt: skip
    return header + pcm


def _encode_mp3(pcm: bytes, rate: int) -> bytes:
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_bit_rate(64)
    encoder.set_quality(2)
    return bytes(encoder.encode(pcm) + encoder.flush())


#: Players tried in order: (command, arguments before the file, suffixes it can play).
PLAYERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("afplay", (), (".wav", ".mp3")),
    ("paplay", (), (".wav",)),
    ("pw-play", (), (".wav",)),
    ("aplay", ("-q",), (".wav",)),
    ("ffplay", ("-nodisp", "-autoexit", "-loglevel", "quiet"), (".wav", ".mp3")),
    ("mpv", ("--no-video", "--really-quiet"), (".wav", ".mp3")),
    ("mpg123", ("-q",), (".mp3",)),
    ("play", ("-q",), (".wav", ".mp3")),
)


#: Where Linux lists its sound cards' devices (pcmC<card>D<device>p plays).
SOUND_DEVICES = Path("/dev/snd")


def sound_output() -> str | None:
    """None when this machine has somewhere to play sound, else what it lacks. On Linux: a
    PulseAudio or PipeWire server (what desktop players use) or an ALSA playback device;
    a container or a server without them has no sound to give."""
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("PULSE_SERVER"):
        return None
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    if any(Path(runtime, name).exists() for name in ("pulse/native", "pipewire-0")):
        return None
    with contextlib.suppress(OSError):
        if any(SOUND_DEVICES.glob("pcmC*D*p")):
            return None
    return (
        f"no sound device (no playback device in {SOUND_DEVICES}, "
        "and no PulseAudio or PipeWire server running)"
    )


def play(path: Path) -> str | None:
    """Play `path` with the first available player; None if it played, else a message why not."""
    path = Path(path)
    lacking = sound_output()
    if lacking is not None:
        return f"cannot play {path}: this machine has {lacking}; open the file where you can listen"
    suffix = path.suffix.lower()
    usable = [(cmd, args) for cmd, args, kinds in PLAYERS if suffix in kinds]
    tried = []
    for cmd, args in usable:
        exe = shutil.which(cmd)
        if exe is None:
            continue
        try:
            run = subprocess.run(
                [exe, *args, str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
        except OSError as exc:
            tried.append(f"{cmd}: {exc.strerror}")
            continue
        if run.returncode == 0:
            return None
        err = run.stderr.decode("utf-8", "replace").strip().splitlines()
        tried.append(f"{cmd} exited with {run.returncode}" + (f": {err[-1]}" if err else ""))
    if tried:
        return f"could not play {path}: " + "; ".join(tried)
    names = ", ".join(cmd for cmd, _ in usable)
    return f"no audio player found to play {path} (looked for {names}); open the file yourself"
