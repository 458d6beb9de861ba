"""The default engine: espeak-ng through pyttsx3's espeak driver, on the `espeakng-loader` wheel.

Fast (hundreds of times real time) and robotic; 22,050 Hz. espeak-ng keeps state from one
utterance to the next, so synthesis forks a child of a warmed worker per clip
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
import re
import threading
from pathlib import Path
from types import MappingProxyType
from typing import Any

from narration.errors import SynthesisError
from narration.invocation import narrate
from narration.model import CastableVoice, Voice
from narration.synthesis.engines.base import (
    CAST_GENDERS,
    RENDER_REVISION,
    SAMPLE_WIDTH,
    Engine,
    EngineVariant,
    EngineVoice,
    VoiceNotFound,
    package_version,
    voice_matches_language,
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

#: Voices espeak-ng lists that are not a way of speaking, left out of `narrate voices` and the
#: cast, and why.
NOT_SPEECH = {
    # Reads English written in Shaw's alphabet; Latin text it reads exactly as gmw/en does.
    "gmw/en-shaw": "the Shavian alphabet, a script, not an accent",
}

#: The accents of espeak-ng's English voices (their names say "English (Scotland)"), most
#: distinct first: the order in which the cast pairs them with variants.
ENGLISH_ACCENTS = {
    "gmw/en-us": "American",
    "gmw/en": "British",
    "gmw/en-gb-scotland": "Scottish",
    "gmw/en-029": "Caribbean",
    "gmw/en-gb-x-gbcwmd": "West Midlands",
    "gmw/en-gb-x-gbclan": "Lancastrian",
    "gmw/en-gb-x-rp": "British (Received Pronunciation)",
    "gmw/en-us-nyc": "American (New York City)",
}

#: What makes a variant a novelty rather than a plain voice, read from its file (espeak-ng's
#: docs/voices.md): measured on the variants of espeak-ng 1.52, these leave out the robots
#: (`klatt`, echo 10000), the whispers (voicing 17-20), croak and grandma (flutter 20),
#: Demonic and sandro (breath up to 100) and AnxiousAndy and aunty (a pitch range that falls).
MAX_ECHO = 30  # echo amplitude, %: f2-f5 and m2 have 10-15, Alicia 50, Marco 80
MAX_FLUTTER = 14  # f1 has 8, aunty 12
MIN_VOICING = 25  # whisper 17, whisperf 20, Annie 30
MAX_BREATH = 15  # per formant: f5 up to 10, Demonic 100

#: The voice settings espeak-ng's voices take (a variant, words a minute, a pitch).
ESPEAK_SETTINGS = frozenset({"variant", "rate", "pitch"})

_VARIANT_NUMBER = re.compile(r"^[mf]([0-9]+)$")


def read_variant(path: Path) -> EngineVariant:
    """A variant from its espeak-ng file: `name`, `gender male|female [age]`, and whether its
    settings make it a plain speaking voice (see MAX_ECHO...)."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        words = raw.split("//")[0].split()
        if words and not words[0].startswith("#"):  # espeak-ng skips what it does not know
            settings[words[0].lower()] = words[1:]
    name = " ".join(settings.get("name", [])) or path.name
    said = (settings.get("gender") or [""])[0].lower()
    gender = said if said in ("male", "female") else None
    return EngineVariant(path.name, name, gender, gender is not None and not _novelty(settings))


def _novelty(settings: dict[str, list[str]]) -> str | None:
    """Why a variant's settings are not those of a plain voice, or None."""

    def numbers(key: str) -> list[float]:
        found = []
        for word in settings.get(key, []):
            with contextlib.suppress(ValueError):
                found.append(float(word))
        return found

    echo, pitch = numbers("echo"), numbers("pitch")
    if any(numbers("klatt")):
        return "the Klatt synthesiser"
    if len(echo) > 1 and echo[1] > MAX_ECHO:
        return f"echo {echo[1]:g}"
    if any(f > MAX_FLUTTER for f in numbers("flutter")):
        return "flutter"
    if any(v < MIN_VOICING for v in numbers("voicing")):
        return "a whisper"
    if any(b > MAX_BREATH for b in numbers("breath")):
        return "breath"
    if len(pitch) > 1 and pitch[1] < pitch[0]:
        return "a falling pitch range"
    return None


def variant_order(variant: EngineVariant) -> tuple[int, int, str, str]:
    """espeak-ng's numbered variants (m1..m8, f1..f5) first, by number, then the named ones
    by name: the numbered ones were made as a set of distinct voices."""
    number = _VARIANT_NUMBER.match(variant.id)
    if number:
        return (0, int(number.group(1)), "", variant.id)
    return (1, 0, variant.id.casefold(), variant.id)


def accent_of(ident: str, name: str, languages: tuple[str, ...]) -> str | None:
    """An English voice's accent ("Scottish"); None for other languages' voices."""
    if ident in ENGLISH_ACCENTS:
        return ENGLISH_ACCENTS[ident]
    if "en" in languages or any(code.startswith("en-") for code in languages):
        inside = name.partition("(")[2].rstrip(")").strip()
        return inside or None
    return None


def pair_with_accents(
    engine: str,
    voices: list[EngineVoice],
    variants: list[EngineVariant],
) -> list[CastableVoice]:
    """Each variant with each voice, in rounds: the first round gives every variant in turn
    the next voice (m1 American, m2 British, m3 Scottish, ...), the next round shifts them by
    one, so every variant comes before any variant repeats, and no pair comes twice. Tiers:
    the first round's numbered variants 0, its named ones 1, each later round two more."""
    out: list[CastableVoice] = []
    for gender in CAST_GENDERS:
        ofs = [v for v in variants if v.gender == gender]
        for shift in range(len(voices)):
            for i, variant in enumerate(ofs):
                voice = voices[(i + shift) % len(voices)]
                where = voice.accent or voice.name
                out.append(
                    CastableVoice(
                        engine=engine,
                        engine_voice=f"{voice.id}+{variant.id}",
                        gender=gender,
                        accent=voice.accent,
                        description=f"{where}, variant {variant.id} ({gender})",
                        tier=2 * shift + variant_order(variant)[0],
                    )
                )
    return out


def rank_voices(voices: list[EngineVoice], language: str) -> list[EngineVoice]:
    """The voices that speak `language`'s primary subtag, those of its own dialect first
    ("en-gb": British ones), then English ones by ENGLISH_ACCENTS, then by id."""
    want = language.strip().lower().replace("_", "-")
    primary = want.partition("-")[0]
    order = list(ENGLISH_ACCENTS)

    def key(voice: EngineVoice) -> tuple[int, int, str]:
        own = want == primary or voice_matches_language(voice, want)
        return (
            0 if own else 1,
            order.index(voice.id) if voice.id in order else len(order),
            voice.id,
        )

    return sorted((v for v in voices if voice_matches_language(v, primary)), key=key)


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

    def variants(self) -> list[EngineVariant]:
        folder = self.data_path / "voices" / "!v"
        return sorted(
            (read_variant(p) for p in folder.iterdir() if p.is_file()), key=lambda v: v.id
        )

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
                f"(in '{engine_voice}'; see `{narrate()} voices`)"
            )
        if api.SetVoiceByName(engine_voice.encode("utf-8")) != api.EE_OK:
            raise VoiceNotFound(
                f"voice '{voice.name}': espeak-ng has no voice '{base}' (see `{narrate()} voices`)"
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
        offset = self.api.VOICE.languages.offset
        voices = []
        for v in raw:
            ident = v.identifier.decode("utf-8", "replace").lower()
            if ident in NOT_SPEECH:
                continue
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
            # No gender: espeak-ng's voice files name none and it reports its default, male,
            # for each; a variant (+f3) gives the gender.
            found = tuple(languages)
            voices.append(EngineVoice(ident, name, found, None, accent_of(ident, name, found)))
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


class Pyttsx3Engine(Engine):
    """pyttsx3's espeak driver on the espeak-ng of the `espeakng-loader` wheel (see module doc)."""

    name = "pyttsx3"
    sample_rate = SAMPLE_RATE
    fork_per_clip = True  # espeak-ng keeps state between utterances
    settings = ESPEAK_SETTINGS
    substitutes = MappingProxyType({"speed": "rate (words a minute)"})

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

    def list_variants(self) -> list[EngineVariant]:
        """The variants usable after a '+' in an engine voice ("gmw/en-us+f3"), by id, each
        with the gender its file gives and whether it is a plain voice for casting."""
        return _espeak().variants()

    def castable(self, language: str) -> list[CastableVoice]:
        """Each castable variant with each voice of `language` (see pair_with_accents):
        "gmw/en-gb-scotland+m3", the female ones first."""
        variants = sorted((v for v in self.list_variants() if v.castable), key=variant_order)
        return pair_with_accents(self.name, rank_voices(self.list_voices(), language), variants)

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
