"""The M4B writer: the whole book as one audiobook file, AAC-LC in MP4, with a chapter for
every mark of the MP3 chapters (each book chapter, its sections and quote blocks), the
cover and the book's tags, as BookPlayer, Smart AudioBook Player, Voice, Audiobookshelf and
Apple Books read them.

It is joined from the chapters' AAC packets (`aac.py`), unchanged, so it costs a remux when
a chapter changed and nothing when none did. PyAV's libavformat writes the MP4 (its
QuickTime chapter track and Nero chpl atom, moov first so a player streams it) and
mutagen its iTunes tags.

Timing: a chapter's AAC holds whole frames of 1024 samples, one more than it needs; each
chapter is ended on the frame that keeps the next one's start within half a frame (12 ms)
of where the MP3 chapters' durations put it, so the book never drifts from its episodes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from narration.assembly import audio as sig
from narration.assembly.aac import FRAME, PRIMING, AacChapter, encoder_version, unpack
from narration.assembly.state import AssembledEpisode, cover_bytes, kept_book, save_book
from narration.assembly.timeline import discard
from narration.errors import OutputError
from narration.files import image_type, temp_path
from narration.layout import AUDIOBOOK_STATE
from narration.model import Audiobook, Show

#: Bump when a change here changes the M4B's bytes.
M4B_FORMAT = 1
#: The MP4 muxer's options: moov before the audio (players start at once, over HTTP too);
#: the audiobook brand; no encoder version string (the bytes do not change with PyAV's);
#: sample-exact times. Creation and modification times are left at 0, as in every build.
MUX_OPTIONS = {
    "movflags": "+faststart",
    "brand": "M4B ",
    "fflags": "+bitexact",
    "movie_timescale": str(sig.OUT_RATE),
}


@dataclass(frozen=True)
class BookChapter:
    """One chapter as the audiobook takes it: its AAC, how long its MP3 is heard, and its
    marks (seconds into the chapter, as in its MP3)."""

    title: str
    aac: Path
    aac_sha256: str
    heard: int  # samples at OUT_RATE
    marks: tuple[tuple[float, str], ...]


def _ends(chapters: Sequence[BookChapter]) -> list[int]:
    """Each chapter's last frame, counted from the file's first (the priming): where the
    MP3s' durations, summed, end it, to the nearest frame."""
    ends, heard = [], 0
    for ch in chapters:
        heard += ch.heard
        ends.append(round(heard / FRAME) + PRIMING // FRAME)
    return ends


def _digest(chapters: Sequence[BookChapter], show: Show, cover: bytes, narrators: str) -> str:
    data = {
        "format": M4B_FORMAT,
        "encoder": encoder_version(),
        "chapters": [[c.title, c.aac_sha256, c.heard, c.marks] for c in chapters],
        "show": [show.title, show.author, show.description, show.language, show.day],
        "cover": hashlib.sha256(cover).hexdigest(),
        "narrators": narrators,
    }
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _state(state_dir: Path) -> Path:
    return state_dir / AUDIOBOOK_STATE


def _kept(state_dir: Path, path: Path, digest: str) -> Audiobook | None:
    """The audiobook an earlier build made from the same inputs, if it is untouched."""
    state = kept_book(_state(state_dir), path, digest)
    try:
        if state is None:
            return None
        marks = tuple((float(t), str(title)) for t, title in state["marks"])
        return Audiobook(path, float(state["seconds"]), path.stat().st_size, marks, written=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_audiobook(
    chapters: Sequence[BookChapter],
    *,
    show: Show,
    cover: bytes,
    narrators: Sequence[str],
    bitrate: int,
    path: Path,
    state_dir: Path,
) -> Audiobook:
    """Join the chapters' AAC into `path` (written beside it and renamed into place), or
    keep the one an earlier build made from the same inputs (as state_dir remembers)."""
    names = ", ".join(narrators)
    digest = _digest(chapters, show, cover, names)
    kept = _kept(state_dir, path, digest)
    if kept is not None:
        return kept
    if not chapters:
        raise OutputError(f"{path}: the book has no chapters")
    ends = _ends(chapters)
    rate = sig.OUT_RATE
    marks: list[tuple[int, str]] = []
    first = 0
    for ch, end in zip(chapters, ends, strict=True):
        start = max(0, first * FRAME - PRIMING)  # presentation time: the priming is cut
        for t, title in ch.marks:
            at = start if t <= 0 else start + round(t * rate)
            if marks and at <= marks[-1][0]:
                marks[-1] = (marks[-1][0], title)
            else:
                marks.append((at, title))
        first = end

    def packets() -> Iterator[bytes]:
        """Each chapter's packets, one chapter in memory at a time, up to its last frame."""
        first = 0
        for ch, end in zip(chapters, ends, strict=True):
            part = _read(ch)
            keep = end - first
            if not 0 < keep <= len(part.packets):  # pragma: no cover - frames_for's promise
                raise OutputError(f"{ch.aac}: {len(part.packets)} frames, {keep} wanted")
            yield from part.packets[:keep]
            first = end

    total = ends[-1] * FRAME - PRIMING
    tmp = temp_path(path)
    try:
        _mux(tmp, packets(), marks, total, bitrate, path)
        _tag(tmp, path, show=show, cover=cover, narrators=names)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"{path}: {exc.strerror or exc}") from None
    finally:
        discard(tmp)
    seconds = round(total / rate, 3)
    st = path.stat()
    book = Audiobook(path, seconds, st.st_size, tuple((round(a / rate, 3), t) for a, t in marks))
    save_book(
        _state(state_dir),
        path,
        digest,
        {"seconds": seconds, "marks": [list(m) for m in book.marks]},
    )
    return book


def _read(ch: BookChapter) -> AacChapter:
    """A chapter's AAC, checked against the digest it was made with."""
    try:
        data = ch.aac.read_bytes()
    except OSError as exc:
        raise OutputError(f"{ch.aac}: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != ch.aac_sha256:
        # bit rot (its size and time said untouched): the next build encodes it anew
        discard(ch.aac)
        raise OutputError(
            f"{ch.aac}: damaged on disk (its bytes changed since it was encoded); "
            "removed it: build again to encode it anew"
        )
    return unpack(data, ch.aac)


def _mux(
    tmp: Path,
    packets: Iterator[bytes],
    marks: list[tuple[int, str]],
    total: int,
    bitrate: int,
    final: Path,
) -> None:
    """The MP4: one AAC track from the packets as they are, and a chapter per mark."""
    import av

    tb = Fraction(1, sig.OUT_RATE)
    try:
        out = av.open(str(tmp), "w", format="ipod", options=MUX_OPTIONS)
        try:
            # the stream's codec (and so the file's AudioSpecificConfig) is an encoder PyAV
            # opens when the header is written: the same settings as the chapters' encoder
            stream: Any = out.add_stream("aac", rate=sig.OUT_RATE, layout="mono")
            stream.time_base = tb
            stream.bit_rate = bitrate * 1000
            bounds = [m[0] for m in marks[1:]] + [total]
            out.set_chapters(
                [
                    {
                        "id": k + 1,
                        "start": at,
                        "end": end,
                        "time_base": tb,
                        "metadata": {"title": t},
                    }
                    for k, ((at, t), end) in enumerate(zip(marks, bounds, strict=True))
                ]
            )
            pts = -PRIMING
            for data in packets:
                packet = av.Packet(data)
                packet.stream = stream
                packet.time_base = tb
                packet.pts = packet.dts = pts
                packet.duration = FRAME
                out.mux(packet)
                pts += FRAME
        finally:
            out.close()
    except (av.FFmpegError, OSError) as exc:
        raise OutputError(f"{final}: could not write the audiobook ({exc})") from None


def _tag(tmp: Path, final: Path, *, show: Show, cover: bytes, narrators: str) -> None:
    """iTunes tags: the book, its author and narrators, genre Audiobook, media kind
    Audiobook (stik 2), one track of one disc, the cover."""
    from mutagen import MutagenError
    from mutagen.mp4 import MP4, MP4Cover

    try:
        tags = MP4(tmp)
        if tags.tags is None:
            tags.add_tags()
        fmt = MP4Cover.FORMAT_PNG if image_type(cover) == "image/png" else MP4Cover.FORMAT_JPEG
        values: dict[str, Any] = {
            "\xa9nam": [show.title],
            "\xa9alb": [show.title],
            "\xa9wrt": [narrators],  # Audiobookshelf and others read the narrator here
            "\xa9nrt": [narrators],  # and Apple's own narrator atom
            "\xa9gen": ["Audiobook"],
            "stik": [2],
            "trkn": [(1, 1)],
            "disk": [(1, 1)],
            "covr": [MP4Cover(cover, imageformat=fmt)],
        }
        if show.author:  # nobody named one: none is made up
            values["\xa9ART"] = values["aART"] = [show.author]
        if show.day is not None:  # the work's year, else the recording's; never a guess
            values["\xa9day"] = [f"{show.day:04d}"]
        if show.description:
            values["desc"] = [show.description[:255]]
            values["ldes"] = [show.description]
            values["\xa9cmt"] = [show.description]
        for key, value in values.items():
            tags[key] = value
        tags.save()
    except (MutagenError, OSError) as exc:
        raise OutputError(f"{final}: could not write MP4 tags ({exc})") from None


def assemble_audiobook(
    episodes: Sequence[AssembledEpisode],
    *,
    show: Show,
    bitrate: int,
    path: Path,
    state_dir: Path,
) -> Audiobook:
    """The audiobook of episodes that `assemble_book(..., m4b=True)` made or kept."""
    chapters = []
    for ep in episodes:
        if ep.aac is None or ep.aac_sha256 is None:  # pragma: no cover - assemble_book's
            raise OutputError(f"{ep.mp3}: its audio was not encoded for the audiobook")
        chapters.append(BookChapter(ep.title, ep.aac, ep.aac_sha256, ep.heard, ep.marks))
    narrators = list(dict.fromkeys(v for ep in episodes for v in ep.voices))
    return write_audiobook(
        chapters,
        show=show,
        cover=cover_bytes(show),
        narrators=narrators,
        bitrate=bitrate,
        path=path,
        state_dir=state_dir,
    )
