"""Assembly: a cast chapter and its verified clips become a published episode.

For each chapter: the clips are trimmed of the engine's silence and laid out on a timeline
with the pauses from voices.yaml (sentence, paragraph, heading, quote, head and tail room
tone); a fast look-ahead limiter keeps true peaks under the ceiling, and each voice's gain
is set so that, limited, every voice and the chapter are at the loudness target; then the
chapter is resampled to 44.1 kHz, encoded to CBR MP3 (its decoded true peak checked),
tagged (ID3v2.3 with CHAP/CTOC chapter marks and the cover), and written with a WebVTT
transcript and Podcasting 2.0 JSON chapters beside it.

Every output is deterministic (same inputs, same bytes) and written atomically. A digest of
all of a chapter's inputs is kept in out_dir/.state/, so a chapter whose inputs did not
change is neither encoded nor rewritten on the next build.

Where the time goes (the two seeds, 11.6 min of audio, 2 cores): LAME is two thirds of
assembly's CPU and cannot be shared out within one stream, so `assemble_book` cuts each
chapter at pauses into pieces of about 45 s, encodes them on every core and joins their MP3
streams into one (see `_Piece` for how the join stays exact). A chapter's plan (clips laid
out into a scratch file, voices matched) runs on one process while others encode pieces.
Measured per minute of audio: LAME 460 ms; decoding the MP3 to check its true peak 32 ms,
the limiter 27 ms, resampling 12 ms, the phase rotator 10 ms, K-weighting 9 ms; and per
chapter, matching the voices on limited samples, 0.15-0.45 s (more voices take more
rounds). Memory is bounded by the piece, not the chapter or the book.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import functools
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import audio as sig
from .config import AudioConfig, PausesConfig
from .errors import OutputError, SynthesisError
from .files import temp_path, write_atomic
from .layout import STATE_DIR, chapter_files, chapter_stem
from .model import CastChapter, CastSegment, Clip, Episode, Show

#: Bump when a change here changes output bytes: every chapter is then assembled again.
FORMAT_VERSION = 5

#: How far under the configured true-peak ceiling the limiter aims, per bitrate, for what
#: MP3 coding adds to peaks. Measured on limited espeak-ng speech, decoded: up to 1.8 dB at
#: 32-40 kbps; at 64 kbps 1.0-1.4 dB on most chapters of a novel and over 1.5 on its
#: longest (52 min); 0.65 at 80, 0.2 at 96 and above. A chapter that still peaks over is
#: encoded again with a lower ceiling: these keep that rare, as it doubles its cost.
CODEC_HEADROOM_DB = {32: 3.0, 40: 3.0, 48: 2.5, 56: 2.5, 64: 2.0, 80: 1.6}
CODEC_HEADROOM_DEFAULT_DB = 1.2
#: Accepted distance from the loudness target before the chapter is encoded again.
LOUDNESS_TOLERANCE = 0.4
#: Per voice, at most this much of its speech is measured (evenly spread over its clips).
VOICE_SAMPLE_SECONDS = 240.0
#: The chapter's gain is found on at most this much of it (evenly spread chunks).
CHAPTER_SAMPLE_SECONDS = 120.0
#: And at least this much of each voice's speech (or all of it) is among those chunks.
VOICE_CHECK_SECONDS = 30.0
#: The chunks those samples are made of (samples at RATE, a multiple of the limiter's block):
#: small, so a voice heard for a few seconds brings little else with it.
SAMPLE_CHUNK = 1 << 15
#: How much a voice's limited loudness first moves per dB of gain: measured on espeak-ng
#: voices pushed to -16 LUFS under a -3 dBTP ceiling, 0.45-0.55 (the limiter takes half).
#: The gain search starts from it and measures its own as it goes.
INITIAL_SLOPE = 0.45
#: Voices are gain-matched within this range; beyond it a clip is broken, not quiet.
MAX_VOICE_GAIN_DB = 30.0
#: LAME's quality setting (2: high; the floor in benchmarks uses the same).
LAME_QUALITY = 2

#: Chapters are encoded in pieces of about this many seconds, spread over the processes.
PIECE_SECONDS = 45.0
#: Context either side of a piece for its limiter, loudness filter and resampler (samples
#: at RATE, a multiple of the limiter's block): their responses have died out well before.
PIECE_CONTEXT = 4096
#: Timeline samples per MP3 frame (1152 samples at OUT_RATE).
FRAME_SPAN = sig.SAMPLES_PER_FRAME * sig.RATE // sig.OUT_RATE
#: Room tone kept between speech and a cut between pieces, milliseconds.
CUT_GUARD_MS = 20

#: Full scale of the int16 timeline: half of int16's, so the phase rotator (which can
#: raise a clip's peak a little) never clips.
TIMELINE_SCALE = 16384.0


def _allpass(fc: float, q: float) -> np.ndarray:
    """A second-order all-pass section at `fc` Hz (RBJ cookbook), as an SOS row."""
    w = 2 * math.pi * fc / sig.RATE
    alpha = math.sin(w) / (2 * q)
    b = [1 - alpha, -2 * math.cos(w), 1 + alpha]
    a = [1 + alpha, -2 * math.cos(w), 1 - alpha]
    return np.array([*(c / a[0] for c in b), *(c / a[0] for c in a)])


#: A phase rotator: all-pass sections that leave every frequency's level alone but smear
#: the lopsided glottal pulses of synthetic speech in time, taking about 1 dB off its
#: peaks for nothing (measured on espeak-ng voices: the same loudness, 10-20 % fewer
#: samples limited). Broadcast processors do the same to voices.
PHASE_ROTATOR = np.array([_allpass(fc, 0.5) for fc in (100.0, 200.0, 400.0, 800.0)])


def _sos2tf(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Second-order sections as one (b, a): scipy.signal.sos2tf, which is a product of
    polynomials, without importing scipy.signal."""
    b, a = np.ones(1), np.ones(1)
    for row in sos:
        b, a = np.polymul(b, row[:3]), np.polymul(a, row[3:])
    return b, a


#: The same as one eighth-order filter: 2.4x faster than the sections, within 1e-5 of them
_ROTATOR_B, _ROTATOR_A = _sos2tf(PHASE_ROTATOR)


@dataclass(frozen=True)
class AssembledEpisode(Episode):
    """An Episode plus what this build did for it and what was measured (for build.json).

    The fields have defaults so it is used wherever an Episode is.
    """

    encoded: bool = True  # False: the files from an earlier build were current and kept
    encodes: int = 0  # MP3 encodings this build made of it (2+: a check sent it back)
    loudness: float | None = None  # LUFS integrated, measured on the encoded PCM
    true_peak: float | None = None  # dBTP, 4x oversampled, of the MP3 as players decode it
    # dB applied and LUFS heard, per voice label (not hashed: an episode stays hashable)
    voice_gains: dict[str, float] = field(default_factory=dict, hash=False)
    voice_loudness: dict[str, float] = field(default_factory=dict, hash=False)


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Cue:
    part: int
    line: int
    start: int  # samples at sig.RATE, speech only
    end: int


@dataclass(frozen=True)
class _Marker:
    start: int  # samples at sig.RATE; 0 for the opening
    title: str


@dataclass
class _Layout:
    total: int  # samples of the timeline (int16 at sig.RATE, full scale TIMELINE_SCALE,
    #             no gains), which _layout wrote to a file
    cues: list[_Cue]
    regions: list[tuple[int, int, str]]  # (start, end, voice name) per part, for gains
    voice_audio: dict[str, list[np.ndarray]]  # per voice, the clips measured for loudness
    markers: list[_Marker]


def _ms(ms: int) -> int:
    return sig.RATE * ms // 1000


def _quote_block(parts: Sequence[CastSegment], i: int) -> bool:
    """True when part i belongs to a quote block: the quote itself or its announcement."""
    part = parts[i]
    if part.kind == "quote":
        return True
    return part.kind == "announcement" and part.source is not None


def _same_segment(a: CastSegment, b: CastSegment) -> bool:
    """Pieces of one paragraph split at dialogue: only a sentence pause between them."""
    return a.segment is not None and b.segment is not None and a.segment.id == b.segment.id


def _gap(parts: Sequence[CastSegment], i: int, pauses: PausesConfig) -> int:
    """Milliseconds of silence before part i (i > 0)."""
    prev, cur = parts[i - 1], parts[i]
    if _same_segment(prev, cur):
        return pauses.sentence
    prev_q, cur_q = _quote_block(parts, i - 1), _quote_block(parts, i)
    if prev_q and cur_q and cur.kind != "announcement":
        # announcement -> its quote, or one quote paragraph -> the next of the same source
        same = prev.kind == "announcement" or prev.source == cur.source
        if same:
            return pauses.paragraph
    gap = pauses.paragraph
    if prev.kind == "heading" or cur.kind == "heading":
        gap = max(gap, pauses.heading)
    if prev.kind == "announcement" and prev.source is None:  # after "Chapter 1. Title."
        gap = max(gap, pauses.heading)
    if prev_q or cur_q:
        gap = max(gap, pauses.quote)
    return gap


def _markers(cast: CastChapter, cues: list[_Cue]) -> list[_Marker]:
    """Chapter marks: the opening, each heading section and each quote block.

    When narration resumes after a quote block, a mark titled like the section it belongs
    to starts there, so a listener skipping forward past a quote lands on the narration.
    """
    parts = cast.parts
    first_cue: dict[int, int] = {}
    for cue in cues:
        first_cue.setdefault(cue.part, cue.start)
    title = cast.chapter.title.strip() or cast.chapter.id
    marks = [_Marker(0, title)]
    section = title
    in_quote = False
    quote_source = None
    content_seen = False

    def add(start: int, text: str) -> None:
        text = " ".join(text.split()) or "Untitled"
        if start <= marks[-1].start:
            marks[-1] = _Marker(marks[-1].start, text)
        else:
            marks.append(_Marker(start, text))

    for i, part in enumerate(parts):
        if i not in first_cue:
            continue
        start = first_cue[i]
        if part.kind == "announcement":
            if part.source is not None:  # "From Victor Serge, ..." opens a quote block
                add(start, part.source.label() or "Quotation")
                in_quote, quote_source = True, part.source
                content_seen = True
            continue
        if part.kind == "quote":
            prev = parts[i - 1] if i else None
            announced = prev is not None and prev.kind == "announcement" and prev.source
            if not announced and not (in_quote and part.source == quote_source):
                label = part.source.label() if part.source else ""
                add(start, label or "Quotation")
            in_quote, quote_source = True, part.source
            content_seen = True
            continue
        if part.kind == "heading":
            text = " ".join(line.text for line in part.lines)
            section = " ".join(text.split()) or section
            if content_seen or section.casefold() != title.casefold():
                add(start, section)
            in_quote = False
            content_seen = True
            continue
        if in_quote:
            add(start, section)
            in_quote = False
        content_seen = True
    return marks


def _layout(
    cast: CastChapter, clips: Sequence[Sequence[Clip]], pauses: PausesConfig, out: BinaryIO
) -> _Layout:
    """Read and trim every clip and lay it out with the pauses on one int16 timeline,
    written to `out` as it goes: a chapter's audio is never all in memory."""
    parts = cast.parts
    if len(clips) != len(parts):
        raise SynthesisError(
            f"chapter {cast.chapter.id}: {len(clips)} clip groups for {len(parts)} segments"
        )
    for part, group in zip(parts, clips, strict=True):
        if len(group) != len(part.lines):
            raise SynthesisError(
                f"segment {part.id}: {len(group)} clips for {len(part.lines)} lines"
            )

    # which clips to measure per voice: evenly spread, at most VOICE_SAMPLE_SECONDS each
    per_voice: dict[str, list[tuple[int, int]]] = {}
    for i, part in enumerate(parts):
        per_voice.setdefault(part.voice.name, []).extend((i, j) for j in range(len(part.lines)))
    measured: set[tuple[int, int]] = set()
    for keys in per_voice.values():
        seconds = sum(clips[i][j].seconds for i, j in keys)
        stride = max(1, math.ceil(seconds / VOICE_SAMPLE_SECONDS))
        measured.update(keys[::stride])

    voice_audio: dict[str, list[np.ndarray]] = {}
    cues: list[_Cue] = []
    regions: list[tuple[int, int, str]] = []
    written = 0

    def silence_to(pos: int) -> None:
        nonlocal written
        while written < pos:
            n = min(pos - written, _ZEROS.size)
            out.write(_ZEROS[:n].tobytes())
            written += n

    pos = _ms(pauses.head)
    for i, (part, group) in enumerate(zip(parts, clips, strict=True)):
        if i:
            pos += _ms(_gap(parts, i, pauses))
        region_start = pos
        for j, clip in enumerate(group):
            if j:
                pos += _ms(pauses.sentence)
            samples = sig.read_clip(clip.path, clip.digest)
            if samples.size == 0:
                raise SynthesisError(f"{clip.path}: empty clip for segment {part.id}")
            a, b = sig.speech_bounds(samples)
            rotated = sig.lfilter(_ROTATOR_B, _ROTATOR_A, samples[a:b])
            scaled = np.rint(rotated * (TIMELINE_SCALE / 32768.0))
            speech = np.clip(scaled, -32768, 32767).astype("<i2")
            silence_to(pos)
            out.write(speech.tobytes())
            written += speech.size
            cues.append(_Cue(i, j, pos, pos + speech.size))
            if (i, j) in measured:
                voice_audio.setdefault(part.voice.name, []).append(speech)
            pos += speech.size
        regions.append((region_start, pos, part.voice.name))
    pos += _ms(pauses.tail)
    silence_to(pos)
    return _Layout(pos, cues, regions, voice_audio, _markers(cast, cues))


#: Silence to write between clips.
_ZEROS = np.zeros(1 << 16, dtype="<i2")


# --------------------------------------------------------------------------- loudness


def _voice_loudness(chunks: list[np.ndarray]) -> float:
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


def _voice_offsets(
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


class _Source:
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
        self.before, self.voice_samples = _voice_offsets(self.regions)
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


def _sample_chunks(source: _Source) -> list[tuple[int, int]]:
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


def _balance(source: _Source, target: float, ceiling_db: float) -> None:
    """Set the voices' gains so that, after limiting, every voice is as loud as the others
    and the chapter as a whole is at the target loudness.

    Voices are first matched on their clips; but the limiter takes more from a peaky voice
    than from a smooth one, and takes more the louder it is pushed, so the gains are
    finished on limited audio: a few rounds on sample chunks (limited exactly as in the
    final pass), each moving every voice towards the level that puts the chapter at the
    target, by a secant step on its own loudness-versus-gain curve. It starts from the
    gains it is given, so a second call (a lower ceiling) converges in a round or two.
    """
    total = len(source)
    sample = _sample_chunks(source)
    names = list(source.voice_db)

    def measure(voice_db: dict[str, float]) -> tuple[float, dict[str, float]]:
        source.set_gains(voice_db, 0.0)
        limiter = sig.Limiter(sig.RATE, ceiling_db)
        meter = sig.LoudnessMeter(sig.RATE)
        voices = {name: sig.Gate(sig.RATE) for name in names}
        for a, b in sample:
            sq = meter.feed(limiter.process(source.read, a, b, total))
            source.feed_voices(voices, sq, a)
        return meter.integrated(), {n: m.integrated() for n, m in voices.items()}

    gains = {n: source.voice_db[n] + source.chapter_db for n in names}
    level, levels = measure(gains)
    slopes = dict.fromkeys(names, INITIAL_SLOPE)
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
        new_level, new_levels = measure(new)
        for n in heard:
            dv, dg = new_levels[n] - levels[n], new[n] - gains[n]
            if math.isfinite(dv) and abs(dg) > 0.05:
                slopes[n] = min(1.0, max(0.2, dv / dg))
        gains, level, levels = new, new_level, new_levels
    source.set_gains(gains, 0.0)


# --------------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class _Piece:
    """A stretch of a chapter encoded on its own: the MP3 streams of a chapter's pieces,
    joined, are its MP3.

    LAME puts 576 samples of delay before a stream and pads its end with 576 to 1727 more
    (measured: frames = ceil(samples / 1152) + 1). A piece that encodes a whole number of
    frames' worth of samples ends with exactly 576 of padding, and the next piece's delay
    adds 576: one frame (FRAME_SPAN timeline samples) that the join inserts. So each piece
    starts on a frame boundary, and the frame of room tone before that start is left out:
    every later sample is heard exactly where one continuous encoding would put it, and
    the pause at the cut lasts as configured (its middle 26 ms are LAME's near-silence).
    """

    start: int  # timeline samples: the first encoded (a multiple of FRAME_SPAN)
    stop: int  # the end of what is encoded (start + a multiple of FRAME_SPAN, but the last)
    end: int  # the end of what it measures: the next piece's start (stop + FRAME_SPAN)


def _pieces(cues: Sequence[_Cue], total: int) -> tuple[_Piece, ...]:
    """Cut a chapter into pieces of about PIECE_SECONDS, at pauses only.

    A cut needs a pause with room for the frame left out and a guard on either side; near
    each ideal cut (within a quarter of a piece) the longest such pause is taken, a heading
    or paragraph break before a sentence's. Cuts depend on the chapter alone, never on the
    number of processes, so the bytes do not either.
    """
    span = FRAME_SPAN
    target = PIECE_SECONDS * sig.RATE
    count = round(total / target)
    if count < 2:
        return (_Piece(0, total, total),)
    guard = _ms(CUT_GUARD_MS)
    places: list[tuple[int, int]] = []  # (pause length, cut)
    for a, b in itertools.pairwise(cues):
        lo = -(-(a.end + span + guard) // span) * span
        hi = (b.start - guard) // span * span
        if lo <= hi:
            middle = (a.end + b.start + span) // 2 // span * span  # the left-out frame centred
            places.append((b.start - a.end, min(max(middle, lo), hi)))
    cuts: list[int] = []
    least = target / 4
    for k in range(1, count):
        ideal = total * k / count
        last = cuts[-1] if cuts else 0
        usable = [(g, c) for g, c in places if last + least <= c <= total - least]
        near = [(g, c) for g, c in usable if abs(c - ideal) <= least]
        if near:
            cuts.append(max(near, key=lambda p: (p[0], -abs(p[1] - ideal)))[1])
        elif usable:
            cuts.append(min(usable, key=lambda p: abs(p[1] - ideal))[1])
    starts = [0, *cuts]
    pieces = [_Piece(s, c - span, c) for s, c in zip(starts, cuts, strict=False)]
    pieces.append(_Piece(starts[-1], total, total))
    return tuple(pieces)


def _scratch(out_dir: Path, stem: str) -> Path:
    """A chapter's timeline file while it is assembled; its pieces' MP3s go beside it. Named
    like every temporary file of a build (.NAME.tmpPID), so a killed build's are removed."""
    return out_dir / f".{stem}.timeline.tmp{os.getpid()}"


def _piece_path(timeline: Path, index: int) -> Path:
    return timeline.with_name(timeline.name.replace(".timeline.tmp", f".piece{index}.tmp", 1))


@dataclass(frozen=True)
class _Mix:
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
        return _piece_path(self.timeline, index)

    def source(self) -> _Source:
        try:
            timeline = np.memmap(self.timeline, dtype=np.int16, mode="r", shape=(self.total,))
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.final}: chapter audio unreadable ({exc})") from None
        return _Source(timeline, self.regions, self.voice_db, self.chapter_db)


@dataclass(frozen=True)
class _Encoded:
    """One piece, encoded and measured."""

    index: int
    mp3: Path  # the piece's MP3 stream (no tags)
    frames: int
    hops: sig.HopSums  # loudness of [start, end), on the chapter's hop grid
    voices: dict[str, sig.HopSums]  # each voice's, on its own grid
    true_peak: float  # dBTP of the piece's MP3 as decoded


@functools.lru_cache(maxsize=1)
def _tone() -> np.ndarray:
    return sig.room_tone(1 << 17)


def _encode_piece(job: tuple[_Mix, int, _Piece]) -> _Encoded:
    """Limit, add room tone, resample, encode and measure one piece (in any process).

    Its limiter, K-weighting filter and resampler start PIECE_CONTEXT samples before it and
    run on as far after, so what they give inside the piece does not depend on the cut.
    """
    import soxr

    mix, index, piece = job
    source = mix.source()
    total = mix.total
    lo = max(0, piece.start - PIECE_CONTEXT)
    hi = min(total, piece.end + PIECE_CONTEXT)
    limiter = sig.Limiter(sig.RATE, mix.ceiling_db)
    weigh = sig.LoudnessMeter(sig.RATE).weigh
    hops = sig.HopSums(sig.RATE)
    voices = {name: sig.HopSums(sig.RATE) for name in mix.voice_db}
    tone = _tone()
    resampler = soxr.ResampleStream(sig.RATE, sig.OUT_RATE, 1, dtype="float32")
    ratio = sig.OUT_RATE // sig.RATE
    keep_lo, keep_hi = ratio * (piece.start - lo), ratio * (piece.stop - lo)
    path = mix.piece_path(index)
    made = 0  # resampled samples so far, from lo
    try:
        with open(path, "wb") as out:
            mp3 = sig.Mp3Stream(out, mix.bitrate, LAME_QUALITY)
            spans = list(sig.chunks(hi - lo))
            for k, (a, b) in enumerate(spans):
                a, b = a + lo, b + lo
                x = limiter.process(source.read, a, b, total)
                sig.add_looped(x, tone, a)
                sq = weigh(x)
                m0, m1 = max(a, piece.start), min(b, piece.end)
                if m1 > m0:
                    hops.add(sq[m0 - a : m1 - a], m0)
                    source.add_voice_hops(voices, sq[m0 - a : m1 - a], m0)
                y = resampler.resample_chunk(x, last=k == len(spans) - 1)
                y0, y1 = max(made, keep_lo), min(made + y.size, keep_hi)
                if y1 > y0:
                    mp3.write(y[y0 - made : y1 - made])
                made += y.size
            mp3.close()
        frames = sig.mp3_frames(path.read_bytes())
        peak = sig.decoded_true_peak(path, mix.true_peak)
    except (OSError, ValueError) as exc:
        raise OutputError(f"{mix.final}: {getattr(exc, 'strerror', None) or exc}") from None
    return _Encoded(index, path, frames, hops, voices, peak)


@dataclass(frozen=True)
class _PlanJob:
    cast: CastChapter
    clips: Sequence[Sequence[Clip]]
    pauses: PausesConfig
    audio: AudioConfig
    timeline: Path
    final: Path


@dataclass(frozen=True)
class _Plan:
    """A chapter laid out and its gains set: what its pieces are encoded from."""

    total: int
    cues: list[_Cue]
    markers: list[_Marker]
    regions: tuple[tuple[int, int, str], ...]
    voice_db: dict[str, float]
    headroom: float
    pieces: tuple[_Piece, ...]


def _plan_chapter(job: _PlanJob) -> _Plan:
    """Lay out the clips into the timeline's file, match the voices, find the gains."""
    try:
        with open(job.timeline, "wb") as out:
            layout = _layout(job.cast, job.clips, job.pauses, out)
    except OSError as exc:
        raise OutputError(f"{job.final}: {exc.strerror or exc}") from None
    if not layout.cues:
        raise SynthesisError(f"chapter {job.cast.chapter.id}: nothing to read aloud")
    target = job.audio.loudness
    voice_db: dict[str, float] = {}
    for name in {p.voice.name: None for p in job.cast.parts}:
        level = _voice_loudness(layout.voice_audio.get(name, []))
        db = 0.0 if not math.isfinite(level) else target - level
        voice_db[name] = max(-MAX_VOICE_GAIN_DB, min(MAX_VOICE_GAIN_DB, db))
    layout.voice_audio.clear()
    headroom = CODEC_HEADROOM_DB.get(job.audio.bitrate, CODEC_HEADROOM_DEFAULT_DB)
    mix = _Mix(
        timeline=job.timeline,
        total=layout.total,
        regions=tuple(layout.regions),
        voice_db=voice_db,
        chapter_db=0.0,
        ceiling_db=job.audio.true_peak - headroom,
        true_peak=job.audio.true_peak,
        bitrate=job.audio.bitrate,
        final=job.final,
    )
    return _Plan(
        total=layout.total,
        cues=layout.cues,
        markers=layout.markers,
        regions=mix.regions,
        voice_db=_rebalance((mix, target)),
        headroom=headroom,
        pieces=_pieces(layout.cues, layout.total),
    )


def _rebalance(job: tuple[_Mix, float]) -> dict[str, float]:
    """The voices' gains matched on audio limited at the mix's ceiling: from the clips'
    levels when planned, again under a lower ceiling when a decoded peak came out high."""
    mix, target = job
    source = mix.source()
    _balance(source, target, mix.ceiling_db)
    return source.voice_db


# --------------------------------------------------------------------------- sidecars


@dataclass(frozen=True)
class _Timing:
    """Where a timeline sample is heard in the joined MP3, in seconds.

    Each piece's samples come after LAME's and the decoder's delay (ENCODER_DELAY), plus
    its shift: what the frames of the pieces before it hold beyond their share of the
    timeline (0 when every piece came out as long as expected, as it does).
    """

    starts: tuple[int, ...]  # each piece's first timeline sample
    shifts: tuple[int, ...]  # samples at OUT_RATE

    def seconds(self, sample: int) -> float:
        k = max(0, bisect.bisect_right(self.starts, sample) - 1)
        return sample / sig.RATE + (sig.ENCODER_DELAY + self.shifts[k]) / sig.OUT_RATE

    def duration(self, total: int) -> float:
        """The end of the last sample: the MP3's length as heard."""
        heard = sig.OUT_RATE // sig.RATE * total + sig.ENCODER_DELAY + self.shifts[-1]
        return heard / sig.OUT_RATE


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(cast: CastChapter, cues: list[_Cue], timing: _Timing, duration: float) -> str:
    """One cue per utterance, naming its voice. The last cue runs to the end of the audio,
    over the tail's room tone, so the transcript covers the whole file."""
    out = ["WEBVTT", ""]
    for k, cue in enumerate(cues):
        part = cast.parts[cue.part]
        start = timing.seconds(cue.start)
        end = duration if k == len(cues) - 1 else timing.seconds(cue.end)
        ident = re.sub(r"\s+", "-", f"{part.id}.{cue.line}").replace("-->", "--")
        out.append(ident)
        out.append(f"{_vtt_time(start)} --> {_vtt_time(end)}")
        label = _vtt_escape(part.voice.label)
        out.append(f"<v {label}>{_vtt_escape(part.lines[cue.line].text)}")
        out.append("")
    return "\n".join(out)


def _chapters_json(marks: list[tuple[float, str]]) -> str:
    data = {
        "version": "1.2.0",
        "chapters": [{"startTime": round(t, 3), "title": title} for t, title in marks],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _description(cast: CastChapter) -> str:
    """The first lines a listener hears after the announcement, and the sources quoted."""
    opening: list[str] = []
    length = 0
    for part in cast.parts:
        if part.kind in ("announcement", "heading"):
            continue
        for line in part.lines:
            if length >= 280:
                break
            opening.append(line.text.strip())
            length += len(line.text)
        if length >= 280:
            break
    text = " ".join(opening)
    if len(text) > 400:
        text = text[:399].rsplit(" ", 1)[0] + "…"
    sources: list[str] = []
    for part in cast.parts:
        if part.kind == "quote" and part.source is not None:
            label = part.source.label()
            if label and label not in sources:
                sources.append(label)
    pieces = [text] if text else []
    if sources:
        pieces.append("Quoted: " + "; ".join(sources) + ".")
    pieces.append("Voices: " + ", ".join(v.label for v in cast.voices) + ".")
    return "\n\n".join(pieces)


# --------------------------------------------------------------------------- tags

#: ISO 639-1 -> ISO 639-2/B, the codes ID3's TLAN and COMM expect.
_ISO639_2 = {
    "ar": "ara", "ca": "cat", "cs": "cze", "cy": "wel", "da": "dan", "de": "ger",
    "el": "gre", "en": "eng", "eo": "epo", "es": "spa", "et": "est", "eu": "baq",
    "fa": "per", "fi": "fin", "fr": "fre", "ga": "gle", "he": "heb", "hi": "hin",
    "hr": "hrv", "hu": "hun", "id": "ind", "is": "ice", "it": "ita", "ja": "jpn",
    "ko": "kor", "la": "lat", "lt": "lit", "lv": "lav", "nl": "dut", "no": "nor",
    "nb": "nob", "nn": "nno", "pl": "pol", "pt": "por", "ro": "rum", "ru": "rus",
    "sk": "slo", "sl": "slv", "sr": "srp", "sv": "swe", "sw": "swa", "tr": "tur",
    "uk": "ukr", "vi": "vie", "zh": "chi",
}  # fmt: skip


def iso639_2(language: str) -> str:
    """'en', 'en-GB' or 'eng' -> 'eng'; unknown languages -> 'und' (undetermined)."""
    code = language.strip().lower().replace("_", "-").split("-")[0]
    if len(code) == 3 and code.isalpha():
        return code
    return _ISO639_2.get(code, "und")


def _enc(*texts: str) -> int:
    """ID3v2.3 text encoding: Latin-1 when it can hold the text, else UTF-16."""
    try:
        for t in texts:
            t.encode("latin-1")
    except UnicodeEncodeError:
        return 1
    return 0


def _write_tags(
    path: Path,
    final: Path,
    *,
    cast: CastChapter,
    number: int,
    total: int,
    show: Show,
    cover: bytes,
    marks: list[tuple[float, str]],
    duration: float,
) -> None:
    """ID3v2.3: the text frames, the cover, and CHAP frames under a titled, top-level,
    ordered CTOC (players such as Apple Podcasts and Overcast ignore chapters without one)."""
    from mutagen import MutagenError
    from mutagen.id3 import (
        APIC,
        CHAP,
        COMM,
        CTOC,
        ID3,
        TALB,
        TCON,
        TDRC,
        TIT2,
        TLAN,
        TPE1,
        TPE2,
        TRCK,
        CTOCFlags,
        PictureType,
    )

    chapter = cast.chapter
    title = chapter.title.strip() or chapter.id
    author = (chapter.author or show.author).strip()
    lang = iso639_2(show.language)
    voices = "Voices: " + ", ".join(v.label for v in cast.voices)
    tags = ID3()
    tags.add(TIT2(encoding=_enc(title), text=[title]))
    tags.add(TPE1(encoding=_enc(author), text=[author]))
    tags.add(TPE2(encoding=_enc(show.author), text=[show.author]))
    tags.add(TALB(encoding=_enc(show.title), text=[show.title]))
    tags.add(TRCK(encoding=0, text=[f"{number}/{total}"]))
    tags.add(TCON(encoding=0, text=["Audiobook"]))
    tags.add(TDRC(encoding=0, text=[str(show.year)]))
    tags.add(TLAN(encoding=0, text=[lang]))
    tags.add(COMM(encoding=_enc(voices), lang=lang, desc="", text=[voices]))
    mime = "image/png" if show.cover.suffix.lower() == ".png" else "image/jpeg"
    tags.add(APIC(encoding=0, mime=mime, type=PictureType.COVER_FRONT, desc="", data=cover))
    ids = [f"chp{k}" for k in range(len(marks))]
    end_ms = round(duration * 1000)
    for k, (start, text) in enumerate(marks):
        stop = round(marks[k + 1][0] * 1000) if k + 1 < len(marks) else end_ms
        tags.add(
            CHAP(
                element_id=ids[k],
                start_time=round(start * 1000),
                end_time=stop,
                start_offset=0xFFFFFFFF,
                end_offset=0xFFFFFFFF,
                sub_frames=[TIT2(encoding=_enc(text), text=[text])],
            )
        )
    tags.add(
        CTOC(
            element_id="toc",
            flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
            child_element_ids=ids,
            sub_frames=[TIT2(encoding=_enc(title), text=[title])],
        )
    )
    tags.update_to_v23()  # TDRC -> TYER and so on: mutagen saves frames as they are
    try:
        tags.save(path, v2_version=3, v23_sep="/", padding=lambda info: 0)
    except (MutagenError, OSError) as exc:
        raise OutputError(f"{final}: could not write ID3 tags ({exc})") from None


# --------------------------------------------------------------------------- files


def _discard(path: Path) -> None:
    """Remove a temporary file if it is there (its folder may not even be one)."""
    with contextlib.suppress(OSError):
        path.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside the final name and rename into place (the digest already said it changed)."""
    write_atomic(path, data, skip_unchanged=False)


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    out = {}
    for name in ("lameenc", "soxr", "mutagen", "numpy", "scipy", "pydub", "pyloudnorm"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[name] = "?"
    return out


def _cover_bytes(show: Show) -> bytes:
    try:
        return show.cover.read_bytes()
    except OSError as exc:
        raise OutputError(f"{show.cover}: cover image unreadable ({exc.strerror or exc})") from None


def chapter_digest(
    cast: CastChapter,
    clips: Sequence[Sequence[Clip]],
    *,
    number: int,
    total: int,
    show: Show,
    pauses: PausesConfig,
    audio_config: AudioConfig,
    cover: bytes,
) -> str:
    """A digest of everything a chapter's output depends on (clip keys stand for the audio)."""
    ch = cast.chapter
    data: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "versions": _versions(),
        "number": number,
        "total": total,
        "chapter": [ch.id, ch.title, ch.author],
        "show": [show.title, show.author, show.language, show.year, show.cover.suffix.lower()],
        "cover": hashlib.sha256(cover).hexdigest(),
        "pauses": pauses.model_dump(),
        "audio": audio_config.model_dump(),
        "parts": [
            {
                "id": p.id,
                "kind": p.kind,
                "voice": [p.voice.name, p.voice.label],
                "source": p.source.label() if p.source else None,
                "lines": [line.text for line in p.lines],
                "clips": [[c.key, c.frames, c.sample_rate] for c in group],
            }
            for p, group in zip(cast.parts, clips, strict=False)
        ],
    }
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _state_path(out_dir: Path, stem: str) -> Path:
    return out_dir / STATE_DIR / f"{stem}.json"


def _file_facts(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _current(out_dir: Path, stem: str, digest: str) -> AssembledEpisode | None:
    """The episode an earlier build made from the same inputs, if its files are untouched."""
    try:
        state = json.loads(_state_path(out_dir, stem).read_text(encoding="utf-8"))
        if state.get("digest") != digest:
            return None
        for name, facts in state["files"].items():
            if _file_facts(out_dir / name) != facts:
                return None
        ep = state["episode"]
        return AssembledEpisode(
            number=ep["number"],
            chapter_id=ep["chapter_id"],
            title=ep["title"],
            author=ep["author"],
            mp3=out_dir / ep["mp3"],
            vtt=out_dir / ep["vtt"],
            chapters_json=out_dir / ep["chapters_json"],
            seconds=ep["seconds"],
            size=ep["size"],
            voices=tuple(ep["voices"]),
            description=ep["description"],
            encoded=False,
            loudness=ep.get("loudness"),
            true_peak=ep.get("true_peak"),
            voice_gains=ep.get("voice_gains", {}),
            voice_loudness=ep.get("voice_loudness", {}),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_state(out_dir: Path, stem: str, digest: str, episode: AssembledEpisode) -> None:
    ep = asdict(episode)
    for key in ("mp3", "vtt", "chapters_json"):
        ep[key] = Path(ep[key]).name
    ep.pop("encoded")
    files = {p.name: _file_facts(p) for p in (episode.mp3, episode.vtt, episode.chapters_json)}
    state = {"digest": digest, "files": files, "episode": ep}
    path = _state_path(out_dir, stem)
    try:
        path.parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: {exc.strerror or exc}") from None
    _write_atomic(path, (json.dumps(state, indent=1, ensure_ascii=False) + "\n").encode())


# --------------------------------------------------------------------------- chapters


def assemble_chapter(
    cast: CastChapter,
    clips: Sequence[Sequence[Clip]],
    *,
    number: int,
    total: int,
    show: Show,
    pauses: PausesConfig,
    audio: AudioConfig,
    out_dir: Path,
) -> AssembledEpisode:
    """One chapter's MP3, WebVTT transcript and JSON chapters in out_dir, in this process.

    clips[i][j] is the verified WAV of cast.parts[i].lines[j]. If out_dir already holds
    this chapter built from the same inputs, nothing is encoded or written. The bytes are
    those `assemble_book` writes, whatever its number of processes.
    """
    (episode,) = assemble_book(
        [(cast, clips)],
        show=show,
        pauses=pauses,
        audio=audio,
        out_dir=out_dir,
        jobs=1,
        numbering=(number, total),
    )
    return episode


@dataclass
class _Task:
    work: _Work
    run: Callable[[Any], Any]
    arg: Any


class _Work:
    """One chapter on its way through assembly, driven from the calling process.

    plan (layout, voice matching, gains; timeline to a file) -> its pieces, encoded in any
    order by any process -> loudness and decoded peak checked over all of them -> either
    the pieces again (the chapter's gain corrected, or the voices rebalanced under a lower
    ceiling: rare) or the files written. Each step hands back the tasks it makes ready.
    """

    def __init__(self, args: tuple[Any, ...]) -> None:
        (
            self.cast,
            self.clips,
            self.number,
            self.total,
            self.show,
            self.pauses,
            self.audio,
            self.out_dir,
            self.cover,
            self.stem,
            self.digest,
        ) = args
        self.mp3, self.vtt, self.chapters_json = chapter_files(self.out_dir, self.stem)
        self.timeline = _scratch(self.out_dir, self.stem)
        self.plan: _Plan | None = None
        self.voice_db: dict[str, float] = {}
        self.chapter_db = 0.0
        self.headroom = 0.0
        self.attempt = 0  # ceilings tried after the first
        self.passes = 0  # encodings at this ceiling
        self.encodes = 0
        self.encoded: dict[int, _Encoded] = {}
        self.episode: AssembledEpisode | None = None

    def start(self) -> list[_Task]:
        job = _PlanJob(self.cast, self.clips, self.pauses, self.audio, self.timeline, self.mp3)
        return [_Task(self, _run_plan, job)]

    def _mix(self) -> _Mix:
        assert self.plan is not None
        return _Mix(
            timeline=self.timeline,
            total=self.plan.total,
            regions=self.plan.regions,
            voice_db=self.voice_db,
            chapter_db=self.chapter_db,
            ceiling_db=self.audio.true_peak - self.headroom,
            true_peak=self.audio.true_peak,
            bitrate=self.audio.bitrate,
            final=self.mp3,
        )

    def _encode(self) -> list[_Task]:
        assert self.plan is not None
        self.encoded = {}
        mix = self._mix()
        return [
            _Task(self, _encode_piece, (mix, k, piece)) for k, piece in enumerate(self.plan.pieces)
        ]

    def done(self, task: _Task, result: Any) -> list[_Task]:
        if task.run is _run_plan:
            self.plan = result
            self.voice_db, self.headroom = dict(result.voice_db), result.headroom
            return self._encode()
        if task.run is _rebalance:
            self.voice_db, self.chapter_db = dict(result), 0.0
            return self._encode()
        self.encoded[result.index] = result
        assert self.plan is not None
        if len(self.encoded) < len(self.plan.pieces):
            return []
        return self._check()

    def _check(self) -> list[_Task]:
        """All pieces are in: encode again if the loudness or the decoded peak is off (as
        one encoder would), else write the files."""
        assert self.plan is not None
        self.encodes += 1
        self.passes += 1
        hops = sig.HopSums(sig.RATE)
        for piece in self.encoded.values():
            hops.merge(piece.hops)
        loudness = hops.loudness(self.plan.total)
        off = self.audio.loudness - loudness
        if math.isfinite(off) and abs(off) > LOUDNESS_TOLERANCE and self.passes < 2:
            self.chapter_db += off
            return self._encode()
        peak = max(p.true_peak for p in self.encoded.values())
        if peak > self.audio.true_peak and self.attempt < 3:
            self.attempt += 1
            self.passes = 0
            self.headroom += peak - self.audio.true_peak + 0.3
            return [_Task(self, _rebalance, (self._mix(), self.audio.loudness))]
        self._write(loudness, peak)
        return []

    def _write(self, loudness: float, peak: float) -> None:
        """Join the pieces, tag, write the sidecars, rename into place, remember the inputs."""
        assert self.plan is not None
        plan, cast = self.plan, self.cast
        encoded = [self.encoded[k] for k in range(len(plan.pieces))]
        ratio = sig.OUT_RATE // sig.RATE
        shifts, frames = [], 0
        for piece, enc in zip(plan.pieces, encoded, strict=True):
            shifts.append(sig.SAMPLES_PER_FRAME * frames - ratio * piece.start)
            frames += enc.frames
        timing = _Timing(tuple(p.start for p in plan.pieces), tuple(shifts))
        duration = timing.duration(plan.total)
        marks = [(0.0 if m.start == 0 else timing.seconds(m.start), m.title) for m in plan.markers]
        vtt_path, json_path = self.vtt, self.chapters_json
        tmp = temp_path(self.mp3)
        try:
            try:
                with open(tmp, "wb") as fh:
                    for enc in encoded:
                        with open(enc.mp3, "rb") as piece:
                            shutil.copyfileobj(piece, fh, 1 << 20)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise OutputError(f"{self.mp3}: {exc.strerror or exc}") from None
            _write_tags(
                tmp,
                self.mp3,
                cast=cast,
                number=self.number,
                total=self.total,
                show=self.show,
                cover=self.cover,
                marks=marks,
                duration=duration,
            )
            _write_atomic(vtt_path, _vtt(cast, plan.cues, timing, duration).encode("utf-8"))
            _write_atomic(json_path, _chapters_json(marks).encode("utf-8"))
            try:
                os.replace(tmp, self.mp3)
            except OSError as exc:
                raise OutputError(f"{self.mp3}: {exc.strerror or exc}") from None
        finally:
            _discard(tmp)
        self.cleanup()

        heard: dict[str, float] = {}
        for name, samples in _voice_offsets(plan.regions)[1].items():
            voice = sig.HopSums(sig.RATE)
            for enc in encoded:
                voice.merge(enc.voices[name])
            heard[name] = voice.loudness(samples)
        chapter = cast.chapter
        labels = {p.voice.name: p.voice.label for p in cast.parts}
        self.episode = AssembledEpisode(
            number=self.number,
            chapter_id=chapter.id,
            title=chapter.title,
            author=chapter.author,
            mp3=self.mp3,
            vtt=vtt_path,
            chapters_json=json_path,
            seconds=round(duration, 3),
            size=self.mp3.stat().st_size,
            voices=tuple(v.label for v in cast.voices),
            description=_description(cast),
            encoded=True,
            encodes=self.encodes,
            loudness=round(loudness, 2),
            true_peak=round(peak, 2),
            voice_gains={
                labels[n]: round(db + self.chapter_db, 2) for n, db in self.voice_db.items()
            },
            voice_loudness={labels[n]: round(v, 2) for n, v in heard.items() if math.isfinite(v)},
        )
        _save_state(self.out_dir, self.stem, self.digest, self.episode)

    def cleanup(self) -> None:
        _discard(self.timeline)
        for k in range(len(self.plan.pieces) if self.plan else 0):
            _discard(_piece_path(self.timeline, k))


def _run_plan(job: _PlanJob) -> _Plan:
    return _plan_chapter(job)


def _pool_worker(parent: int) -> None:
    """A pool process dies with the build (on Linux) instead of waiting for work forever,
    holding its memory, when the build is killed; Ctrl-C is the build's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own end is all there is
        return
    if os.getppid() != parent:  # the build died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _run(
    works: list[_Work], jobs: int, progress: Callable[[AssembledEpisode], None] | None
) -> None:
    """Drive the chapters' tasks to the end, in this process (jobs == 1) or on `jobs`
    processes, never more tasks in flight than processes.

    Ready pieces of chapters already started go first, oldest chapter first, and a new
    chapter is planned only when no piece is waiting: the processes stay busy (a long
    chapter's pieces are spread over all of them) while at most a few chapters' timelines
    exist at once, whatever the book's length.
    """
    waiting = deque(works)
    active: list[_Work] = []
    ready: dict[int, deque[_Task]] = {}

    def next_task() -> _Task | None:
        for work in active:
            if ready[id(work)]:
                return ready[id(work)].popleft()
        if waiting:
            work = waiting.popleft()
            active.append(work)
            ready[id(work)] = deque(work.start())
            return ready[id(work)].popleft()
        return None

    def finish(task: _Task, result: Any) -> None:
        work = task.work
        ready[id(work)].extend(work.done(task, result))
        if work.episode is not None:
            active.remove(work)
            if progress:
                progress(work.episode)

    try:
        if jobs <= 1:
            while (task := next_task()) is not None:
                finish(task, task.run(task.arg))
            return
        with ProcessPoolExecutor(
            max_workers=jobs, initializer=_pool_worker, initargs=(os.getpid(),)
        ) as pool:
            inflight: dict[Future[Any], _Task] = {}
            try:
                while True:
                    while len(inflight) < jobs and (task := next_task()) is not None:
                        inflight[pool.submit(task.run, task.arg)] = task
                    if not inflight:
                        break
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in [f for f in inflight if f in done]:  # in order sent
                        task = inflight.pop(future)
                        finish(task, future.result())
            except BrokenProcessPool:
                raise OutputError(
                    f"{task.work.mp3}: a process assembling it died "
                    "(out of memory?); build again with --jobs 1"
                ) from None
            finally:
                for future in inflight:
                    future.cancel()
    finally:
        for work in works:
            work.cleanup()


# --------------------------------------------------------------------------- book


def _cores() -> int:
    """Cores this process may use (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def assemble_book(
    chapters: Sequence[tuple[CastChapter, Sequence[Sequence[Clip]]]],
    *,
    show: Show,
    pauses: PausesConfig,
    audio: AudioConfig,
    out_dir: Path,
    jobs: int | None = None,
    progress: Callable[[AssembledEpisode], None] | None = None,
    numbering: tuple[int, int] | None = None,
) -> list[AssembledEpisode]:
    """Every chapter, in book order; unchanged chapters are kept, the others made on
    `jobs` processes (default: one per core).

    Chapters are cut at pauses into pieces of about PIECE_SECONDS, encoded wherever a
    process is free and joined, so even a book of one long chapter keeps every core busy;
    the bytes do not depend on `jobs`. A chapter's timeline (16-bit, 2.6 MB a minute) is
    held by the process planning it, then read from a file by its pieces: memory stays
    bounded whatever the book's length. `progress` hears of each chapter when it is done,
    kept ones first. `numbering` (number, total) places a single chapter in a longer book.
    """
    audio_config = audio
    total = numbering[1] if numbering else len(chapters)
    cover = _cover_bytes(show)
    results: list[AssembledEpisode | None] = [None] * len(chapters)
    todo: list[tuple[float, int, _Work]] = []
    stems: set[str] = set()
    for k, (cast, clips) in enumerate(chapters):
        number = numbering[0] if numbering else k + 1
        stem = chapter_stem(number, total, cast.chapter.id)
        stems.add(stem)
        digest = chapter_digest(
            cast,
            clips,
            number=number,
            total=total,
            show=show,
            pauses=pauses,
            audio_config=audio_config,
            cover=cover,
        )
        kept = _current(out_dir, stem, digest)
        if kept is not None:
            results[k] = kept
            if progress:
                progress(kept)
            continue
        seconds = sum(c.seconds for group in clips for c in group)
        args = (cast, clips, number, total, show, pauses, audio_config, out_dir, cover)
        todo.append((seconds, k, _Work((*args, stem, digest))))
    if numbering is None:
        _prune_state(out_dir, stems)
    if not todo:
        return [r for r in results if r is not None]

    # longest first: its plan, the one step that cannot be shared, starts at once
    todo.sort(key=lambda t: (-t[0], t[1]))
    pieces = sum(max(1, round(t[0] / PIECE_SECONDS)) for t in todo)
    workers = max(1, min(jobs or _cores(), pieces))
    _run([w for _, _, w in todo], workers, progress)
    for _, k, work in todo:
        results[k] = work.episode
    return [r for r in results if r is not None]


def _prune_state(out_dir: Path, stems: set[str]) -> None:
    """Forget chapters that are no longer in the book."""
    state = out_dir / STATE_DIR
    if not state.is_dir():
        return
    for path in state.glob("*.json"):
        if path.stem not in stems:
            path.unlink(missing_ok=True)


__all__ = [
    "AssembledEpisode",
    "assemble_book",
    "assemble_chapter",
    "chapter_digest",
    "iso639_2",
]
