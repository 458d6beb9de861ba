"""narrate on a Dask LocalCluster against the local pool, in one run on this machine.

    .venv/bin/python benchmarks/cluster.py            # the seeds with espeak-ng (a minute)
    .venv/bin/python benchmarks/cluster.py --kokoro   # also with Kokoro (about 20 minutes)

A LocalCluster of 1 and of 2 worker processes (one thread each, 127.0.0.1 only) is started
by this script and stays up, as a cluster does; each build is `narrate build --scheduler`
to it, cold (its own clip cache), as a user runs it. Each cluster build is paired with a
local cold build just before it (the machine's speed drifts from minute to minute), three
pairs per size for espeak-ng and one for Kokoro, and the pair with the median ratio is
reported. The overhead is the cluster's build time over the local pool's, less one, with
as many workers as the local pool has processes (this machine's cores); clips per second
are the rendered clips over the synthesis stage's seconds. The goals (issue 17): overhead
at most 10% with espeak-ng, at most 5% with Kokoro. Needs the dask extra (make dask).
Writes benchmarks/cluster-results.json; exit status 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from run import CORES, REPO, build, make_project

from narration.cluster import local_cluster

KOKORO_CAST = "voices.kokoro.yaml"


def cold(scratch: Path, name: str, seeds: list[Path], cast: str | None, *args: str) -> dict:
    project = make_project(scratch / name, seeds)
    try:
        result = build(project, cast, *args)
    finally:
        shutil.rmtree(project, ignore_errors=True)
    synthesis = result["stages"].get("synthesis", 0.0)
    result["clips_per_second"] = result["totals"]["rendered"] / synthesis if synthesis else 0.0
    return result


def bench(scratch: Path, label: str, cast: str | None, sizes: list[int], pairs: int) -> dict:
    seeds = sorted(p for p in (REPO / "seeds").iterdir() if p.suffix in (".txt", ".md"))
    out: dict = {}
    for size in sizes:
        with local_cluster(size) as lc:
            runs = []
            for i in range(pairs):
                tag = f"{label}-{size}-{i}"
                print(f"[{label}] local pool ({i + 1}/{pairs})...", file=sys.stderr, flush=True)
                local = cold(scratch, tag + "-local", seeds, cast)
                print(
                    f"[{label}] {size} worker(s) ({i + 1}/{pairs})...", file=sys.stderr, flush=True
                )
                remote = cold(
                    scratch, tag + "-cluster", seeds, cast, "--scheduler", lc.scheduler_address
                )
                runs.append((remote["seconds"] / local["seconds"], i, local, remote))
        ratio, _, local, remote = sorted(runs, key=lambda r: r[:2])[len(runs) // 2]
        out[str(size)] = {
            "local": local,
            "cluster": remote,
            "ratio": ratio,
            "ratios": [round(r[0], 3) for r in runs],
        }
    return out


def table(results: dict) -> str:
    lines = [
        f"{'run':<28}{'seconds':>9}{'clips/s':>9}{'pieces out':>11}{'x local':>9}{'pairs':>20}"
    ]
    for label, sizes in results.items():
        for size, r in sizes.items():
            loc, clu = r["local"], r["cluster"]
            pieces = (clu.get("cluster") or {}).get("pieces", "-")
            lines.append(
                f"{label + ' local pool':<28}{loc['seconds']:>9.2f}"
                f"{loc['clips_per_second']:>9.1f}{'-':>11}{1.0:>9.2f}"
            )
            pairs = ", ".join(f"{x:.2f}" for x in r["ratios"])
            lines.append(
                f"{label + f' {size} worker(s)':<28}{clu['seconds']:>9.2f}"
                f"{clu['clips_per_second']:>9.1f}{pieces!s:>11}{r['ratio']:>9.2f}{pairs:>20}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kokoro", action="store_true", help="also with Kokoro (make kokoro)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "cluster-results.json")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="narrate-cluster-bench-"))
    try:
        results = {"espeak": bench(scratch, "espeak", None, [1, CORES], 3)}
        if args.kokoro:
            results["kokoro"] = bench(scratch, "kokoro", KOKORO_CAST, [CORES], 1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(table(results))
    goals = []
    for label, most in (("espeak", 1.10), ("kokoro", 1.05)):
        if label in results:
            r = results[label][str(CORES)]
            goals.append(
                (
                    f"{label}: {CORES} workers' overhead against the local pool <= {most - 1:.0%}",
                    f"{r['ratio'] - 1:+.1%}",
                    r["ratio"] <= most,
                )
            )
    print()
    for goal, measured, met in goals:
        print(f"{'PASS' if met else 'MISS'}  {goal}  {measured}")
    args.json.write_text(
        json.dumps({"cores": CORES, "results": results, "goals": goals}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"\nfigures written to {args.json}")
    sys.exit(0 if all(ok for _, _, ok in goals) else 1)


if __name__ == "__main__":
    main()
