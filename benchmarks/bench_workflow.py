"""Benchmark: the default workflow end to end, its no-op rerun, and what reruns after a setting changes.

Usage:  python benchmarks/bench_workflow.py [--cores N] [--configfile extra.yaml]

Copies the repository (without results/) to a temporary directory and there:
1. runs `snakemake --cores N` from nothing (wall time; time per stage summed from results/benchmarks/),
2. runs it again (a no-op: wall time, target < 5 s),
3. dry-runs with one generation setting of one variant changed (pwg.delta of `latentman`) and counts the
   jobs per rule that would rerun (target: only generate and evaluate of that variant, plus the table).
Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns(".git", "results", ".snakemake", "__pycache__", "*.egg-info", ".pytest_cache")


def snakemake(workdir: Path, cores: str, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", cores, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - start, result


def stage_seconds(results: Path) -> dict[str, float]:
    """Sum of the `s` column of every rule's benchmark files."""
    totals: dict[str, float] = defaultdict(float)
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0]
        totals[rule] += float(pd.read_csv(tsv, sep="\t")["s"].sum())
    return dict(totals)


def planned_jobs(output: str) -> dict[str, int]:
    counts = {}
    for line in output.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) not in ("total", "job"):
            counts[match.group(1)] = int(match.group(2))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="all")
    parser.add_argument("--configfile", action="append", default=[], help="extra config files (merged)")
    args = parser.parse_args()
    extra = [a for path in args.configfile for a in ("--configfile", str(Path(path).resolve()))]

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "repo"
        shutil.copytree(REPO, workdir, ignore=IGNORE)
        full, _ = snakemake(workdir, args.cores, *extra)
        noop, _ = snakemake(workdir, args.cores, *extra)
        override = workdir / "changed.yaml"
        override.write_text("variants:\n  latentman:\n    pwg: {delta: 0.02}\n")
        # --configfile files are merged over the Snakefile's config.yaml, the last one winning
        changed = ["--configfile", *(str(Path(p).resolve()) for p in args.configfile), str(override)]
        _, dry = snakemake(workdir, args.cores, "-n", *changed)
        stages = stage_seconds(workdir / "results")
        jobs = planned_jobs(dry.stdout)

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"Command: python benchmarks/bench_workflow.py --cores {args.cores}\n")
    print("| measurement | value | target |\n|---|--:|---|")
    print(f"| default workflow from nothing | {full:.0f} s ({full / 60:.1f} min) | ≤ 10 min |")
    print(f"| no-op rerun | {noop:.1f} s | < 5 s |")
    rerun = ", ".join(f"{rule} {count}" for rule, count in sorted(jobs.items())) or "none"
    print(f"| jobs rerun after changing `latentman` pwg.delta | {rerun} | generate + evaluate of it |")
    print("\n| rule | summed job seconds |\n|---|--:|")
    for rule, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"| {rule} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
