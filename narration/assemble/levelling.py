"""Levelling: each voice's gain matched on limited audio, the chapter at its loudness
target, and a piece of the chapter rendered as it is heard (limited, room tone added,
resampled to OUT_RATE) for any writer to encode."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio as sig
from ..errors import OutputError
from .timeline import PIECE_CONTEXT, TIMELINE_SCALE, Piece, piece_path

#: How far under the configured true-peak ceiling the limiter aims, per bitrate, for what
#: MP3 coding adds to peaks. Measured on limited espeak-ng speech, decoded: up to 1.8 dB at
#: 32-40 kbps; at 64 kbps 1.0-1.4 dB on most chapters of a novel and over 1.5 on its
#: longest (52 min); 0.65 at 80, 0.2 at 96 and above. A chapter that still peaks over is
#: encoded again with a lower ceiling: these keep that rare, as it doubles its cost.
CODEC_HEADROOM_DB = {32: 3.0, 40: 3.0, 48: 2.5, 56: 2.5, 64: 2.0, 80: 1.6}
CODEC_HEADROOM_DEFAULT_DB = 1.2
#: Accepted distance from the loudness target before the chapter is encoded again.
LOUDNESS_TOLERANCE = 0.4
#: The chapter's gain is found on at most this much of it (evenly spread chunks).
CHAPTER_SAMPLE_SECONDS = 120.0
#: And at least this much of each voice's speech (or all of it) is among those chunks.
VOICE_CHECK_SECONDS = 30.0
#: The chunks those samples are made of (samples at RATE, a multiple of the limiter's block):
#: small, so a voice heard for a few seconds brings little else with it.
SAMPLE_CHUNK = 1 << 15


#: A step that moves no voice by more than this is taken without measuring its outcome.
TRUSTED_STEP_LU = 0.3


def initial_slope(loss_db: float) -> float:
    """How much a voice's limited loudness first moves per dB of gain, given what the
    limiter takes from it (its loss, dB): about 1 / (1 + loss). Measured here on the seeds'
    voices pushed from their clips' levels to -19, -16 and -14 LUFS under -3 dBTP: losses
    of 0.05, 0.3, 0.8, 1.2 and 2 dB moved them 0.9-0.95, 0.73-0.8, 0.58, 0.48 and 0.33 dB
    per dB. The gain search takes its first step on it, then measures its own slope."""
    return min(1.0, max(0.2, 1.0 / (1.0 + max(0.0, loss_db))))


def voice_loudness(chunks: list[np.ndarray]) -> float:
    """A voice's loudness over its measured clips, as if heard back to back.

    Below BS.1770's 400 ms block nothing can be measured, and a few blocks measure badly,
    so a voice with under 3 s of speech is measured repeated up to 3 s.
    """
    meter = sig.LoudnessMeter(sig.RATE)
    total = sum(c.size for c in chunks)
    if total == 0:
        return sig.SILENT
    repeat = max(1, math.ceil(3 * sig.RATE / total))
    for _ in range(repeat):
        for c in chunks:
            meter.feed(c.astype(np.float64) / TIMELINE_SCALE)
    return meter.integrated()


def voice_offsets(
    regions: Sequence[tuple[int, int, str]],
) -> tuple[np.ndarray, dict[str, int]]:
    """Per region, how much of its voice comes before it (where it sits in that voice's
    own measurement, its stretches heard back to back); and each voice's total."""
    heard: dict[str, int] = {}
    before = np.zeros(len(regions), dtype=np.int64)
    for k, (a, b, name) in enumerate(regions):
        before[k] = heard.get(name, 0)
        heard[name] = heard.get(name, 0) + (b - a)
    return before, heard


class Source:
    """The chapter's samples with each voice's gain and the chapter gain applied, by range.

    `timeline` may be the layout's array or a read-only map of the file a plan wrote.
    """

    def __init__(
        self,
        timeline: np.ndarray,
        regions: Sequence[tuple[int, int, str]],
        voice_db: dict[str, float],
        chapter_db: float = 0.0,
    ) -> None:
        self.timeline = timeline
        self.regions = list(regions)
        self.starts = np.array([r[0] for r in self.regions], dtype=np.int64)
        self.ends = np.array([r[1] for r in self.regions], dtype=np.int64)
        self.before, self.voice_samples = voice_offsets(self.regions)
        self.voice_db = dict(voice_db)
        self.chapter_db = chapter_db
        self._apply()

    def _apply(self) -> None:
        self.gains = np.array(
            [sig.db_to_gain(self.voice_db[r[2]]) for r in self.regions], dtype=np.float32
        )
        self.chapter_gain = sig.db_to_gain(self.chapter_db)

    def set_gains(self, voice_db: dict[str, float], chapter_db: float) -> None:
        self.voice_db, self.chapter_db = dict(voice_db), chapter_db
        self._apply()

    def __len__(self) -> int:
        return int(self.timeline.size)

    def read(self, lo: int, hi: int) -> np.ndarray:
        x = self.timeline[lo:hi].astype(np.float32)
        x *= np.float32(self.chapter_gain / TIMELINE_SCALE)
        first = int(np.searchsorted(self.ends, lo, side="right"))
        last = int(np.searchsorted(self.starts, hi, side="left"))
        for k in range(first, last):
            a, b = max(int(self.starts[k]), lo), min(int(self.ends[k]), hi)
            if b > a and self.gains[k] != 1.0:
                x[a - lo : b - lo] *= self.gains[k]
        return x

    def _stretches(self, a: int, b: int) -> Iterator[tuple[int, int, int]]:
        """(region, start, stop) of every region's part inside [a, b)."""
        first = int(np.searchsorted(self.ends, a, side="right"))
        last = int(np.searchsorted(self.starts, b, side="left"))
        for k in range(first, last):
            lo, hi = max(int(self.starts[k]), a), min(int(self.ends[k]), b)
            if hi > lo:
                yield k, lo, hi

    def feed_voices(self, gates: dict[str, sig.Gate], sq: np.ndarray, a: int) -> None:
        """Feed each voice's gate with its stretches of sq: the output for [a, a + len(sq)),
        K-weighted and squared (one filter pass serves the chapter and every voice)."""
        for k, lo, hi in self._stretches(a, a + len(sq)):
            gates[self.regions[k][2]].feed_squares(sq[lo - a : hi - a])

    def add_voice_hops(self, hops: dict[str, sig.HopSums], sq: np.ndarray, a: int) -> None:
        """Like feed_voices, for a stretch of the chapter measured on its own: each voice's
        squares go where they fall in that voice's whole measurement."""
        for k, lo, hi in self._stretches(a, a + len(sq)):
            start = int(self.before[k]) + lo - int(self.starts[k])
            hops[self.regions[k][2]].add(sq[lo - a : hi - a], start)


def _sample_chunks(source: Source) -> list[tuple[int, int]]:
    """Chunks to tune the gains on: evenly spread ones (at most CHAPTER_SAMPLE_SECONDS in
    all) and, for each voice, the ones holding some of its passages (VOICE_CHECK_SECONDS),
    so that even a voice heard once is measured after limiting."""
    size = SAMPLE_CHUNK
    total = len(source)
    count = max(1, math.ceil(total / size))
    keep = max(1, math.ceil(count * size / sig.RATE / CHAPTER_SAMPLE_SECONDS))
    chosen = set(range(0, count, keep))
    by_voice: dict[str, list[tuple[int, int]]] = {}
    for a, b, name in source.regions:
        by_voice.setdefault(name, []).append((a, b))
    for regions in by_voice.values():
        seconds = sum(b - a for a, b in regions) / sig.RATE
        stride = max(1, math.ceil(seconds / VOICE_CHECK_SECONDS))
        for a, b in regions[::stride]:
            chosen.update(range(a // size, (b - 1) // size + 1))
    return [(k * size, min(total, (k + 1) * size)) for k in sorted(chosen)]


def balance(source: Source, target: float, ceiling_db: float) -> None:
    """Set the voices' gains so that, after limiting, every voice is as loud as the others
    and the chapter as a whole is at the target loudness.

    Voices are first matched on their clips; but the limiter takes more from a peaky voice
    than from a smooth one, and takes more the louder it is pushed, so the gains are
    finished on limited audio: a few rounds on sample chunks (limited exactly as in the
    final pass), each moving every voice towards the level that puts the chapter at the
    target, by a secant step on its own loudness-versus-gain curve, the first one guessed
    from what the limiter takes from it (`initial_slope`): a chapter at -19 LUFS is
    usually matched after one step, and a step of under TRUSTED_STEP_LU is not measured
    again (the encoded chapter's loudness is checked anyway). It starts from the gains it
    is given, so a second call (a lower ceiling) converges in a round or two.
    """
    total = len(source)
    sample = _sample_chunks(source)
    names = list(source.voice_db)

    def measure(
        voice_db: dict[str, float], unlimited: dict[str, sig.Gate] | None = None
    ) -> tuple[float, dict[str, float]]:
        source.set_gains(voice_db, 0.0)
        limiter = sig.Limiter(sig.RATE, ceiling_db)
        meter, raw = sig.LoudnessMeter(sig.RATE), sig.LoudnessMeter(sig.RATE)
        voices = {name: sig.Gate(sig.RATE) for name in names}
        for a, b in sample:
            sq = meter.feed(limiter.process(source.read, a, b, total))
            source.feed_voices(voices, sq, a)
            if unlimited is not None:
                source.feed_voices(unlimited, raw.feed(source.read(a, b)), a)
        return meter.integrated(), {n: m.integrated() for n, m in voices.items()}

    gains = {n: source.voice_db[n] + source.chapter_db for n in names}
    unlimited = {name: sig.Gate(sig.RATE) for name in names}
    level, levels = measure(gains, unlimited)
    slopes = {n: initial_slope(unlimited[n].integrated() - levels[n]) for n in names}
    for _ in range(6):
        heard = {n: v for n, v in levels.items() if math.isfinite(v)}
        if not math.isfinite(level) or not heard:
            break
        spread = max(heard.values()) - min(heard.values())
        if abs(level - target) < 0.1 and spread < 0.25:
            break
        # voices sit this far above the chapter's level (pauses lower it); aim them there
        aim = target + sum(heard.values()) / len(heard) - level
        new = dict(gains)
        for n, v in heard.items():
            new[n] = gains[n] + (aim - v) / slopes[n]
        if max(abs(aim - v) for v in heard.values()) <= TRUSTED_STEP_LU:
            gains = new  # a slope off by a third moves a voice 0.1 LU from where it aims
            break
        new_level, new_levels = measure(new)
        for n in heard:
            dv, dg = new_levels[n] - levels[n], new[n] - gains[n]
            if math.isfinite(dv) and abs(dg) > 0.05:
                slopes[n] = min(1.0, max(0.2, dv / dg))
        gains, level, levels = new, new_level, new_levels
    source.set_gains(gains, 0.0)


@dataclass(frozen=True)
class Mix:
    """What a process needs to limit and encode any piece of a chapter: the timeline's
    file, where each voice speaks, and the gains and ceiling."""

    timeline: Path  # raw int16 samples at sig.RATE, written by the chapter's plan
    total: int
    regions: tuple[tuple[int, int, str], ...]
    voice_db: dict[str, float]
    chapter_db: float
    ceiling_db: float  # the limiter's (the true-peak ceiling less codec headroom)
    true_peak: float  # the configured ceiling, checked on the decoded MP3
    bitrate: int
    final: Path  # the MP3 the pieces become, for messages

    def piece_path(self, index: int) -> Path:
        """Where piece `index` is encoded to, beside the timeline."""
        return piece_path(self.timeline, index)

    def source(self) -> Source:
        try:
            timeline = np.memmap(self.timeline, dtype=np.int16, mode="r", shape=(self.total,))
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.final}: chapter audio unreadable ({exc})") from None
        return Source(timeline, self.regions, self.voice_db, self.chapter_db)


@functools.lru_cache(maxsize=1)
def _tone() -> np.ndarray:
    return sig.room_tone(1 << 17)


def render(
    mix: Mix,
    piece: Piece,
    until: int,
    *,
    measure: Callable[[np.ndarray, int], None] | None = None,
    source: Source | None = None,
) -> Iterator[np.ndarray]:
    """A piece as it is heard, [piece.start, until) in timeline samples: limited, room
    tone added and resampled to OUT_RATE, in chunks. `measure(squares, start)` hears the
    K-weighted squares of [piece.start, piece.end).

    Its limiter, K-weighting filter and resampler start PIECE_CONTEXT samples before it and
    run on as far after, so what they give inside the piece does not depend on the cut:
    the MP3 writer encodes each piece on its own, the M4B writer all of them in a row.
    """
    import soxr

    source = source or mix.source()
    total = mix.total
    lo = max(0, piece.start - PIECE_CONTEXT)
    hi = min(total, piece.end + PIECE_CONTEXT)
    limiter = sig.Limiter(sig.RATE, mix.ceiling_db)
    weigh = sig.LoudnessMeter(sig.RATE).weigh if measure else None
    tone = _tone()
    resampler = soxr.ResampleStream(sig.RATE, sig.OUT_RATE, 1, dtype="float32")
    ratio = sig.OUT_RATE // sig.RATE
    keep_lo, keep_hi = ratio * (piece.start - lo), ratio * (until - lo)
    made = 0  # resampled samples so far, from lo
    spans = list(sig.chunks(hi - lo))
    for k, (a, b) in enumerate(spans):
        a, b = a + lo, b + lo
        x = limiter.process(source.read, a, b, total)
        sig.add_looped(x, tone, a)
        if measure is not None and weigh is not None:
            sq = weigh(x)  # every chunk: the filter runs on through the context
            m0, m1 = max(a, piece.start), min(b, piece.end)
            if m1 > m0:
                measure(sq[m0 - a : m1 - a], m0)
        y = resampler.resample_chunk(x, last=k == len(spans) - 1)
        y0, y1 = max(made, keep_lo), min(made + y.size, keep_hi)
        if y1 > y0:
            yield y[y0 - made : y1 - made]
        made += y.size


def rebalance(job: tuple[Mix, float]) -> dict[str, float]:
    """The voices' gains matched on audio limited at the mix's ceiling: from the clips'
    levels when planned, again under a lower ceiling when a decoded peak came out high."""
    mix, target = job
    source = mix.source()
    balance(source, target, mix.ceiling_db)
    return source.voice_db
