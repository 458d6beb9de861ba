"""A fake engine for unit tests of the later stages: fast, deterministic, faulty on demand.

Never used for a real build; tests of synthesis itself use the real engines.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from narration.errors import SynthesisError
from narration.model import CastableVoice, Voice
from narration.synthesis.engines.base import (
    RENDER_REVISION,
    Engine,
    EngineVariant,
    EngineVoice,
    write_wav,
)
from narration.synthesis.engines.espeak import ESPEAK_SETTINGS, pair_with_accents, rank_voices

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 22_050  # like espeak-ng, so the fake stands in for it byte-size for byte-size


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


class FakeEngine(Engine):
    """Deterministic speech-like audio for unit tests of the stages after synthesis.

    Each word becomes a voiced syllable whose length follows the word and the voice's rate
    (about words * 60 / rate seconds in all, like espeak-ng), with a fundamental set by the
    voice's pitch and variant, at roughly espeak-ng's loudness (-21 LUFS at volume 1). The
    same text and voice always give the same bytes. Faults count attempts in `state_dir`,
    so they work across the processes synthesize() forks.
    """

    name = "fake"
    version = f"fake 1; r{RENDER_REVISION}"
    sample_rate = SAMPLE_RATE
    fork_per_clip = True  # so the crash and kill-worker faults hit a child, as with espeak-ng
    settings = ESPEAK_SETTINGS  # it stands in for espeak-ng

    VOICES: tuple[EngineVoice, ...] = (
        EngineVoice("gmw/en", "English (Great Britain)", ("en-gb", "en"), "male", "British"),
        EngineVoice("gmw/en-us", "English (America)", ("en-us", "en"), "male", "American"),
        EngineVoice("roa/fr", "French", ("fr-fr", "fr"), "male"),
        EngineVoice("gmw/de", "German", ("de",), "male"),
    )

    def __init__(
        self,
        faults: Iterable[Fault] = (),
        state_dir: Path | None = None,
        *,
        name: str = "fake",
        sample_rate: int = SAMPLE_RATE,
        fork_per_clip: bool = True,
    ) -> None:
        """`name`, `sample_rate` and `fork_per_clip` let it stand in for another engine
        (Kokoro) beside one in the same book."""
        self.name = name
        self.sample_rate = sample_rate
        self.fork_per_clip = fork_per_clip
        self.faults: tuple[Fault, ...] = tuple(faults)
        if self.faults and state_dir is None:
            state_dir = Path(tempfile.mkdtemp(prefix="narrate-fake-"))
        self.state_dir = Path(state_dir) if state_dir is not None else None

    def __repr__(self) -> str:
        return f"FakeEngine(faults={self.faults!r}, sample_rate={self.sample_rate})"

    def list_voices(self) -> list[EngineVoice]:
        return list(self.VOICES)

    #: Four of each gender, named as espeak-ng's first ones, for unit tests of casting (its
    #: `list_variants` lists none: voices.yaml's variants are not checked against these).
    VARIANTS: tuple[EngineVariant, ...] = tuple(
        EngineVariant(f"{g[0]}{n}", f"{g}{n}", g, True)
        for g in ("female", "male")
        for n in range(1, 5)
    )

    def castable(self, language: str) -> list[CastableVoice]:
        """Four female and four male voices for English (each variant once, paired with the
        voices of the language as espeak-ng's are); none for a language it has no voice of."""
        voices = rank_voices(self.list_voices(), language)
        if not voices:
            return []
        pairs = pair_with_accents(self.name, voices, list(self.VARIANTS))
        return [p for g in ("female", "male") for p in [p for p in pairs if p.gender == g][:4]]

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

    def warm_up(self, threads: int = 1) -> None:
        """Import numpy before synthesize() forks per clip, not in every child."""
        import numpy  # noqa: F401

    def synth(self, text: str, voice: Voice) -> bytes:
        return _fake_speech(text, voice, self.sample_rate).tobytes()

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
        samples = _fake_speech(text, voice, self.sample_rate)
        if mode == "empty":
            samples = samples[:0]
        elif mode == "short":
            samples = samples[: len(samples) // 10]
        elif mode == "silent":
            samples = samples * 0
        write_wav(path, samples.tobytes(), self.sample_rate)


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _fake_speech(text: str, voice: Voice, rate: int = SAMPLE_RATE) -> np.ndarray:
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
    gap = np.zeros(int(0.04 * rate))
    for word in words:
        share = 0.5 + 0.5 * len(word) * len(words) / total_chars  # longer words last longer
        n = max(int(seconds_per_word * share * rate) - len(gap), 200)
        t = np.arange(n) / rate
        pitch = f0 * (1.0 + 0.08 * rng.uniform(-1, 1))
        tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        envelope = np.sin(np.pi * np.arange(n) / n) ** 0.6
        noise = rng.normal(0.0, 0.05, n)
        parts += [(tone + noise) * envelope, gap]
    parts.append(np.zeros(int(0.3 * rate)))  # like espeak-ng's end-of-sentence pause
    audio = np.concatenate(parts) if words else np.zeros(int(0.3 * rate))
    return np.round(audio * 5300 * voice.volume).clip(-32768, 32767).astype("<i2")
