"""The floor: the least work any build of a project must do, measured on this machine.

The utterances `narrate build` renders (its cast's lines, each once, with each line's voice:
espeak-ng voice and variant, rate, pitch and volume) given to espeak-ng from the
espeakng-loader wheel through its C API, one engine state per process, longest first onto
the least loaded of one process per core; each process's audio resampled to 44.1 kHz by
soxr and encoded as one stream by lameenc at the build's default settings (64 kbps CBR,
quality 2). Nothing else: no segmenting, casting, forks per clip, WAV files, caching,
pauses, loudness, tags or feed. `narrate build` is measured against this.

The cast is read with narrate's own checks before the clock starts; the seconds are those
of the processes' start, their work and their end.

    python benchmarks/floor.py PROJECT [--voices CAST] [--jobs N]
    python benchmarks/floor.py --words FILE [FILE ...] [--jobs N]

`--words` is the floor as it was until 2026-12-01: every word of the files, in chunks of
40, read by one voice (gmw/en-us at 175 words a minute), whatever the cast. A cast whose
voices are slower than that renders more audio than this floor did (the seeds' cast: 662 s
against 635), so that floor asked the build to do more than the floor in the same time.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH = 1, 2, 3
ESPEAK_CHARS_UTF8 = 1
ESPEAK_ENDPAUSE = 0x1000
CHUNK_WORDS = 40  # --words: a sentence-sized utterance

#: text, espeak-ng voice (with its +variant), rate, pitch, volume (0-200)
Utterance = tuple[str, str, int, int, int]


def utterances(project: Path, voices: str | None) -> list[Utterance]:
    """The unique espeak-ng lines of the project's cast, as the build would render them."""
    from narration.pipeline.checks import check_project
    from narration.pipeline.project import open_project

    checked = check_project(open_project(project, Path(voices) if voices else None))
    seen: dict[Utterance, None] = {}
    for chapter in checked.cast:
        for part in chapter.parts:
            v = part.voice
            if v.engine != "pyttsx3":
                raise SystemExit(f"floor: voice '{v.name}' is read by {v.engine}, not espeak-ng")
            volume = int(round(float(v.volume) * 100, 2))
            for line in part.lines:
                seen.setdefault((line.spoken, v.engine_voice.strip(), v.rate, v.pitch, volume))
    return list(seen)


def word_utterances(files: list[Path]) -> list[Utterance]:
    words: list[str] = []
    for f in files:
        words += f.read_text(encoding="utf-8", errors="replace").split()
    return [
        (" ".join(words[i : i + CHUNK_WORDS]), "gmw/en-us", 175, 50, 100)
        for i in range(0, len(words), CHUNK_WORDS)
    ]


def _render_and_encode(args: tuple[list[Utterance], int]) -> tuple[float, int]:
    """In a worker: synthesise, resample, encode. Returns (audio seconds, mp3 bytes)."""
    work, bitrate = args
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
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate)
    encoder.set_in_sample_rate(44100)
    encoder.set_channels(1)
    encoder.set_quality(2)
    mp3 = bytearray()
    samples = 0
    for text, voice, rate, pitch, volume in work:
        lib.espeak_SetVoiceByName(voice.encode())
        lib.espeak_SetParameter(ESPEAK_RATE, rate, 0)
        lib.espeak_SetParameter(ESPEAK_PITCH, pitch, 0)
        lib.espeak_SetParameter(ESPEAK_VOLUME, volume, 0)
        raw = text.encode()
        chunks.clear()
        lib.espeak_Synth(
            ctypes.c_char_p(raw),
            len(raw) + 1,
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


def measure(work: list[Utterance], jobs: int, bitrate: int = 64) -> dict[str, float]:
    shares: list[list[Utterance]] = [[] for _ in range(jobs)]
    loads = [0.0] * jobs
    for item in sorted(work, key=lambda u: -len(u[0]) / u[2]):
        k = loads.index(min(loads))
        shares[k].append(item)
        loads[k] += len(item[0]) / item[2]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(_render_and_encode, [(s, bitrate) for s in shares if s]))
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's processes, ended
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    audio = sum(r[0] for r in results)
    return {
        "utterances": len(work),
        "words": sum(len(u[0].split()) for u in work),
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "audio_seconds": round(audio, 1),
        "realtime": round(audio / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="PROJECT (or FILEs with --words)")
    parser.add_argument("--voices", default=None, help="the cast file (default: voices.yaml)")
    parser.add_argument("--words", action="store_true", help="the floor until 2026-12-01")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.words:
        work = word_utterances(args.paths)
    elif len(args.paths) != 1:
        parser.error("one PROJECT (or --words FILE ...)")
    else:
        work = utterances(args.paths[0], args.voices)
    json.dump(measure(work, args.jobs), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
