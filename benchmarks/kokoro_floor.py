"""The Kokoro floor: kokoro-onnx alone rendering a build's sentences with its voices.

The same utterances `narrate build --voices CAST` renders (its cast's lines, each once, with
each line's voice, speed and accent), given to kokoro-onnx's own `Kokoro.create` from the
model file and the voices narrate ships, split over P processes of T intra-op threads each,
longest first onto the least loaded process. Nothing else: no segmenting, caching, checks,
WAV files, assembly or feed. Model loading is counted (every build pays it); writing the
model file for kokoro-onnx to read is not. Prints JSON: seconds and audio seconds per split.

    python benchmarks/kokoro_floor.py PROJECT --voices voices.kokoro.yaml [--split 2x1 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

Utterance = tuple[str, str, float, str]  # text, engine voice, speed, lang


def utterances(project: Path, voices: str) -> list[Utterance]:
    """The unique Kokoro lines of the project's cast, as the build would render them."""
    from narration.pipeline.checks import check_project
    from narration.pipeline.project import open_project
    from narration.synthesis.engines import kokoro

    checked = check_project(open_project(project, Path(voices)))
    seen: dict[tuple[str, str, float], Utterance] = {}
    for chapter in checked.cast:
        for part in chapter.parts:
            voice = part.voice
            if voice.engine != "kokoro":
                continue
            first = kokoro.parse_blend(voice.engine_voice)[0][0]
            lang = kokoro.catalogue()[first].lang
            for line in part.lines:
                key = (line.spoken, voice.engine_voice, voice.speed)
                seen.setdefault(key, (line.spoken, voice.engine_voice, voice.speed, lang))
    return list(seen.values())


def _render(args: tuple[str, str, int, list[Utterance]]) -> float:
    """In one process: load kokoro-onnx with `threads` threads, render, return audio seconds."""
    model, voices, threads, work = args
    import numpy as np
    import onnxruntime as rt
    from kokoro_onnx import Kokoro

    from narration.synthesis.engines import kokoro

    options = rt.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = rt.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    engine = Kokoro.from_session(session, voices)
    styles = {}
    seconds = 0.0
    for text, voice, speed, lang in work:
        if voice not in styles:  # a blend as narrate makes it, from kokoro-onnx's voices
            styles[voice] = kokoro.blend_style(voice, load=engine.get_voice_style)
        audio, rate = engine.create(text, voice=styles[voice], speed=speed, lang=lang)
        seconds += len(np.asarray(audio)) / rate
    return seconds


def measure(work: list[Utterance], processes: int, threads: int, model: str, voices: str) -> dict:
    shares: list[list[Utterance]] = [[] for _ in range(processes)]
    loads = [0] * processes
    for item in sorted(work, key=lambda u: -len(u[0]) / u[2]):
        k = loads.index(min(loads))
        shares[k].append(item)
        loads[k] += int(len(item[0]) / item[2])
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=processes) as pool:
        audio = sum(pool.map(_render, [(model, voices, threads, s) for s in shares]))
    seconds = time.perf_counter() - start
    return {
        "split": f"{processes}x{threads}",
        "seconds": round(seconds, 3),
        "audio_seconds": round(audio, 1),
        "realtime": round(audio / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--voices", default="voices.kokoro.yaml")
    parser.add_argument(
        "--split",
        action="append",
        default=None,
        help="PROCESSESxTHREADS, repeatable (default: every split of this machine's cores)",
    )
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    splits = args.split or [f"{p}x{cores // p}" for p in range(1, cores + 1) if cores % p == 0]
    work = utterances(args.project, args.voices)

    import numpy as np

    from narration.synthesis.engines import kokoro

    with tempfile.TemporaryDirectory(prefix="kokoro-floor-") as scratch:
        model = Path(scratch) / "kokoro-v1.0.int8.onnx"
        model.write_bytes(kokoro.load_model())
        voices = Path(scratch) / "voices.npz"
        np.savez(voices, **{vid: kokoro.load_style(vid) for vid in kokoro.catalogue()})
        results = []
        for split in splits:
            p, t = (int(x) for x in split.lower().split("x"))
            print(f"kokoro floor {p}x{t}...", file=sys.stderr, flush=True)
            results.append(measure(work, p, t, str(model), str(voices)))
    best = min(results, key=lambda r: r["seconds"])
    json.dump({"utterances": len(work), "splits": results, "best": best}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
