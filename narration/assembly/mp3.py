"""The MP3 writer: a chapter's pieces encoded with LAME and joined into one stream, its
decoded true peak checked, and ID3v2.3 tags with CHAP/CTOC chapter marks and the cover."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from narration.assembly import audio as sig
from narration.assembly import codec
from narration.assembly.levelling import Mix, render
from narration.assembly.timeline import Piece
from narration.errors import OutputError
from narration.files import image_type
from narration.model import CastChapter, Show

#: LAME's quality setting (2: high; the floor in benchmarks uses the same).
LAME_QUALITY = 2


@dataclass(frozen=True)
class Encoded:
    """One piece, encoded and measured: all of it depends on the piece's own content (see
    `timeline.PieceContent`), so a rebuild reuses it wherever that recurs."""

    index: int
    mp3: Path  # the piece's MP3 stream (no tags)
    frames: int
    size: int
    sha256: str
    #: K-weighted energies of its whole 100 ms hops from its start, [start, end): the
    #: chapter's loudness is gated over the blocks of every piece
    hops: np.ndarray
    voices: dict[str, np.ndarray]  # the same of each voice's stretches, back to back
    true_peak: float  # dBTP of the piece's MP3 as decoded


@dataclass(frozen=True)
class PieceJob:
    """One piece of a chapter to encode, in any process (or on a cluster's worker)."""

    mix: Mix
    index: int  # its place in the chapter
    piece: Piece


def encode_piece(job: PieceJob) -> Encoded:
    """Render, encode and measure one piece (in any process). It encodes [start, stop):
    the frame before the next piece is the join's (see Piece)."""
    mix, index, piece = job.mix, job.index, job.piece
    chapter = sig.Gate(sig.RATE)
    voices: dict[str, sig.Gate] = {}
    source = mix.source()

    def measure(sq: np.ndarray, a: int) -> None:
        chapter.feed_squares(sq)
        for name, lo, hi in source.voice_stretches(a, a + sq.size):
            voices.setdefault(name, sig.Gate(sig.RATE)).feed_squares(sq[lo - a : hi - a])

    path = mix.piece_path(index)
    try:
        with open(path, "wb") as out:
            mp3 = codec.Mp3Stream(out, mix.bitrate, LAME_QUALITY)
            for y in render(mix, piece, piece.stop, measure=measure, source=source):
                mp3.write(y)
            mp3.close()
        data = path.read_bytes()
        frames = codec.mp3_frames(data)
        peak = codec.decoded_true_peak(path, mix.true_peak)
    except (OSError, ValueError) as exc:
        raise OutputError(f"{mix.final}: {getattr(exc, 'strerror', None) or exc}") from None
    return Encoded(
        index=index,
        mp3=path,
        frames=frames,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        hops=chapter.hops(),
        voices={name: gate.hops() for name, gate in voices.items()},
        true_peak=peak,
    )


@dataclass(frozen=True)
class Timing:
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

    def heard(self, total: int) -> int:
        """Samples at OUT_RATE to the end of the last: the MP3's length as heard."""
        return sig.OUT_RATE // sig.RATE * total + sig.ENCODER_DELAY + self.shifts[-1]

    def duration(self, total: int) -> float:
        """The MP3's length as heard, in seconds."""
        return self.heard(total) / sig.OUT_RATE


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


def write_tags(
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
        TDOR,
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
    author = (chapter.author or show.author or "").strip()
    lang = iso639_2(show.language)
    voices = "Voices: " + ", ".join(v.label for v in cast.voices)
    tags = ID3()
    tags.add(TIT2(encoding=_enc(title), text=[title]))
    if author:  # nobody named one: none is made up
        tags.add(TPE1(encoding=_enc(author), text=[author]))
    if show.author:
        tags.add(TPE2(encoding=_enc(show.author), text=[show.author]))
    tags.add(TALB(encoding=_enc(show.title), text=[show.title]))
    tags.add(TRCK(encoding=0, text=[f"{number}/{total}"]))
    tags.add(TCON(encoding=0, text=["Audiobook"]))
    # saved as ID3v2.3's TYER (recorded: the first build's year) and TORY (the work's own
    # year), each only where known: a year nobody gave is left out
    if show.recorded is not None:
        tags.add(TDRC(encoding=0, text=[f"{show.recorded:04d}"]))
    if show.year is not None:
        tags.add(TDOR(encoding=0, text=[f"{show.year:04d}"]))
    tags.add(TLAN(encoding=0, text=[lang]))
    tags.add(COMM(encoding=_enc(voices), lang=lang, desc="", text=[voices]))
    tags.add(
        APIC(encoding=0, mime=image_type(cover), type=PictureType.COVER_FRONT, desc="", data=cover)
    )
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
    tags.update_to_v23()  # TDRC -> TYER, TDOR -> TORY and so on: mutagen saves frames as they are
    try:
        tags.save(path, v2_version=3, v23_sep="/", padding=lambda info: 0)
    except (MutagenError, OSError) as exc:
        raise OutputError(f"{final}: could not write ID3 tags ({exc})") from None
