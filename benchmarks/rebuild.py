"""What a rebuild after one voice changed costs against a cold build with that change:
paired runs, side by side on this machine.

    .venv/bin/python benchmarks/rebuild.py                  # both books, 3 pairs each
    .venv/bin/python benchmarks/rebuild.py --book long --voice boffin --pairs 1
    .venv/bin/python benchmarks/rebuild.py --checkout /path/to/older/checkout  # its narrate

The books:
- `long`: the shared novel's first five chapters as one chapter (their headings removed,
  one Markdown heading over them: 59 minutes, 11,600 words), its characters cast
  automatically but for Dick, the main speaker after the narrator, pinned to a voice of
  voices.yaml so his rate can change. `--voice dick` (the default) slows him from 170 to
  150 words a minute; `--voice boffin`, a minor character (two quotations), likewise.
- `seeds`: the repository's seeds and voices.yaml; Serge's rate from 160 to 150.

Each pair takes a copy of the book built cold with the old setting (its clip cache, state
and output), changes the voice and builds again (the rebuild), then builds a fresh copy
with the new setting and the same narrate.lock cold (the cold build), alternating which
goes first. It checks the two outputs are byte-identical (build.json aside) and prints,
per pair and as medians, both times, their ratio, and the pieces the rebuild encoded (from
build.json). Issue 28's goals: the long book's rebuild at most 30% of its cold build, the
seeds' at most 25%.
"""

from __future__ import annotations

import argparse
import hashlib
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

#: Dick's voice as the automatic cast gave it on this machine, pinned so it can change; and
#: Boffin's from the shared pool
CHARACTER_VOICES = """
  dick:
    label: Dick
    voice: gmw/en-gb-x-gbcwmd
    variant: m5
    rate: 170
  boffin:
    label: Boffin
    voice: gmw/en-gb-scotland
    variant: m1
    rate: 170
"""


def long_book(root: Path, checkout: Path = REPO) -> Path:
    """The novel's chapters I-V as one chapter of a Markdown seed, its characters cast."""
    text = NOVEL.read_text(encoding="utf-8")
    body = text[text.index("CHAPTER I: DISCUSSION AND BED") : text.index("CHAPTER VI:")]
    lines = [line for line in body.split("\n") if not line.startswith("CHAPTER")]
    (root / "seeds").mkdir(parents=True)
    (root / "seeds" / "nowhere.md").write_text(
        "# News from Nowhere, chapters one to five\n\n" + "\n".join(lines) + "\n"
    )
    run(checkout, root, "init", ".")
    voices = (root / "voices.yaml").read_text()
    anchor = "\n# Whoever no rule names"
    voices = voices.replace(anchor, CHARACTER_VOICES + anchor)
    voices = voices.replace(
        "  # voices:               # a character (any of its names) and a voice from above\n"
        "  #   Elizabeth: quotes\n",
        "  voices:\n    Dick: dick\n    Boffin: boffin\n",
    )
    (root / "voices.yaml").write_text(voices)
    (root / "podcast.yaml").write_text("title: Nowhere, Part One\nauthor: William Morris\n")
    return root


def seeds_book(root: Path, checkout: Path = REPO) -> Path:
    (root / "seeds").mkdir(parents=True)
    for seed in sorted((REPO / "seeds").iterdir()):
        if seed.is_file():
            shutil.copy(seed, root / "seeds" / seed.name)
    shutil.copy(REPO / "voices.yaml", root / "voices.yaml")
    shutil.copy(REPO / "podcast.yaml", root / "podcast.yaml")
    return root


def change(project: Path, voice: str, rate: int) -> None:
    """Set `voice`'s rate in voices.yaml."""
    path = project / "voices.yaml"
    text = path.read_text()
    block = re.search(rf"(?m)^  {voice}:\n(?:    .*\n)+", text)
    if block is None:
        raise SystemExit(f"no voice {voice} in {path}")
    new = re.sub(r"(?m)^    rate: \d+$", f"    rate: {rate}", block.group(0))
    path.write_text(text.replace(block.group(0), new))


def run(checkout: Path, project: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    env.pop("NARRATE_CACHE_DIR", None)
    start = time.monotonic()
    # from the project: `-m` puts the working folder first on the import path
    done = subprocess.run(
        [sys.executable, "-m", "narration.cli", *args, "-p", str(project)]
        if args[0] == "build"
        else [sys.executable, "-m", "narration.cli", *args],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"narrate {' '.join(args)} failed in {project}:\n{done.stderr}")
    return time.monotonic() - start


def digests(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.iterdir())
        if p.is_file() and p.name != "build.json"
    }


def pair(code: Path, base: Path, scratch: Path, voice: str, rate: int, rebuild_first: bool) -> dict:
    again = scratch / "rebuild"
    cold = scratch / "cold"
    for p in (again, cold):
        shutil.rmtree(p, ignore_errors=True)
    shutil.copytree(base, again)
    change(again, voice, rate)
    cold.mkdir()
    for name in ("seeds", "voices.yaml", "podcast.yaml", "narrate.lock"):
        src = again / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, cold / name)
    times = {}
    for name in ("rebuild", "cold") if rebuild_first else ("cold", "rebuild"):
        project = again if name == "rebuild" else cold
        times[name] = run(code, project, "build", "-q")
    if digests(again / "output") != digests(cold / "output"):
        raise SystemExit("the rebuild's output differs from the cold build's")
    report = json.loads((again / "output" / "build.json").read_text())
    kept = json.loads((cold / "output" / "build.json").read_text()).get("pieces_kept", {})
    mp3s = sum(p.stat().st_size for p in (cold / "output").glob("*.mp3"))
    return {
        **times,
        "ratio": times["rebuild"] / times["cold"],
        "pieces": report["totals"].get("pieces", 0),  # an older narrate: not counted
        "pieces_encoded": report["totals"].get("pieces_encoded", 0),
        "rendered": report["totals"]["rendered"],
        "clips": report["totals"]["clips"],
        "kept_bytes": kept.get("bytes", 0),
        "mp3_bytes": mp3s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", choices=("long", "seeds", "both"), default="both")
    parser.add_argument("--voice", default=None, help="long: dick (default) or boffin")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--checkout", type=Path, default=REPO, help="the narrate to run")
    args = parser.parse_args()
    books = ("long", "seeds") if args.book == "both" else (args.book,)
    results = {}
    with tempfile.TemporaryDirectory(prefix="narrate-rebuild-") as tmp:
        for book in books:
            voice = "serge" if book == "seeds" else (args.voice or "dick")
            rate = 150
            make = long_book if book == "long" else seeds_book
            base = make(Path(tmp) / book / "base", args.checkout)
            print(f"[{book}] cold build of the book as it was...", file=sys.stderr, flush=True)
            run(args.checkout, base, "build", "-q")
            pairs = []
            for k in range(args.pairs):
                r = pair(
                    args.checkout, base, Path(tmp) / book, voice, rate, rebuild_first=k % 2 == 0
                )
                print(
                    f"[{book}] pair {k + 1}: rebuild {r['rebuild']:.2f} s, cold {r['cold']:.2f} s,"
                    f" {r['ratio']:.1%}; {r['pieces_encoded']} of {r['pieces']} pieces encoded,"
                    f" {r['rendered']} of {r['clips']} clips rendered",
                    file=sys.stderr,
                    flush=True,
                )
                pairs.append(r)
            median = statistics.median(p["ratio"] for p in pairs)
            results[book] = {"voice": voice, "pairs": pairs, "median_ratio": median}
            goal = 0.30 if book == "long" else 0.25
            last = pairs[-1]
            each = ", ".join(f"{p['ratio']:.1%}" for p in pairs)
            print(
                f"{book}: {voice}'s rate changed: rebuild / cold, median of {len(pairs)} pairs: "
                f"{median:.1%} (pairs {each}; goal "
                f"<= {goal:.0%}: {'met' if median <= goal else 'MISSED'}); "
                f"{last['pieces_encoded']} of {last['pieces']} pieces encoded; pieces kept "
                f"{last['kept_bytes'] / 1e6:.1f} MB beside {last['mp3_bytes'] / 1e6:.1f} MB of MP3s"
            )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
