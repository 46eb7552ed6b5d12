"""Benchmark: a fork sync of the demo world, timed several times.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/forkhealth \\
        .venv/bin/python benchmarks/sync.py [--runs 7] [--database forkhealth_bench_sync]

Builds the demo world (tracker.demo, seed 1) in a temporary DATA_DIR, registers it in a
database of its own on the server of DATABASE_URL (dropped at the end), syncs the upstream,
fetches every fork and links the upstream's security fixes (the demo command's steps). Then
it times `tracker.sync.sync_fork` of every demo fork, one after another, `--runs` times each
way:

- *first sync*: each fork as it is before its first sync (no snapshots, releases or fix
  statuses yet, so every release is read and every (fix, release) pair evaluated), inside a
  transaction rolled back afterwards, so that every run starts alike;
- *repeat sync*: the steady state of an hourly sync, everything already recorded.

Prints the median and the minimum of each, per fork and for the whole demo, in wall time and
in CPU time of this process and its git children (PostgreSQL's left out), and the git
processes a sync starts. On a busy machine the CPU time is the steadier figure. Not a test:
it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.scratchdb import admin, database_urls

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("DEBUG", "true")

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class _Rollback(Exception):
    pass


_started = [0]  # git processes started so far


def _count_git_processes() -> None:
    """Count every git process this process starts (whichever code starts it)."""
    init = subprocess.Popen.__init__

    def counting(self, args, *rest, **kwargs):
        if isinstance(args, list | tuple) and args and str(args[0]) == "git":
            _started[0] += 1
        init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = counting  # type: ignore[method-assign]


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (git) so far."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _timed(fn) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process and git, git processes) of one call."""
    started, cpu, processes = time.perf_counter(), _cpu(), _started[0]
    fn()
    return time.perf_counter() - started, _cpu() - cpu, _started[0] - processes


def _row(label: str, runs: list[tuple[float, float, int]]) -> str:
    wall, cpu = [r[0] for r in runs], [r[1] for r in runs]
    return (
        f"| {label} | {statistics.median(wall) * 1000:,.0f} ms | {min(wall) * 1000:,.0f} ms "
        f"| {statistics.median(cpu) * 1000:,.0f} ms | {min(cpu) * 1000:,.0f} ms "
        f"| {statistics.median(r[2] for r in runs):,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database", default="forkhealth_bench_sync", help="database name")
    parser.add_argument("--keep", action="store_true", help="keep the world and the database")
    parser.add_argument("--verbose", action="store_true", help="show the syncs' log lines")
    args = parser.parse_args()

    bench_url, admin_url = database_urls(
        os.environ.get("DATABASE_URL", ""), args.database, "benchmarks/sync.py"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="fh-bench-sync-"))
    # Settings read these once, at django.setup().
    os.environ.update(DATABASE_URL=bench_url, DATA_DIR=str(data_dir), GIT_LOCAL_ROOTS=str(data_dir))
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    _count_git_processes()
    if not args.verbose:
        logging.disable(logging.INFO)
    from django.core.management import call_command
    from django.db import connections, transaction

    from tracker.demo import build_demo, load_recorded_upstream_data, register_demo
    from tracker.ingest.bulletins import link_fixes
    from tracker.mirrors import fetch_fork
    from tracker.sync import sync_fork, sync_upstream

    admin(admin_url, f'DROP DATABASE IF EXISTS "{args.database}"')
    admin(admin_url, f'CREATE DATABASE "{args.database}"')
    try:
        call_command("migrate", verbosity=0)
        print(f"building the demo world under {data_dir} …", flush=True)
        truth = build_demo(data_dir, NOW)
        upstream = register_demo(truth)
        mirror = sync_upstream(upstream, now=NOW)
        forks = list(upstream.forks.order_by("slug"))
        for fork in forks:
            fetch_fork(fork, mirror)
        load_recorded_upstream_data(upstream, truth["path"], NOW)
        link_fixes(upstream, git_dir=mirror.path)

        def sync_all(times: dict[str, list[tuple[float, float, int]]]) -> None:
            for fork in forks:
                times[fork.slug].append(_timed(lambda fork=fork: sync_fork(fork, now=NOW)))

        def first_sync(times: dict[str, list[tuple[float, float, int]]]) -> None:
            try:
                with transaction.atomic():
                    sync_all(times)
                    raise _Rollback
            except _Rollback:
                pass

        first: dict[str, list[tuple[float, float, int]]] = {f.slug: [] for f in forks}
        repeat: dict[str, list[tuple[float, float, int]]] = {f.slug: [] for f in forks}
        first_sync({f.slug: [] for f in forks})  # warm-up: file cache, connections
        for _ in range(args.runs):
            first_sync(first)
        sync_all({f.slug: [] for f in forks})  # the demo's first sync, kept
        for _ in range(args.runs):
            sync_all(repeat)

        print()
        print(f"{len(forks)} forks, {args.runs} runs each way")
        print()
        print("| sync | wall, median | wall, min | CPU, median | CPU, min | git processes |")
        print("| --- | --- | --- | --- | --- | --- |")
        for label, times in (("first", first), ("repeat", repeat)):
            totals = [
                tuple(sum(values) for values in zip(*run, strict=True))
                for run in zip(*times.values(), strict=True)
            ]
            print(_row(f"**{label} sync, all forks**", totals))
            for slug, seconds in times.items():
                print(_row(f"{label} sync, {slug}", seconds))
    finally:
        connections.close_all()
        if not args.keep:
            admin(admin_url, f'DROP DATABASE IF EXISTS "{args.database}"')
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
