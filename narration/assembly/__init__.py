"""Assembly: a cast chapter and its verified clips become a published episode.

For each chapter: the clips are trimmed of the engine's silence and laid out on a timeline
with the pauses from voices.yaml (sentence, paragraph, heading, quote, head and tail room
tone); a fast look-ahead limiter keeps true peaks under the ceiling, and each voice's gain
is set so that, limited, it is at the loudness target (the chapter is checked as a whole);
then the chapter, cut into pieces, is resampled to 44.1 kHz, encoded to CBR MP3 (its
decoded true peak checked), tagged (ID3v2.3 with CHAP/CTOC chapter marks and the cover),
and written with a WebVTT transcript and Podcasting 2.0 JSON chapters beside it.

The modules, in the order the work flows:

    audio.py      the signal processing: loudness, true peak, limiter, resampling
    timeline.py   the chapter's samples, cues and the pieces it is cut into
    plan.py       clips laid out with the pauses, cuts, chapter marks, voices matched
    levelling.py  gains on limited audio, and a piece rendered as it is heard
    codec.py      MP3 in and out: LAME encoding, the decoded true peak, frames
    mp3.py        the MP3 writer: pieces encoded with LAME and joined, ID3 tags
    pieces.py     encoded pieces kept between builds by their content, for rebuilds
    aac.py        a chapter encoded to AAC for the audiobook (kept in the state folder)
    m4b.py        the M4B writer: the chapters' AAC joined, MP4 chapters and tags
    readalong.py  the read-along EPUB 3: each chapter's text, its MP3 and a media overlay
    verse.py      verse found in a seed, so the read-along book keeps its lines
    sidecars.py   the WebVTT transcript, JSON chapters and description
    cover.py      the show's cover: the user's checked, or one drawn
    state.py      what each chapter was made from, to skip unchanged ones
    chapter.py    one chapter's work, step by step
    driver.py     where the chapters' tasks run: processes, a cluster beside them
    book.py       the book's chapters, kept or made, in order
    preload.py    what the fork server loads before it forks assembly's processes

Every output is deterministic (same inputs, same bytes) and written atomically. A digest of
all of a chapter's inputs is kept in the state folder (.narrate/state/), so a chapter whose
inputs did not change is neither encoded nor rewritten on the next build; in a chapter that
changed, only the pieces whose content changed are encoded again (docs/design.md,
"Rebuilds in proportion to the change").

Where the time goes (the two seeds, 11.6 min of audio, 2 cores): LAME is two thirds of
assembly's CPU and cannot be shared out within one stream, so `assemble_book` cuts each
chapter at pauses into pieces (25 s on average, where the text chooses: `plan.cut_places`),
encodes them on every core and joins their MP3 streams into one (see `timeline.Piece` for
how the join stays exact). A chapter's plan
(clips laid out into a scratch file, voices matched) runs on one process while others
encode pieces. Measured per minute of audio: LAME 460 ms; decoding the MP3 to check its
true peak 32 ms, the limiter 27 ms, resampling 12 ms, the phase rotator 10 ms, K-weighting
9 ms; and per chapter, matching each voice on its clips (their level on up to four minutes
of them, what the limiter takes on about one, in one to three rounds). Memory is bounded
by the piece, not the chapter or the book.
"""

from __future__ import annotations

from narration.assembly.book import Arrivals, assemble_book, assemble_chapter
from narration.assembly.m4b import assemble_audiobook
from narration.assembly.mp3 import iso639_2
from narration.assembly.readalong import assemble_readalong
from narration.assembly.state import AssembledEpisode, chapter_digest

__all__ = [
    "Arrivals",
    "AssembledEpisode",
    "assemble_audiobook",
    "assemble_book",
    "assemble_chapter",
    "assemble_readalong",
    "chapter_digest",
    "iso639_2",
]
