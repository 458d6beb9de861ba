"""Speech engines: the small interface synth.py renders through, the pyttsx3 engine, a fake one.

An engine lists its voices, renders one utterance with a Voice's settings to a 22,050 Hz mono
16-bit WAV, and names itself and its version (the version is part of every clip's cache key,
so upgrading espeak-ng re-renders instead of mixing old and new clips). Another offline engine
can be added by implementing `Engine` and registering it in `ENGINES`; no other stage changes.

Why the pyttsx3 engine does not use pyttsx3's `save_to_file` + `runAndWait` loop (measured
with pyttsx3 2.99 and the espeak-ng 1.52 of the `espeakng-loader` wheel):

* The espeak driver initialises espeak-ng in AUDIO_OUTPUT_RETRIEVAL mode, which synthesises on
  a thread of espeak-ng's own, and `runAndWait` returns after one 10 ms sleep whether or not
  that thread has finished. An utterance that takes longer than that to synthesise (the first
  one of a new engine over ~250 characters, while the voice data loads) is written later, or
  under the next call's file name, or as a zero-length WAV: the quirks seen in the driver.
* That thread also makes the process unsafe to fork: a forked child's `espeak_Synth` queues its
  text for a thread that does not exist in the child and hangs (measured: killed by its alarm).
  Byte-identical builds need a warmed engine forked per clip, so espeak-ng must run
  synchronously.
* The loop costs at least 10 ms of sleep per clip (~12 ms measured for ~3 s clips), against
  ~3 ms for espeak-ng itself.

So `Pyttsx3Engine` initialises espeak-ng in AUDIO_OUTPUT_SYNCHRONOUS mode through pyttsx3's own
`_espeak` bindings (before the driver would initialise it), sets voice, rate, pitch and volume
with the driver's `EspeakDriver.setProperty`, calls `espeak_Synth` with the driver's flags
(`CHARS_UTF8 | ENDPAUSE`, never `SSML` or `PHONEMES`, so `<break time="5s"/>` is read as text,
not obeyed), and collects the samples in a list (the driver's `_data_buffer +=` copies the whole
buffer per chunk). The driver's `Audio saved to ...` print never runs, because its callback is
not used.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import os
import re
import signal
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .errors import SynthesisError
from .model import Voice

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 22_050  # espeak-ng's native rate; every clip has it
SAMPLE_WIDTH = 2  # bytes: 16-bit signed PCM
CHANNELS = 1

#: Bumped when narrate changes how it drives an engine (flags, warm-up), so that old clips,
#: rendered differently, are not reused: it is part of every engine's version string.
RENDER_REVISION = 2
#: The seed for espeak-ng's noise generator before each utterance.
RAND_SEED = 1921

#: Default voice of the pyttsx3 engine, also used to warm it up.
DEFAULT_VOICE = "gmw/en-us"

#: Longer than the ~250 characters that the driver's first utterance used to lose, so the
#: warm-up loads everything a long first clip would need.
WARM_UP_TEXT = (
    "Warming up the engine: this sentence is read once and thrown away, so that every clip "
    "after it starts from the same state of the synthesiser, with its voice data, "
    "dictionaries and buffers loaded, whatever was rendered before, and is therefore the same "
    "from one build to the next, byte for byte, on every machine that runs this wheel."
)


@dataclass(frozen=True)
class EngineVoice:
    """A voice the engine offers, as `narrate voices` lists it."""

    id: str  # what voices.yaml names as `voice`, e.g. "gmw/en-us"
    name: str  # human name, e.g. "English (America)"
    languages: tuple[str, ...]  # e.g. ("en-us", "en"), most specific first
    gender: str | None = None  # "male", "female" or None when the engine does not say


@runtime_checkable
class Engine(Protocol):
    """What synth.py needs from a speech engine.

    `render` writes a 22,050 Hz mono 16-bit WAV to `path` (atomically) or raises; it may be
    called in a forked child of a process that called `warm_up` (optional) once. That child
    is forked without Python's at-fork hooks (`os.register_at_fork`) when the worker has a
    single thread, and leaves with os._exit: `render` must not rely on either.
    """

    name: str
    version: str

    def list_voices(self) -> list[EngineVoice]: ...

    def render(self, text: str, voice: Voice, path: Path) -> None: ...


class VoiceNotFound(SynthesisError):
    """The engine has no such voice or variant: rendering again cannot help."""


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


def wav_header(frames: int, sample_rate: int = SAMPLE_RATE) -> bytes:
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


def write_wav(path: Path, pcm: bytes, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono 16-bit PCM as a WAV atomically: a temp file beside `path`, then os.replace.

    Plain system calls rather than `wave`: this runs in the child forked for each clip, where
    every page of Python objects it touches is copied, and `wave` touched enough to cost more
    than the write itself.
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


def _package_version(name: str) -> str:
    from importlib import metadata  # 20 ms of imports that synthesis workers do not need

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- pyttsx3 / espeak-ng


class _Espeak:
    """The process's one espeak-ng instance (espeak-ng cannot be initialised twice)."""

    def __init__(self) -> None:
        import espeakng_loader

        self.data_path = Path(espeakng_loader.get_data_path())
        # pyttsx3's _espeak loads "libespeak-ng.so.1" by name when imported: loading the
        # wheel's copy first, globally, makes that name resolve to it and not to a system copy.
        self._cdll = ctypes.CDLL(espeakng_loader.get_library_path(), mode=ctypes.RTLD_GLOBAL)
        os.environ["ESPEAK_DATA_PATH"] = str(self.data_path)
        from pyttsx3.drivers import _espeak
        from pyttsx3.drivers.espeak import EspeakDriver

        self.api: Any = _espeak
        self.driver: Any = EspeakDriver
        info = _espeak.Info(None)
        self.espeak_version = info.decode("utf-8", "replace") if info else "unknown"
        self.initialized = False
        self.lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._callback: Any = None

    def initialize(self) -> None:
        """Initialise synchronously (fork-safe, no race), unless pyttsx3 already did."""
        if self.initialized:
            return
        api = self.api
        if not self.driver._moduleInitialized:
            rate = api.Initialize(
                api.AUDIO_OUTPUT_SYNCHRONOUS, 1000, str(self.data_path).encode(), 0
            )
            if rate == -1:
                raise SynthesisError(f"espeak-ng could not start (data in {self.data_path})")
            # Tell the driver espeak-ng is up, so a later pyttsx3.init('espeak') in this
            # process does not initialise it again in its asynchronous mode.
            self.driver._moduleInitialized = True
            self.driver._defaultVoice = DEFAULT_VOICE
        # Otherwise pyttsx3.init('espeak') ran first, in asynchronous mode: synth() still
        # works there, because it waits with espeak_Synchronize.
        self._callback = self._on_synth
        api.SetSynthCallback(self._callback)
        self.initialized = True

    def _on_synth(self, wav: Any, numsamples: int, events: Any) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, numsamples * SAMPLE_WIDTH))
        return 0

    def variants(self) -> list[str]:
        folder = self.data_path / "voices" / "!v"
        return sorted(p.name for p in folder.iterdir() if p.is_file())

    def select(self, voice: Voice) -> None:
        """Voice (with its +variant), rate, pitch and volume: the calls pyttsx3's driver makes
        for setProperty, made directly (the driver also formats log messages each time, which
        in a child forked per clip costs more than the calls)."""
        api = self.api
        engine_voice = voice.engine_voice.strip()
        base, _, variant = engine_voice.partition("+")
        known = variant.isdigit() or (self.data_path / "voices" / "!v" / variant).is_file()
        if variant and not known:
            # espeak-ng silently ignores an unknown variant and keeps the plain voice.
            raise VoiceNotFound(
                f"voice '{voice.name}': espeak-ng has no variant '{variant}' "
                f"(in '{engine_voice}'; see `narrate voices`)"
            )
        if api.SetVoiceByName(engine_voice.encode("utf-8")) != api.EE_OK:
            raise VoiceNotFound(
                f"voice '{voice.name}': espeak-ng has no voice '{base}' (see `narrate voices`)"
            )
        # A voice change keeps the previous rate, pitch and volume: set all of them each time.
        api.SetParameter(api.RATE, int(voice.rate), 0)
        api.SetParameter(api.PITCH, int(voice.pitch), 0)
        api.SetParameter(api.VOLUME, int(round(float(voice.volume) * 100, 2)), 0)

    def synth(self, text: str, voice: Voice) -> bytes:
        api = self.api
        with self.lock:
            self.initialize()
            self.select(voice)
            self._chunks = []
            clean = text.replace("\x00", " ")
            # espeak-ng seeds the noise of breathy variants (f2's "breath") from the clock
            # when it starts: a fixed seed before every utterance makes clips repeatable.
            self._cdll.espeak_ng_SetRandSeed(ctypes.c_long(RAND_SEED))
            status = api.Synth(clean.encode("utf-8"), flags=api.ENDPAUSE | api.CHARS_UTF8)
            if status != api.EE_OK:
                raise SynthesisError(f"espeak_Synth failed with status {status}")
            api.Synchronize()  # returns at once in synchronous mode
            pcm = b"".join(self._chunks)
            self._chunks = []
            return pcm

    def list_voices(self) -> list[EngineVoice]:
        with self.lock:
            self.initialize()
            raw = self.api.ListVoices(None)
        genders = {1: "male", 2: "female"}
        offset = self.api.VOICE.languages.offset
        voices = []
        for v in raw:
            ident = v.identifier.decode("utf-8", "replace").lower()
            name = v.name.decode("utf-8", "replace") if v.name else ident
            # `languages` is a list of (priority byte, NUL-terminated name), ending with a 0
            # priority; ctypes' c_char_p would only show the first, with its priority byte.
            address = ctypes.c_void_p.from_buffer(v, offset).value
            languages: list[str] = []
            while address and len(languages) < 16:
                if ctypes.string_at(address, 1) == b"\x00":
                    break
                lang = ctypes.string_at(address + 1)
                languages.append(lang.decode("utf-8", "replace").lower())
                address += len(lang) + 2
            voices.append(EngineVoice(ident, name, tuple(languages), genders.get(v.gender)))
        return voices


_ESPEAK: _Espeak | None = None
_ESPEAK_LOCK = threading.Lock()


def _espeak() -> _Espeak:
    global _ESPEAK
    with _ESPEAK_LOCK:
        if _ESPEAK is None:
            try:
                _ESPEAK = _Espeak()
            except (OSError, RuntimeError, ImportError) as exc:
                raise SynthesisError(f"cannot load espeak-ng for pyttsx3: {exc}") from None
        return _ESPEAK


class Pyttsx3Engine:
    """pyttsx3's espeak driver on the espeak-ng of the `espeakng-loader` wheel (see module doc)."""

    name = "pyttsx3"

    def __init__(self) -> None:
        self._version: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # nothing process-specific travels to a worker

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._version = None

    def __repr__(self) -> str:
        return "Pyttsx3Engine()"

    @property
    def espeak_version(self) -> str:
        """espeak-ng's own version, from espeak_Info(), e.g. "1.52.0"."""
        return _espeak().espeak_version

    @property
    def version(self) -> str:
        """pyttsx3, espeak-ng and its data wheel, and narrate's way of driving them."""
        if self._version is None:
            self._version = (
                f"pyttsx3 {_package_version('pyttsx3')}; espeak-ng {self.espeak_version} "
                f"(espeakng-loader {_package_version('espeakng-loader')}); r{RENDER_REVISION}"
            )
        return self._version

    def list_voices(self) -> list[EngineVoice]:
        return _espeak().list_voices()

    def list_variants(self) -> list[str]:
        """Variant names usable after a '+' in an engine voice: "gmw/en-us+f3"."""
        return _espeak().variants()

    def warm_up(self) -> None:
        """Load espeak-ng and render one long utterance, so clips forked after it start alike."""
        es = _espeak()
        warm = Voice("warm-up", "warm-up", DEFAULT_VOICE, 175, 50, 1.0)
        es.synth(WARM_UP_TEXT, warm)

    def synth(self, text: str, voice: Voice) -> bytes:
        """The utterance as raw 22,050 Hz mono 16-bit PCM."""
        return _espeak().synth(text, voice)

    def render(self, text: str, voice: Voice, path: Path) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # no driver chatter on our stdout
            pcm = self.synth(text, voice)
        write_wav(Path(path), pcm)


# --------------------------------------------------------------------------- fake engine

FaultMode = Literal[
    "missing", "empty", "short", "silent", "garbage", "error", "crash", "kill-worker"
]


@dataclass(frozen=True)
class Fault:
    """Make FakeEngine fail for texts containing `match`: `times` times, or always if None.

    missing: no file; empty: a WAV with no samples; short: a tenth of the speech; silent:
    only zeros; garbage: not a WAV; error: raise; crash: the rendering process dies of
    SIGSEGV; kill-worker: its parent is killed (as the OOM killer might). The last two only
    make sense through synthesize(), which renders each clip in a child of a worker.
    """

    match: str
    mode: FaultMode
    times: int | None = None


class FakeEngine:
    """Deterministic speech-like audio for unit tests of the stages after synthesis.

    Each word becomes a voiced syllable whose length follows the word and the voice's rate
    (about words * 60 / rate seconds in all, like espeak-ng), with a fundamental set by the
    voice's pitch and variant, at roughly espeak-ng's loudness (-21 LUFS at volume 1). The
    same text and voice always give the same bytes. Faults count attempts in `state_dir`,
    so they work across the processes synthesize() forks.
    """

    name = "fake"
    version = f"fake 1; r{RENDER_REVISION}"

    VOICES: tuple[EngineVoice, ...] = (
        EngineVoice("gmw/en", "English (Great Britain)", ("en-gb", "en"), "male"),
        EngineVoice("gmw/en-us", "English (America)", ("en-us", "en"), "male"),
        EngineVoice("roa/fr", "French", ("fr-fr", "fr"), "male"),
        EngineVoice("gmw/de", "German", ("de",), "male"),
    )

    def __init__(self, faults: Iterable[Fault] = (), state_dir: Path | None = None) -> None:
        self.faults: tuple[Fault, ...] = tuple(faults)
        if self.faults and state_dir is None:
            state_dir = Path(tempfile.mkdtemp(prefix="narrate-fake-"))
        self.state_dir = Path(state_dir) if state_dir is not None else None

    def __repr__(self) -> str:
        return f"FakeEngine(faults={self.faults!r})"

    def list_voices(self) -> list[EngineVoice]:
        return list(self.VOICES)

    def attempts(self, text: str) -> int:
        """How many times a faulty text has been rendered (for tests to see the retries)."""
        counter = self._counter(text)
        return counter.stat().st_size if counter and counter.exists() else 0

    def _counter(self, text: str) -> Path | None:
        if self.state_dir is None:
            return None
        return self.state_dir / (hashlib.sha256(text.encode()).hexdigest()[:24] + ".attempts")

    def _fault_for(self, text: str) -> Fault | None:
        fault = next((f for f in self.faults if f.match in text), None)
        if fault is None:
            return None
        counter = self._counter(text)
        assert counter is not None
        counter.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b".")  # one byte per attempt, appended atomically
        finally:
            os.close(fd)
        attempt = counter.stat().st_size
        if fault.times is None or attempt <= fault.times:
            return fault
        return None

    def warm_up(self) -> None:
        """Import numpy before synthesize() forks per clip, not in every child."""
        import numpy  # noqa: F401

    def synth(self, text: str, voice: Voice) -> bytes:
        return _fake_speech(text, voice).tobytes()

    def render(self, text: str, voice: Voice, path: Path) -> None:
        path = Path(path)
        fault = self._fault_for(text)
        mode = fault.mode if fault else None
        if mode == "missing":
            return
        if mode == "error":
            raise SynthesisError("fake engine: forced failure")
        if mode == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if mode == "kill-worker":
            os.kill(os.getppid(), signal.SIGKILL)
        if mode == "garbage":
            path.write_bytes(b"this is not a WAV file")
            return
        samples = _fake_speech(text, voice)
        if mode == "empty":
            samples = samples[:0]
        elif mode == "short":
            samples = samples[: len(samples) // 10]
        elif mode == "silent":
            samples = samples * 0
        write_wav(path, samples.tobytes())


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _fake_speech(text: str, voice: Voice) -> np.ndarray:
    import numpy as np

    words = _WORD.findall(text)
    seed = hashlib.sha256(f"{text}\x00{voice.engine_voice}\x00{voice.pitch}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
    variant = voice.engine_voice.partition("+")[2]
    shift = int(hashlib.sha256(variant.encode()).hexdigest()[:2], 16) % 80 if variant else 0
    f0 = 85.0 + 1.3 * voice.pitch + shift
    seconds_per_word = 60.0 / max(voice.rate, 1) * 0.95
    total_chars = sum(len(w) for w in words) or 1
    parts: list[np.ndarray] = []
    gap = np.zeros(int(0.04 * SAMPLE_RATE))
    for word in words:
        share = 0.5 + 0.5 * len(word) * len(words) / total_chars  # longer words last longer
        n = max(int(seconds_per_word * share * SAMPLE_RATE) - len(gap), 200)
        t = np.arange(n) / SAMPLE_RATE
        pitch = f0 * (1.0 + 0.08 * rng.uniform(-1, 1))
        tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        envelope = np.sin(np.pi * np.arange(n) / n) ** 0.6
        noise = rng.normal(0.0, 0.05, n)
        parts += [(tone + noise) * envelope, gap]
    parts.append(np.zeros(int(0.3 * SAMPLE_RATE)))  # like espeak-ng's end-of-sentence pause
    audio = np.concatenate(parts) if words else np.zeros(int(0.3 * SAMPLE_RATE))
    return np.round(audio * 5300 * voice.volume).clip(-32768, 32767).astype("<i2")


# --------------------------------------------------------------------------- registry

ENGINES: dict[str, Callable[[], Engine]] = {
    "pyttsx3": Pyttsx3Engine,
    "fake": FakeEngine,
}


def get_engine(name: str = "pyttsx3") -> Engine:
    """The engine registered under `name`; SynthesisError listing the known ones otherwise."""
    factory = ENGINES.get(name)
    if factory is None:
        raise SynthesisError(f"unknown engine '{name}' (available: {', '.join(sorted(ENGINES))})")
    return factory()


def engine_names() -> Sequence[str]:
    return sorted(ENGINES)
