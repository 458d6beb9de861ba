"""The chapter's timeline: its samples, where each utterance sits on it, and the pieces it
is cut into to be encoded on every core."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import audio as sig


@dataclass(frozen=True)
class Cue:
    part: int
    line: int
    start: int  # samples at sig.RATE, speech only
    end: int


def ms(ms: int) -> int:
    return sig.RATE * ms // 1000


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


@dataclass(frozen=True)
class Piece:
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


def piece_sizes(total: int, seconds: float | None = None) -> list[float]:
    """The ideal lengths of a chapter's pieces, in timeline samples: PIECE_SECONDS or so,
    the last piece's share cut into a half and two quarters, so that whichever piece of the
    book is encoded last leaves the other processes idle for a quarter of a piece at most
    (a whole one left them waiting up to half a second at the end of the seeds' build)."""
    count = round(total / ((PIECE_SECONDS if seconds is None else seconds) * sig.RATE))
    if count < 2:
        return [float(total)]
    part = total / count
    return [part] * (count - 1) + [part / 2, part / 4, part / 4]


def cut_pieces(cues: Sequence[Cue], total: int, seconds: float | None = None) -> tuple[Piece, ...]:
    """Cut a chapter into pieces of `piece_sizes`, at pauses only.

    A cut needs a pause with room for the frame left out and a guard on either side; near
    each ideal cut (within a quarter of the shorter piece beside it) the longest such pause
    is taken, a heading or paragraph break before a sentence's. Cuts depend on the chapter
    alone, never on the number of processes, so the bytes do not either.
    """
    span = FRAME_SPAN
    sizes = piece_sizes(total, seconds)
    if len(sizes) < 2:
        return (Piece(0, total, total),)
    guard = ms(CUT_GUARD_MS)
    places: list[tuple[int, int]] = []  # (pause length, cut)
    for a, b in itertools.pairwise(cues):
        lo = -(-(a.end + span + guard) // span) * span
        hi = (b.start - guard) // span * span
        if lo <= hi:
            middle = (a.end + b.start + span) // 2 // span * span  # the left-out frame centred
            places.append((b.start - a.end, min(max(middle, lo), hi)))
    cuts: list[int] = []
    ideal = 0.0
    for before, after in itertools.pairwise(sizes):
        ideal += before
        least = min(before, after) / 4
        last = cuts[-1] if cuts else 0
        usable = [(g, c) for g, c in places if last + least <= c <= total - sizes[-1] / 4]
        near = [(g, c) for g, c in usable if abs(c - ideal) <= least]
        if near:
            cuts.append(max(near, key=lambda p: (p[0], -abs(p[1] - ideal)))[1])
        elif usable:
            cuts.append(min(usable, key=lambda p: abs(p[1] - ideal))[1])
    starts = [0, *cuts]
    pieces = [Piece(s, c - span, c) for s, c in zip(starts, cuts, strict=False)]
    pieces.append(Piece(starts[-1], total, total))
    return tuple(pieces)


def scratch_path(state_dir: Path, stem: str) -> Path:
    """A chapter's timeline file while it is assembled (in the state folder, never in
    output/); its pieces' MP3s go beside it. Named like every temporary file of a build
    (.NAME.tmpPID), so a killed build's are removed."""
    return state_dir / f".{stem}.timeline.tmp{os.getpid()}"


def piece_path(timeline: Path, index: int) -> Path:
    return timeline.with_name(timeline.name.replace(".timeline.tmp", f".piece{index}.tmp", 1))


def discard(path: Path) -> None:
    """Remove a temporary file if it is there (its folder may not even be one)."""
    with contextlib.suppress(OSError):
        path.unlink()
