"""A chapter's plan: its clips trimmed and laid out with the pauses on the timeline, its
chapter marks, and its voices' gains."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from narration.assembly import audio as sig
from narration.assembly.levelling import (
    CODEC_HEADROOM_DB,
    CODEC_HEADROOM_DEFAULT_DB,
    GAIN_STEP_DB,
    LIMITED_SAMPLE_SECONDS,
    picked,
    voice_gain,
)
from narration.assembly.state import versions
from narration.assembly.timeline import (
    FRAME_SPAN,
    PARAGRAPH_CHARS,
    PIECE_CHARS,
    PIECE_REACH,
    TIMELINE_SCALE,
    Cue,
    Piece,
    PieceContent,
    cut_gap,
    ms,
    piece_contents,
    place_cut,
)
from narration.config import AudioConfig, PausesConfig
from narration.errors import OutputError, SynthesisError
from narration.model import CastChapter, CastSegment, Clip

#: Per voice, about this much of its speech is measured for its gain (clips picked by
#: their content, so the same ones are picked whatever else changes in the chapter).
VOICE_SAMPLE_SECONDS = 240.0


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
class Marker:
    start: int  # samples at sig.RATE; 0 for the opening
    title: str


@dataclass
class Layout:
    total: int  # samples of the timeline (int16 at sig.RATE, full scale TIMELINE_SCALE,
    #             no gains), which lay_out wrote to a file
    cues: list[Cue]
    regions: list[tuple[int, int, str]]  # (start, end, voice name) per part, for gains
    voice_audio: dict[str, list[np.ndarray]]  # per voice, the clips measured for loudness
    voice_clips: dict[str, list[str]]  # and their keys
    markers: list[Marker]
    pieces: tuple[Piece, ...]


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


def chapter_marks(cast: CastChapter, cues: list[Cue]) -> list[Marker]:
    """Chapter marks: the opening, each heading section and each quote block.

    When narration resumes after a quote block, a mark titled like the section it belongs
    to starts there, so a listener skipping forward past a quote lands on the narration.
    """
    parts = cast.parts
    first_cue: dict[int, int] = {}
    for cue in cues:
        first_cue.setdefault(cue.part, cue.start)
    title = cast.chapter.title.strip() or cast.chapter.id
    marks = [Marker(0, title)]
    section = title
    in_quote = False
    quote_source = None
    content_seen = False

    def add(start: int, text: str) -> None:
        text = " ".join(text.split()) or "Untitled"
        if start <= marks[-1].start:
            marks[-1] = Marker(marks[-1].start, text)
        else:
            marks.append(Marker(start, text))

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


def cut_places(
    parts: Sequence[CastSegment],
    paragraph_chars: int = PARAGRAPH_CHARS,
    piece_chars: int = PIECE_CHARS,
) -> frozenset[tuple[int, int]]:
    """The lines (part, line) after which a piece ends, chosen from the text alone, each
    by the text next to it (so an edit moves only the cuts beside it, and a voice's
    settings move none: the pieces a rebuild finds unchanged are reused, see `book`):
    - after a paragraph of `paragraph_chars` or more, or a shorter one its text picks (by
      a hash of it, as likely as its share of `piece_chars`: a run of short paragraphs is
      cut every `piece_chars` or so);
    - inside a paragraph longer than `piece_chars`, after a sentence its text picks (the
      same way: one every `piece_chars` or so), when half of `piece_chars` lie between it
      and the sentence picked before it (or the paragraph's start) and as much follows in
      the paragraph; and where no sentence is picked for twice `piece_chars`, every
      `piece_chars` through that stretch.
    """
    units: list[list[tuple[int, int, str]]] = []  # per paragraph: (part, line, text)
    for i, part in enumerate(parts):
        if not units or not _same_segment(parts[i - 1], part):
            units.append([])
        units[-1].extend((i, j, line.text) for j, line in enumerate(part.lines))
    cuts: set[tuple[int, int]] = set()
    half = piece_chars // 2
    for unit in units:
        ends = list(itertools.accumulate(len(text) for *_, text in unit))
        size = ends[-1]
        if size >= paragraph_chars or _picks(" ".join(text for *_, text in unit), piece_chars):
            cuts.add(unit[-1][:2])
        if size <= piece_chars:
            continue
        inner = [k for k in range(len(unit) - 1) if size - ends[k] >= half]
        anchors = [(0, -1)] + [(ends[k], k) for k in inner if _picks(unit[k][2], piece_chars)]
        anchors.append((size, len(unit) - 1))
        for (start, _), (end, k) in itertools.pairwise(anchors):
            if k < len(unit) - 1 and end - start >= half:
                cuts.add(unit[k][:2])
            if end - start > 2 * piece_chars:  # no sentence picked for long: by length
                mark = start + piece_chars
                for m in inner:
                    if start < ends[m] < end and ends[m] >= mark and end - ends[m] >= half:
                        cuts.add(unit[m][:2])
                        mark = ends[m] + piece_chars
    return frozenset(cuts)


def _picks(text: str, every: int) -> bool:
    """Whether a cut may fall after `text`: decided by its content (a hash of it), as
    likely as its share of `every` characters, so picks come every `every` or so."""
    return zlib.crc32(text.encode()) < len(text) / every * 2**32


def _content(clip: Clip) -> str:
    """What a clip's audio is, for the keys of what is made from it: the digest of its
    WAV as verified (its inputs' key where none was taken)."""
    return clip.digest or clip.key


def _check_groups(cast: CastChapter, clips: Sequence[Sequence[Clip]]) -> None:
    """A clip for every line of every part, or SynthesisError saying where one is missing."""
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


def _measured(cast: CastChapter, clips: Sequence[Sequence[Clip]]) -> set[tuple[int, int]]:
    """The clips (part, line) each voice's gain is measured on: about VOICE_SAMPLE_SECONDS
    a voice, picked by their content."""
    per_voice: dict[str, list[tuple[int, int]]] = {}
    for i, part in enumerate(cast.parts):
        per_voice.setdefault(part.voice.name, []).extend((i, j) for j in range(len(part.lines)))
    measured: set[tuple[int, int]] = set()
    for keys in per_voice.values():
        seconds = sum(clips[i][j].seconds for i, j in keys)
        stride = max(1, math.ceil(seconds / VOICE_SAMPLE_SECONDS))
        chosen = [(i, j) for i, j in keys if picked(clips[i][j].key, stride)]
        measured.update(chosen or keys)
    return measured


def _speech(clip: Clip, part_id: str) -> np.ndarray:
    """A clip's speech as the timeline holds it: trimmed of the engine's silence, its phase
    rotated, scaled to int16."""
    samples = sig.read_clip(clip.path, clip.digest)
    if samples.size == 0:
        raise SynthesisError(f"{clip.path}: empty clip for segment {part_id}")
    a, b = sig.speech_bounds(samples)
    rotated = sig.lfilter(_ROTATOR_B, _ROTATOR_A, samples[a:b])
    scaled = np.rint(rotated * (TIMELINE_SCALE / 32768.0))
    return np.clip(scaled, -32768, 32767).astype("<i2")


def lay_out(
    cast: CastChapter,
    clips: Sequence[Sequence[Clip]],
    pauses: PausesConfig,
    out: BinaryIO,
    cuts: frozenset[tuple[int, int]] = frozenset(),
) -> Layout:
    """Read and trim every clip and lay it out with the pauses on one int16 timeline,
    written to `out` as it goes: a chapter's audio is never all in memory. It is cut into
    pieces after the lines in `cuts` (see `cut_places`), where the pause can hold a cut,
    each pause at a cut moved by under half an MP3 frame so its piece starts on a frame."""
    _check_groups(cast, clips)
    parts = cast.parts
    measured = _measured(cast, clips)

    voice_audio: dict[str, list[np.ndarray]] = {}
    voice_clips: dict[str, list[str]] = {}
    cues: list[Cue] = []
    regions: list[tuple[int, int, str]] = []
    written = 0

    def silence_to(pos: int) -> None:
        nonlocal written
        while written < pos:
            n = min(pos - written, _ZEROS.size)
            out.write(_ZEROS[:n].tobytes())
            written += n

    pieces: list[Piece] = []
    piece_start = 0
    cut_due = False  # the last line ended a piece: cut at the next pause that can hold it

    def pause(gap: int) -> None:
        nonlocal pos, piece_start, cut_due
        if cut_due and cut_gap(gap):
            cut, moved = place_cut(piece_start, pos, gap)
            pieces.append(Piece(piece_start, cut - FRAME_SPAN, cut))
            piece_start, cut_due = cut, False
            gap += moved
        pos += gap

    pos = ms(pauses.head)
    for i, (part, group) in enumerate(zip(parts, clips, strict=True)):
        if i:
            pause(ms(_gap(parts, i, pauses)))
        region_start = pos
        for j, clip in enumerate(group):
            if j:
                pause(ms(pauses.sentence))
            speech = _speech(clip, part.id)
            silence_to(pos)
            out.write(speech.tobytes())
            written += speech.size
            cues.append(Cue(i, j, pos, pos + speech.size))
            if (i, j) in measured:
                voice_audio.setdefault(part.voice.name, []).append(speech)
                voice_clips.setdefault(part.voice.name, []).append(_content(clip))
            pos += speech.size
            cut_due = cut_due or (i, j) in cuts
        regions.append((region_start, pos, part.voice.name))
    pos += ms(pauses.tail)
    silence_to(pos)
    pieces.append(Piece(piece_start, pos, pos))
    return Layout(
        pos, cues, regions, voice_audio, voice_clips, chapter_marks(cast, cues), tuple(pieces)
    )


#: Silence to write between clips.
_ZEROS = np.zeros(1 << 16, dtype="<i2")


@dataclass(frozen=True)
class PlanJob:
    cast: CastChapter
    clips: Sequence[Sequence[Clip]]
    pauses: PausesConfig
    audio: AudioConfig
    timeline: Path
    final: Path
    #: after which lines pieces end (`cut_places`, found by the process that made the job)
    cuts: frozenset[tuple[int, int]] = frozenset()
    #: where voices' gains found by earlier builds are kept (see `VoiceGain`)
    gains: Path | None = None


#: Bump when a change makes a voice's gain differ for the same clips.
GAIN_FORMAT = 1


@dataclass(frozen=True)
class VoiceGain:
    """A voice's gain, and the key of what it was found from (its measured clips, the
    target and ceiling): a rebuild that finds the key kept takes the gain, unmeasured."""

    db: float
    key: str
    fresh: bool  # found by this plan (to be kept), not taken from an earlier build


def gain_key(clips: Sequence[str], target: float, ceiling: float, pause: int) -> str:
    """The digest of what a voice's gain is found from, and how."""
    how = [GAIN_FORMAT, VOICE_SAMPLE_SECONDS, LIMITED_SAMPLE_SECONDS, GAIN_STEP_DB]
    data = [how, versions(), repr(target), repr(ceiling), pause, list(clips)]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def gain_file(folder: Path, key: str) -> Path:
    return folder / f"{key}.gain"


def gain_text(db: float) -> str:
    """A gain as kept: its value and a check of it, so a file changed since is not taken."""
    value = repr(db)
    return f"{value} {hashlib.sha256(value.encode()).hexdigest()[:16]}\n"


def read_gain(path: Path) -> float | None:
    """The gain `gain_text` wrote there, if it is intact."""
    try:
        value, check = path.read_text(encoding="ascii").split()
        if gain_text(float(value)) == f"{value} {check}\n":
            return float(value)
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return None


def _voice_gain(
    job: PlanJob, chunks: list[np.ndarray], clips: Sequence[str], ceiling: float
) -> VoiceGain:
    pause = ms(job.pauses.sentence)
    key = gain_key(clips, job.audio.loudness, ceiling, pause)
    if job.gains is not None:
        kept = read_gain(gain_file(job.gains, key))
        if kept is not None:
            return VoiceGain(kept, key, False)
    found = voice_gain(chunks, job.audio.loudness, ceiling, pause, list(clips))
    return VoiceGain(found, key, True)


@dataclass(frozen=True)
class Plan:
    """A chapter laid out and its gains set: what its pieces are encoded from."""

    total: int
    cues: list[Cue]
    markers: list[Marker]
    regions: tuple[tuple[int, int, str], ...]
    voice_db: dict[str, float]
    headroom: float
    pieces: tuple[Piece, ...]
    contents: tuple[PieceContent, ...]  # what each piece reads, for its key
    gains: tuple[VoiceGain, ...]  # how voice_db was found


def plan_chapter(job: PlanJob) -> Plan:
    """Lay out the clips into the timeline's file, and find each voice's gain."""
    try:
        with open(job.timeline, "wb") as out:
            layout = lay_out(job.cast, job.clips, job.pauses, out, job.cuts)
    except OSError as exc:
        raise OutputError(f"{job.final}: {exc.strerror or exc}") from None
    if not layout.cues:
        raise SynthesisError(f"chapter {job.cast.chapter.id}: nothing to read aloud")
    headroom = CODEC_HEADROOM_DB.get(job.audio.bitrate, CODEC_HEADROOM_DEFAULT_DB)
    ceiling = job.audio.true_peak - headroom
    gains = {
        name: _voice_gain(
            job, layout.voice_audio.get(name, []), layout.voice_clips.get(name, []), ceiling
        )
        for name in {p.voice.name: None for p in job.cast.parts}
    }
    layout.voice_audio.clear()
    parts = job.cast.parts
    return Plan(
        total=layout.total,
        cues=layout.cues,
        markers=layout.markers,
        regions=tuple(layout.regions),
        voice_db={name: gain.db for name, gain in gains.items()},
        headroom=headroom,
        pieces=layout.pieces,
        gains=tuple(gains.values()),
        contents=piece_contents(
            layout.pieces,
            layout.cues,
            [_content(job.clips[c.part][c.line]) for c in layout.cues],
            [parts[c.part].voice.name for c in layout.cues],
            layout.total,
            PIECE_REACH,
        ),
    )
