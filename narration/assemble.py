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
change is neither encoded nor rewritten on the next build. `assemble_book` spreads the
chapters over processes, each holding one chapter's 16-bit timeline at a time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import queue
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as sig
from .config import AudioConfig, PausesConfig
from .errors import NarrateError, OutputError, SynthesisError
from .model import CastChapter, CastSegment, Clip, Episode, Show

#: Bump when a change here changes output bytes: every chapter is then assembled again.
FORMAT_VERSION = 3

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
#: Voices are gain-matched within this range; beyond it a clip is broken, not quiet.
MAX_VOICE_GAIN_DB = 30.0
#: LAME's quality setting (2: high; the floor in benchmarks uses the same).
LAME_QUALITY = 2

STATE_DIR = ".state"

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


# --------------------------------------------------------------------------- names


def chapter_stem(number: int, total: int, chapter_id: str) -> str:
    """ASCII file stem `NN-<chapter id>`, numbered so files sort in book order."""
    width = max(2, len(str(total)))
    ascii_id = unicodedata.normalize("NFKD", chapter_id).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_id).strip("-").lower() or "chapter"
    return f"{number:0{width}d}-{slug}"


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
    timeline: np.ndarray  # int16 at sig.RATE (full scale TIMELINE_SCALE), without gains
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


def _layout(cast: CastChapter, clips: Sequence[Sequence[Clip]], pauses: PausesConfig) -> _Layout:
    """Read and trim every clip and place it on one int16 timeline with the pauses."""
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
    # an upper bound from the clips' declared lengths; trimmed clips only make it shorter
    bound = _ms(pauses.head) + _ms(pauses.tail)
    for i, group in enumerate(clips):
        bound += _ms(max(pauses.paragraph, pauses.heading, pauses.quote)) if i else 0
        for j, clip in enumerate(group):
            bound += _ms(pauses.sentence) if j else 0
            bound += math.ceil(clip.frames * sig.RATE / max(1, clip.sample_rate)) + 1
    timeline = np.zeros(bound, dtype=np.int16)

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
    pos = _ms(pauses.head)
    for i, (part, group) in enumerate(zip(parts, clips, strict=True)):
        if i:
            pos += _ms(_gap(parts, i, pauses))
        region_start = pos
        for j, clip in enumerate(group):
            if j:
                pos += _ms(pauses.sentence)
            samples = sig.read_clip(clip.path)
            if samples.size == 0:
                raise SynthesisError(f"{clip.path}: empty clip for segment {part.id}")
            a, b = sig.speech_bounds(samples)
            rotated = sig.lfilter(_ROTATOR_B, _ROTATOR_A, samples[a:b])
            scaled = np.rint(rotated * (TIMELINE_SCALE / 32768.0))
            speech = np.clip(scaled, -32768, 32767).astype(np.int16)
            if pos + speech.size > timeline.size:  # a clip longer than declared
                timeline = np.concatenate((timeline, np.zeros(speech.size + bound // 8, np.int16)))
            timeline[pos : pos + speech.size] = speech
            cues.append(_Cue(i, j, pos, pos + speech.size))
            if (i, j) in measured:
                voice_audio.setdefault(part.voice.name, []).append(speech)
            pos += speech.size
        regions.append((region_start, pos, part.voice.name))
    pos += _ms(pauses.tail)
    if pos > timeline.size:
        timeline = np.concatenate((timeline, np.zeros(pos - timeline.size, np.int16)))
    timeline = timeline[:pos]
    return _Layout(timeline, cues, regions, voice_audio, _markers(cast, cues))


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


class _Source:
    """The chapter's samples with each voice's gain and the chapter gain applied, by range."""

    def __init__(self, layout: _Layout, voice_db: dict[str, float]) -> None:
        self.timeline = layout.timeline
        self.regions = layout.regions
        self.starts = np.array([r[0] for r in layout.regions], dtype=np.int64)
        self.ends = np.array([r[1] for r in layout.regions], dtype=np.int64)
        self.voice_db = dict(voice_db)
        self.chapter_db = 0.0
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

    def feed_voices(self, gates: dict[str, sig.Gate], sq: np.ndarray, a: int) -> None:
        """Feed each voice's gate with its stretches of sq: the output for [a, a + len(sq)),
        K-weighted and squared (one filter pass serves the chapter and every voice)."""
        b = a + len(sq)
        first = int(np.searchsorted(self.ends, a, side="right"))
        last = int(np.searchsorted(self.starts, b, side="left"))
        for k in range(first, last):
            lo, hi = max(int(self.starts[k]), a), min(int(self.ends[k]), b)
            if hi > lo:
                gates[self.regions[k][2]].feed_squares(sq[lo - a : hi - a])


def _sample_chunks(source: _Source) -> list[tuple[int, int]]:
    """Chunks to tune the gains on: evenly spread ones (at most CHAPTER_SAMPLE_SECONDS in
    all) and, for each voice, the ones holding some of its passages (VOICE_CHECK_SECONDS),
    so that even a voice heard once is measured after limiting."""
    size = 1 << 17
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
    slopes = dict.fromkeys(names, 0.8)
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


@dataclass(frozen=True)
class _Rendered:
    loudness: float
    voices: dict[str, float]  # LUFS per voice name, measured on the limited audio
    true_peak: float
    samples: int  # at OUT_RATE
    limited: float  # fraction of samples the limiter turned down
    encodes: int = 1  # MP3 encodings it took (more when a check sent it back)


def _render_mp3(
    source: _Source, tmp: Path, bitrate: int, ceiling_db: float, final: Path
) -> _Rendered:
    """Limit, add room tone, resample, encode: one streaming pass into `tmp`.

    LAME runs on a thread of its own (lameenc releases the GIL) fed through a short queue,
    so when a core is free the limiting and resampling of the next chunk overlap the
    encoding of this one; the order of chunks, and so the bytes, are the same either way.
    """
    import soxr

    total = len(source)
    limiter = sig.Limiter(sig.RATE, ceiling_db)
    meter = sig.LoudnessMeter(sig.RATE)
    voices = {name: sig.Gate(sig.RATE) for name in source.voice_db}
    tone = sig.room_tone(1 << 17)
    resampler = soxr.ResampleStream(sig.RATE, sig.OUT_RATE, 1, dtype="float32")
    pending: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=2)
    failed: list[BaseException] = []

    def encode(mp3: sig.Mp3Stream) -> None:
        done = False
        try:
            while not done:
                item = pending.get()
                done = item is None
                if item is not None:
                    mp3.write(item)
            mp3.close()
        except BaseException as exc:  # handed to the producing thread below
            failed.append(exc)
            while not done:  # take what the producer still sends, up to its end mark
                done = pending.get() is None

    try:
        with open(tmp, "wb") as fh:
            mp3 = sig.Mp3Stream(fh, bitrate, LAME_QUALITY)
            worker = threading.Thread(target=encode, args=(mp3,), daemon=True)
            worker.start()
            try:
                spans = list(sig.chunks(total))
                for k, (a, b) in enumerate(spans):
                    if failed:
                        break
                    x = limiter.process(source.read, a, b, total)
                    x += tone[np.arange(a, b) % tone.size]
                    source.feed_voices(voices, meter.feed(x), a)
                    pending.put(resampler.resample_chunk(x, last=k == len(spans) - 1))
            finally:
                pending.put(None)
                worker.join()
            if failed:
                raise failed[0]
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OutputError(f"{final}: {exc.strerror or exc}") from None
    return _Rendered(
        loudness=meter.integrated(),
        voices={name: m.integrated() for name, m in voices.items()},
        true_peak=math.nan,
        samples=mp3.samples,
        limited=limiter.reduced / max(1, total),
    )


def _encode_checked(
    source: _Source, tmp: Path, audio_config: AudioConfig, headroom: float, final: Path
) -> _Rendered:
    """Encode until the chapter is at its loudness target and, decoded, under its ceiling.

    Usually once: the gains come from `_balance`, the headroom per bitrate covers what
    LAME adds to peaks. When the decoded file still peaks too high (its coding noise is
    random), the limiter's ceiling is lowered by the excess and the chapter encoded again.
    """
    target, ceiling_tp = audio_config.loudness, audio_config.true_peak
    rendered = None
    encodes = 0
    for _attempt in range(4):
        ceiling = ceiling_tp - headroom
        _balance(source, target, ceiling)
        for _pass in range(2):
            rendered = _render_mp3(source, tmp, audio_config.bitrate, ceiling, final)
            encodes += 1
            off = target - rendered.loudness
            if not math.isfinite(off) or abs(off) <= LOUDNESS_TOLERANCE:
                break
            source.set_gains(source.voice_db, source.chapter_db + off)
        try:
            peak = sig.decoded_true_peak(tmp, ceiling_tp)
        except OSError as exc:
            raise OutputError(f"{final}: {exc}") from None
        rendered = replace(rendered, true_peak=peak, encodes=encodes)
        if peak <= ceiling_tp:
            break
        headroom += peak - ceiling_tp + 0.3
    assert rendered is not None
    return rendered


# --------------------------------------------------------------------------- sidecars


def _seconds(sample: int) -> float:
    """Where a timeline sample is heard in the MP3, in seconds (after LAME's delay)."""
    return sample / sig.RATE + sig.ENCODER_DELAY / sig.OUT_RATE


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(cast: CastChapter, cues: list[_Cue], duration: float) -> str:
    """One cue per utterance, naming its voice. The last cue runs to the end of the audio,
    over the tail's room tone, so the transcript covers the whole file."""
    out = ["WEBVTT", ""]
    for k, cue in enumerate(cues):
        part = cast.parts[cue.part]
        start = _seconds(cue.start)
        end = duration if k == len(cues) - 1 else _seconds(cue.end)
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


def _tmp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside the final name and rename into place."""
    tmp = _tmp_for(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


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
    """One chapter's MP3, WebVTT transcript and JSON chapters in out_dir.

    clips[i][j] is the verified WAV of cast.parts[i].lines[j]. If out_dir already holds
    this chapter built from the same inputs, nothing is encoded or written.
    """
    audio_config = audio
    cover = _cover_bytes(show)
    stem = chapter_stem(number, total, cast.chapter.id)
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
        return kept
    args = (cast, clips, number, total, show, pauses, audio_config, out_dir, cover, stem, digest)
    return _job(args)


def _assemble(
    cast: CastChapter,
    clips: Sequence[Sequence[Clip]],
    number: int,
    total: int,
    show: Show,
    pauses: PausesConfig,
    audio_config: AudioConfig,
    out_dir: Path,
    cover: bytes,
    stem: str,
    digest: str,
) -> AssembledEpisode:
    mp3_path = out_dir / f"{stem}.mp3"
    vtt_path = out_dir / f"{stem}.vtt"
    json_path = out_dir / f"{stem}.chapters.json"
    layout = _layout(cast, clips, pauses)
    if not layout.cues:
        raise SynthesisError(f"chapter {cast.chapter.id}: nothing to read aloud")

    target = audio_config.loudness
    voice_db: dict[str, float] = {}
    for name in {p.voice.name: None for p in cast.parts}:
        level = _voice_loudness(layout.voice_audio.get(name, []))
        db = 0.0 if not math.isfinite(level) else target - level
        voice_db[name] = max(-MAX_VOICE_GAIN_DB, min(MAX_VOICE_GAIN_DB, db))
    layout.voice_audio.clear()
    source = _Source(layout, voice_db)
    headroom = CODEC_HEADROOM_DB.get(audio_config.bitrate, CODEC_HEADROOM_DEFAULT_DB)

    tmp = _tmp_for(mp3_path)
    try:
        rendered = _encode_checked(source, tmp, audio_config, headroom, mp3_path)
        duration = (rendered.samples + sig.ENCODER_DELAY) / sig.OUT_RATE
        marks = [(0.0 if m.start == 0 else _seconds(m.start), m.title) for m in layout.markers]
        _write_tags(
            tmp,
            mp3_path,
            cast=cast,
            number=number,
            total=total,
            show=show,
            cover=cover,
            marks=marks,
            duration=duration,
        )
        _write_atomic(vtt_path, _vtt(cast, layout.cues, duration).encode("utf-8"))
        _write_atomic(json_path, _chapters_json(marks).encode("utf-8"))
        try:
            os.replace(tmp, mp3_path)
        except OSError as exc:
            raise OutputError(f"{mp3_path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()

    chapter = cast.chapter
    labels = {p.voice.name: p.voice.label for p in cast.parts}
    episode = AssembledEpisode(
        number=number,
        chapter_id=chapter.id,
        title=chapter.title,
        author=chapter.author,
        mp3=mp3_path,
        vtt=vtt_path,
        chapters_json=json_path,
        seconds=round(duration, 3),
        size=mp3_path.stat().st_size,
        voices=tuple(v.label for v in cast.voices),
        description=_description(cast),
        encoded=True,
        encodes=rendered.encodes,
        loudness=round(rendered.loudness, 2),
        true_peak=round(rendered.true_peak, 2),
        voice_gains={
            labels[n]: round(db + source.chapter_db, 2) for n, db in source.voice_db.items()
        },
        voice_loudness={
            labels[n]: round(v, 2) for n, v in rendered.voices.items() if math.isfinite(v)
        },
    )
    _save_state(out_dir, stem, digest, episode)
    return episode


# --------------------------------------------------------------------------- book


def _job(args: tuple[Any, ...]) -> AssembledEpisode:
    """One chapter, in this process or a worker: (cast, clips, number, total, show, pauses,
    audio, out_dir, cover bytes, stem, digest)."""
    return _assemble(*args)


def assemble_book(
    chapters: Sequence[tuple[CastChapter, Sequence[Sequence[Clip]]]],
    *,
    show: Show,
    pauses: PausesConfig,
    audio: AudioConfig,
    out_dir: Path,
    jobs: int | None = None,
    progress: Callable[[AssembledEpisode], None] | None = None,
) -> list[AssembledEpisode]:
    """Every chapter, in book order; unchanged chapters are kept, the others encoded in
    parallel (one process per core by default, longest chapters first so the cores finish
    together). Each worker holds one chapter's audio at a time."""
    audio_config = audio
    total = len(chapters)
    cover = _cover_bytes(show)
    results: list[AssembledEpisode | None] = [None] * total
    todo: list[tuple[float, int, tuple[Any, ...]]] = []
    for k, (cast, clips) in enumerate(chapters):
        number = k + 1
        stem = chapter_stem(number, total, cast.chapter.id)
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
        todo.append((seconds, k, (*args, stem, digest)))
    stems = {chapter_stem(k + 1, total, c.chapter.id) for k, (c, _) in enumerate(chapters)}
    _prune_state(out_dir, stems)

    workers = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    if workers == 1:
        for _, k, args in todo:
            results[k] = _job(args)
            if progress:
                progress(results[k])  # type: ignore[arg-type]
    else:
        todo.sort(key=lambda t: (-t[0], t[1]))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {k: pool.submit(_job, args) for _, k, args in todo}
            k = todo[0][1]
            try:
                for _, k, _args in todo:
                    results[k] = futures[k].result()
                    if progress:
                        progress(results[k])  # type: ignore[arg-type]
            except (NarrateError, BrokenProcessPool) as exc:
                for f in futures.values():
                    f.cancel()
                if isinstance(exc, NarrateError):
                    raise
                stem = chapter_stem(k + 1, total, chapters[k][0].chapter.id)
                raise OutputError(
                    f"{out_dir / stem}.mp3: the process assembling it died "
                    "(out of memory?); build again with --jobs 1"
                ) from None
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
    "chapter_stem",
    "iso639_2",
]
