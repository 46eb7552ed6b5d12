"""Benchmark: ingest a generated upstream's history into PostgreSQL, beside plain git log.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/forkhealth \\
        .venv/bin/python benchmarks/ingest.py [--upstream /tmp/fh-1m/upstream.git]

Uses the upstream repository given (default: /tmp/fh-1m/upstream.git when it exists, else a
world generated with --commits under --out). Creates its own database (``forkhealth_bench`` on
the server of DATABASE_URL), migrates it, and drops it at the end. Everything reads a scratch
repository with the upstream's refs that borrows its objects (``objects/info/alternates``)
and has a commit-graph, as mirrors do (fetches write one), so the repository given is never
modified. Measures, in one run:

1. the floor any ingestion stands on: one ``git log`` with the ingestion's format over main
   and every release branch in a single pass (each commit once), read through a pipe and
   discarded, and written by git to /dev/null; best of two each;
2. a full ingest of refs/heads/main and every refs/branch-heads/* (and its ratio to 1);
3. the peak memory of this process (Django included; ``ru_maxrss``) and of git;
4. an incremental sync after 200 new main commits, then one with nothing new.

Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("DEBUG", "true")

BENCH_DB = "forkhealth_bench"
# Where the 1,000,000-commit world is usually generated (benchmarks/generate.py --out /tmp/fh-1m).
DEFAULT_UPSTREAM = Path("/tmp/fh-1m/upstream.git")  # noqa: S108
NEW_COMMITS = 200
REVIEW = "https://chromium-review.googlesource.com/c/chromium/src/+"


def _bench_database(url: str) -> tuple[str, str]:
    """(URL of the benchmark database, URL of the server's maintenance database)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        sys.exit("benchmarks/ingest.py: DATABASE_URL must point at PostgreSQL")
    bench = urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_DB}", parts.query, ""))
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    return bench, admin


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement)


def _rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _scratch_copy(upstream: Path, scratch: Path, refs: list[str]) -> None:
    """A repository with `refs` of `upstream` that borrows its objects, to append commits to."""
    from tracker.git import run_git

    run_git(["init", "--quiet", "--bare", str(scratch)])
    (scratch / "objects" / "info" / "alternates").write_text(
        str((upstream / "objects").resolve()) + "\n"
    )
    out = run_git(["for-each-ref", "--format=%(objectname) %(refname)", *refs], git_dir=upstream)
    commands = "".join(
        f"create {ref} {sha}\n" for sha, ref in map(str.split, out.text.splitlines())
    )
    run_git(["update-ref", "--stdin"], git_dir=scratch, input=commands.encode())


def _append_main_commits(repo: Path, count: int) -> None:
    """Add `count` Chromium-shaped commits on refs/heads/main, positions continuing."""
    from tracker.footers import parse_footers
    from tracker.git import git_input_stream, run_git

    tip = run_git(["rev-parse", "--verify", "refs/heads/main^{commit}"], git_dir=repo).text.strip()
    message = run_git(["log", "-1", "--format=%B", tip], git_dir=repo).text
    position = parse_footers(message).commit_position
    number = position.number if position else 0
    when = int(time.time())
    stream = bytearray()
    for i in range(1, count + 1):
        body = (
            f"[Bench] New change {i}\n\nAppended by benchmarks/ingest.py.\n\n"
            f"Bug: {40_000_000 + i}\nChange-Id: I{i:040x}\n"
            f"Reviewed-on: {REVIEW}/{9_000_000 + i}\n"
            f"Cr-Commit-Position: refs/heads/main@{{#{number + i}}}\n"
        ).encode()
        stream += b"commit refs/heads/main\n"
        stream += b"author Bench <bench@chromium.org> %d +0000\n" % (when + i)
        stream += b"committer Chromium LUCI CQ <luci-cq@chromium.org> %d +0000\n" % (when + i)
        stream += b"data %d\n%s\n" % (len(body), body)
        if i == 1:
            stream += b"from %s\n" % tip.encode()
        stream += b"\n"
    with git_input_stream(["fast-import", "--quiet"], git_dir=repo) as stdin:
        stdin.write(bytes(stream))


def _git_log_seconds(repo: Path, revisions: list[str]) -> tuple[float, float, int]:
    """Best of two single-pass ``git log`` runs over `revisions` with the ingestion's format:
    (written by git to /dev/null, read through a pipe by this process and discarded, bytes)."""
    from tracker.git import git_output_stream, run_git
    from tracker.gitlog import log_args

    to_null = through_pipe = float("inf")
    size = 0
    for _ in range(2):
        started = time.perf_counter()
        run_git(log_args(revisions, ["--output=/dev/null"]), git_dir=repo, timeout=3600)
        to_null = min(to_null, time.perf_counter() - started)
        started = time.perf_counter()
        size = 0
        with git_output_stream(log_args(revisions), git_dir=repo, timeout=3600) as out:
            while chunk := out.read(1 << 20):
                size += len(chunk)
        through_pipe = min(through_pipe, time.perf_counter() - started)
    return to_null, through_pipe, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, default=None)
    parser.add_argument("--commits", type=int, default=1_000_000, help="when generating")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "fh-bench")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", "")
    bench_url, admin_url = _bench_database(database_url)
    upstream_path = args.upstream
    if upstream_path is None and DEFAULT_UPSTREAM.exists():
        upstream_path = DEFAULT_UPSTREAM
    os.environ["DATABASE_URL"] = bench_url  # before django.setup(): settings read it once
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from tracker.generator import build_world, standard_world
    from tracker.git import run_git
    from tracker.ingest.history import DEFAULT_BATCH_SIZE, ingest_upstream_history
    from tracker.models import Upstream, UpstreamCommit

    if upstream_path is None:
        milestones = max(2, min(20, args.commits // 50_000))
        spec = standard_world(
            main_commits=args.commits,
            milestones=milestones,
            days=milestones * 28,
            files=2000,
            vulnerabilities=max(12, args.commits // 500),
        )
        print(f"generating a {args.commits:,}-commit world under {args.out} …", flush=True)
        upstream_path = Path(build_world(spec, args.out)["upstream"]["path"])

    branches = run_git(
        ["for-each-ref", "--format=%(refname)", "refs/branch-heads/"], git_dir=upstream_path
    ).text.split()
    refs = [("refs/heads/main", "refs/heads/main"), *((ref, ref) for ref in branches)]

    _admin(admin_url, f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
    _admin(admin_url, f'CREATE DATABASE "{BENCH_DB}"')
    scratch = Path(tempfile.mkdtemp(prefix="fh-bench-ingest-"))
    try:
        repo = scratch / "up.git"
        _scratch_copy(upstream_path, repo, ["refs/heads/", "refs/branch-heads/"])
        print("writing the commit-graph …", flush=True)
        run_git(["commit-graph", "write", "--reachable"], git_dir=repo, timeout=3600)
        call_command("migrate", verbosity=0)
        upstream = Upstream.objects.create(
            slug="bench", name="Benchmark upstream", git_url=str(upstream_path)
        )
        batch = {"batch_size": args.batch_size} if args.batch_size else {}

        git_null, git_pipe, git_bytes = _git_log_seconds(repo, [local for _ref, local in refs])
        rss_before = _rss_mb()
        full = ingest_upstream_history(upstream, repo, refs, **batch)
        peak_self = _peak_mb(resource.RUSAGE_SELF)
        peak_git = _peak_mb(resource.RUSAGE_CHILDREN)
        rows = UpstreamCommit.objects.filter(upstream=upstream).count()

        _append_main_commits(repo, NEW_COMMITS)
        sync = ingest_upstream_history(upstream, repo, refs, **batch)
        noop = ingest_upstream_history(upstream, repo, refs, **batch)

        print()
        print(f"upstream: {upstream_path} ({len(branches)} release branches)")
        print(f"batch size: {args.batch_size or DEFAULT_BATCH_SIZE} commits")
        print()
        print("| figure | value | goal |")
        print("| --- | --- | --- |")
        print(f"| commits read by git log | {full.commits:,} ({git_bytes / 2**20:,.0f} MB) | |")
        print(f"| one git log over every ref, written to /dev/null | {git_null:.1f} s | |")
        print(f"| one git log over every ref, read through a pipe | {git_pipe:.1f} s | |")
        print(
            f"| full ingest (main + {len(branches)} branches) | {full.seconds:.1f} s "
            f"({full.commits / full.seconds:,.0f} commits/s) | |"
        )
        print(f"| ingest / git log to /dev/null | {full.seconds / git_null:.2f}x | <= 2.5x |")
        print(f"| ingest / git log through a pipe | {full.seconds / git_pipe:.2f}x | <= 2.5x |")
        print(f"| rows in UpstreamCommit | {rows:,} | |")
        print(
            f"| peak memory, this process (Django + ingest) | {peak_self:.0f} MB "
            f"({rss_before:.0f} MB before the ingest) | <= 300 MB |"
        )
        print(f"| peak memory, largest git child | {peak_git:.0f} MB | |")
        print(
            f"| incremental sync, {NEW_COMMITS} new main commits | {sync.seconds:.2f} s "
            f"({sync.commits} read) | <= 2 s |"
        )
        print(f"| sync with nothing new | {noop.seconds:.2f} s | |")
    finally:
        connections.close_all()
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.keep_db:
            _admin(admin_url, f'DROP DATABASE IF EXISTS "{BENCH_DB}"')


if __name__ == "__main__":
    main()
