"""Benchmark: the whole fix-status matrix (every vulnerability x every fork release and branch
tip) of a generated world, beside a naive ``git merge-base --is-ancestor`` loop.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/forkhealth \\
        .venv/bin/python benchmarks/status_matrix.py [--world /tmp/fh-1m] [--keep-db] [--reuse-db]

The world is one written by ``benchmarks/generate.py`` (default /tmp/fh-1m: 1,000,000 main
commits, 2,000 vulnerabilities, forks with release tags). Creates its own database
(``forkhealth_bench_security`` on the server of DATABASE_URL), builds a mirror that borrows the
world's objects (``objects/info/alternates``, refs copied into the mirror's namespaces, a
commit-graph written as fetches write one), ingests the upstream history and recorded data,
links fixes, registers the forks and snapshots their branches (as a sync does just before
fork security runs). Then it measures, in one run:

1. *cold*: every fork's releases, bases and statuses from nothing (including the one-off
   patch identities of fix commits and dependency-roll resolution);
2. *whole matrix*: every status computed again (status rows deleted first; releases, bases
   and the patch-identity cache kept), split into git reads, evaluation and writes;
3. *nothing new*: a rerun, which evaluates no pair;
4. *50 releases*: the whole matrix again with exactly 50 releases (lumen's tag pattern
   narrowed to 30 of its releases), as the goal states it;
5. *naive*: for a random sample of (vulnerability, release) pairs, one
   ``git merge-base --is-ancestor`` per fix commit (main commit, then its cherry-picks) until
   each part is decided, timed per pair and scaled to the whole matrix.

The world is never modified. Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("DEBUG", "true")

BENCH_DB = "forkhealth_bench_security"
DEFAULT_WORLD = Path("/tmp/fh-1m")  # noqa: S108 - where benchmarks/generate.py writes it
FORKS = ("acme", "mergeco", "lumen")
SLUG = "bench"


def _urls(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        sys.exit("benchmarks/status_matrix.py: DATABASE_URL must point at PostgreSQL")
    bench = urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_DB}", parts.query, ""))
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    return bench, admin


def _admin(url: str, statement: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement)
        return bool(cursor.fetchall()) if statement.startswith("SELECT") else True


def _build_mirror(world: Path, mirror: Path) -> None:
    """A mirror with the world's refs in the mirror's namespaces, borrowing its objects."""
    from tracker.git import run_git

    run_git(["init", "--quiet", "--bare", str(mirror)])
    (mirror / "objects" / "info" / "alternates").write_text(
        str((world / "objects.git" / "objects").resolve()) + "\n"
    )
    commands = []
    sources = [(world / "upstream.git", "refs/upstream/")]
    sources += [(world / "forks" / f"{slug}.git", f"refs/forks/{slug}/") for slug in FORKS]
    for repo, namespace in sources:
        out = run_git(["for-each-ref", "--format=%(objectname) %(refname)"], git_dir=repo).text
        for line in out.splitlines():
            sha, ref = line.split(" ", 1)
            commands.append(f"create {namespace}{ref.removeprefix('refs/')} {sha}\n")
    run_git(["update-ref", "--stdin"], git_dir=mirror, input="".join(commands).encode())
    run_git(["commit-graph", "write", "--reachable"], git_dir=mirror, timeout=3600)


def _setup(world: Path, truth: dict, now: datetime):
    from django.core.management import call_command
    from django.db import connection

    from tracker.demo import load_recorded_upstream_data
    from tracker.ingest.bulletins import link_fixes
    from tracker.ingest.history import ingest_upstream_history
    from tracker.mirrors import Mirror, mirror_path
    from tracker.models import ForkKind, Upstream
    from tracker.registry import register_fork
    from tracker.sync import upstream_refs

    call_command("migrate", verbosity=0)
    upstream = Upstream.objects.create(
        slug=SLUG, name="Benchmark upstream", git_url=str(world / "upstream.git")
    )
    mirror = Mirror(mirror_path(upstream))
    started = time.perf_counter()
    _build_mirror(world, mirror.path)
    print(f"mirror built in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    ingest_upstream_history(upstream, mirror.path, upstream_refs(upstream, mirror))
    load_recorded_upstream_data(upstream, world, now)
    link_fixes(upstream)
    with connection.cursor() as cursor:
        # Planner statistics for the freshly bulk-loaded tables (autovacuum does this later).
        cursor.execute("ANALYZE")
    print(f"history ingested, fixes linked in {time.perf_counter() - started:.1f} s", flush=True)
    for f in truth["forks"]:
        if f["slug"] not in FORKS:
            continue
        series = f["kind"] == "patch_series"
        register_fork(
            upstream,
            f["slug"],
            f["name"],
            f["path"],
            kind=ForkKind.PATCH_SERIES if series else ForkKind.GIT,
            branches=[(b["name"], b["upstream_ref"]) for b in f.get("branches", [])]
            or [("main", "refs/heads/main")],
            release_tag_pattern=f["release_tag_pattern"],
            pinned_version_file=f.get("version_file", ""),
            patches_dir=f.get("patches_dir", ""),
        )
    _snapshot_branches(upstream, mirror, now)
    return upstream, mirror


def _snapshot_branches(upstream, mirror, now) -> None:
    """Branch snapshots, as a sync takes them just before fork security runs (fork
    security reuses their merge-bases)."""
    from tracker.models import ForkKind
    from tracker.sync import snapshot_fork

    started = time.perf_counter()
    for fork in upstream.forks.filter(kind=ForkKind.GIT):
        snapshot_fork(fork, mirror, now=now)
    print(f"branches snapshotted in {time.perf_counter() - started:.1f} s", flush=True)


def _run_all(upstream, mirror, now):
    from tracker.forksecurity import SecurityStats, update_upstream_security

    total = SecurityStats()
    started = time.perf_counter()
    for stats in update_upstream_security(upstream, mirror, now).values():
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
    return time.perf_counter() - started, total


def _naive(upstream, mirror, sample: int, seed: int = 1) -> tuple[float, int, int]:
    """Seconds per pair and git calls per pair of the naive loop, over `sample` pairs."""
    from tracker.git import run_git
    from tracker.models import FixCommit, ForkRelease

    rng = random.Random(seed)  # noqa: S311 - sampling pairs, not secrets
    releases = list(
        ForkRelease.objects.filter(fork__upstream=upstream).values_list("sha", flat=True)
    )
    fixes: dict[int, dict[str, list[str]]] = {}
    for vuln_id, sha, role, original in FixCommit.objects.filter(
        vulnerability__upstream=upstream
    ).values_list("vulnerability_id", "sha", "role", "original__sha"):
        parts = fixes.setdefault(vuln_id, {})
        parts.setdefault(sha if role == "main" else original or sha, []).append(sha)
    vulns = sorted(fixes)
    calls = 0
    started = time.perf_counter()
    for _ in range(sample):
        parts = fixes[rng.choice(vulns)]
        release = rng.choice(releases)
        for candidates in parts.values():
            found = False
            for sha in candidates:
                calls += 1
                result = run_git(
                    ["merge-base", "--is-ancestor", sha, release], git_dir=mirror.path, check=False
                )
                if result.returncode == 0:
                    found = True
                    break
            if not found:
                break  # one missing part decides "not fixed by ancestry"
    return (time.perf_counter() - started) / sample, calls, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=DEFAULT_WORLD)
    parser.add_argument("--sample", type=int, default=300, help="pairs in the naive loop")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument("--reuse-db", action="store_true", help="reuse a kept database")
    args = parser.parse_args()

    bench_url, admin_url = _urls(os.environ.get("DATABASE_URL", ""))
    os.environ["DATABASE_URL"] = bench_url  # before django.setup(): settings read it once
    import django

    truth = json.loads((args.world / "ground-truth.json").read_text())
    now = datetime.fromisoformat(truth["now"])
    mirrors = Path(tempfile.gettempdir()) / "fh-bench-security-mirrors"
    os.environ["GIT_LOCAL_ROOTS"] = str(args.world.resolve())
    django.setup()
    from django.conf import settings
    from django.db import connections

    from tracker.mirrors import Mirror, mirror_path
    from tracker.models import (
        BranchSnapshot,
        FixStatus,
        ForkRelease,
        RollFix,
        Upstream,
        UpstreamPatchId,
    )

    settings.MIRROR_DIR = mirrors
    # BENCH_DB is a constant, not input.
    exists = _admin(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{BENCH_DB}'")  # noqa: S608
    try:
        if args.reuse_db and exists and (mirrors / f"{SLUG}.git").exists():
            upstream = Upstream.objects.get(slug=SLUG)
            mirror = Mirror(mirror_path(upstream))
            if not BranchSnapshot.objects.filter(branch__fork__upstream=upstream).exists():
                _snapshot_branches(upstream, mirror, now)
        else:
            _admin(admin_url, f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
            _admin(admin_url, f'CREATE DATABASE "{BENCH_DB}"')
            shutil.rmtree(mirrors, ignore_errors=True)
            upstream, mirror = _setup(args.world, truth, now)

        lumen = upstream.forks.get(slug="lumen")
        lumen.release_tag_pattern = fork_truth_pattern = "refs/tags/v*"
        lumen.save(update_fields=["release_tag_pattern"])
        FixStatus.objects.filter(fork__upstream=upstream).delete()
        ForkRelease.objects.filter(fork__upstream=upstream).delete()
        UpstreamPatchId.objects.filter(upstream=upstream).delete()
        RollFix.objects.filter(vulnerability__upstream=upstream).delete()
        cold, cold_stats = _run_all(upstream, mirror, now)

        FixStatus.objects.filter(fork__upstream=upstream).delete()
        whole, stats = _run_all(upstream, mirror, now)
        noop, noop_stats = _run_all(upstream, mirror, now)

        per_pair, calls, sample = _naive(upstream, mirror, args.sample)
        vulns = upstream.vulnerabilities.count()
        releases = ForkRelease.objects.filter(fork__upstream=upstream).count()

        # Exactly 50 releases: acme's 8, mergeco's 12 and 30 of lumen's (v1.10 to v1.39).
        lumen.release_tag_pattern = "refs/tags/v1.[1-3]?"
        lumen.save(update_fields=["release_tag_pattern"])
        ForkRelease.objects.filter(fork=lumen).exclude(tag__regex=r"^v1\.[1-3][0-9]$").delete()
        FixStatus.objects.filter(fork__upstream=upstream).delete()
        fifty, fifty_stats = _run_all(upstream, mirror, now)
        fifty_releases = ForkRelease.objects.filter(fork__upstream=upstream).count()
        lumen.release_tag_pattern = fork_truth_pattern
        lumen.save(update_fields=["release_tag_pattern"])
        pairs = stats.pairs_evaluated
        reference = 2000 * 50

        print()
        print(f"world: {args.world} ({truth['upstream']['main_commits']:,} main commits)")
        print(f"matrix: {vulns:,} vulnerabilities x {releases} releases + branch tips")
        print(f"  = {pairs:,} pairs")
        print()
        print("| figure | value | goal |")
        print("| --- | --- | --- |")
        print(
            f"| cold: releases, bases, fix patch ids, rolls and every status | {cold:.2f} s "
            f"({cold_stats.pairs_evaluated:,} pairs) | |"
        )
        print(f"| whole matrix again ({pairs:,} pairs) | {whole:.2f} s | <= 5 s |")
        print(f"| - of which git reads (fork commits, patch files) | {stats.seconds_git:.2f} s | |")
        print(f"| - of which evaluation in memory | {stats.seconds_evaluate:.2f} s | |")
        print(f"| - of which writing the rows | {stats.seconds_write:.2f} s | |")
        print(
            f"| {vulns:,} vulnerabilities x {fifty_releases} releases + branch tips "
            f"({fifty_stats.pairs_evaluated:,} pairs), measured | {fifty:.2f} s | <= 5 s |"
        )
        print(
            f"| - git reads / evaluation / writes | {fifty_stats.seconds_git:.2f} / "
            f"{fifty_stats.seconds_evaluate:.2f} / {fifty_stats.seconds_write:.2f} s | |"
        )
        print(
            f"| rerun with nothing new | {noop:.2f} s ({noop_stats.pairs_evaluated} pairs, "
            f"{noop_stats.rows_written} rows) | |"
        )
        print(
            f"| naive `merge-base --is-ancestor`, per pair ({sample} sampled, "
            f"{calls / sample:.2f} calls a pair) | {per_pair * 1000:.1f} ms | |"
        )
        print(f"| naive, scaled to the same {pairs:,} pairs | {per_pair * pairs:.0f} s | |")
        print(f"| naive, scaled to {reference:,} pairs | {per_pair * reference:.0f} s | |")
        print(f"| speed-up, whole matrix vs naive | {per_pair * pairs / whole:.0f}x | |")
        print(
            f"| naive, scaled to the {fifty_stats.pairs_evaluated:,} pairs of 50 releases | "
            f"{per_pair * fifty_stats.pairs_evaluated:.0f} s | |"
        )
    finally:
        connections.close_all()
        if not args.keep_db:
            _admin(admin_url, f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
            shutil.rmtree(mirrors, ignore_errors=True)


if __name__ == "__main__":
    main()
