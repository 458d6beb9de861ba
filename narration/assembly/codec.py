"""MP3 in and out: LAME encoding of a stream of samples (lameenc), and the encoded file
read back as players decode it (miniaudio): its true peak and its frames."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from narration.assembly.audio import (
    LAME_GAIN,
    OUT_RATE,
    OVERSAMPLE_PAD,
    block_peaks,
    db_to_gain,
    gain_to_db,
)


class Mp3Stream:
    """MP3 encoding (lameenc, CBR, mono, 44.1 kHz) of a stream of float chunks into a file.

    Chunks are the signal as it is to be heard; LAME's level change (LAME_GAIN) is undone
    before encoding. Peaks are checked afterwards on the decoded file (`decoded_true_peak`),
    which is what players get.
    """

    def __init__(self, out: BinaryIO, bitrate: int, quality: int = 2) -> None:
        import lameenc

        enc = lameenc.Encoder()
        enc.set_bit_rate(bitrate)
        enc.set_in_sample_rate(OUT_RATE)
        enc.set_out_sample_rate(OUT_RATE)  # LAME would drop to 22-32 kHz at <= 56 kbps
        enc.set_channels(1)
        enc.set_quality(quality)
        self._enc = enc
        self._out = out
        self.samples = 0

    def write(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        self.samples += len(x)
        # to_int16(x / LAME_GAIN) in one buffer: this runs over every sample of the book
        y = np.multiply(x, np.float32(32768.0 / LAME_GAIN), dtype=np.float32)
        np.rint(y, out=y)
        np.clip(y, -32768, 32767, out=y)
        self._out.write(self._enc.encode(y.astype("<i2").tobytes()))

    def close(self) -> None:
        self._out.write(self._enc.flush())


def decoded_true_peak(path: Path, threshold_db: float) -> float:
    """True peak (dBTP, 4x) of an MP3 as players decode it, streamed in bounded memory.

    MP3 coding noise adds to peaks unpredictably (0.2 to 1.8 dB here, depending on bitrate
    and content), so the encoded file itself is checked. Only stretches whose sample peak
    is within 1.5 dB of `threshold_db` are oversampled: elsewhere the true peak cannot reach
    it (at 44.1 kHz that would take a peak made of content above 8 kHz), and the sample peak
    stands in. Each stretch is measured with the decoded samples either side as context.
    """
    import miniaudio

    limit = db_to_gain(threshold_db - 1.5)
    pad = OVERSAMPLE_PAD
    peak = 0.0
    left = np.zeros(pad, dtype=np.float32)  # context before what is measured next
    held = np.zeros(0, dtype=np.float32)  # decoded but not yet measured: no context after
    try:
        for chunk in miniaudio.mp3_stream_file(str(path), frames_to_read=1 << 17):
            y = np.frombuffer(chunk, dtype=np.int16) * np.float32(1.0 / 32768.0)
            data = np.concatenate((held, y))
            if data.size <= pad:
                held = data
                continue
            window = np.concatenate((left, data))
            stop = window.size - pad
            peak = max(peak, float(block_peaks(window, 1024, 4, limit, pad, stop).max()))
            left, held = window[stop - pad : stop], window[stop:]
    except miniaudio.DecodeError as exc:
        raise OSError(f"the MP3 just written does not decode ({exc})") from None
    if held.size:
        window = np.concatenate((left, held))
        peak = max(peak, float(block_peaks(window, 1024, 4, limit, pad).max()))
    return gain_to_db(peak)


#: MPEG-1 Layer III bitrates by header index, kbit/s.
_MP3_BITRATES = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)


def mp3_frames(data: bytes) -> int:
    """How many frames an MPEG-1 Layer III 44.1 kHz stream (as LAME writes it) holds;
    ValueError if anything in it is not such a frame."""
    count = pos = 0
    size = len(data)
    while pos < size:
        if pos + 4 > size:
            raise ValueError(f"{size - pos} stray bytes after frame {count}")
        (head,) = struct.unpack_from(">I", data, pos)
        index = (head >> 12) & 0xF
        # sync, MPEG-1, Layer III, 44.1 kHz
        if head >> 21 != 0x7FF or (head >> 17) & 0xF != 0b1101 or (head >> 10) & 3 != 0:
            raise ValueError(f"no MPEG-1 Layer III 44.1 kHz frame at byte {pos}")
        if not 0 < index < 15:
            raise ValueError(f"bad bitrate in frame {count}")
        pos += 144_000 * _MP3_BITRATES[index] // OUT_RATE + ((head >> 9) & 1)
        count += 1
    if pos != size:
        raise ValueError("the last frame is cut short")
    return count
