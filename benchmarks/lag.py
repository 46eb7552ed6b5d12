"""Benchmark: one branch's lag computation against `git rev-list --count`, side by side.

    .venv/bin/python benchmarks/lag.py --world /tmp/forkhealth-world-1m [--database]

Uses a world written by benchmarks/generate.py (its upstream.git, with a commit-graph written
first). For each fork branch of the world, and for a synthetic branch far behind, it times
`git rev-list --count <upstream> ^<branch>` and `tracker.lag.measure_lag` on the same pair,
best of three. With --database, the oldest missing commit is looked up by position in the
ingested history (run benchmarks/ingest.py first; it leaves the history in forkhealth_bench
when given --keep); without it, git walks the first-parent line for it. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("DEBUG", "true")


def best_of(fn, runs: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--database", action="store_true", help="use the ingested history")
    parser.add_argument("--far", type=int, default=500_000, help="commits behind, synthetic")
    args = parser.parse_args()

    import django

    django.setup()
    from tracker.git import run_git
    from tracker.lag import VersionTags, measure_lag, merge_base, read_version, rev_parse

    repo = args.world / "upstream.git"
    truth = json.loads((args.world / "ground-truth.json").read_text())
    run_git(
        ["commit-graph", "write", "--reachable", "--changed-paths", "--split"],
        git_dir=repo,
        timeout=3600,
    )
    lookup = None
    if args.database:
        from tracker.models import Upstream
        from tracker.sync import position_lookup

        lookup = position_lookup(Upstream.objects.get(slug="bench"))
    tags = VersionTags.read(repo, "refs/tags/")
    now = datetime.fromisoformat(truth["now"])
    cases = [
        (f"{f['slug']}:{b['name']}", b["tip"], b["upstream_ref"])
        for f in truth["forks"]
        for b in f.get("branches", [])
    ]
    cases.append(
        (
            f"synthetic: main~{args.far}",
            rev_parse(repo, f"refs/heads/main~{args.far}"),
            "refs/heads/main",
        )
    )
    print(f"{'branch':32} {'behind':>9} {'rev-list --count':>17} {'measure_lag':>12} {'ratio':>6}")
    for label, tip, ref in cases:
        upstream_tip = rev_parse(repo, ref)
        base = merge_base(repo, tip, upstream_tip)
        base_version = read_version(repo, base, "chrome/VERSION")
        t_git, out = best_of(
            lambda tip=tip, up=upstream_tip: run_git(
                ["rev-list", "--count", up, f"^{tip}"], git_dir=repo
            )
        )

        def lag(tip=tip, up=upstream_tip, base=base, bv=base_version, ref=ref):
            from tracker.lag import line_build

            return measure_lag(
                repo,
                tip,
                up,
                base=base,
                base_version=bv,
                version_file="chrome/VERSION",
                now=now,
                build=line_build(ref),
                tags=tags,
                commit_time_at=lookup,
            )

        t_lag, result = best_of(lag)
        assert result.commits_behind == int(out.text)  # the same question, the same answer
        print(
            f"{label:32} {result.commits_behind:>9,} {t_git * 1000:>14.0f} ms "
            f"{t_lag * 1000:>9.0f} ms {t_lag / t_git:>6.2f}"
        )


if __name__ == "__main__":
    main()
