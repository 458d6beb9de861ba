"""The default engine: espeak-ng through pyttsx3's espeak driver, on the `espeakng-loader` wheel.

Fast (hundreds of times real time) and robotic; 22,050 Hz. espeak-ng keeps state from one
utterance to the next, so synth.py forks a child of a warmed worker per clip
(`fork_per_clip`): every clip starts from the same state and a build gives the same bytes.

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
import io
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import SynthesisError
from ..model import Voice
from .base import (
    RENDER_REVISION,
    SAMPLE_WIDTH,
    EngineVoice,
    VoiceNotFound,
    package_version,
    write_wav,
)

SAMPLE_RATE = 22_050  # espeak-ng's native rate; every clip it renders has it
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


# --------------------------------------------------------------------------- pyttsx3 / espeak-ng


class _Espeak:
    """The process's one espeak-ng instance (espeak-ng cannot be initialised twice)."""

    def __init__(self) -> None:
        import espeakng_loader

        self.data_path = Path(espeakng_loader.get_data_path())
        # pyttsx3's _espeak loads "libespeak-ng.so.1" by name when imported: loading the
        # wheel's copy first makes that name (its soname) resolve to it, not to a system
        # copy. Not RTLD_GLOBAL: its symbols would then bind the private copy of the library
        # that phonemizer (Kokoro's) loads to this instance's state, and break it.
        self._cdll = ctypes.CDLL(espeakng_loader.get_library_path())
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
    sample_rate = SAMPLE_RATE
    fork_per_clip = True  # espeak-ng keeps state between utterances

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
                f"pyttsx3 {package_version('pyttsx3')}; espeak-ng {self.espeak_version} "
                f"(espeakng-loader {package_version('espeakng-loader')}); r{RENDER_REVISION}"
            )
        return self._version

    def list_voices(self) -> list[EngineVoice]:
        return _espeak().list_voices()

    def list_variants(self) -> list[str]:
        """Variant names usable after a '+' in an engine voice: "gmw/en-us+f3"."""
        return _espeak().variants()

    def warm_up(self, threads: int = 1) -> None:
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
        write_wav(Path(path), pcm, SAMPLE_RATE)
