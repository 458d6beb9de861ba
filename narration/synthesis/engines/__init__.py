"""Speech engines, one module each, behind the small interface in base.py.

    espeak.py   pyttsx3 / espeak-ng: the fast default, 22,050 Hz, a fork per clip
    kokoro.py   Kokoro-82M (the `kokoro` extra): natural voices, 24,000 Hz, a session per worker
    fake.py     deterministic speech-like audio for unit tests of the later stages

A voice in voices.yaml names its engine (`engine: kokoro`), and engines mix freely within a
book. Another offline engine is added by subclassing `Engine` in a module of its own (its
defaults say what it cannot do) and registering it in `ENGINES`; no other stage changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from narration.errors import SynthesisError
from narration.model import DEFAULT_ENGINE
from narration.synthesis.engines.base import (
    CHANNELS,
    ENGINE_SETTINGS,
    RENDER_REVISION,
    SAMPLE_WIDTH,
    Engine,
    EngineMissing,
    EngineVariant,
    EngineVoice,
    Unrecoverable,
    VoiceNotFound,
    list_voices,
    voice_matches_language,
    wav_header,
    write_wav,
)
from narration.synthesis.engines.espeak import (
    DEFAULT_VOICE,
    RAND_SEED,
    SAMPLE_RATE,
    WARM_UP_TEXT,
    Pyttsx3Engine,
)
from narration.synthesis.engines.fake import FakeEngine, Fault, FaultMode
from narration.synthesis.engines.kokoro import KokoroEngine

if TYPE_CHECKING:
    from narration.config import Catalog, EngineCatalog, VoicesConfig
    from narration.model import CastableVoice

ENGINES: dict[str, Callable[[], Engine]] = {
    "pyttsx3": Pyttsx3Engine,
    "kokoro": KokoroEngine,
    "fake": FakeEngine,
}


#: The engines voices.yaml may name.
USER_ENGINES = ("kokoro", "pyttsx3")


def settings_catalog(
    ids: Iterable[str] | None = None, variants: Iterable[str] | None = None
) -> Catalog:
    """What voices.yaml is checked against where the engines are not asked for their voices
    (`narrate segments` reads only its `reading:`): the default engine's settings, checked
    by the engine, and its voice ids and variants when given; any other engine's voices as
    they are written."""
    from narration.config import EngineCatalog

    plain = EngineCatalog(
        voices=frozenset(ids) if ids is not None else None,
        variants=frozenset(variants) if variants is not None else None,
        settings=get_engine(DEFAULT_ENGINE),
    )

    def catalog(engine: str) -> EngineCatalog:
        return plain if engine == DEFAULT_ENGINE else EngineCatalog(blends=True, phonemes=True)

    return catalog


def get_engine(name: str = DEFAULT_ENGINE) -> Engine:
    """The engine registered under `name`; SynthesisError listing the known ones otherwise,
    EngineMissing (saying what to install) when its optional packages are not installed."""
    factory = ENGINES.get(name)
    if factory is None:
        available = ", ".join(sorted(USER_ENGINES))
        raise SynthesisError(f"unknown engine '{name}' (available: {available})")
    return factory()


class EngineSet:
    """The engines a command needs, each made once; what voices.yaml is checked against."""

    def __init__(self, checked: dict[str, Engine] | None = None) -> None:
        """`checked`: engines already made whose models were already checked."""
        self.made: dict[str, Engine] = dict(checked or {})
        self.why: dict[str, str] = {}
        self.catalogs: dict[str, EngineCatalog] = {}
        self.checked: set[str] = set(self.made)

    def get(self, name: str) -> Engine | None:
        if name not in self.made and name not in self.why:
            if name not in USER_ENGINES:  # the fake engine is for tests, never for a book
                self.why[name] = (
                    f"unknown engine '{name}' (available: {', '.join(sorted(USER_ENGINES))})"
                )
                return None
            try:
                self.made[name] = get_engine(name)
            except SynthesisError as exc:  # unknown, or its packages are not installed
                self.why[name] = str(exc)
        return self.made.get(name)

    def catalog(self, name: str) -> EngineCatalog:
        """What voices.yaml's voices of engine `name` are checked against: its voices and
        variants, what it can do, and the engine itself, which checks their settings."""
        from narration.config import EngineCatalog

        if name not in self.catalogs:
            engine = self.get(name)
            if engine is None:
                self.catalogs[name] = EngineCatalog(unavailable=self.why[name])
            else:
                variants = frozenset(v.id for v in engine.list_variants())
                self.catalogs[name] = EngineCatalog(
                    voices=frozenset(v.id for v in engine.list_voices()),
                    variants=variants or None,  # an engine with none: not checked
                    settings=engine,
                    ignore_case=engine.ignore_case,
                    default_voice=engine.default_voice,
                    blends=engine.blends,
                    phonemes=engine.phonemes,
                )
        return self.catalogs[name]

    def ready(self, name: str) -> Engine:
        """An engine the configuration's checks found installed, its model checked (once):
        a damaged one refuses the command before anything is written."""
        engine = self.get(name)
        assert engine is not None  # the configuration's checks said it is there
        if name not in self.checked:
            engine.check_model()
            self.checked.add(name)
        return engine

    def castable(self, name: str, language: str) -> tuple[CastableVoice, ...]:
        """The voices `name` offers for casting characters in `language` (none when the
        engine is not installed: the configuration's checks say so)."""
        engine = self.get(name)
        return tuple(engine.castable(language)) if engine is not None else ()

    def used(self, voices: VoicesConfig) -> dict[str, Engine]:
        """The engines the cast uses, each ready."""
        return {name: self.ready(name) for name in voices.engines}


__all__ = [
    "CHANNELS",
    "DEFAULT_ENGINE",
    "DEFAULT_VOICE",
    "ENGINES",
    "ENGINE_SETTINGS",
    "RAND_SEED",
    "RENDER_REVISION",
    "SAMPLE_RATE",
    "SAMPLE_WIDTH",
    "WARM_UP_TEXT",
    "Engine",
    "EngineMissing",
    "EngineSet",
    "EngineVariant",
    "EngineVoice",
    "FakeEngine",
    "Fault",
    "FaultMode",
    "KokoroEngine",
    "Pyttsx3Engine",
    "Unrecoverable",
    "VoiceNotFound",
    "get_engine",
    "list_voices",
    "voice_matches_language",
    "wav_header",
    "write_wav",
]
