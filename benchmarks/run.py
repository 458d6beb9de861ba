"""narrate's speed and memory against the floor, in one run on this machine.

    .venv/bin/python benchmarks/run.py            # the seeds: floor, cold, no-op, one voice changed
    .venv/bin/python benchmarks/run.py --novel    # also News from Nowhere (80k words; minutes)
    .venv/bin/python benchmarks/run.py --kokoro   # also the seeds read by Kokoro (15 minutes)
    make bench                                    # the same as the first line

Every figure comes from this run, so the ratios compare like with like on this machine. The
floor (benchmarks/floor.py) is espeak-ng through its C API rendering the cast's lines with
their voices, as the build renders them, plus soxr and LAME at the build's default encoder
settings, split over one process per core, with nothing else (--words-floor also measures the
floor until 2026-12-01, every word in one voice at 175 wpm, and prints the ratios to it). Each
build runs `narrate build` as a user would, in a scratch copy of the project with its own
clip cache. Peak memory is the largest sum of the resident memory of the build and all its
worker processes, sampled every 20 ms from /proc; CPU use is user+system time over wall time.
The floor and the cold build are measured in pairs, back to back, five times for the seeds
(--repeat N): this machine's speed drifts by 10% from minute to minute, and the pair with
the median ratio is reported. With --kokoro, the seeds are also built with voices.kokoro.yaml
and measured against the Kokoro floor (benchmarks/kokoro_floor.py: kokoro-onnx alone
rendering the same sentences with the same voices, in each process/thread split of the
cores, the fastest taken). After the no-op rebuild, the book is built again with --m4b: the
audiobook's cost on its own (its chapters' AAC and the M4B; no MP3 is encoded again); then
without and with --readalong, three pairs: what the read-along EPUB adds. Prints
a table with each goal of issues 7, 13, 15 and 27 checked, and writes
the figures as JSON (benchmarks/results.json, or --json PATH). Exit status 1 if a goal is
missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NARRATE = Path(sys.executable).parent / "narrate"
NOVEL = REPO / "tests" / "data" / "news-from-nowhere.txt"
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_measured(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> dict:
    """Wall seconds, CPU seconds and peak tree memory of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: {' '.join(map(str, cmd))} failed:\n{err}{out}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "cores_busy": round(cpu / wall, 2),
        "peak_mb": round(peak / 2**20, 1),
        "stdout": out,
    }


def floor(project: Path, words: list[Path] | None = None) -> dict:
    """benchmarks/floor.py on the project's cast (or, given `words`, the floor until
    2026-12-01 on those files). Its seconds and CPU are its processes' (the cast is read
    before its clock starts); peak memory is the whole command's."""
    args = ["--words", *map(str, words)] if words else [str(project)]
    result = run_measured([sys.executable, str(REPO / "benchmarks" / "floor.py"), *args])
    figures = json.loads(result.pop("stdout"))
    result.update(
        {k: figures[k] for k in ("seconds", "cpu_seconds", "words", "audio_seconds", "realtime")}
    )
    result["cores_busy"] = round(figures["cpu_seconds"] / figures["seconds"], 2)
    return result


def product_files(out: Path) -> dict[str, tuple[str, int]]:
    """Files a build delivers (not its cache, state or report), with sha256 and mtime."""
    found = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if p.is_file() and rel.parts[0] not in (".cache", ".state") and rel.name != "build.json":
            found[str(rel)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return found


def build(project: Path, voices: str | None = None, *args: str) -> dict:
    env = {**os.environ, "NARRATE_CACHE_DIR": str(project / "cache")}
    cast = ["--voices", voices] if voices else []
    cmd = [str(NARRATE), "build", "-p", str(project), *cast, *args, "--quiet"]
    result = run_measured(cmd, env=env)
    result.pop("stdout")
    report = json.loads((project / "output" / "build.json").read_text(encoding="utf-8"))
    result["stages"] = report["stages"]
    result["totals"] = report["totals"]
    result["encoded"] = [c["mp3"] for c in report["chapters"] if c["encoded"]]
    for key in ("audiobook", "readalong", "cluster"):
        if key in report:
            result[key] = report[key]
    return result


def make_project(root: Path, seeds: list[Path]) -> Path:
    (root / "seeds").mkdir(parents=True)
    for seed in seeds:
        shutil.copy(seed, root / "seeds" / seed.name)
    for name in ("voices.yaml", "voices.kokoro.yaml", "podcast.yaml"):
        shutil.copy(REPO / name, root / name)
    return root


def change_rate(project: Path, voice: str, delta: float, key: str = "rate", cast: str = "") -> None:
    path = project / (cast or "voices.yaml")
    text = path.read_text(encoding="utf-8")
    at = text.index(f"  {voice}:")
    m = re.compile(key + r": ([0-9.]+)").search(text, at)
    assert m is not None
    value = round(float(m.group(1)) + delta, 3)
    value_text = str(int(value)) if key == "rate" else str(value)
    text = text[: m.start()] + f"{key}: {value_text}" + text[m.end() :]
    path.write_text(text, encoding="utf-8")


def voice_lines(project: Path, label: str) -> dict[str, int]:
    """Per chapter file, how many transcript cues the voice labelled `label` reads."""
    counts = {}
    for vtt in sorted((project / "output").glob("*.vtt")):
        lines = vtt.read_text(encoding="utf-8").splitlines()
        counts[vtt.stem + ".mp3"] = sum(1 for line in lines if line.startswith(f"<v {label}>"))
    return counts


def bench_book(
    name: str, seeds: list[Path], scratch: Path, rebuilds: bool, repeat: int, words: bool = False
) -> dict:
    """The floor and a cold build, `repeat` times in turn (each pair back to back, so a
    slow spell of the machine weighs on both); the pair with the median ratio is reported,
    and the rebuilds are measured on its project. With `words`, the floor until 2026-12-01
    is measured too, before each pair, and the ratios to it reported beside."""
    pairs = []
    old: list[float] = []
    for i in range(repeat):
        step = f" ({i + 1}/{repeat})" if repeat > 1 else ""
        project = make_project(scratch / f"{name}-{i}", seeds)
        if words:
            print(f"[{name}] floor until 2026-12-01{step}...", file=sys.stderr, flush=True)
            old.append(floor(project, seeds)["seconds"])
        print(f"[{name}] floor{step}...", file=sys.stderr, flush=True)
        base = floor(project)
        print(f"[{name}] cold build{step}...", file=sys.stderr, flush=True)
        cold = build(project)
        pairs.append((cold["seconds"] / base["seconds"], i, base, cold, project))
    ratios = [round(p[0], 3) for p in pairs]
    _, _, base, cold, project = sorted(pairs, key=lambda p: p[:2])[len(pairs) // 2]
    for other in pairs:
        if other[4] != project:
            shutil.rmtree(other[4], ignore_errors=True)  # a novel's clips take a gigabyte
    result: dict = {"floor": base, "cold": cold, "ratios": ratios}
    if words:
        result["words_floor_ratios"] = [
            round(p[3]["seconds"] / o, 3) for p, o in zip(pairs, old, strict=True)
        ]
    before = product_files(project / "output")
    print(f"[{name}] no-op rebuild...", file=sys.stderr, flush=True)
    result["noop"] = build(project)
    result["noop"]["files_rewritten"] = sorted(
        k for k, v in product_files(project / "output").items() if before.get(k) != v
    )
    # The M4B's cost on its own: the same book built again with it on, so that its MP3s
    # are kept and only the audiobook is made (each chapter's AAC, then the M4B joined).
    print(f"[{name}] the audiobook added (--m4b)...", file=sys.stderr, flush=True)
    result["m4b"] = build(project, None, "--m4b")
    # The read-along EPUB's cost: what a build with it adds to one without (the MP3s kept,
    # the book written anew each time), in pairs back to back, the median taken.
    extra = []
    for i in range(READALONG_PAIRS):
        step = f" ({i + 1}/{READALONG_PAIRS})"
        print(f"[{name}] without and with --readalong{step}...", file=sys.stderr, flush=True)
        for book in (project / "output").glob("*.epub"):
            book.unlink()
        without = build(project)
        with_it = build(project, None, "--readalong")
        extra.append((with_it["seconds"] - without["seconds"], without, with_it))
    result["readalong_extra"] = [round(e[0], 3) for e in extra]
    _, result["readalong_without"], result["readalong"] = sorted(extra, key=lambda e: e[0])[
        len(extra) // 2
    ]
    if rebuilds:
        serge = voice_lines(project, "Victor Serge")
        print(f"[{name}] rebuild after Serge's rate changed...", file=sys.stderr, flush=True)
        change_rate(project, "serge", 15)
        changed = build(project)
        changed["expected_rendered"] = sum(serge.values())
        changed["expected_encoded"] = sorted(k for k, n in serge.items() if n)
        result["one_voice"] = changed
    return result


KOKORO_CAST = "voices.kokoro.yaml"
#: Pairs of builds without and with the read-along EPUB (issue 27: it adds at most 10%).
READALONG_PAIRS = 3
READALONG_GOAL = 0.10
#: Issue 15's goals for a cold build with the M4B off, against the floor in the same run.
COLD_GOAL = {"seeds": 1.35, "novel": 1.2}


def kokoro_floor(project: Path) -> dict:
    cmd = [sys.executable, str(REPO / "benchmarks" / "kokoro_floor.py"), str(project)]
    result = run_measured([*cmd, "--voices", KOKORO_CAST])
    figures = json.loads(result.pop("stdout"))
    best = figures["best"]
    return {
        **result,
        "seconds": best["seconds"],
        "all_splits_seconds": result["seconds"],
        "split": best["split"],
        "splits": figures["splits"],
        "utterances": figures["utterances"],
        "audio_seconds": best["audio_seconds"],
        "realtime": best["realtime"],
    }


def bench_kokoro(seeds: list[Path], scratch: Path) -> dict:
    """The seeds with voices.kokoro.yaml: the Kokoro floor, then a cold build, a no-op
    rebuild and a rebuild after Serge's speed changed, in one project."""
    project = make_project(scratch / "kokoro", seeds)
    print("[kokoro] floor (every split)...", file=sys.stderr, flush=True)
    base = kokoro_floor(project)
    print("[kokoro] cold build...", file=sys.stderr, flush=True)
    cold = build(project, KOKORO_CAST)
    result: dict = {
        "floor": base,
        "cold": cold,
        "ratios": [round(cold["seconds"] / base["seconds"], 3)],
    }
    before = product_files(project / "output")
    cold["mp3_sha256"] = {k: v[0] for k, v in before.items() if k.endswith(".mp3")}
    print("[kokoro] no-op rebuild...", file=sys.stderr, flush=True)
    result["noop"] = build(project, KOKORO_CAST)
    result["noop"]["files_rewritten"] = sorted(
        k for k, v in product_files(project / "output").items() if before.get(k) != v
    )
    serge = voice_lines(project, "Victor Serge")
    print("[kokoro] rebuild after Serge's speed changed...", file=sys.stderr, flush=True)
    change_rate(project, "serge", 0.05, key="speed", cast=KOKORO_CAST)
    changed = build(project, KOKORO_CAST)
    changed["expected_rendered"] = sum(serge.values())
    changed["expected_encoded"] = sorted(k for k, n in serge.items() if n)
    result["one_voice"] = changed
    return result


def goals(results: dict) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each of issue 7's and 13's goals that this run measured."""
    rows = []
    for name, r in results.items():
        if name == "kokoro":
            rows += kokoro_goals(r)
            continue
        cold, base = r["cold"], r["floor"]
        ratio = cold["seconds"] / base["seconds"]
        most = COLD_GOAL[name]
        rows.append((f"{name}: cold build <= {most}x floor", f"{ratio:.2f}x", ratio <= most))
        if "m4b" in r:
            m = r["m4b"]
            book = m.get("audiobook") or {}
            share = m["seconds"] / cold["seconds"]
            rows.append(
                (
                    f"{name}: the M4B added: no MP3 encoded again",
                    f"{m['seconds']:.2f} s ({share:.0%} of the cold build, "
                    f"{m['seconds'] / base['seconds']:.2f}x floor), "
                    f"{book.get('size', 0) / 1e6:.1f} MB, {book.get('chapters', 0)} chapters, "
                    f"{len(m['encoded'])} MP3s encoded",
                    bool(book.get("written")) and not m["encoded"],
                )
            )
        if "readalong" in r:
            ra = r["readalong"]
            extra = sorted(r["readalong_extra"])[len(r["readalong_extra"]) // 2]
            share = extra / cold["seconds"]
            rows.append(
                (
                    f"{name}: --readalong adds <= {READALONG_GOAL:.0%} to a cold build",
                    f"+{extra:.2f} s = {share:.1%} (pairs: "
                    + ", ".join(f"{x:+.2f}" for x in r["readalong_extra"])
                    + f" s; its stage {ra['stages'].get('read-along', 0):.2f} s), "
                    f"{ra['readalong']['size'] / 1e6:.1f} MB, {ra['readalong']['cues']} cues",
                    share <= READALONG_GOAL and ra["readalong"]["written"],
                )
            )
        noop = r["noop"]
        if name == "seeds":
            rows.append(
                (f"{name}: no-op rebuild < 1 s", f"{noop['seconds']:.2f} s", noop["seconds"] < 1)
            )
        else:
            share = noop["seconds"] / cold["seconds"]
            rows.append((f"{name}: no-op rebuild < 3% of cold", f"{share:.1%}", share < 0.03))
        idle = noop["totals"]["rendered"] == 0 and not noop["encoded"]
        rows.append(
            (
                f"{name}: no-op renders, encodes, rewrites nothing",
                f"{noop['totals']['rendered']} rendered, {len(noop['encoded'])} encoded, "
                f"{len(noop['files_rewritten'])} rewritten",
                idle and not noop["files_rewritten"],
            )
        )
        if "one_voice" in r:
            ov = r["one_voice"]
            rows.append(
                (
                    f"{name}: one voice changed: only its clips and chapters",
                    f"{ov['totals']['rendered']} rendered (its lines: {ov['expected_rendered']}), "
                    f"encoded {ov['encoded']}",
                    ov["totals"]["rendered"] == ov["expected_rendered"]
                    and ov["encoded"] == ov["expected_encoded"],
                )
            )
        rows.append(
            (
                f"{name}: peak memory < 1 GB",
                f"{cold['peak_mb']:.0f} MB (floor {base['peak_mb']:.0f} MB)",
                cold["peak_mb"] < 1024,
            )
        )
        if len(cold["encoded"]) > 1:
            busy = cold["cores_busy"] / CORES
            rows.append(
                (
                    f"{name}: all {CORES} cores busy (CPU time / wall / cores)",
                    f"{busy:.0%} (floor {base['cores_busy'] / CORES:.0%})",
                    busy >= 0.8,
                )
            )
    return rows


def kokoro_goals(r: dict) -> list[tuple[str, str, bool]]:
    cold, base, noop, ov = r["cold"], r["floor"], r["noop"], r["one_voice"]
    ratio = cold["seconds"] / base["seconds"]
    splits = ", ".join(f"{s['split']} {s['seconds']:.1f} s" for s in base["splits"])
    idle = noop["totals"]["rendered"] == 0 and not noop["encoded"] and not noop["files_rewritten"]
    return [
        (
            "kokoro: cold build <= 1.15x Kokoro floor",
            f"{ratio:.2f}x (floor {base['split']}; splits: {splits})",
            ratio <= 1.15,
        ),
        (
            "kokoro: no-op renders, encodes, rewrites nothing",
            f"{noop['totals']['rendered']} rendered, {len(noop['encoded'])} encoded, "
            f"{len(noop['files_rewritten'])} rewritten, {noop['seconds']:.2f} s",
            idle,
        ),
        (
            "kokoro: one voice changed: only its clips and chapters",
            f"{ov['totals']['rendered']} rendered (its lines: {ov['expected_rendered']}), "
            f"encoded {ov['encoded']}",
            ov["totals"]["rendered"] == ov["expected_rendered"]
            and ov["encoded"] == ov["expected_encoded"],
        ),
        (
            "kokoro: peak memory of build and workers < 3 GB",
            f"{cold['peak_mb']:.0f} MB (floor {base['peak_mb']:.0f} MB)",
            cold["peak_mb"] < 3072,
        ),
    ]


def table(results: dict) -> str:
    lines = [
        f"{'run':<22}{'seconds':>9}{'x floor':>9}{'peak MB':>9}{'cores':>7}"
        f"{'rendered':>10}{'encoded':>9}",
    ]
    for name, r in results.items():
        base = r["floor"]["seconds"]
        for run in ("floor", "cold", "noop", "m4b", "readalong", "one_voice"):
            if run not in r:
                continue
            m = r[run]
            rendered = str(m["totals"]["rendered"]) if "totals" in m else "-"
            encoded = str(len(m["encoded"])) if "encoded" in m else "-"
            lines.append(
                f"{name + ' ' + run:<22}{m['seconds']:>9.2f}{m['seconds'] / base:>9.2f}"
                f"{m['peak_mb']:>9.0f}{m['cores_busy']:>7.2f}{rendered:>10}{encoded:>9}"
            )
        cold = r["cold"]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in cold["stages"].items())
        lines.append(f"  cold build stages (s): {stages}")
        if name == "kokoro":
            splits = ", ".join(
                f"{s['split']} {s['seconds']:.1f} s ({s['realtime']:.2f}x real time)"
                for s in r["floor"]["splits"]
            )
            lines.append(
                f"  audio: {cold['totals']['seconds'] / 60:.1f} min; floor "
                f"{r['floor']['utterances']} utterances, {r['floor']['audio_seconds'] / 60:.1f} "
                f"min, splits (processes x threads): {splits}"
            )
        else:
            lines.append(
                f"  audio: {cold['totals']['seconds'] / 60:.1f} min from {r['floor']['words']} "
                f"words (the floor's speech, with the cast's voices: "
                f"{r['floor']['audio_seconds'] / 60:.1f} min)"
            )
        if len(r["ratios"]) > 1:
            each = ", ".join(f"{x:.2f}" for x in r["ratios"])
            lines.append(f"  cold / floor, {len(r['ratios'])} pairs: {each} (the median shown)")
        if "words_floor_ratios" in r:
            each = ", ".join(f"{x:.2f}" for x in r["words_floor_ratios"])
            lines.append(f"  cold / the floor until 2026-12-01 (every word in one voice): {each}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--novel", action="store_true", help="also the 80k-word novel (minutes)")
    parser.add_argument(
        "--kokoro", action="store_true", help="also the seeds read by Kokoro (needs make kokoro)"
    )
    parser.add_argument("--only-kokoro", action="store_true", help="the Kokoro runs alone")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch projects")
    parser.add_argument(
        "--words-floor",
        action="store_true",
        help="also measure the floor until 2026-12-01 (every word in one voice) in each pair",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="floor and cold build pairs per book, the median reported "
        "(default: 5 for the seeds, 1 for the novel)",
    )
    args = parser.parse_args()
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")

    seeds = sorted(p for p in (REPO / "seeds").iterdir() if p.suffix in (".txt", ".md"))
    scratch = Path(tempfile.mkdtemp(prefix="narrate-bench-"))
    try:
        results = {}
        if not args.only_kokoro:
            results["seeds"] = bench_book(
                "seeds", seeds, scratch, True, args.repeat or 5, args.words_floor
            )
        if args.kokoro or args.only_kokoro:
            results["kokoro"] = bench_kokoro(seeds, scratch)
        if args.novel:
            results["novel"] = bench_book(
                "novel", [NOVEL], scratch, False, args.repeat or 1, args.words_floor
            )
    finally:
        if args.keep:
            print(f"scratch projects kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    print(table(results))
    print()
    rows = goals(results)
    width = max(len(g) for g, _, _ in rows)
    for goal, measured, met in rows:
        print(f"{'PASS' if met else 'MISS'}  {goal:<{width}}  {measured}")
    payload = {
        "machine": {"cores": CORES, "python": sys.version.split()[0]},
        "results": results,
        "goals": [{"goal": g, "measured": m, "met": ok} for g, m, ok in rows],
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nfigures written to {args.json}")
    sys.exit(0 if all(ok for _, _, ok in rows) else 1)


if __name__ == "__main__":
    main()
