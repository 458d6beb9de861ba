"""Levelling: each voice's gain matched on limited audio, the chapter at its loudness
target, and a piece of the chapter rendered as it is heard (limited, room tone added,
resampled to OUT_RATE) for any writer to encode."""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from narration.assembly import audio as sig
from narration.assembly.timeline import PIECE_CONTEXT, TIMELINE_SCALE, Piece, piece_path
from narration.errors import OutputError

#: How far under the configured true-peak ceiling the limiter aims, per bitrate, for what
#: MP3 coding adds to peaks. Measured on limited espeak-ng speech, decoded: up to 1.8 dB at
#: 32-40 kbps; at 64 kbps 1.0-1.4 dB on most chapters of a novel and over 1.5 on its
#: longest (52 min); 0.65 at 80, 0.2 at 96 and above. A chapter that still peaks over is
#: encoded again with a lower ceiling: these keep that rare, as it doubles its cost.
CODEC_HEADROOM_DB = {32: 3.0, 40: 3.0, 48: 2.5, 56: 2.5, 64: 2.0, 80: 1.6}
CODEC_HEADROOM_DEFAULT_DB = 1.2
#: Accepted distance from the loudness target before the chapter is encoded again.
LOUDNESS_TOLERANCE = 0.4
#: Gains are kept in steps of this many dB: a small edit elsewhere in a voice's text rarely
#: moves its gain to another step, so its pieces are reused (half a step: 0.05 LU).
GAIN_STEP_DB = 0.1
#: Voices are gain-matched within this range; beyond it a clip is broken, not quiet.
MAX_VOICE_GAIN_DB = 30.0
#: What the limiter takes from a voice is measured on about this much of its clips.
LIMITED_SAMPLE_SECONDS = 60.0
#: A step that moves a voice by no more than this is taken without measuring its outcome.
TRUSTED_STEP_LU = 0.3


def initial_slope(loss_db: float) -> float:
    """How much a voice's limited loudness first moves per dB of gain, given what the
    limiter takes from it (its loss, dB): about 1 / (1 + loss). Measured here on the seeds'
    voices pushed from their clips' levels to -19, -16 and -14 LUFS under -3 dBTP: losses
    of 0.05, 0.3, 0.8, 1.2 and 2 dB moved them 0.9-0.95, 0.73-0.8, 0.58, 0.48 and 0.33 dB
    per dB. The gain search takes its first step on it, then measures its own slope."""
    return min(1.0, max(0.2, 1.0 / (1.0 + max(0.0, loss_db))))


def quantized(db: float) -> float:
    """A gain on its GAIN_STEP_DB step."""
    return round(round(db / GAIN_STEP_DB) * GAIN_STEP_DB, 4)


def picked(key: str, stride: int) -> bool:
    """Whether a clip is among one in `stride` picked by its content (its key)."""
    return stride == 1 or zlib.crc32(key.encode()) % stride == 0


def _spaced(chunks: list[np.ndarray], pause: int) -> np.ndarray:
    """Clips one after another, each followed by `pause` samples of silence, as float at
    full scale 1; repeated to 3 s if shorter: under BS.1770's 400 ms block nothing can be
    measured, and a few blocks measure badly."""
    total = sum(c.size for c in chunks)
    repeat = max(1, math.ceil(3 * sig.RATE / total))
    gap = np.zeros(pause, dtype=np.int16)
    spaced = [part for c in chunks for part in (c, gap)]
    return np.concatenate(spaced * repeat).astype(np.float32) * np.float32(1 / TIMELINE_SCALE)


def voice_gain(
    chunks: list[np.ndarray],
    target: float,
    ceiling_db: float,
    pause: int,
    keys: Sequence[str],
) -> float:
    """The gain (dB, on its step) that puts a voice at `target` LUFS once limited under
    `ceiling_db`: measured on its clips heard one after another, each followed by `pause`
    samples of silence as its sentences are (a voice's stretches are measured with them in
    the chapter), on nothing else.

    The limiter takes more from a peaky voice than from a smooth one, and more the louder
    it is pushed, so the gain is found on limited audio: a first step from the clips'
    levels, then secant steps on the voice's own loudness-versus-gain curve, the first
    slope guessed from what the limiter takes (`initial_slope`); a step of under
    TRUSTED_STEP_LU is taken without measuring it again. The clips' level is measured on
    all of them, what the limiter takes on about LIMITED_SAMPLE_SECONDS of them (it is
    the same on a minute as on four, within 0.05 dB, at a quarter of the cost), picked by
    their `keys` (their content: the same whatever else changes). Every voice
    is matched to the target on its own, so one voice's change leaves the others' gains,
    and the pieces they read alone, as they were; the chapter is checked as a whole once
    encoded.
    """
    if not chunks or not sum(c.size for c in chunks):
        return 0.0
    seconds = sum(c.size for c in chunks) / sig.RATE
    stride = max(1, math.ceil(seconds / LIMITED_SAMPLE_SECONDS))
    sample = [c for c, k in zip(chunks, keys, strict=True) if picked(k, stride)]
    x = _spaced(sample or chunks, pause)
    level = sig.integrated_loudness(x, sig.RATE)
    # where the whole stands against the sample, unlimited: the sample is aimed that far off
    whole = sig.integrated_loudness(_spaced(chunks, pause), sig.RATE) if stride > 1 else level
    if not (math.isfinite(level) and math.isfinite(whole)):
        return 0.0
    aim = target - (whole - level)
    size = x.size

    def limited(db: float) -> float:
        y = x * np.float32(sig.db_to_gain(db))
        limiter = sig.Limiter(sig.RATE, ceiling_db)
        meter = sig.LoudnessMeter(sig.RATE)
        for a, b in sig.chunks(size):
            meter.feed(limiter.process(lambda lo, hi: y[lo:hi], a, b, size))
        return meter.integrated()

    def clamp(db: float) -> float:
        return max(-MAX_VOICE_GAIN_DB, min(MAX_VOICE_GAIN_DB, db))

    gain = clamp(aim - level)
    heard = limited(gain)
    if not math.isfinite(heard):
        return quantized(gain)
    slope = initial_slope(level + gain - heard)
    for _ in range(6):
        if abs(heard - aim) < 0.05:
            break
        new = clamp(gain + (aim - heard) / slope)
        if abs(aim - heard) <= TRUSTED_STEP_LU or new == gain:
            gain = new  # a slope off by a third moves it 0.1 LU from where it aims
            break
        new_heard = limited(new)
        if math.isfinite(new_heard) and abs(new - gain) > 0.05:
            slope = min(1.0, max(0.2, (new_heard - heard) / (new - gain)))
        gain, heard = new, new_heard
        if not math.isfinite(heard):
            break
    return quantized(gain)


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
        self.voice_db = dict(voice_db)
        self.chapter_db = chapter_db
        self.gains = np.array(
            [sig.db_to_gain(self.voice_db[r[2]]) for r in self.regions], dtype=np.float32
        )
        self.chapter_gain = sig.db_to_gain(self.chapter_db)

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

    def voice_stretches(self, a: int, b: int) -> Iterator[tuple[str, int, int]]:
        """(voice, start, stop) of every region's part inside [a, b), in order."""
        first = int(np.searchsorted(self.ends, a, side="right"))
        last = int(np.searchsorted(self.starts, b, side="left"))
        for k in range(first, last):
            lo, hi = max(int(self.starts[k]), a), min(int(self.ends[k]), b)
            if hi > lo:
                yield self.regions[k][2], lo, hi


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
        sig.add_looped(x, tone, a - piece.start)  # from the piece's start: wherever it is
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
