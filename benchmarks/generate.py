"""Benchmark: write a generated world with a large upstream and report the time it took.

    .venv/bin/python benchmarks/generate.py --commits 1000000 --out /tmp/world-1m

Prints the wall time, the generator's peak memory and the size on disk. Not a test: it
measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("DEBUG", "true")

from tracker.generator import build_world, standard_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1_000_000)
    parser.add_argument("--milestones", type=int, default=20)
    parser.add_argument("--vulnerabilities", type=int, default=2000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "forkhealth-world-1m"
    )
    args = parser.parse_args()
    spec = standard_world(
        seed=args.seed,
        main_commits=args.commits,
        milestones=args.milestones,
        days=args.milestones * 28,
        files=args.files,
        vulnerabilities=args.vulnerabilities,
    )
    started = time.perf_counter()
    truth = build_world(spec, args.out)
    elapsed = time.perf_counter() - started
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_git = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = subprocess.run(["du", "-sh", str(args.out)], capture_output=True, text=True).stdout
    print(f"upstream main commits: {truth['upstream']['main_commits']:,}")
    print(f"milestones (release branches): {len(truth['upstream']['milestones'])}")
    print(f"vulnerabilities: {len(truth['vulnerabilities'])}")
    print(f"forks: {len(truth['forks'])}")
    print(f"wall time: {elapsed:.1f} s")
    print(f"peak memory: generator {peak_self:.0f} MB, largest git child {peak_git:.0f} MB")
    print(f"size on disk: {size.split()[0]}")


if __name__ == "__main__":
    main()
