"""Benchmark: an upstream with thousands of release branches, first ingest and no-op sync.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/forkhealth \\
        .venv/bin/python benchmarks/ingest_refs.py --upstream /tmp/angle.git \\
        --release-branches 'refs/heads/chromium/*' [--main refs/heads/main] [--runs 3]

Registers the repository at `--upstream` (a bare repository that can be fetched from, such
as a copy of google/angle with ``uploadpack.allowFilter`` set, or a generated world's
upstream.git) as an upstream with the release-branch pattern given, in a database of its own
on the server of DATABASE_URL (``--database``, default ``forkhealth_bench_refs``, dropped at
the end) and a temporary DATA_DIR for its mirror. Then, as `tracker.sync.sync_upstream` runs
them:

1. the mirror's first fetch (not timed as part of the ingest);
2. the first sync: a fetch that finds nothing new, the ref listing, and the first ingest of
   main and every release branch; the ingest is the sync's time less its fetch;
3. `--runs` syncs with nothing new, each timed whole (fetch included) and without its fetch,
   with the git processes each starts;
4. the floor: one ``git log`` with the ingestion's format over main and every release branch
   of the mirror, in one pass, read through a pipe and discarded (best of three), with the
   commit-graph that fetches write;
5. the size of the sync page.

Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
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

BENCH_DB = "forkhealth_bench_refs"
NOW = datetime(2026, 12, 1, tzinfo=UTC)

_started = [0]  # git processes started so far


def _count_git_processes() -> None:
    """Count every git process this process starts (whichever code starts it)."""
    init = subprocess.Popen.__init__

    def counting(self, args, *rest, **kwargs):
        if isinstance(args, list | tuple) and args and str(args[0]) == "git":
            _started[0] += 1
        init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = counting  # type: ignore[method-assign]


class _FetchClock:
    """Wraps tracker.sync's fetch so a sync's time can be told apart from its fetch's."""

    def __init__(self, sync_module) -> None:
        self.seconds = 0.0
        real = sync_module.fetch_upstream

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        sync_module.fetch_upstream = timed


def _floor(git_dir: Path, revisions: list[str]) -> tuple[float, int]:
    """Best of three single-pass ``git log`` runs over `revisions`: (seconds, commits)."""
    from tracker.git import git_output_stream
    from tracker.gitlog import FIELD_COUNT, log_args

    best, commits = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        nuls = 0
        with git_output_stream(log_args(revisions), git_dir=git_dir, timeout=3600) as out:
            while chunk := out.read(1 << 20):
                nuls += chunk.count(b"\0")
        best = min(best, time.perf_counter() - started)
        commits = nuls // FIELD_COUNT
    return best, commits


def _sync_page_bytes() -> int:
    """Size of the sync page as a logged-in user gets it."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    user = get_user_model().objects.create_user("bench")
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    return len(client.get(reverse("sync")).content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True)
    parser.add_argument("--release-branches", default="refs/heads/chromium/*")
    parser.add_argument("--main", default="refs/heads/main")
    parser.add_argument("--tags", default="refs/tags/*")
    parser.add_argument("--runs", type=int, default=3, help="no-op syncs to time")
    parser.add_argument("--database", default=BENCH_DB, help="database name")
    parser.add_argument("--keep", action="store_true", help="keep the mirror and the database")
    parser.add_argument("--verbose", action="store_true", help="show the syncs' log lines")
    args = parser.parse_args()

    upstream_path = args.upstream.resolve()
    bench_url, admin_url = database_urls(
        os.environ.get("DATABASE_URL", ""), args.database, "benchmarks/ingest_refs.py"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="fh-bench-refs-"))
    # Settings read these once, at django.setup().
    os.environ.update(
        DATABASE_URL=bench_url,
        DATA_DIR=str(data_dir),
        GIT_LOCAL_ROOTS=f"{data_dir},{upstream_path.parent}",
    )
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    _count_git_processes()
    if not args.verbose:
        logging.disable(logging.WARNING)
    from django.core.management import call_command
    from django.db import connections

    from tracker import sync
    from tracker.git import run_git
    from tracker.mirrors import Mirror, fetch_upstream
    from tracker.models import IngestCursor, UpstreamCommit
    from tracker.registry import register_upstream

    fetches = _FetchClock(sync)
    admin(admin_url, f'DROP DATABASE IF EXISTS "{args.database}"')
    admin(admin_url, f'CREATE DATABASE "{args.database}"')
    try:
        call_command("migrate", verbosity=0)
        upstream = register_upstream(
            "bench",
            "Benchmark upstream",
            str(upstream_path),
            main_ref=args.main,
            release_branch_pattern=args.release_branches,
            tag_pattern=args.tags,
        )
        started = time.perf_counter()
        mirror = fetch_upstream(upstream)
        first_fetch = time.perf_counter() - started
        graph = mirror.path / "objects" / "info"
        has_graph = (graph / "commit-graph").exists() or (graph / "commit-graphs").exists()
        if not has_graph:
            run_git(["commit-graph", "write", "--reachable"], git_dir=mirror.path, timeout=3600)
        listed = run_git(
            ["for-each-ref", "--format=%(refname)", "refs/upstream/"], git_dir=mirror.path
        ).text.split()
        prefix = "refs/upstream/" + args.release_branches.removeprefix("refs/").rsplit("*", 1)[0]
        branches = [ref for ref in listed if ref.startswith(prefix)]

        def timed_sync() -> tuple[float, float, int]:
            """(seconds, seconds less the fetch, git processes) of one sync_upstream."""
            fetches.seconds, processes = 0.0, _started[0]
            started = time.perf_counter()
            sync.sync_upstream(upstream, now=NOW)
            seconds = time.perf_counter() - started
            return seconds, seconds - fetches.seconds, _started[0] - processes

        first = timed_sync()
        rows = UpstreamCommit.objects.filter(upstream=upstream).count()
        cursors = IngestCursor.objects.filter(upstream=upstream).count()
        noops = [timed_sync() for _ in range(args.runs)]
        floor, floor_commits = _floor(mirror.path, [Mirror.upstream_ref(args.main), *branches])
        page = _sync_page_bytes()

        best = min(noops, key=lambda run: run[0])
        print()
        print(f"upstream: {upstream_path}")
        print(f"release branches ({args.release_branches}): {len(branches):,}")
        print(f"commit-graph: {'written by the fetch' if has_graph else 'written here'}")
        print()
        print("| figure | value | goal |")
        print("| --- | --- | --- |")
        print(f"| mirror's first fetch | {first_fetch:.2f} s | |")
        print(
            f"| floor: one `git log` over main and every release branch, piped | "
            f"{floor:.2f} s ({floor_commits:,} commits) | |"
        )
        print(
            f"| first ingest (first sync less its fetch) | {first[1]:.2f} s "
            f"({first[2]:,} git processes; whole sync {first[0]:.2f} s) | |"
        )
        print(f"| first ingest / floor | {first[1] / floor:.2f}x | <= 3x |")
        print(f"| rows in UpstreamCommit, ingest cursors | {rows:,}, {cursors:,} | |")
        print(
            f"| no-op sync, whole (fetch included), best of {len(noops)} | {best[0]:.2f} s "
            f"(all: {', '.join(f'{run[0]:.2f}' for run in noops)}) | <= 5 s |"
        )
        print(
            f"| no-op sync less its fetch | {best[1]:.2f} s "
            f"(all: {', '.join(f'{run[1]:.2f}' for run in noops)}) | |"
        )
        print(
            f"| git processes of a no-op sync (fetch included) | "
            f"{', '.join(str(run[2]) for run in noops)} | |"
        )
        print(f"| sync page (/sync/) | {page / 1024:,.0f} KB | |")
    finally:
        connections.close_all()
        if not args.keep:
            admin(admin_url, f'DROP DATABASE IF EXISTS "{args.database}"')
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
