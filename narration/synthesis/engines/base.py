"""What every engine shares: the `Engine` base class synthesis renders through, its errors,
WAV writing.

An engine lists its voices, renders one utterance with a Voice's settings to a mono 16-bit
WAV at its own `sample_rate`, and names itself and its version (the version is part of every
clip's cache key, so upgrading an engine re-renders instead of mixing old and new clips).
What else it can do (variants, blends, phonemes, its own voice settings, a warm-up, a model
to check) it declares on `Engine`, whose defaults say "nothing": nobody probes an engine for
what it might have.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from narration.errors import SynthesisError
from narration.model import CastableVoice, Voice

SAMPLE_WIDTH = 2  # bytes: 16-bit signed PCM, whatever the engine
CHANNELS = 1

#: The genders a castable voice has, in the order `castable` lists them.
CAST_GENDERS: tuple[Literal["female", "male"], ...] = ("female", "male")

#: Bumped when narrate changes how it drives an engine (flags, warm-up), so that old clips,
#: rendered differently, are not reused: it is part of every engine's version string.
RENDER_REVISION = 2


@dataclass(frozen=True)
class EngineVoice:
    """A voice the engine offers, as `narrate voices` lists it."""

    id: str  # what voices.yaml names as `voice`, e.g. "gmw/en-us"
    name: str  # human name, e.g. "English (America)"
    languages: tuple[str, ...]  # e.g. ("en-us", "en"), most specific first
    gender: str | None = None  # "male", "female" or None when the engine does not say
    #: how it sounds, for `narrate voices` and the cast: "American", "British (Received
    #: Pronunciation)", "Scottish", "Caribbean"; None when the engine does not say
    accent: str | None = None


@dataclass(frozen=True)
class EngineVariant:
    """A voice variant an engine offers on top of its voices (espeak-ng's `+m3`): it gives
    the gender that espeak-ng's voices themselves leave unsaid."""

    id: str  # what follows the '+' in an engine voice: "m3", "Annie"
    name: str  # its own name for itself: "male3", "Annie"
    gender: str | None  # "male", "female", or None when its file says neither
    #: a plain human speaking voice of known gender, fit for casting a character (not a
    #: robot, a whisper, a croak or another novelty)
    castable: bool


#: The settings of a voice in voices.yaml that only some engines take: each engine says
#: which of them it has (`Engine.settings`), and a voice that gives another is refused.
ENGINE_SETTINGS = ("variant", "rate", "pitch", "speed")


class Engine:
    """A speech engine, as synthesis renders through it and the rest of narrate asks of it:
    what it can do, declared here with defaults that each engine overrides.

    `render` writes a mono 16-bit WAV at `sample_rate` to `path` (atomically) or raises,
    in a worker process that called `warm_up(threads)` once.

    With `fork_per_clip` (espeak-ng, which keeps state from one utterance to the next), each
    render runs in a child forked from that warmed worker: forked without Python's at-fork
    hooks (`os.register_at_fork`) when the worker has a single thread, and left with
    os._exit, so `render` must not rely on either. Without it (an engine that gives the same
    bytes whatever it rendered before), the worker renders every clip itself.

    An engine is pickled to the workers: what it holds of the process it was made in (a
    loaded model) stays behind (`__getstate__`).
    """

    name: str  # what voices.yaml names as `engine`
    #: everything besides the voice that shapes its audio; part of every clip's cache key
    version: str
    sample_rate: int = 22_050
    #: render each clip in a child forked from the warmed worker (see the class's doc)
    fork_per_clip: bool = False
    #: which of ENGINE_SETTINGS its voices take
    settings: frozenset[str] = frozenset()
    #: for a setting it does not take, the one to set instead, as its error says it
    substitutes: Mapping[str, str] = MappingProxyType({})
    ignore_case: bool = True  # whether its voice ids match in any case
    default_voice: bool = True  # whether a voice may leave out `voice` (the engine's default)
    blends: bool = False  # whether a voice may be a weighted blend of its voices
    phonemes: bool = False  # whether a lexicon entry may give it phonemes (/.../)
    #: what `narrate voices` says after its voices when it lists no variants: how to write
    #: one of them in voices.yaml
    usage: str | None = None

    def list_voices(self) -> list[EngineVoice]:
        raise NotImplementedError

    def list_variants(self) -> list[EngineVariant]:
        """Variants of its voices for voices.yaml (espeak-ng's `+m3`); none by default, and
        then a voice's variant is not checked against any."""
        return []

    def castable(self, language: str) -> list[CastableVoice]:
        """The plain voices of known gender that speak `language` ("en", "en-gb": any dialect
        of its primary subtag), for the automatic cast to give characters: no robots or
        novelty voices. The female ones first, then the male ones, each ordered so that its
        first ones are the most distinct from each other (the cast takes them in order); the
        same list on every machine, whatever order the engine's files are listed in."""
        return []

    def render(self, text: str, voice: Voice, path: Path) -> None:
        raise NotImplementedError

    def warm_up(self, threads: int = 1) -> None:
        """Load what rendering needs, once per worker, with `threads` threads to use; by
        default nothing to load."""

    def check_model(self) -> None:
        """Check the engine's files (a build does, before it writes anything); raise
        Unrecoverable saying what is wrong. By default there is nothing to check."""

    def key_fields(self, voice: Voice) -> dict[str, Any]:
        """What else shapes this voice's audio (a voice tensor's hash), added to its clips'
        cache keys; nothing by default, so those keys stay as they were."""
        return {}

    def words_per_minute(self, voice: Voice) -> int:
        """The voice's pace, for the check of a clip's length: by default its rate."""
        return int(voice.rate)

    @classmethod
    def setting_problems(cls, voice: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(setting, message) for each of ENGINE_SETTINGS a voice of voices.yaml (as
        written) gives and this engine does not take."""
        problems = []
        for key in ENGINE_SETTINGS:
            if key in voice and key not in cls.settings:
                instead = f"; set {cls.substitutes[key]}" if key in cls.substitutes else ""
                problems.append((key, f"{cls.name} voices have no {key}{instead}"))
        return problems


class Unrecoverable(SynthesisError):
    """Rendering again cannot help (no such voice, a broken model): no retries."""


class VoiceNotFound(Unrecoverable):
    """The engine has no such voice or variant."""


class EngineMissing(SynthesisError):
    """The engine's optional packages are not installed; the message says how to get them."""


def voice_matches_language(voice: EngineVoice, lang: str) -> bool:
    """True if one of the voice's languages is `lang` or a dialect of it ("en" -> "en-gb")."""
    want = lang.strip().lower().replace("_", "-")
    return any(code == want or code.startswith(want + "-") for code in voice.languages)


def list_voices(engine: Engine, lang: str | None = None) -> list[EngineVoice]:
    """The engine's voices sorted by id; with `lang` ("en"), only those that speak it."""
    voices = engine.list_voices()
    if lang:
        voices = [v for v in voices if voice_matches_language(v, lang)]
    return sorted(voices, key=lambda v: v.id)


def wav_header(frames: int, sample_rate: int) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV, as Python's `wave` writes it."""
    size = frames * SAMPLE_WIDTH * CHANNELS
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + size,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        CHANNELS,
        sample_rate,
        sample_rate * SAMPLE_WIDTH * CHANNELS,
        SAMPLE_WIDTH * CHANNELS,
        8 * SAMPLE_WIDTH,
        b"data",
        size,
    )


def write_wav(path: Path, pcm: bytes, sample_rate: int) -> None:
    """Write mono 16-bit PCM as a WAV atomically: a temp file beside `path`, then os.replace.

    Plain system calls rather than `wave`: this runs in the child forked for each espeak-ng
    clip, where every page of Python objects it touches is copied, and `wave` touched enough
    to cost more than the write itself.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    pcm = pcm[: len(pcm) - len(pcm) % (SAMPLE_WIDTH * CHANNELS)]
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for part in (wav_header(len(pcm) // SAMPLE_WIDTH, sample_rate), pcm):
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def package_version(name: str) -> str:
    """An installed distribution's version, or "unknown"."""
    from importlib import metadata  # 20 ms of imports that synthesis workers do not need

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"
