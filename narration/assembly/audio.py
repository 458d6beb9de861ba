"""Signal processing for chapter assembly: clips in, loud-enough, peak-safe MP3 out.

Everything here works on bounded chunks, so memory does not grow with a chapter's length:
the loudness meter is a streaming version of ITU-R BS.1770-4 (pyloudnorm's K-weighting
filters, the standard's 400 ms / 75 % gating) whose hop energies can also be summed across
stretches measured apart, the limiter looks ahead over a fixed margin, resampling, MP3
encoding and decoding are streams. SciPy's signal package is never imported (it costs most
of a second); its compiled IIR filter is. Nothing here reads the clock or an unseeded
random source: same input, same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from narration.errors import ClipDamaged, SynthesisError
from narration.model import Clip

#: The working rate: what espeak-ng renders, so clips are used without resampling.
RATE = 22_050
#: The published rate (Apple and LibriVox both ask for 44.1 kHz).
OUT_RATE = 44_100
#: Samples (at OUT_RATE) that LAME's encoder (576) and every MP3 decoder (529) put before
#: the first sample we encode. lameenc writes no LAME/Xing tag telling players to skip
#: them, so the audio a player shows at time t is our sample t - 25.06 ms: chapter marks and
#: cue times are shifted by this much to match what is heard.
ENCODER_DELAY = 576 + 529

#: Samples per MPEG-1 Layer III frame.
SAMPLES_PER_FRAME = 1152

#: What LAME does to levels: its MP3s decode 0.44 dB quieter than the PCM it was given
#: (measured here with lameenc and with FFmpeg's libmp3lame, decoded by dr_mp3 and by
#: FFmpeg, at 64-128 kbps; a 1 kHz tone comes back at 0.950 of its amplitude). PCM is
#: divided by this before encoding so the levels measured before encoding are the heard ones.
LAME_GAIN = 0.95

#: Loudness of an empty or silent signal.
SILENT = -math.inf


def preload() -> None:
    """Load the native libraries assembly uses (encoder, resampler, decoder, IIR filter).

    A build calls this while it waits on synthesis, so the processes it then forks for
    assembly inherit them instead of each loading them (about 0.1 s apiece).
    """
    import lameenc  # noqa: F401
    import miniaudio  # noqa: F401
    import soxr  # noqa: F401

    _linear_filter()


@functools.lru_cache(maxsize=1)
def _linear_filter() -> Callable[..., Any]:
    """SciPy's compiled IIR filter (what `scipy.signal.lfilter` calls), loaded on its own.

    `import scipy.signal` takes 0.6-1 s (it imports scipy.stats, interpolate, optimize...),
    a sixth of a whole build of a short book, for one C function. So the extension module
    that holds it is loaded from SciPy's folder without running the package's __init__;
    if SciPy ever moves it, the public `lfilter` is used instead (same numbers, slower start).
    """
    import importlib.machinery
    import importlib.util

    try:
        import scipy

        folder = Path(scipy.__file__).parent / "signal"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = folder / f"_sigtools{suffix}"
            if path.is_file():
                spec = importlib.util.spec_from_file_location("scipy.signal._sigtools", path)
                if spec is None or spec.loader is None:
                    break
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                # not left in sys.modules: a later `import scipy.signal` loads it as usual
                if sys.modules.get(spec.name) is module:
                    del sys.modules[spec.name]
                return module._linear_filter  # type: ignore[no-any-return]
    except (ImportError, OSError, AttributeError):
        pass
    from scipy.signal import lfilter as public

    def linear_filter(b: Any, a: Any, x: Any, axis: int, zi: Any = None) -> Any:
        return public(b, a, x, axis=axis) if zi is None else public(b, a, x, axis=axis, zi=zi)

    return linear_filter


def lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None) -> Any:
    """`scipy.signal.lfilter(b, a, x[, zi])` for 1-D float64 signals (a[0] need not be 1),
    without importing scipy.signal. Returns y, or (y, final state) when zi is given."""
    b = np.ascontiguousarray(b, dtype=np.float64)
    a = np.ascontiguousarray(a, dtype=np.float64)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if zi is None:
        return _linear_filter()(b, a, x, -1)
    return _linear_filter()(b, a, x, -1, np.ascontiguousarray(zi, dtype=np.float64))


def _biquad(kind: str, gain_db: float, q: float, fc: float, rate: int) -> np.ndarray:
    """An RBJ-cookbook biquad as pyloudnorm designs it (b0 b1 b2 a0 a1 a2, over a0)."""
    big_a = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * (fc / rate)
    alpha = np.sin(w0) / (2.0 * q)
    cos, root = np.cos(w0), np.sqrt(big_a)
    if kind == "high_shelf":
        b0 = big_a * ((big_a + 1) + (big_a - 1) * cos + 2 * root * alpha)
        b1 = -2 * big_a * ((big_a - 1) + (big_a + 1) * cos)
        b2 = big_a * ((big_a + 1) + (big_a - 1) * cos - 2 * root * alpha)
        a0 = (big_a + 1) - (big_a - 1) * cos + 2 * root * alpha
        a1 = 2 * ((big_a - 1) - (big_a + 1) * cos)
        a2 = (big_a + 1) - (big_a - 1) * cos - 2 * root * alpha
    else:  # high_pass
        b0, b1, b2 = (1 + cos) / 2, -(1 + cos), (1 + cos) / 2
        a0, a1, a2 = 1 + alpha, -2 * cos, 1 - alpha
    return np.array([b0, b1, b2, a0, a1, a2]) / a0


def k_weighting(rate: int) -> tuple[np.ndarray, np.ndarray]:
    """BS.1770's K-weighting (pyloudnorm's two stages: a 4 dB shelf at 1.5 kHz, a high-pass
    at 38 Hz) as one fourth-order filter (b, a), so it is one pass over the signal."""
    shelf = _biquad("high_shelf", 4.0, 1 / np.sqrt(2), 1500.0, rate)
    high_pass = _biquad("high_pass", 0.0, 0.5, 38.0, rate)
    return np.convolve(shelf[:3], high_pass[:3]), np.convolve(shelf[3:], high_pass[3:])


def read_clip(path: Path, digest: str | None = None) -> np.ndarray:
    """A clip as mono int16 samples at RATE (Kokoro's 24 kHz clips are resampled here).

    pydub reads the WAV (it accepts the WAVE_FORMAT_EXTENSIBLE headers that Python 3.11's
    `wave` refuses); other rates and widths are converted so one odd clip cannot break a
    chapter. With `digest`, bytes that are not the ones verified raise ClipDamaged.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SynthesisError(f"{path}: clip is missing (clean the cache and build again)") from None
    except OSError as exc:
        raise SynthesisError(f"{path}: clip unreadable ({exc.strerror or exc})") from None
    if digest is not None and hashlib.sha256(raw).hexdigest() != digest:
        raise ClipDamaged(path)  # bit rot, or a change that kept the file's size and time
    plain = _plain_pcm(raw)
    if plain is not None:  # what the engines write: read in place, no copy
        samples, rate = plain
        if rate == RATE:
            return samples
        return _resampled(samples, rate)  # Kokoro's 24 kHz
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydub warns about ffmpeg at import; WAV needs none
        from pydub import AudioSegment

    try:
        # parsing bytes: pydub's WAV reader only, never its ffmpeg fallback
        seg = AudioSegment(data=raw)
    except Exception as exc:  # pydub raises CouldntDecodeError, struct and index errors
        raise SynthesisError(f"{path}: not a readable WAV clip ({exc})") from None
    if seg.channels != 1:
        seg = seg.set_channels(1)
    if seg.sample_width != 2:
        seg = seg.set_sample_width(2)
    samples = np.frombuffer(seg.raw_data, dtype="<i2")
    if seg.frame_rate != RATE:
        samples = _resampled(samples, seg.frame_rate)
    return samples


def _resampled(samples: np.ndarray, rate: int) -> np.ndarray:
    """int16 samples at `rate` as int16 at RATE (soxr's high quality: deterministic)."""
    import soxr

    return to_int16(soxr.resample(samples.astype(np.float32) / 32768.0, rate, RATE))


def _plain_pcm(raw: bytes) -> tuple[np.ndarray, int] | None:
    """The samples and rate of a canonical WAV (a PCM `fmt ` chunk, then `data`), mono
    16-bit; None for anything else, left to pydub."""
    if len(raw) < 44 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE" or raw[12:16] != b"fmt ":
        return None
    (fmt_size,) = struct.unpack_from("<I", raw, 16)
    if fmt_size < 16:
        return None
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", raw, 20)
    data = 20 + fmt_size + (fmt_size & 1)
    if (tag, channels, bits) != (1, 1, 16) or not rate or raw[data : data + 4] != b"data":
        return None
    (size,) = struct.unpack_from("<I", raw, data + 4)
    body = raw[data + 8 : data + 8 + size]
    if len(body) != size or size % 2:
        return None
    return np.frombuffer(body, dtype="<i2"), rate


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) as int16, rounded to nearest and clipped."""
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2")


def speech_bounds(x: np.ndarray, rate: int = RATE) -> tuple[int, int]:
    """Where a clip's sound starts and ends, leaving its engine-made silence out.

    espeak-ng pads each utterance with about 0.3 s of silence at the end; trimming it makes
    the pauses in voices.yaml the pauses the listener hears, and cue times exact. A little
    margin is kept so no consonant onset or decay is cut.
    """
    loud = (x > 33) | (x < -33)  # -60 dBFS
    first = int(loud.argmax()) if loud.size else 0
    if not loud.size or not loud[first]:
        return 0, len(x)
    last = len(x) - 1 - int(loud[::-1].argmax())
    start = max(0, first - rate * 5 // 1000)
    end = min(len(x), last + 1 + rate * 30 // 1000)
    return start, end


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    return 20.0 * math.log10(gain) if gain > 0 else SILENT


#: Samples of BS.1770's 100 ms hop at RATE (what a Gate at RATE gates on).
HOP = round(RATE * 0.1)


class Gate:
    """BS.1770-4 gating over K-weighted squared samples fed in pieces: 400 ms blocks with
    75 % overlap, absolute gate -70 LUFS, relative gate -10 LU.

    Separate from the filter so one K-weighting pass can feed several gates: a chapter's,
    and each voice's with the stretches where it speaks.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._hop = round(rate * 0.1)
        self._carry = np.zeros(0, dtype=np.float64)
        self._energies: list[np.ndarray] = []

    def feed_squares(self, sq: np.ndarray) -> None:
        """Add K-weighted samples, squared."""
        if sq.size == 0:
            return
        if self._carry.size:
            sq = np.concatenate((self._carry, sq))
        whole = sq.size // self._hop * self._hop
        if whole:
            self._energies.append(sq[:whole].reshape(-1, self._hop).sum(axis=1))
        self._carry = sq[whole:]

    def integrated(self) -> float:
        """Gated loudness in LUFS of everything fed so far; -inf when too short or silent."""
        if not self._energies:
            return SILENT
        return gated_loudness(np.concatenate(self._energies), self._hop)

    def hops(self) -> np.ndarray:
        """The energies of the whole hops fed so far (a last, partial one left out)."""
        return np.concatenate(self._energies) if self._energies else np.zeros(0)


def gated_loudness(hops: np.ndarray, hop: int) -> float:
    """BS.1770-4 gated loudness from the energies (sums of K-weighted squares) of
    consecutive 100 ms hops of `hop` samples; -inf when under one block or silent."""
    return gated_loudness_of([hops], hop)


def gated_loudness_of(stretches: Sequence[np.ndarray], hop: int) -> float:
    """Gated loudness of several stretches' hop energies together: each stretch's own
    400 ms blocks, all gated as one signal's (a chapter measured piece by piece: only the
    blocks across a cut, in a pause, are left out)."""
    found = [(h[:-3] + h[1:-2] + h[2:-1] + h[3:]) / (4 * hop) for h in stretches if h.size >= 4]
    if not found:
        return SILENT
    blocks = np.concatenate(found)
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10.0 * np.log10(blocks)
    gated = blocks[levels >= -70.0]
    if gated.size == 0:
        return SILENT
    relative = -0.691 + 10.0 * math.log10(float(gated.mean())) - 10.0
    kept = blocks[(levels > relative) & (levels > -70.0)]
    if kept.size == 0:
        return SILENT
    return -0.691 + 10.0 * math.log10(float(kept.mean()))


class LoudnessMeter(Gate):
    """Integrated loudness (ITU-R BS.1770-4) of a signal fed in chunks of any size.

    The K-weighting filters are pyloudnorm's (designed here the same way), run with carried
    state, so feeding a signal in pieces measures the same as feeding it whole. A voice's
    scattered clips can be measured as if concatenated by feeding them one after another.
    """

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self._b, self._a = k_weighting(rate)
        self._zi = np.zeros(len(self._a) - 1)
        self.samples = 0

    def weigh(self, x: np.ndarray) -> np.ndarray:
        """The next samples K-weighted and squared (the filter's state carries on)."""
        y, self._zi = lfilter(self._b, self._a, x, zi=self._zi)
        self.samples += x.size
        return np.square(y, out=y)

    def feed(self, x: np.ndarray) -> np.ndarray:
        """Add the next samples (float, full scale 1.0); returns them weighted and squared."""
        if x.size == 0:
            return np.zeros(0)
        sq = self.weigh(x)
        self.feed_squares(sq)
        return sq


def integrated_loudness(x: np.ndarray, rate: int) -> float:
    """Loudness of a whole signal in LUFS, in bounded memory."""
    meter = LoudnessMeter(rate)
    for start in range(0, len(x), 1 << 20):
        meter.feed(np.asarray(x[start : start + (1 << 20)], dtype=np.float64))
    return meter.integrated()


#: Input samples of context either side of an oversampled stretch: more than soxr's
#: filter reaches, so a stretch's peaks do not depend on where it was cut.
OVERSAMPLE_PAD = 128


def block_peaks(
    x: np.ndarray, block: int, factor: int, threshold: float, lo: int = 0, hi: int | None = None
) -> np.ndarray:
    """Per block of `block` samples of x[lo:hi], its true peak (|x| oversampled `factor`x).

    Oversampling everything would cost a good part of what encoding does, and true peaks
    exceed sample peaks by well under the margin callers leave below `threshold`: so only
    runs of blocks whose sample peak reaches `threshold` are oversampled (by soxr, with
    context from x on both sides, zeros beyond its ends); elsewhere the sample peak stands.
    A last partial block is measured as far as it goes.
    """
    import soxr

    hi = len(x) if hi is None else hi
    ax = np.abs(np.asarray(x[lo:hi], dtype=np.float32))
    n = ax.size
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    nb = -(-n // block)
    if nb * block != n:
        ax = np.pad(ax, (0, nb * block - n))
    peaks = ax.reshape(nb, block).max(axis=1)
    hot = np.flatnonzero(peaks > threshold)
    if hot.size == 0:
        return peaks
    # runs of hot blocks, bridging short gaps: soxr's cost per call outweighs oversampling
    # a few quiet blocks along
    breaks = np.flatnonzero(np.diff(hot) > max(1, 4096 // block))
    firsts = np.concatenate(([hot[0]], hot[breaks + 1]))
    lasts = np.concatenate((hot[breaks], [hot[-1]]))
    pad = OVERSAMPLE_PAD
    for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
        a, e = lo + first * block, min(hi, lo + (last + 1) * block)
        c0, c1 = max(0, a - pad), min(len(x), e + pad)
        piece = np.asarray(x[c0:c1], dtype=np.float32)
        if c0 > a - pad or c1 < e + pad:  # the signal ends: silence beyond it
            piece = np.pad(piece, (pad - (a - c0), pad - (c1 - e)))
        up = np.abs(soxr.resample(piece, 1000, 1000 * factor))
        up = up[pad * factor : (pad + e - a) * factor]
        width = (last - first + 1) * block * factor
        if up.size < width:
            up = np.pad(up, (0, width - up.size))
        run = up.reshape(last - first + 1, block * factor).max(axis=1)
        peaks[first : last + 1] = np.maximum(peaks[first : last + 1], run)
    return peaks


def true_peak(x: np.ndarray, rate: int) -> float:
    """True peak in dBTP per BS.1770-4: 4x oversampling at 44.1 kHz (8x at 22.05 kHz)."""
    if len(x) == 0:
        return SILENT
    factor = 4 if rate >= 44_100 else 8
    return gain_to_db(float(block_peaks(x, 1024, factor, 0.0).max()))


def _window_min(x: np.ndarray, before: int, ahead: int) -> np.ndarray:
    """min(x[k - before : k + ahead + 1]) for every k, the ends held (edge values repeated)."""
    padded = np.concatenate((np.full(before, x[0]), x, np.full(ahead, x[-1])))
    return np.lib.stride_tricks.sliding_window_view(padded, before + ahead + 1).min(axis=1)


def _causal_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Mean of x over [n - width + 1, n], the start held at x[0]."""
    if width <= 1:
        return x
    c = np.cumsum(np.concatenate((np.full(width, x[0], dtype=np.float64), x)))
    return (c[width:] - c[:-width]) / width


class Limiter:
    """A look-ahead true-peak limiter fast enough to shave single glottal pulses.

    espeak-ng's speech has a peak-to-loudness ratio of 18-20 dB; -16 LUFS under a -2 dBTP
    ceiling allows 14. A slow limiter (tens of ms) can only turn whole syllables down, so
    loudness never reaches the target without 10+ dB of crushing (measured: +13 dB of gain
    for +2 LU). Gain that moves within one pitch period (2 ms ramps and hold) takes the
    pulses' tips off instead: +2 dB of gain reaches the target.

    The gain each stretch needs (ceiling / true-peak envelope, at most 1) is held for
    `hold_ms` and eased in and out by two moving averages (`attack_ms`, `smooth_ms`), each
    window looking ahead far enough that the smoothed gain is never above what any sample
    needs: the ceiling holds on the envelope, and the gain never jumps (no clicks). The
    curve is computed on 32-sample blocks and interpolated, which keeps the limiter a small
    fraction of the encoder's cost. `process(read, start, stop, total)` limits any range of
    a longer signal, so a chapter is limited chunk by chunk, the result independent of
    the chunking but for float rounding (soxr's last bit varies with context); a build's
    chunking is fixed, so its bytes are too.
    """

    BLOCK = 32

    def __init__(
        self,
        rate: int,
        ceiling_db: float,
        attack_ms: float = 2.0,
        smooth_ms: float = 2.0,
        hold_ms: float = 2.0,
    ) -> None:
        d = self.BLOCK
        self.rate = rate
        self.ceiling = db_to_gain(ceiling_db)
        # 4x at 22.05 kHz finds speech peaks within about 0.15 dB of BS.1770's 4x at 44.1
        self.factor = 4
        self.a1 = max(1, math.ceil(rate * attack_ms / 1000 / d))
        self.a2 = max(1, math.ceil(rate * smooth_ms / 1000 / d))
        self.hold = max(0, math.ceil(rate * hold_ms / 1000 / d))
        # blocks of context each side, then samples; a multiple of BLOCK keeps the block
        # grid aligned to the whole signal whatever the chunk
        self.margin = (self.hold + self.a1 + self.a2 + 4) * d + OVERSAMPLE_PAD // d * d + d
        self.reduced = 0  # samples whose gain was lowered, for reports
        self.deepest = 1.0  # smallest gain applied
        self._ramp = np.arange(d, dtype=np.float64) / d

    def gain_curve(self, x: np.ndarray) -> np.ndarray | None:
        """The smoothed gain at the start of every block of x (len(x) a multiple of BLOCK),
        one knot more at the end; None where no block needs any."""
        d = self.BLOCK
        # -3 dB: an inter-sample peak that far over its neighbours needs most of its energy
        # above 5.5 kHz, which espeak-ng's loudest moments (voiced pulses) never have
        peaks = block_peaks(x, d, self.factor, self.ceiling * 0.71).astype(np.float64)
        need = np.minimum(1.0, self.ceiling / np.maximum(peaks, 1e-12))
        if float(need.min()) >= 1.0:
            return None
        # min over blocks [k - hold - 1, k + a1 + a2 + 1]: with the two causal means below,
        # every knot k and k + 1 is <= what block k needs, so the straight line between
        # them is, for every sample of the block
        before, ahead = self.hold + 1, self.a1 + self.a2 + 1
        held = _window_min(need, before, ahead)
        g = np.minimum(_causal_mean(_causal_mean(held, self.a1), self.a2), need)
        return np.append(g, g[-1])

    def process(
        self, read: Callable[[int, int], np.ndarray], start: int, stop: int, total: int
    ) -> np.ndarray:
        """Limited samples [start, stop) of a signal of length `total` read through `read`.

        `start` must be a multiple of BLOCK (chunks from `chunks()` are).
        """
        d = self.BLOCK
        lo = max(0, start - self.margin)
        end = stop + self.margin
        end += (-(end - start)) % d  # whole blocks
        hi = min(total, end)
        ext = read(lo, hi)
        # zero-pad beyond the signal's ends so the curve near them is computed the same way
        before, after = self.margin - (start - lo), end - hi
        if before or after:
            ext = np.pad(ext, (before, after))
        knots = self.gain_curve(ext)
        out = ext[self.margin : self.margin + stop - start]
        if knots is None:
            return out
        first = self.margin // d
        g = knots[first : first + -(-(stop - start) // d) + 1]
        low = float(g.min())
        if low >= 1.0:
            return out
        self.deepest = min(self.deepest, low)
        out = np.array(out, dtype=np.float32)  # `read` may have handed out a view
        # straight lines between knots, only over the runs of blocks that need gain
        active = np.flatnonzero(np.minimum(g[:-1], g[1:]) < 1.0)
        breaks = np.flatnonzero(np.diff(active) > 1)
        firsts = np.concatenate(([active[0]], active[breaks + 1]))
        lasts = np.concatenate((active[breaks], [active[-1]]))
        ramp = self._ramp
        for b0, b1 in zip(firsts.tolist(), lasts.tolist(), strict=True):
            k = b1 - b0 + 1
            left, step = g[b0 : b1 + 1], g[b0 + 1 : b1 + 2] - g[b0 : b1 + 1]
            curve = (left[:, None] + step[:, None] * ramp[None, :]).astype(np.float32)
            a, e = b0 * d, min(len(out), (b1 + 1) * d)
            out[a:e] *= curve.reshape(k * d)[: e - a]
            self.reduced += e - a
        return out


def room_tone(length: int, level_db: float = -66.0, seed: int = 1770) -> np.ndarray:
    """Very quiet, soft (red-tinted) noise that loops without a seam: a recording room's floor.

    Digital silence between sentences sounds like a dropout on headphones; a constant floor
    at -66 dBFS RMS (ACX asks for a floor under -60 dB) sounds like a quiet room. The noise
    comes from NumPy's legacy RandomState, whose stream is frozen across NumPy versions, so
    the bytes of every build are the same.
    """
    white = np.random.RandomState(seed).standard_normal(length * 2)
    # one-pole low-pass over two copies: the second is the steady state, and it loops cleanly
    red = lfilter([1.0], [1.0, -0.9], np.concatenate((white[:length], white[:length])))[length:]
    red -= red.mean()
    red *= db_to_gain(level_db) / math.sqrt(float(np.mean(red * red)))
    return red.astype(np.float32)


def add_looped(x: np.ndarray, loop: np.ndarray, start: int) -> None:
    """x += loop[(start + i) % len(loop)] for every i: a looped signal laid under x."""
    pos, size = 0, loop.size
    while pos < x.size:
        at = (start + pos) % size
        n = min(x.size - pos, size - at)
        x[pos : pos + n] += loop[at : at + n]
        pos += n


def chunks(total: int, size: int = 1 << 19) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges covering 0..total."""
    for start in range(0, total, size):
        yield start, min(total, start + size)


def join_clips(clips: Sequence[Clip], pause_ms: int) -> tuple[bytes, int]:
    """Clips trimmed to their speech and joined at RATE with `pause_ms` of silence between
    them, as a chapter lays out the pieces of one segment: 16-bit PCM, and RATE."""
    gap = np.zeros(RATE * pause_ms // 1000, dtype="<i2")
    joined: list[np.ndarray] = []
    for i, clip in enumerate(clips):
        samples = read_clip(clip.path, clip.digest)
        a, b = speech_bounds(samples)
        joined.extend([gap, samples[a:b]] if i else [samples[a:b]])
    return np.concatenate(joined).astype("<i2").tobytes(), RATE
