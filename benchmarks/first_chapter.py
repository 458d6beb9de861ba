"""How soon a cold build publishes its first episode, and what publishing chapter by chapter
costs the whole build: paired runs, side by side on this machine.

    .venv/bin/python benchmarks/first_chapter.py --reference /path/to/older/checkout
    .venv/bin/python benchmarks/first_chapter.py --reference REF --book seeds \
        --voices voices.kokoro.yaml

Each pair builds the book cold (its own clip cache) with this checkout, watching output/
every 20 ms for the first feed item whose MP3 is there, and with the reference checkout (a
build of the code before chapters were published as they finish, say), one after the
other, alternating which goes first. It prints, per pair and as medians: the build's time,
the time to the first episode as a share of it, and the ratio of the two builds' times.
It also counts the clips in the cache when the first episode was published, against all
the build renders: fewer means the later chapters were still rendering. Issue 28's
goals: the novel's first episode within 10% of the build, the build within 5% of the
reference's; the seeds read by Kokoro: chapter 1 published before chapter 2's clips are done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOVEL = REPO / "tests" / "data" / "news-from-nowhere.txt"


def make_project(root: Path, book: str, voices: str | None) -> Path:
    (root / "seeds").mkdir(parents=True)
    if book == "novel":
        shutil.copy(NOVEL, root / "seeds" / NOVEL.name)
    else:
        for seed in sorted((REPO / "seeds").iterdir()):
            if seed.suffix in (".txt", ".md"):
                shutil.copy(seed, root / "seeds" / seed.name)
    shutil.copy(REPO / (voices or "voices.yaml"), root / "voices.yaml")
    shutil.copy(REPO / "podcast.yaml", root / "podcast.yaml")
    return root


def first_item(out: Path) -> str | None:
    """The first episode the feed lists whose MP3 is in output/, if any."""
    try:
        feed = (out / "feed.xml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for url in re.findall(r'<enclosure url="([^"]+)"', feed):
        name = url.rsplit("/", 1)[-1]
        if (out / name).is_file():
            return name
    return None


def clips_in_cache(project: Path) -> int:
    return sum(1 for _ in (project / ".narrate" / "cache" / "clips").rglob("*.wav"))


def build(checkout: Path, project: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    env.pop("NARRATE_CACHE_DIR", None)
    cmd = [sys.executable, "-m", "narration.cli", "build", "-q", "-p", str(project)]
    start = time.monotonic()
    # run from the project: `-m` puts the working folder first on the import path, and this
    # checkout's folder would shadow the reference's
    proc = subprocess.Popen(
        cmd, env=env, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    first: float | None = None
    name = None
    clips_then = None
    while proc.poll() is None:
        if first is None and (name := first_item(project / "output")) is not None:
            first = time.monotonic() - start
            clips_then = clips_in_cache(project)
        time.sleep(0.02)
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"build failed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    if first is None:
        first, name = took, first_item(project / "output")
    return {
        "seconds": round(took, 2),
        "first": round(first, 2),
        "first_file": name,
        # the clips rendered when the first episode was published, and in all: fewer means
        # the later chapters' clips were still rendering
        "clips_at_first": clips_then,
        "clips": clips_in_cache(project),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="an older checkout")
    parser.add_argument("--book", choices=["novel", "seeds"], default="novel")
    parser.add_argument("--voices", help="the cast file to build with (voices.kokoro.yaml)")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="narrate-first-"))
    rows = []
    try:
        for i in range(args.pairs):
            pair = {}
            order = [("new", REPO), ("reference", args.reference)]
            if i % 2:
                order.reverse()
            for label, checkout in order:
                project = make_project(scratch / f"{label}-{i}", args.book, args.voices)
                print(f"[{i + 1}/{args.pairs}] {label}...", file=sys.stderr, flush=True)
                pair[label] = build(checkout, project)
                shutil.rmtree(project, ignore_errors=True)
            new, ref = pair["new"], pair["reference"]
            pair["share_first"] = round(new["first"] / new["seconds"], 3)
            pair["ratio"] = round(new["seconds"] / ref["seconds"], 3)
            rows.append(pair)
            print(json.dumps(pair), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    share = statistics.median(r["share_first"] for r in rows)
    ratio = statistics.median(r["ratio"] for r in rows)
    print(
        f"\n{args.book}{' (' + args.voices + ')' if args.voices else ''}: first episode at "
        f"{share:.1%} of the build (median of {len(rows)}); build / reference: {ratio:.3f} "
        f"(pairs: {', '.join(str(r['ratio']) for r in rows)})"
    )


if __name__ == "__main__":
    main()
