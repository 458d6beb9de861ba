"""The floor: the least work any build of these texts must do, measured on this machine.

espeak-ng from the espeakng-loader wheel called directly through its C API, the words split
evenly over one process per core, resampled to 44.1 kHz mono and encoded by lameenc at the
build's default bitrate (64 kbps CBR, quality 2), with nothing else: no segmenting, casting,
caching, loudness, tags or feed. `narrate build` is measured against this.

    python benchmarks/floor.py FILE [FILE ...] [--jobs N] [--rate WPM]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_ENDPAUSE = 0x1000
CHUNK_WORDS = 40  # a sentence-sized utterance


def _render_and_encode(args: tuple[list[str], int, int, str]) -> tuple[float, int]:
    """In a worker: synthesise the words, resample, encode. Returns (audio seconds, mp3 bytes)."""
    words, rate, bitrate, voice = args
    import espeakng_loader
    import lameenc
    import numpy as np
    import soxr

    lib = ctypes.CDLL(espeakng_loader.get_library_path(), mode=ctypes.RTLD_GLOBAL)
    data = espeakng_loader.get_data_path().encode()
    sr = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, ctypes.c_char_p(data), 0)
    chunks: list[bytes] = []

    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def on_synth(wav: ctypes.POINTER(ctypes.c_short), n: int, _events: int) -> int:
        if n > 0:
            chunks.append(ctypes.string_at(wav, n * 2))
        return 0

    cb = callback_type(on_synth)
    lib.espeak_SetSynthCallback(cb)
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(ESPEAK_RATE, rate, 0)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate)
    encoder.set_in_sample_rate(44100)
    encoder.set_channels(1)
    encoder.set_quality(2)
    mp3 = bytearray()
    samples = 0
    for i in range(0, len(words), CHUNK_WORDS):
        text = " ".join(words[i : i + CHUNK_WORDS]).encode()
        chunks.clear()
        lib.espeak_Synth(
            ctypes.c_char_p(text),
            len(text) + 1,
            0,
            0,
            0,
            ESPEAK_CHARS_UTF8 | ESPEAK_ENDPAUSE,
            None,
            None,
        )
        pcm = np.frombuffer(b"".join(chunks), dtype=np.int16)
        up = soxr.resample(pcm, sr, 44100)
        samples += len(up)
        mp3 += encoder.encode(up.astype(np.int16).tobytes())
    mp3 += encoder.flush()
    return samples / 44100, len(mp3)


def measure(files: list[Path], jobs: int, rate: int = 175, bitrate: int = 64) -> dict[str, float]:
    words: list[str] = []
    for f in files:
        words += f.read_text(encoding="utf-8", errors="replace").split()
    share = -(-len(words) // jobs)
    parts = [
        (words[i : i + share], rate, bitrate, "gmw/en-us") for i in range(0, len(words), share)
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(_render_and_encode, parts))
    seconds = time.perf_counter() - start
    audio = sum(r[0] for r in results)
    return {
        "words": len(words),
        "seconds": round(seconds, 3),
        "audio_seconds": round(audio, 1),
        "realtime": round(audio / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rate", type=int, default=175)
    args = parser.parse_args()
    json.dump(measure(args.files, args.jobs, args.rate), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
