"""What a clip is: its cache key, and the checks a WAV passes before it is one.

`clip_key` addresses a clip by everything that shapes its audio (the exact spoken text,
every voice setting, the engine and its versions, and what else the engine says matters,
such as Kokoro's voice tensors) and nothing else: renaming a voice or changing its
transcript label does not re-render it. `check_clip` verifies a render: a real mono 16-bit
WAV at the engine's rate whose speech lasts plausibly long for its words at the voice's
pace, and not noise. Plain bytes operations, no numpy: this runs in the workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from narration.model import Voice
from narration.synthesis.engines import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH, Engine

KEY_SCHEMA = 1  # bump if the key's recipe changes
#: The lowest sample rate a clip may have (every engine renders at 22,050 Hz or more).
MIN_CLIP_RATE = 8_000


def clip_key(spoken: str, voice: Voice, engine: Engine) -> str:
    """sha256 of the exact spoken text, every voice setting, the engine's name and version,
    and whatever else the engine says shapes the voice (Kokoro: speed and voice tensors)."""
    recipe: dict[str, Any] = {
        "schema": KEY_SCHEMA,
        "text": spoken,
        "engine_voice": voice.engine_voice,
        "rate": int(voice.rate),
        "pitch": int(voice.pitch),
        "volume": repr(float(voice.volume)),
        "engine": engine.name,
        "engine_version": engine.version,
    }
    extra = engine.key_fields(voice)
    if extra:  # absent for espeak-ng, so its clips keep their keys
        recipe["voice_fields"] = extra
    blob = json.dumps(recipe, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ClipProblem(ValueError):
    """Why a WAV is not a usable clip; the message is shown to the user."""


@dataclass(frozen=True)
class WavInfo:
    frames: int
    sample_rate: int
    channels: int
    sample_width: int
    data_offset: int


def wav_info(path: Path) -> WavInfo:
    """Parse a WAV's header; ClipProblem if it is missing, not a PCM WAV, or truncated."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise ClipProblem("no WAV written") from None
    except OSError as exc:
        raise ClipProblem(f"cannot read the WAV ({exc.strerror})") from None
    return parse_wav(head, size)


def parse_wav(head: bytes, size: int) -> WavInfo:
    """The header in `head` (the file's first bytes) of a file of `size` bytes."""
    if size == 0:
        raise ClipProblem("zero-length file")
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ClipProblem("not a WAV file")
    riff_size = struct.unpack_from("<I", head, 4)[0]
    if riff_size + 8 > size:
        raise ClipProblem(f"truncated WAV ({size} bytes, header says {riff_size + 8})")
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            if length < 16 or body + 16 > len(head):
                raise ClipProblem("bad WAV format chunk")
            fmt = struct.unpack_from("<HHIIHH", head, body)
        elif chunk == b"data":
            if fmt is None:
                raise ClipProblem("WAV data before its format chunk")
            tag, channels, rate, _, block, bits = fmt
            if tag != 1:
                raise ClipProblem(f"WAV is not PCM (format {tag})")
            if body + length > size:
                raise ClipProblem(f"truncated WAV ({size - body} of {length} data bytes)")
            if block == 0 or length % block:
                raise ClipProblem("WAV data is not a whole number of frames")
            return WavInfo(length // block, rate, channels, bits // 8, body)
        pos = body + length + (length & 1)
    raise ClipProblem("WAV has no data chunk")


_LETTERS = re.compile(r"[^\W\d_]+|\d+|[^\w\s]", re.UNICODE)


def plausible_speech_seconds(spoken: str, rate: int) -> tuple[float, float]:
    """Shortest and longest plausible speech, in seconds, for `spoken` at `rate` wpm.

    Measured with espeak-ng on 250 sentences of the seeds and a novel at 80, 175 and 450 wpm
    and four voices: the speech (first to last sound) lasted 0.47-0.85x words * 60 / rate,
    and at most 1.6x the generous upper count below. Numbers are read as several words
    ("1921", "$3,000,000"), capitals may be spelled ("NKVD"), symbols may be named ("* * *"):
    the lower count takes each word or number as one word, the upper counts digits, letters
    of capitalised abbreviations and symbols. A voice may name each letter of a script it
    does not read ("Hebrew letter shin": 0.7 s a letter measured for Hebrew, 0.65 for Han in
    an English voice), so letters beyond Latin, Greek and Cyrillic count three words each.
    Text with no word at all may be silent.
    """
    low_words, high_words = 0, 0.0
    for token in _LETTERS.findall(spoken):
        if token[0].isdigit():
            low_words += 1
            high_words += 2 * len(token)
        elif token[0].isalpha():
            low_words += 1
            spelled = token.isupper() and len(token) > 1
            high_words += len(token) if spelled else max(1.0, len(token) / 3)
            high_words += 3 * sum(1 for c in token if _foreign_letter(c))
        else:
            high_words += 1
    per_word = 60.0 / max(rate, 1)
    return 0.3 * low_words * per_word, 2.0 + 2.5 * high_words * per_word


def _foreign_letter(char: str) -> bool:
    """A letter outside the Latin, Greek and Cyrillic scripts (which voices read as words)."""
    if char < "\u0250":  # ASCII and Latin-1, Latin Extended-A and -B
        return False
    script = unicodedata.name(char, "").split(" ", 1)[0]
    return script not in ("LATIN", "GREEK", "CYRILLIC", "MODIFIER", "COMBINING")


#: Maps a 16-bit sample's high byte to 1 when the sample is at least 256 away from zero.
_LOUD_HIGH_BYTE = bytes(0 if b in (0x00, 0xFF) else 1 for b in range(256))


def speech_seconds(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> float:
    """From the first to the last sound in 16-bit little-endian mono PCM.

    A sound is a sample at least 256 from zero (-42 dBFS; espeak-ng's silence is exactly 0,
    its speech peaks near -4 dBFS, Kokoro's near -6 dBFS as narrate levels it); a very quiet
    clip falls back to any non-zero sample. Done with bytes operations, so the worker, which
    forks per clip, stays small (no numpy).
    """
    loud = pcm[1::2].translate(_LOUD_HIGH_BYTE)
    first = loud.find(1)
    if first >= 0:
        return (loud.rfind(1) - first + 1) / sample_rate
    body = pcm[: len(pcm) - len(pcm) % 2]
    lead = len(body) - len(body.lstrip(b"\x00"))
    if lead == len(body):
        return 0.0
    trail = len(body) - len(body.rstrip(b"\x00"))
    return ((len(body) - trail - 1) // 2 - lead // 2 + 1) / sample_rate


def _byte_is(value: int) -> bytes:
    return bytes(1 if b == value else 0 for b in range(256))


_IS_7F, _IS_FF, _IS_80, _IS_00 = (_byte_is(v) for v in (0x7F, 0xFF, 0x80, 0x00))


def full_scale_samples(pcm: bytes) -> int:
    """How many samples of 16-bit little-endian PCM are at full scale (32767 or -32768).

    With bytes operations, as speech_seconds (a sample at a time through array.count
    took a second of a seeds' build): where no high byte is 0x7F or 0x80, none; else the
    low and high bytes' matches, as bits of two integers, are ANDed and counted.
    """
    high = pcm[1::2]
    if b"\x7f" not in high and b"\x80" not in high:
        return 0
    low = pcm[0 : 2 * len(high) : 2]
    count = 0
    for hi_table, lo_table in ((_IS_7F, _IS_FF), (_IS_80, _IS_00)):
        hi = int.from_bytes(high.translate(hi_table), "little")
        lo = int.from_bytes(low.translate(lo_table), "little")
        count += (hi & lo).bit_count()
    return count


def clip_format(info: WavInfo, sample_rate: int | None = None) -> bool:
    """Mono 16-bit at `sample_rate` (None: at any rate an engine renders)."""
    if sample_rate is None:
        rate_ok = info.sample_rate >= MIN_CLIP_RATE
    else:
        rate_ok = info.sample_rate == sample_rate
    return rate_ok and (info.channels, info.sample_width) == (CHANNELS, SAMPLE_WIDTH)


#: Share of samples at full scale beyond which a clip is noise, not speech (espeak-ng and
#: Kokoro as narrate levels them never reach full scale).
MAX_CLIPPED = 0.001


def check_clip(path: Path, spoken: str, rate: int, sample_rate: int = SAMPLE_RATE) -> WavInfo:
    """Verify a rendered clip (an engine's rate: `sample_rate`); ClipProblem saying what is
    wrong with it."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ClipProblem("no WAV written") from None
    except OSError as exc:
        raise ClipProblem(f"cannot read the WAV ({exc.strerror})") from None
    info = parse_wav(data[:4096], len(data))
    if not clip_format(info, sample_rate):
        raise ClipProblem(
            f"expected {sample_rate:,} Hz mono 16-bit, got {info.sample_rate:,} Hz, "
            f"{info.channels} channel(s), {8 * info.sample_width}-bit"
        )
    if info.frames == 0:
        raise ClipProblem("empty WAV (no samples)")
    low, high = plausible_speech_seconds(spoken, rate)
    pcm = data[info.data_offset : info.data_offset + info.frames * info.sample_width]
    speech = speech_seconds(pcm, info.sample_rate)
    if speech < low or speech > high:
        what = "silent" if speech == 0 else f"speech lasts {speech:.2f} s"
        raise ClipProblem(f"{what}; expected {low:.2f}-{high:.2f} s at {rate} wpm")
    clipped = full_scale_samples(pcm)
    if clipped > MAX_CLIPPED * info.frames + 2:
        raise ClipProblem(
            f"{clipped / info.frames:.1%} of the samples at full scale: noise, not speech"
        )
    return info
