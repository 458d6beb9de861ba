"""The chapter's timeline: its samples, where each utterance sits on it, and the pieces it
is cut into to be encoded on every core."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from narration.assembly import audio as sig


@dataclass(frozen=True)
class Cue:
    part: int
    line: int
    start: int  # samples at sig.RATE, speech only
    end: int


def ms(ms: int) -> int:
    return sig.RATE * ms // 1000


#: A piece ends after a paragraph (or heading, or quote) of at least this many characters;
#: a shorter one is encoded with what follows it. Counted in the text, never in seconds, so
#: pieces stay where they are when a voice's rate changes.
PARAGRAPH_CHARS = 60
#: A longer stretch than this is also cut at a sentence pause, when at least half as much
#: of its paragraph follows.
PIECE_CHARS = 700
#: What a piece lasts on average, in seconds (for the number of processes worth starting).
TYPICAL_PIECE_SECONDS = 25.0
#: Context either side of a piece for its limiter, loudness filter and resampler (samples
#: at RATE, a multiple of the limiter's block): their responses have died out well before.
PIECE_CONTEXT = 4096
#: How far either side of a piece its encoding reads: the context, and the limiter's own
#: look-around beyond it (480 samples, and a block; checked in the tests).
PIECE_REACH = PIECE_CONTEXT + 1024
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


def expected_pieces(seconds: float) -> int:
    """About how many pieces a chapter of `seconds` is cut into."""
    return max(1, round(seconds / TYPICAL_PIECE_SECONDS))


def cut_gap(gap: int) -> bool:
    """Whether a pause of `gap` samples can hold a cut: the frame left out, a guard either
    side, and the half frame either way the cut moves to start its piece on a frame."""
    return gap >= 2 * FRAME_SPAN + 2 * ms(CUT_GUARD_MS)


def place_cut(start: int, speech_end: int, gap: int) -> tuple[int, int]:
    """Where the piece that began at `start` ends, when the speech before a cut ends at
    `speech_end` and a pause of `gap` samples follows (cut_gap(gap) holds): the next
    piece's start (the left-out frame centred in the pause, then moved to the nearest
    whole number of frames from `start`), and how far that moved it (under half a frame,
    13 ms: the pause is that much longer or shorter, so every piece is encoded from its
    own content, wherever it falls in the chapter)."""
    natural = speech_end + (gap + FRAME_SPAN) // 2
    frames = (natural - start + FRAME_SPAN // 2) // FRAME_SPAN
    cut = start + frames * FRAME_SPAN
    return cut, cut - natural


@dataclass(frozen=True)
class Heard:
    """A stretch of speech a piece's encoding reads (its own, or its neighbours' within
    its context): the clip, whose voice reads it, where it starts relative to the piece's
    start, and how long it lasts (timeline samples)."""

    clip: str  # the clip's key: its content
    voice: str
    offset: int
    length: int


@dataclass(frozen=True)
class PieceContent:
    """All a piece's encoding depends on in the chapter: what it reads, and how much of
    the timeline there is before and after it within its context (less at the chapter's
    ends)."""

    heard: tuple[Heard, ...]
    before: int
    after: int


def piece_contents(
    pieces: Sequence[Piece],
    cues: Sequence[Cue],
    clips: Sequence[str],
    voices: Sequence[str],
    total: int,
    reach: int,
) -> tuple[PieceContent, ...]:
    """What each piece reads within `reach` samples either side: cues[k] reads clips[k] in
    voices[k]."""
    out = []
    at = 0
    for piece in pieces:
        lo, hi = max(0, piece.start - reach), min(total, piece.end + reach)
        while at < len(cues) and cues[at].end <= lo:
            at += 1
        heard = []
        k = at
        while k < len(cues) and cues[k].start < hi:
            cue = cues[k]
            heard.append(Heard(clips[k], voices[k], cue.start - piece.start, cue.end - cue.start))
            k += 1
        out.append(PieceContent(tuple(heard), piece.start - lo, hi - piece.end))
    return tuple(out)


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
