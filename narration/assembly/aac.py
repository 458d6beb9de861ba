"""A chapter's audio encoded to AAC-LC for the audiobook, through PyAV's libavcodec (its
wheel carries the encoder: no system ffmpeg).

Each chapter is encoded on its own, from the same levelled samples as its MP3
(`levelling.render`, every piece in a row), and kept in the state folder (.narrate/state/)
as NN-<chapter>.aac, so the audiobook is joined from the chapters' packets unchanged and a
rebuild encodes only the chapters that changed.

Timing: the encoder puts 1024 samples of priming before the audio, as LAME puts 1105; the
chapter is preceded by the difference, so it sounds where its MP3 puts it, and marks taken
from the MP3 hold. It is padded to whole frames plus one (see `m4b.chapter_frames`).

Bytes: libavcodec picks SIMD code by the CPU it runs on, and its AAC encoder's output
differs between those paths, so the encoder runs on its plain C code (measured: 20 % slower)
and every machine writes the same packets.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from narration.assembly import audio as sig
from narration.assembly.levelling import Mix, render
from narration.assembly.state import replace_file
from narration.assembly.timeline import Piece
from narration.errors import OutputError

#: Samples per AAC-LC frame, and the encoder's priming before the first sample.
FRAME = 1024
PRIMING = 1024
#: What a chapter's .aac file starts with; bump its digit when the packets would change.
MAGIC = b"narrate-aac 3\n"
#: libavcodec's AAC coders: "twoloop" (its default) is the better below 64 kbps a channel,
#: "fast" at 64 and above, and 2.8x faster (its documentation, and measured here on the
#: seeds' speech at 64 kbps mono, C code: 200x real time against 72x, 28.9 dB SNR against
#: 23.0). narrate's chapters are mono, so its default 64 kbps gets "fast".
FAST_CODER_KBPS = 64


@dataclass(frozen=True)
class AacChapter:
    """A chapter's AAC as kept in the state folder: its packets (each FRAME samples) and what the
    codec needs to read them (the AudioSpecificConfig)."""

    extradata: bytes
    packets: tuple[bytes, ...]


@functools.lru_cache(maxsize=1)
def _plain_c() -> None:
    """Make libavcodec use its C code in this process (see the module's docstring)."""
    import av

    where = Path(av.__file__).resolve().parent
    found = glob.glob(str(where.parent / "av.libs" / "libavutil*")) or glob.glob(
        str(where / ".dylibs" / "libavutil*")
    )
    try:
        lib = ctypes.CDLL(found[0]) if found else ctypes.CDLL(None)
        lib.av_force_cpu_flags(ctypes.c_int(0))
    except (OSError, AttributeError, IndexError):  # pragma: no cover - the wheels have it
        raise OutputError(
            "PyAV's libavutil was not found: cannot encode the audiobook the same way on "
            "every machine (reinstall av)"
        ) from None


def aac_key(digest: str) -> str:
    """What a chapter's AAC is made from: its MP3's inputs (the digest) and the encoder."""
    blob = f"{digest} {encoder_version()} {MAGIC!r}".encode()
    return hashlib.sha256(blob).hexdigest()


def encoder_version() -> str:
    """What the chapters' AAC depends on beyond their samples: for their cache key."""
    import av

    return f"av {av.__version__} libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}"


def _encoder(bitrate: int) -> Any:
    import av

    _plain_c()
    cc = av.CodecContext.create("aac", "w")
    cc.sample_rate = sig.OUT_RATE
    cc.format = "fltp"
    cc.layout = "mono"
    cc.bit_rate = bitrate * 1000
    cc.time_base = Fraction(1, sig.OUT_RATE)
    cc.options = {"aac_coder": "fast" if bitrate >= FAST_CODER_KBPS else "twoloop"}
    cc.open()
    return cc


def frames_for(decoded: int) -> int:
    """Packets a chapter that decodes to `decoded` samples (priming included) is encoded
    to: whole frames, and one more, so the audiobook can end it on whichever frame keeps
    the book's chapter starts where the MP3s' durations put them."""
    return math.ceil(decoded / FRAME) + 1


def encode(chunks: Iterator[np.ndarray], decoded: int, lead: int, bitrate: int) -> AacChapter:
    """AAC packets of `lead` samples of silence and then `chunks` (float32, OUT_RATE),
    cut or padded with silence to frames_for(decoded) frames."""
    import av

    cc = _encoder(bitrate)
    wanted = (frames_for(decoded) - 1) * FRAME  # samples fed: the priming is the encoder's
    buffer = np.zeros(FRAME, dtype=np.float32)
    filled, fed = 0, 0
    packets: list[bytes] = []

    def frame() -> None:
        nonlocal fed
        f = av.AudioFrame.from_ndarray(buffer.reshape(1, -1), format="fltp", layout="mono")
        f.sample_rate = sig.OUT_RATE
        f.pts = fed
        f.time_base = Fraction(1, sig.OUT_RATE)
        packets.extend(bytes(p) for p in cc.encode(f))
        fed += FRAME

    def feed(y: np.ndarray) -> None:
        nonlocal filled
        y = y[: max(0, wanted - fed - filled)]
        while y.size:
            n = min(FRAME - filled, y.size)
            buffer[filled : filled + n] = y[:n]
            filled += n
            y = y[n:]
            if filled == FRAME:
                frame()
                filled = 0

    feed(np.zeros(lead, dtype=np.float32))
    for y in chunks:
        feed(y)
    while fed < wanted:
        feed(np.zeros(FRAME - filled, dtype=np.float32))
    packets.extend(bytes(p) for p in cc.encode(None))
    if len(packets) != wanted // FRAME + 1:  # pragma: no cover - libavcodec's contract
        raise OutputError(f"AAC encoder gave {len(packets)} packets for {wanted} samples")
    return AacChapter(bytes(cc.extradata), tuple(packets))


@dataclass(frozen=True)
class AacJob:
    """What a process needs to encode a chapter's AAC: its mix and pieces, how long its
    MP3 is heard, and where the packets go."""

    mix: Mix
    pieces: tuple[Piece, ...]
    ceilings: tuple[float, ...]  # each piece's limiter ceiling, as its MP3 was limited
    heard: int  # samples at OUT_RATE, as its MP3 plays: all its frames
    lead: int  # of those, before the timeline: LAME's delay
    first: bool  # the book's first chapter: its priming is cut (an MP4 edit list)
    bitrate: int
    path: Path


def encode_chapter(job: AacJob) -> str:
    """Encode the chapter and write its .aac (atomically); its sha256.

    It decodes as its MP3 does: the priming and what follows stand for LAME's delay, then
    the timeline. The first chapter's priming is cut by the player, so it keeps all of
    that delay as silence."""
    source = job.mix.source()

    def chunks() -> Iterator[np.ndarray]:
        for piece, ceiling in zip(job.pieces, job.ceilings, strict=True):
            mix = replace(job.mix, ceiling_db=ceiling)
            yield from render(mix, piece, piece.end, source=source)

    if job.first:
        decoded, lead = job.heard + PRIMING, job.lead
    else:
        decoded, lead = job.heard, job.lead - PRIMING
    chapter = encode(chunks(), decoded, lead, job.bitrate)
    data = pack(chapter)
    replace_file(job.path, data)
    return hashlib.sha256(data).hexdigest()


def pack(chapter: AacChapter) -> bytes:
    parts = [MAGIC, struct.pack("<II", len(chapter.extradata), len(chapter.packets))]
    parts.append(chapter.extradata)
    parts.append(struct.pack(f"<{len(chapter.packets)}I", *map(len, chapter.packets)))
    parts.extend(chapter.packets)
    return b"".join(parts)


def unpack(data: bytes, path: Path) -> AacChapter:
    """A chapter's .aac read back; OutputError naming it when it is not one."""
    try:
        if not data.startswith(MAGIC):
            raise ValueError("not a chapter's AAC")
        at = len(MAGIC)
        n_extra, n_packets = struct.unpack_from("<II", data, at)
        at += 8
        extradata = data[at : at + n_extra]
        at += n_extra
        sizes = struct.unpack_from(f"<{n_packets}I", data, at)
        at += 4 * n_packets
        packets = []
        for size in sizes:
            packets.append(data[at : at + size])
            at += size
        if at != len(data) or len(extradata) != n_extra:
            raise ValueError("truncated")
    except (ValueError, struct.error) as exc:
        raise OutputError(f"{path}: damaged ({exc}); delete it and build again") from None
    return AacChapter(extradata, tuple(packets))
