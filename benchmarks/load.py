"""Benchmark: the pages under load, served by gunicorn on PostgreSQL (issue 6).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/forkhealth \\
        .venv/bin/python benchmarks/load.py [--world /tmp/forkhealth-world-1m] [--reuse-db]
        [--clients 20] [--requests 1000] [--workers 4] [--pages overview,fork]

Creates its own database (``forkhealth_load`` on the server of DATABASE_URL; dropped first
unless --reuse-db finds it seeded; migrated either way) and seeds it:

- the upstream history of the world written by ``benchmarks/generate.py --commits 1000000``
  (generated there first when missing), its recorded Chromium Dash and Chrome Releases data
  and its fix links: 2,000 vulnerabilities (the CVEs no bulletin lists get one extra post,
  so every security fix of the world is a vulnerability). The upstream's dated rows (releases,
  milestones, bulletins, vulnerabilities, fix commits) are moved forward by whole days so
  the world's present is the seeding day (commit rows keep their times; snapshots add the
  shift);
- 10 forks (8 git, 2 patch-series) x 10 tracked branches (main and the 9 newest release
  branches), a year of daily snapshots per branch measured against the ingested history
  (rebases every few weeks, release branches synced with their upstream branch), the
  newest with its ~30 patches;
- 20 releases per fork over the year, each built on the upstream Stable release current a
  few days before it; every (vulnerability, release) and (vulnerability, branch tip) status
  evaluated by ``tracker.forksecurity.rules.evaluate`` on those bases, with backports drawn
  per fork (more and sooner for higher severities), so evidence is the real shape; a few
  triage decisions, patch levels, a year of daily fork security snapshots, source states.

Everything is drawn from --seed. Then it starts gunicorn (``dashboard.wsgi``, DEBUG off,
the Redis cache) from this checkout on the database, logs in, and measures each page of
``PAGES`` (below; --pages picks some): one client alone (the baseline), then --clients
concurrent clients (threads sending the session cookie by http.client, no think time) for
--requests requests after a warm-up of --warmup requests or of every URL the page rotates
over, whichever is more (so the figures are of repeat visits), then every page mixed. "CVE,
first visits" has no URL twice: it measures pages built from the database. Pages answering
404 (not written yet) are skipped. Prints per page the requests, errors (anything but 200),
p50, p95, max and throughput; the CPU spent per request by gunicorn, PostgreSQL and Redis,
by the load generator and by the rest of the machine (other work on a shared machine, and
time the hypervisor gave to other guests, show there); and where the time goes in this
process (queries, their time, template rendering).

Leaves the database in place for --reuse-db. Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import json
import math
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_right
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("LOG_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parent.parent
LOAD_DB = "forkhealth_load"
DEFAULT_WORLD = Path(tempfile.gettempdir()) / "forkhealth-world-1m"
SLUG = "chromium"
USERNAME = "load"

# The pages under load: (name, path, what the path rotates over: None, "fork", "cve" or
# "new cve"). Every URL of a page is visited once in its warm-up, so the figures are those of
# pages seen before (repeat visits: the page cache's bodies), except "CVE first visits",
# whose every request is a CVE page not seen before (the page built from the database).
# Adjust here when a page moves; a page answering 404 is skipped and reported as such.
PAGES = [
    ("overview", "/", None),
    ("fork", "/forks/{fork}/", "fork"),
    ("fork trends JSON", "/forks/{fork}/trends.json", "fork"),
    ("fork security JSON", "/forks/{fork}/security.json", "fork"),
    ("security matrix", "/security/?fork={fork}", "fork"),
    ("security matrix CSV", "/security.csv?fork={fork}", "fork"),
    ("CVE", "/security/{cve}/", "cve"),
    ("CVE first visits", "/security/{cve}/", "new cve"),
]
CVES = 200  # the CVE pages that "CVE" rotates over
GOAL_P95_MS = 150

FORKS = [  # slug, name, kind
    ("aurora", "Aurora Browser", "git"),
    ("borealis", "Borealis", "git"),
    ("cobalt", "Cobalt Shell", "git"),
    ("driftwood", "Driftwood", "git"),
    ("ember", "Ember Browser", "git"),
    ("fjord", "Fjord", "git"),
    ("granite", "Granite Kiosk", "git"),
    ("harbor", "Harbor Embedded", "git"),
    ("ionic", "Ionic Runtime", "patch_series"),
    ("juniper", "Juniper", "patch_series"),
]
RELEASE_BRANCHES = 9  # per fork, besides main
DAYS = 365
RELEASES_PER_FORK = 20
PATCHES = 30  # about this many in each branch's newest snapshot
VULNERABILITIES = 2000
# Per severity: the chance a fork ever backports a fix its base lacks, and the mean delay.
BACKPORT = {"critical": (0.95, 3), "high": (0.8, 10), "medium": (0.45, 30), "low": (0.15, 60)}
GIT_METHODS = [("trailer", 6), ("change-id", 2), ("original-position", 1), ("reviewed-on", 1)]
PATCH_METHODS = [("patch-name", 5), ("patch-content", 3), ("patch-diff", 2)]
COMPONENTS = [
    "chrome/browser/ui",
    "chrome/browser/policy",
    "components/omnibox",
    "components/sync",
    "content/browser",
    "net/base",
    "third_party/blink/renderer",
    "ui/views",
    "chrome/installer",
    "build/config",
]


# --- database ------------------------------------------------------------------------------


def _urls(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        sys.exit("benchmarks/load.py: DATABASE_URL must point at PostgreSQL")
    load = urlunsplit((parts.scheme, parts.netloc, f"/{LOAD_DB}", parts.query, ""))
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    return load, admin


def _admin(url: str, statement: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement)
        return bool(cursor.fetchall()) if statement.startswith("SELECT") else True


def _seeded() -> bool:
    from django.db.utils import DatabaseError

    from tracker.models import ForkSecuritySnapshot

    try:
        return ForkSecuritySnapshot.objects.filter(fork__upstream__slug=SLUG).exists()
    except DatabaseError:
        return False


def _hex(*parts) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


def _copy(model, objects) -> None:
    """Insert model instances by COPY (every concrete column but the primary key): a
    fraction of bulk_create's time on tens of thousands of rows."""
    from django.db import connection

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    statement = f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN'
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for obj in objects:
            copy.write_row([getattr(obj, f.attname) for f in fields])


class Steps:
    """Seeding steps with their wall time, printed as they finish."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    def run(self, name: str, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        elapsed = time.perf_counter() - started
        note = result if isinstance(result, str) else ""
        self.rows.append((name, elapsed, note))
        print(f"  {name}: {elapsed:.1f} s {note}", flush=True)
        return result


# --- seeding: upstream -----------------------------------------------------------------------


def _ingest(world: Path) -> str:
    from tracker.git import run_git
    from tracker.ingest.history import ingest_upstream_history
    from tracker.models import Upstream

    repo = world / "upstream.git"
    upstream = Upstream.objects.create(slug=SLUG, name="Chromium", git_url=str(repo))
    branches = run_git(
        ["for-each-ref", "--format=%(refname)", "refs/branch-heads/"], git_dir=repo
    ).text.split()
    refs = [("refs/heads/main", "refs/heads/main"), *((ref, ref) for ref in branches)]
    stats = ingest_upstream_history(upstream, repo, refs)
    return f"({stats.commits:,} commits)"


def _upstream_data(world: Path, truth: dict, now: datetime) -> str:
    from tracker.demo import load_recorded_upstream_data
    from tracker.ingest.bulletins import link_fixes
    from tracker.models import Upstream

    upstream = Upstream.objects.get(slug=SLUG)
    load_recorded_upstream_data(upstream, world, now)
    _unlisted_bulletins(truth)
    stats = link_fixes(upstream)
    return (
        f"({stats.vulnerabilities:,} vulnerabilities: {stats.by_commits:,} by commits, "
        f"{stats.by_version:,} by version, {stats.unplaced} unplaced; "
        f"{stats.fix_commits:,} fix commits)"
    )


def _unlisted_bulletins(truth: dict) -> None:
    """One extra post per first-fixed version for the world's CVEs no recorded bulletin lists
    (internal fixes): so every security fix of the world is a vulnerability."""
    from tracker.models import Bulletin, BulletinLine

    listed = set(BulletinLine.objects.values_list("cve", flat=True))
    missing = [v for v in truth["vulnerabilities"] if v["cve"] not in listed]
    by_version: dict[str | None, list[dict]] = defaultdict(list)
    for v in missing[: max(0, VULNERABILITIES - len(listed))]:
        by_version[v["first_stable_version"]].append(v)
    for version, vulns in sorted(by_version.items(), key=lambda kv: kv[0] or ""):
        when = max(datetime.fromisoformat(v["first_stable_time"] or v["landed"]) for v in vulns)
        bulletin = Bulletin.objects.create(
            post_id=f"load-{version or 'unshipped'}",
            url=f"https://chromereleases.googleblog.com/load/{version or 'unshipped'}.html",
            title=f"Security fixes in {version or 'an upcoming release'} (load benchmark)",
            published=when,
            updated=when,
            labels=["Stable updates"],
            versions=[[version, ["Windows", "Mac", "Linux"]]] if version else [],
            security_fix_count=len(vulns),
            first_seen_at=when,
            changed_at=when,
        )
        BulletinLine.objects.bulk_create(
            BulletinLine(
                bulletin=bulletin,
                cve=v["cve"],
                raw_line=f"[{v['bug_ids'][0]}] {v['severity'].title()} {v['cve']}: {v['title']}.",
                severity=v["severity"].lower(),
                title=v["title"],
                component=v["component"],
                reporter="Google",
                bug_ids=v["bug_ids"],
            )
            for v in vulns
        )


def _shift_upstream_dates(days: int) -> str:
    """Move the upstream's dated rows `days` days forward (commit rows excepted)."""
    from django.db import connection, models

    from tracker.models import (
        Bulletin,
        BulletinLine,
        FixCommit,
        Milestone,
        UpstreamRelease,
        Vulnerability,
    )

    rows = 0
    with connection.cursor() as cursor:
        for model in (UpstreamRelease, Milestone, Bulletin, BulletinLine, Vulnerability, FixCommit):
            columns = [
                f.column
                for f in model._meta.concrete_fields
                if isinstance(f, models.DateField)
                and not (getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))
            ]
            if columns:
                sets = ", ".join(f'"{c}" = "{c}" + interval \'{days} days\'' for c in columns)
                cursor.execute(f'UPDATE "{model._meta.db_table}" SET {sets}')  # noqa: S608
                rows += cursor.rowcount
    return f"({days} days, {rows:,} rows)"


# --- seeding: forks ----------------------------------------------------------------------------


class History:
    """What snapshots and releases are measured against, read once from the database: main
    commits sampled every 25 positions, version bumps, release branches and Stable releases.
    Times are moved by the shift (commit rows keep the world's times)."""

    def __init__(self, upstream, truth: dict, shift: timedelta) -> None:
        from django.db import connection

        from tracker.models import Channel, Milestone, UpstreamRelease

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT position, sha, commit_time FROM tracker_upstreamcommit "
                "WHERE upstream_id = %s AND position_ref = 'refs/heads/main' "
                "AND position %% 25 = 0 ORDER BY position",
                [upstream.pk],
            )
            main = cursor.fetchall()
        self.main_pos = [r[0] for r in main]
        self.main_sha = [r[1] for r in main]
        self.main_time = [r[2] + shift for r in main]
        tags = sorted((t["position"], t["version"]) for t in truth["upstream"]["main_tags"])
        self.tag_pos = [p for p, _ in tags]
        self.tag_version = [v for _, v in tags]
        self.milestones = list(
            Milestone.objects.filter(upstream=upstream, branch__isnull=False)
            .exclude(branch_position=None)
            .order_by("milestone")
            .values_list("milestone", "branch", "branch_position")
        )
        self.stable = []  # (time, version, commit) of Stable releases, one per version
        seen = set()
        for when, version, commit in (
            UpstreamRelease.objects.filter(upstream=upstream, channel=Channel.STABLE)
            .exclude(chromium_commit="")
            .order_by("time", "major", "minor", "build", "patch")
            .values_list("time", "version", "chromium_commit")
        ):
            if version not in seen:
                seen.add(version)
                self.stable.append((when, version, commit))
        self.release_versions = dict(
            UpstreamRelease.objects.filter(upstream=upstream)
            .exclude(chromium_commit="")
            .values_list("chromium_commit", "version")
        )
        self.branches: dict[int, tuple[list, list, list, list]] = {}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT position_ref, position, sha, commit_time FROM tracker_upstreamcommit "
                "WHERE upstream_id = %s AND position_ref LIKE 'refs/branch-heads/%%' "
                "ORDER BY position_ref, position",
                [upstream.pk],
            )
            rows = defaultdict(list)
            for ref, position, sha, when in cursor.fetchall():
                rows[int(ref.rsplit("/", 1)[1])].append((position, sha, when + shift))
        for number, commits in rows.items():
            versions, current = [], None
            for _position, sha, _when in commits:
                current = self.release_versions.get(sha, current)
                versions.append(current)
            self.branches[number] = (
                [c[0] for c in commits],
                [c[1] for c in commits],
                [c[2] for c in commits],
                versions,
            )

    def main_at(self, when: datetime) -> int:
        """Index of the newest sampled main commit at `when`."""
        return max(0, bisect_right(self.main_time, when) - 1)

    def main_version(self, position: int) -> str:
        return self.tag_version[max(0, bisect_right(self.tag_pos, position) - 1)]

    def versions_between(self, low: int, high: int) -> int:
        return bisect_right(self.tag_pos, high) - bisect_right(self.tag_pos, low)

    def branch_at(self, number: int, when: datetime) -> int:
        """Count of commits on release branch `number` at `when`."""
        return bisect_right(self.branches.get(number, ([], [], [], []))[2], when)


def _major(version: str | None) -> int:
    return int(version.split(".")[0]) if version else 0


def _forks(history: History, now: datetime, rng: random.Random) -> str:
    from tracker.models import Fork, ForkKind, TrackedBranch, Upstream

    upstream = Upstream.objects.get(slug=SLUG)
    upstream.last_synced_at = now - timedelta(minutes=7)
    upstream.save(update_fields=["last_synced_at"])
    newest = history.milestones[-RELEASE_BRANCHES:]
    for slug, name, kind in FORKS:
        series = kind == "patch_series"
        fork = Fork.objects.create(
            upstream=upstream,
            slug=slug,
            name=name,
            kind=ForkKind.PATCH_SERIES if series else ForkKind.GIT,
            git_url=f"https://git.example.com/{slug}/src.git",
            release_tag_pattern="refs/tags/v*",
            pinned_version_file="CHROMIUM_VERSION" if series else "",
            patches_dir="patches" if series else "",
            owner_emails=f"release-eng@{slug}.example.com",
            last_synced_at=now - timedelta(minutes=rng.randint(3, 55)),
        )
        TrackedBranch.objects.bulk_create(
            [TrackedBranch(fork=fork, name="main", upstream_ref="refs/heads/main")]
            + [
                TrackedBranch(
                    fork=fork, name=f"release/{m}", upstream_ref=f"refs/branch-heads/{number}"
                )
                for m, number, _position in newest
            ]
        )
    return f"({len(FORKS)} forks, {TrackedBranch.objects.count()} branches)"


def _snapshot_row(history: History, branch, when, base, moved_at, tip_when, patches, churn, rng):
    """A BranchSnapshot of `branch` at `when` with upstream base `base`
    (("main", index) into the sampled main commits, or (number, count) on a release branch)."""
    from tracker.models import BranchSnapshot
    from tracker.versions import parse_version, version_columns

    kind, where = base
    if kind == "main":
        tip_i = history.main_at(when)
        at_tip_i = history.main_at(tip_when)
        base_pos = history.main_pos[where]
        base_sha = history.main_sha[where]
        base_ref = "refs/heads/main"
        base_version = history.main_version(base_pos)
        tip_pos, at_tip_pos = history.main_pos[tip_i], history.main_pos[at_tip_i]
        behind = max(0, tip_pos - base_pos)
        behind_at_tip = max(0, at_tip_pos - base_pos)
        oldest = history.main_time[min(where + 1, len(history.main_time) - 1)]
        upstream_tip = history.main_sha[tip_i]
        upstream_at_tip = history.main_sha[at_tip_i]
        versions = history.versions_between(base_pos, tip_pos)
        versions_at_tip = history.versions_between(base_pos, at_tip_pos)
        milestones = _major(history.main_version(tip_pos)) - _major(base_version)
        milestones_at_tip = _major(history.main_version(at_tip_pos)) - _major(base_version)
    else:
        positions, shas, times, branch_versions = history.branches.get(kind, ([], [], [], []))
        count = history.branch_at(kind, when)
        count_at_tip = history.branch_at(kind, tip_when)
        point = next(p for _m, n, p in history.milestones if n == kind)
        if where:  # the base is the where-th commit of the release branch
            base_pos, base_sha = positions[where - 1], shas[where - 1]
            base_ref = f"refs/branch-heads/{kind}"
            base_version = branch_versions[where - 1] or history.main_version(point)
        else:  # nothing on the branch yet: its branch point on main
            base_pos = point
            base_sha = history.main_sha[max(0, bisect_right(history.main_pos, point) - 1)]
            base_ref = "refs/heads/main"
            base_version = history.main_version(point)
        behind, behind_at_tip = max(0, count - where), max(0, count_at_tip - where)
        oldest = times[where] if where < len(times) else when
        upstream_tip = shas[count - 1] if count else base_sha
        upstream_at_tip = shas[count_at_tip - 1] if count_at_tip else base_sha
        versions = len({v for v in branch_versions[where:count] if v and v != base_version})
        versions_at_tip = len(
            {v for v in branch_versions[where:count_at_tip] if v and v != base_version}
        )
        milestones = milestones_at_tip = 0
    days = max(0, (when - oldest).days) if behind else 0
    days_at_tip = max(0, (tip_when - oldest).days) if behind_at_tip else 0
    added, dropped, changed = churn
    conflicting = min(patches, int(behind**0.5 / 12 * rng.uniform(0.5, 1.5)))
    return BranchSnapshot(
        branch=branch,
        taken_at=when,
        tip_sha=_hex(branch.pk, "tip", tip_when.isoformat()),
        tip_time=tip_when,
        upstream_tip_sha=upstream_tip,
        base_sha=base_sha,
        base_position_ref=base_ref,
        base_position=base_pos,
        **version_columns(parse_version(base_version), prefix="base_"),
        base_moved_at=moved_at,
        commits_behind=behind,
        commits_behind_first_parent=behind,
        oldest_missing_at=oldest if behind else None,
        days_behind=days,
        versions_behind=versions,
        milestones_behind=max(0, milestones),
        upstream_tip_at_tip_sha=upstream_at_tip,
        commits_behind_at_tip=behind_at_tip,
        days_behind_at_tip=days_at_tip,
        versions_behind_at_tip=versions_at_tip,
        milestones_behind_at_tip=max(0, milestones_at_tip),
        patch_count=patches,
        patches_upstreamed=min(patches, rng.choice([0, 0, 0, 1, 1, 2, 3])),
        patches_added=added,
        patches_dropped=dropped,
        patches_changed=changed,
        conflicting_patches=conflicting,
        conflicting_files=conflicting + rng.randint(0, conflicting * 2),
    )


def _snapshots(history: History, now: datetime, rng: random.Random) -> str:
    """A year of daily snapshots per branch. Main is rebased every few weeks onto upstream
    as it was a couple of days earlier; a release branch starts on its branch point a few
    days after upstream cuts it and merges its upstream branch every week or two (before
    the cut it is measured as the fork's main, which it was cut from)."""
    from tracker.models import BranchSnapshot, Fork, SnapshotPatch

    rows: list = []
    newest: dict[int, BranchSnapshot] = {}
    start = now - timedelta(days=DAYS - 1)
    for fork in Fork.objects.filter(upstream__slug=SLUG).order_by("slug"):
        hour = rng.randint(0, 23)
        cadence = rng.randint(14, 42)
        rebase_lag = rng.randint(1, 5)
        patches = rng.randint(PATCHES - 8, PATCHES + 4)
        main_series: dict[int, tuple] = {}
        branches = list(fork.branches.order_by("pk"))
        for branch in branches:
            is_main = branch.name == "main"
            number = None if is_main else int(branch.upstream_ref.rsplit("/", 1)[1])
            cut = None
            if number is not None:
                point = next(p for _m, n, p in history.milestones if n == number)
                cut_i = max(0, bisect_right(history.main_pos, point) - 1)
                cut = history.main_time[cut_i] + timedelta(days=rng.randint(1, 6))
            base, moved_at, next_move, count = None, None, start, patches
            for day in range(DAYS):
                when = (start + timedelta(days=day)).replace(
                    hour=hour, minute=rng.randint(0, 59), second=0, microsecond=0
                )
                tip_when = when - timedelta(hours=rng.randint(1, 60))
                churn = (0, 0, 0)
                if cut is not None and when < cut:
                    kind, where, moved_at, count = main_series[day]
                    base = (kind, where)
                elif is_main:
                    if base is None or when >= next_move:  # rebase
                        base = ("main", history.main_at(when - timedelta(days=rebase_lag)))
                        moved_at = when - timedelta(hours=rng.randint(2, 20))
                        next_move = when + timedelta(days=cadence + rng.randint(-4, 4))
                        added, dropped = rng.randint(0, 3), rng.randint(0, 3)
                        count = max(PATCHES - 10, count + added - dropped)
                        churn = (added, dropped, rng.randint(0, 6))
                    elif rng.random() < 0.05:
                        count += 1
                        churn = (1, 0, 0)
                    main_series[day] = (*base, moved_at, count)
                elif base is None or base[0] == "main" or when >= next_move:  # merge upstream
                    base = (number, history.branch_at(number, when - timedelta(days=1)))
                    moved_at = when - timedelta(hours=rng.randint(2, 20))
                    next_move = when + timedelta(days=rng.randint(7, 21))
                    churn = (0, 0, rng.randint(0, 2))
                row = _snapshot_row(
                    history, branch, when, base, moved_at, tip_when, count, churn, rng
                )
                rows.append(row)
                newest[branch.pk] = row
    _copy(BranchSnapshot, rows)
    stored = BranchSnapshot.objects.latest_by_branch(list(newest))
    patches_rows = []
    for branch_id, snapshot in newest.items():
        snapshot.pk = stored[branch_id].pk
        fork_slug = snapshot.branch.fork.slug
        for order in range(snapshot.patch_count):
            component = COMPONENTS[order % len(COMPONENTS)]
            upstreamed = order < snapshot.patches_upstreamed
            conflict = order >= snapshot.patch_count - snapshot.conflicting_patches
            change = "unchanged"
            if order >= snapshot.patch_count - snapshot.patches_added:
                change = "added"
            elif order < snapshot.patches_changed:
                change = "changed"
            patches_rows.append(
                SnapshotPatch(
                    snapshot=snapshot,
                    order=order,
                    sha=_hex(snapshot.tip_sha, order),
                    subject=f"[{fork_slug}] {rng.choice(SUBJECTS)} ({component})",
                    author=f"eng{rng.randint(1, 40)}@{fork_slug}.example.com",
                    patch_id=_hex("patch", fork_slug, order),
                    files="\n".join(
                        f"{component}/{fork_slug}_{order}_{k}.cc" for k in range(rng.randint(1, 4))
                    ),
                    change=change,
                    upstream_sha=_hex("up", order) if upstreamed else "",
                    conflict_files=f"{component}/BUILD.gn" if conflict else "",
                )
            )
        for order in range(snapshot.patches_dropped):
            patches_rows.append(
                SnapshotPatch(
                    snapshot=snapshot,
                    order=snapshot.patch_count + order,
                    sha=_hex(snapshot.tip_sha, "dropped", order),
                    subject=f"[{fork_slug}] Revert local workaround {order}",
                    author=f"eng{rng.randint(1, 40)}@{fork_slug}.example.com",
                    change="dropped",
                )
            )
    SnapshotPatch.objects.bulk_create(patches_rows, batch_size=2000)
    return f"({len(rows):,} snapshots, {len(patches_rows):,} patches)"


SUBJECTS = [
    "Brand the new tab page",
    "Add enterprise policy for update channel",
    "Disable field trials by default",
    "Route crash reports to our collector",
    "Ship our own safe-browsing endpoint",
    "Add kiosk mode switches",
    "Remove Google sign-in promo",
    "Patch installer for our signing certificate",
    "Hide sync settings",
    "Default search engine list",
    "Build: use our toolchain",
    "Add telemetry opt-out switch",
]


def _releases(history: History, now: datetime, rng: random.Random) -> str:
    """20 releases per fork over the year, each on the Stable version current `lag` days
    before it."""
    from tracker.forksecurity.rules import fingerprint
    from tracker.models import Fork, ForkRelease, ReleaseSource, UpstreamCommit
    from tracker.versions import parse_version, version_columns

    start = now - timedelta(days=DAYS - 1)
    commits = {
        c.sha: c
        for c in UpstreamCommit.objects.filter(
            upstream__slug=SLUG, sha__in=[s[2] for s in history.stable]
        ).only("sha", "position_ref", "position", "branched_from_position")
    }
    points = {n: p for _m, n, p in history.milestones}
    stable_times = [s[0] for s in history.stable]
    rows = []
    for fork in Fork.objects.filter(upstream__slug=SLUG).order_by("slug"):
        lag = rng.randint(2, 30)
        branches = {b.upstream_ref: b for b in fork.branches.all()}
        every = DAYS / RELEASES_PER_FORK
        per_major: dict[int, int] = defaultdict(int)
        for i in range(RELEASES_PER_FORK):
            when = start + timedelta(days=every * i + rng.uniform(0, every - 1), hours=10)
            index = bisect_right(stable_times, when - timedelta(days=lag)) - 1
            _at, version, sha = history.stable[max(0, index)]
            parsed = parse_version(version)
            per_major[parsed.major] += 1
            commit = commits.get(sha)
            ref = f"refs/branch-heads/{parsed.build}"
            branch_point = None
            if commit is not None:
                branch_point = commit.branched_from_position or points.get(parsed.build)
            release_sha = _hex(fork.slug, "release", i)
            rows.append(
                ForkRelease(
                    fork=fork,
                    tag=f"v{parsed.major}.{per_major[parsed.major]}.{i}",
                    source=ReleaseSource.TAG,
                    sha=release_sha,
                    branch=branches.get(ref),
                    tagged_at=when,
                    upstream_ref=ref,
                    base_sha=sha,
                    base_position_ref=commit.position_ref if commit else "",
                    base_position=commit.position if commit else None,
                    base_branch_point=branch_point,
                    **version_columns(parsed, prefix="base_"),
                    inputs_fingerprint=fingerprint(release_sha),
                )
            )
    ForkRelease.objects.bulk_create(rows)
    return f"({len(rows)} releases)"


def _statuses(history: History, now: datetime, rng: random.Random, user) -> str:
    """Every (vulnerability, release) and (vulnerability, branch tip) status, evaluated on the
    target's upstream base with backports drawn per fork; a few triage decisions."""
    from django.db import connection

    from tracker.forksecurity.rules import Match, evaluate
    from tracker.forksecurity.store import (
        _STATUS_COLUMNS,
        Target,
        _release_target,
        pair_fingerprint,
    )
    from tracker.forksecurity.upstream import base_commits, branch_points, load_fixes, make_base
    from tracker.models import (
        BranchSnapshot,
        FixStatus,
        FixTriage,
        Fork,
        ForkRelease,
        TriageDecision,
        Upstream,
        Vulnerability,
    )

    upstream = Upstream.objects.get(slug=SLUG)
    fixes = load_fixes(upstream)
    digests = {f.vuln_id: f.digest for f in fixes}
    vulns = {
        v[0]: v[1:]
        for v in Vulnerability.objects.filter(upstream=upstream).values_list(
            "pk", "severity", "landed_at", "first_stable_at", "component"
        )
    }
    points = branch_points(upstream)
    statement = f"COPY {FixStatus._meta.db_table} ({', '.join(_STATUS_COLUMNS)}) FROM STDIN"
    written = triaged = 0
    for fork in Fork.objects.filter(upstream=upstream).order_by("slug"):
        series = fork.kind == "patch_series"
        names, weights = zip(*(PATCH_METHODS if series else GIT_METHODS), strict=True)
        # When and how the fork backports each fix (None: never).
        backported: dict[int, tuple[datetime, str] | None] = {}
        for fix in fixes:
            severity, landed, first_stable, _component = vulns[fix.vuln_id]
            chance, mean_days = BACKPORT[severity]
            start = landed or first_stable
            backported[fix.vuln_id] = (
                (
                    start + timedelta(days=rng.expovariate(1 / mean_days)),
                    rng.choices(names, weights)[0],
                )
                if start is not None and rng.random() < chance
                else None
            )
        targets = [
            (_release_target(release), release.tagged_at)
            for release in ForkRelease.objects.filter(fork=fork).order_by("tagged_at")
        ]
        newest_release = targets[-1][0] if targets else None
        branches = list(fork.branches.order_by("pk"))
        latest = BranchSnapshot.objects.latest_by_branch([b.pk for b in branches])
        bases = base_commits(upstream, [s.base_sha for s in latest.values()])
        for branch in branches:
            snapshot = latest[branch.pk]
            version = (
                snapshot.base_major,
                snapshot.base_minor,
                snapshot.base_build,
                snapshot.base_patch,
            )
            base = make_base(snapshot.base_sha, bases.get(snapshot.base_sha), version, points)
            targets.append((Target(None, branch, snapshot.tip_sha, base), snapshot.taken_at))
        rows: list[tuple] = []
        decisions: dict[int, str] = {}
        for target, when in targets:
            tdigest = target.digest
            for fix in fixes:
                backports = {}
                carried = backported[fix.vuln_id]
                if carried is not None and carried[0] <= when:
                    for part in fix.parts:
                        match = Match(
                            fix.vuln_id,
                            part.key,
                            carried[1],
                            part.key,
                            fork_commit="" if series else _hex(fork.slug, fix.cve, part.key),
                            patch=f"patches/chromium/{fix.cve.lower()}.patch" if series else "",
                        )
                        backports[(fix.vuln_id, part.key)] = (match,)
                outcome = evaluate(fix, target.base, backports)
                if (
                    outcome.state == "open"
                    and target is newest_release
                    and len(decisions) < 5
                    and rng.random() < 0.05
                ):
                    decisions[fix.vuln_id] = rng.choice(
                        [TriageDecision.NOT_AFFECTED, TriageDecision.WILL_NOT_FIX]
                    )
                rows.append(
                    (
                        fork.pk,
                        fix.vuln_id,
                        target.release.pk if target.release else None,
                        target.branch.pk if target.branch else None,
                        outcome.state,
                        outcome.state,
                        json.dumps(outcome.evidence),
                        target.sha,
                        pair_fingerprint(digests[fix.vuln_id], tdigest),
                        now,
                    )
                )
        # A decision overrides every open status of that vulnerability in the fork.
        for i, row in enumerate(rows):
            if row[4] == "open" and row[1] in decisions:
                rows[i] = (*row[:5], decisions[row[1]], *row[6:])
        FixTriage.objects.bulk_create(
            FixTriage(
                fork=fork,
                vulnerability_id=vuln_id,
                decision=decision,
                reason=(
                    f"{vulns[vuln_id][3] or 'This component'} is not built for {fork.name}."
                    if decision == TriageDecision.NOT_AFFECTED
                    else "Fixed by the next rebase; the feature is disabled by policy."
                ),
                decided_by=user,
                decided_by_name=user.username,
                decided_at=now - timedelta(days=rng.randint(1, 60)),
            )
            for vuln_id, decision in decisions.items()
        )
        triaged += len(decisions)
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        written += len(rows)
    return f"({written:,} statuses, {triaged} triage decisions)"


def _patch_levels() -> str:
    from tracker.forksecurity.store import refresh_patch_levels
    from tracker.models import Fork

    changed = sum(refresh_patch_levels(f) for f in Fork.objects.filter(upstream__slug=SLUG))
    return f"({changed} releases with a level)"


def _security_snapshots(now: datetime, rng: random.Random) -> str:
    """A year of daily snapshots per fork: the open fixes of its newest release then, counting
    only fixes upstream had landed by that day, aged from upstream's first Stable with them."""
    from tracker.models import FixStatus, Fork, ForkRelease, ForkSecuritySnapshot, Vulnerability

    vulns = {
        v[0]: v[1:]
        for v in Vulnerability.objects.filter(upstream__slug=SLUG).values_list(
            "pk", "severity", "landed_at", "first_stable_at"
        )
    }
    start = now - timedelta(days=DAYS - 1)
    rows = []
    for fork in Fork.objects.filter(upstream__slug=SLUG).order_by("slug"):
        releases = list(ForkRelease.objects.filter(fork=fork).order_by("tagged_at"))
        open_by_release: dict[int, list] = defaultdict(list)
        for release_id, vuln_id in FixStatus.objects.filter(
            fork=fork, release__isnull=False, status="open"
        ).values_list("release_id", "vulnerability_id"):
            severity, landed, first_stable = vulns[vuln_id]
            if landed or first_stable:
                open_by_release[release_id].append(
                    (severity, landed or first_stable, first_stable or landed)
                )
        hour = rng.randint(0, 23)
        for day in range(DAYS):
            when = (start + timedelta(days=day)).replace(
                hour=hour, minute=30, second=0, microsecond=0
            )
            shipped = [r for r in releases if r.tagged_at <= when]
            counts = dict.fromkeys(("critical", "high", "medium", "low"), 0)
            oldest = None
            if shipped:
                for severity, landed, aged_from in open_by_release[shipped[-1].pk]:
                    if landed <= when:
                        counts[severity] += 1
                        age = (when - aged_from).total_seconds() / 86400
                        oldest = age if oldest is None else max(oldest, age)
            rows.append(
                ForkSecuritySnapshot(
                    fork=fork,
                    taken_at=when,
                    release_tag=shipped[-1].tag if shipped else "",
                    open_critical=counts["critical"],
                    open_high=counts["high"],
                    open_medium=counts["medium"],
                    open_low=counts["low"],
                    oldest_open_days=round(max(0.0, oldest), 2) if oldest is not None else None,
                )
            )
    _copy(ForkSecuritySnapshot, rows)
    return f"({len(rows):,} snapshots)"


def _source_states(now: datetime) -> str:
    from tracker.models import Source, SourceState

    for i, source in enumerate(Source.values):
        SourceState.objects.update_or_create(
            source=source,
            defaults={
                "last_attempt_at": now - timedelta(minutes=5 + i * 11),
                "last_success_at": now - timedelta(minutes=5 + i * 11),
                "failures": 0,
                "last_error": "",
            },
        )
    return f"({SourceState.objects.count()} sources)"


def _analyze() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return ""


def _user(password: str):
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username=USERNAME, defaults={"email": "load@example.com", "is_staff": True}
    )
    user.set_password(password)
    user.save()
    return user


def seed(world: Path, truth: dict, seed_value: int, password: str) -> Steps:
    from django.core.management import call_command

    from tracker.models import Upstream

    world_now = datetime.fromisoformat(truth["now"])
    # Whole days that bring the world's present to the last noon (UTC) before now.
    shift_days = max(0, (datetime.now(world_now.tzinfo) - world_now).days)
    now = world_now + timedelta(days=shift_days)
    rng = random.Random(seed_value)  # noqa: S311 - benchmark data, not secrets
    steps = Steps()
    print("seeding:", flush=True)
    steps.run("migrate", lambda: call_command("migrate", verbosity=0))
    user = _user(password)
    steps.run("ingest upstream history", _ingest, world)
    steps.run("recorded upstream data, fix links", _upstream_data, world, truth, world_now)
    steps.run("upstream dates moved to now", _shift_upstream_dates, shift_days)
    history = steps.run(
        "read history for snapshots",
        History,
        Upstream.objects.get(slug=SLUG),
        truth,
        timedelta(days=shift_days),
    )
    steps.run("forks and branches", _forks, history, now, rng)
    steps.run("branch snapshots and patches", _snapshots, history, now, rng)
    steps.run("fork releases", _releases, history, now, rng)
    steps.run("fix statuses and triage (COPY)", _statuses, history, now, rng, user)
    steps.run("patch levels", _patch_levels)
    steps.run("fork security snapshots", _security_snapshots, now, rng)
    steps.run("source states", _source_states, now)
    steps.run("VACUUM ANALYZE", _analyze)
    return steps


# --- serving and load ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(args, database_url: str, data_dir: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis_url,
        "SECRET_KEY": secrets.token_urlsafe(40),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SITE_URL": f"http://127.0.0.1:{port}",
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
    }
    if args.page_cache_seconds is not None:
        env["PAGE_CACHE_SECONDS"] = str(args.page_cache_seconds)
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "dashboard.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--backlog",
        "512",
    ]
    log = (data_dir / "gunicorn.log").open("w")  # gunicorn's and Django's log
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def login(base: str, password: str):
    import requests

    deadline = time.monotonic() + 120
    session = requests.Session()
    while True:
        try:  # workers start slowly on a busy machine
            page = session.get(f"{base}/login/", timeout=30)
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                sys.exit("benchmarks/load.py: gunicorn did not answer within 120 s")
            time.sleep(0.5)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{base}/login/",
        data={"csrfmiddlewaretoken": csrf, "username": USERNAME, "password": password},
        headers={"Referer": f"{base}/login/"},
        timeout=10,
        allow_redirects=False,
    )
    if answer.status_code != 302:
        sys.exit(f"benchmarks/load.py: log-in answered {answer.status_code}")
    return session.cookies.get_dict()


def _cpu_busy() -> tuple[float, float]:
    """Busy CPU seconds of the whole machine so far, all cores, and of those the time the
    hypervisor gave to other guests (steal) (/proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - values[3] - values[4]) / tick, values[7] / tick


def _server_pids(master: int) -> dict[str, set[int]]:
    """The serving processes by group: gunicorn (master and workers), the PostgreSQL
    backends of the load database, and Redis (which holds the sessions and page bodies)."""
    groups: dict[str, set[int]] = {"gunicorn": {master}, "postgres": set(), "redis": set()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                name, fields = stat.read().split("(", 1)[1].rsplit(")", 1)
            ppid = int(fields.split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue
        if ppid == master:
            groups["gunicorn"].add(int(entry))
        elif command.startswith(b"postgres:") and f" {LOAD_DB} ".encode() in command:
            groups["postgres"].add(int(entry))
        elif name == "redis-server":
            groups["redis"].add(int(entry))
    return groups


def _pid_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent during a phase: the whole machine, this process (the load
    generator), gunicorn, and the PostgreSQL backends of the load database. A thread reads
    /proc twice a second, so backends replaced during the phase (gunicorn keeps its database
    connections for 60 s) are counted up to their last reading; what the rest of the machine
    spent is reported apart."""

    def __init__(self, master: int | None, interval: float = 0.5) -> None:
        self.master, self.interval = master, interval
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.done = threading.Event()

    def _read(self, initial: bool) -> None:
        groups = _server_pids(self.master) if self.master else {}
        for group, pids in groups.items():
            for pid in pids:
                cpu = _pid_cpu(pid)
                if initial:
                    self.first[pid] = cpu
                self.last[pid] = (group, cpu)

    def _loop(self) -> None:
        while not self.done.wait(self.interval):
            self._read(initial=False)

    def start(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        (self.busy0, self.steal0), self.self0 = _cpu_busy(), usage.ru_utime + usage.ru_stime
        self._read(initial=True)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        self._read(initial=False)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy, steal = _cpu_busy()
        spent = {"gunicorn": 0.0, "postgres": 0.0, "redis": 0.0}
        for pid, (group, cpu) in self.last.items():
            spent[group] += cpu - self.first.get(pid, 0.0)
        return {
            "busy": busy - self.busy0,
            "steal": steal - self.steal0,
            "client": usage.ru_utime + usage.ru_stime - self.self0,
            **spent,
        }


class Result:
    def __init__(
        self,
        times: list[float],
        statuses: dict[int | str, int],
        wall: float,
        sizes: list[int],
        cpu: dict[str, float],
    ) -> None:
        self.times = sorted(times)
        self.statuses = statuses
        self.wall = wall
        self.size = sum(sizes) / len(sizes) if sizes else 0
        self.cpu = cpu

    @property
    def requests(self) -> int:
        return len(self.times)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def pct(self, q: float) -> float:
        """Nearest-rank percentile, in ms."""
        if not self.times:
            return float("nan")
        return self.times[max(0, math.ceil(q * len(self.times)) - 1)] * 1000


def fetch(url: str, cookie: str, timeout: float = 60) -> tuple[int | str, int]:
    """GET `url` with the `cookie` header and read the whole body: (status, body size), or
    (error name, 0). Plain http.client, one connection a request (gunicorn's sync workers
    close each one): a client library costs the load generator several times as much CPU,
    taken from the two cores the server runs on."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(
            "GET",
            f"{parts.path}?{parts.query}" if parts.query else parts.path,
            headers={"Cookie": cookie},
        )
        response = connection.getresponse()
        return response.status, len(response.read())
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__, 0
    finally:
        connection.close()


def run_load(
    urls: list[str], cookies: dict, clients: int, total: int, warmup: int, master: int | None
) -> Result:
    """`clients` threads take requests from one counter (URL i is urls[i % len(urls)]) until
    `total` are done, after `warmup` unrecorded ones (the first `warmup` URLs; the recorded
    ones follow them); each sends the logged-in cookies."""
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())

    def phase(start: int, count: int) -> Result:
        counter = itertools.count(start)
        times: list[float] = []
        sizes: list[int] = []
        statuses: dict[int | str, int] = defaultdict(int)
        lock = threading.Lock()
        barrier = threading.Barrier(clients + 1)

        def client() -> None:
            barrier.wait()
            while (i := next(counter)) < start + count:
                started = time.perf_counter()
                status, size = fetch(urls[i % len(urls)], cookie)
                elapsed = time.perf_counter() - started
                with lock:
                    times.append(elapsed)
                    sizes.append(size)
                    statuses[status] += 1

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        meter = CpuMeter(master)
        meter.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        return Result(times, statuses, wall, sizes, meter.stop())

    if warmup:
        phase(0, warmup)
    return phase(warmup, total)


def in_process_profile(paths: list[tuple[str, list[str]]], user, runs: int = 5) -> list[tuple]:
    """Per page, served in this process by the test client (a streamed body read to its
    end): best time of `runs`, its queries and their time (CaptureQueriesContext), the time
    spent rendering templates, and the slowest query. Run i requests options[i % len(options)]
    of its page: one path for a page seen before, `runs` paths for first visits."""
    from django.conf import settings
    from django.db import connection
    from django.template.backends.django import Template
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.force_login(user)
    rendering = [0.0]
    original = Template.render

    def timed_render(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            rendering[0] += time.perf_counter() - started

    Template.render = timed_render
    out = []
    try:
        for name, options in paths:
            best, captured, template = float("inf"), None, 0.0
            for run in range(runs):
                path = options[run % len(options)]
                rendering[0] = 0.0
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get(path)
                    if response.streaming:
                        b"".join(response.streaming_content)
                    elapsed = time.perf_counter() - started
                if elapsed < best:
                    best, captured, template = elapsed, list(queries.captured_queries), rendering[0]
            sql_ms = sum(float(q["time"]) for q in captured) * 1000
            slow = max(captured, key=lambda q: float(q["time"]), default=None)
            out.append((name, best * 1000, len(captured), sql_ms, template * 1000, slow))
    finally:
        Template.render = original
    return out


def _pick_urls(base: str, rng: random.Random, first_visits: int) -> dict[str, list[str]]:
    """Per page, the URLs it rotates over; "new cve" gets `first_visits` CVEs of its own."""
    from tracker.models import Fork, Vulnerability

    forks = list(
        Fork.objects.filter(upstream__slug=SLUG).order_by("slug").values_list("slug", flat=True)
    )
    cves = sorted(Vulnerability.objects.filter(upstream__slug=SLUG).values_list("cve", flat=True))
    cves = rng.sample(cves, len(cves))
    repeated, new = cves[:CVES], cves[CVES : CVES + first_visits]
    if len(new) < first_visits:
        sys.exit(
            f"benchmarks/load.py: {first_visits} first visits need as many CVEs besides the "
            f"{CVES} visited again, and there are {len(cves)} in all: ask for fewer --requests"
        )
    urls = {}
    for name, path, over in PAGES:
        if over == "fork":
            urls[name] = [base + path.format(fork=f) for f in forks]
        elif over in ("cve", "new cve"):
            urls[name] = [base + path.format(cve=c) for c in (repeated if over == "cve" else new)]
        else:
            urls[name] = [base + path]
    return urls


def _row_counts() -> list[tuple[str, int]]:
    from tracker.models import (
        BranchSnapshot,
        FixCommit,
        FixStatus,
        FixTriage,
        Fork,
        ForkRelease,
        ForkSecuritySnapshot,
        SnapshotPatch,
        TrackedBranch,
        UpstreamCommit,
        Vulnerability,
    )

    return [
        (m.__name__, m.objects.count())
        for m in (
            UpstreamCommit,
            Vulnerability,
            FixCommit,
            Fork,
            TrackedBranch,
            BranchSnapshot,
            SnapshotPatch,
            ForkRelease,
            FixStatus,
            FixTriage,
            ForkSecuritySnapshot,
        )
    ]


def _table(title: str, results: list[tuple[str, Result]]) -> None:
    print()
    print(f"{title}")
    print()
    print("| page | requests | errors | p50 | p95 | max | throughput | mean size |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results:
        errors = (
            f"{r.errors}"
            if not r.errors
            else f"{r.errors} ({', '.join(f'{k}: {v}' for k, v in r.statuses.items() if k != 200)})"
        )
        print(
            f"| {name} | {r.requests:,} | {errors} | {r.pct(0.5):.1f} ms | {r.pct(0.95):.1f} ms "
            f"| {r.times[-1] * 1000:.1f} ms | {r.requests / r.wall:.1f} req/s "
            f"| {r.size / 1024:,.1f} KiB |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=DEFAULT_WORLD)
    parser.add_argument("--reuse-db", action="store_true", help="skip seeding when seeded")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=1000, help="per page, under load")
    parser.add_argument("--warmup", type=int, default=60, help="per page, not recorded")
    parser.add_argument(
        "--pages", default="", help="comma-separated page names of PAGES to measure (default all)"
    )
    parser.add_argument("--baseline-requests", type=int, default=50, help="per page, 1 client")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--page-cache-seconds",
        default=None,
        help="PAGE_CACHE_SECONDS for gunicorn (0: every request computes its page)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    load_url, admin_url = _urls(os.environ.get("DATABASE_URL", ""))
    os.environ["DATABASE_URL"] = load_url  # before django.setup(): settings read it once
    if not (args.world / "ground-truth.json").exists():
        print(f"no world at {args.world}: generating it (1,000,000 commits, ~3-4 min)")
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "generate.py"), "--out", str(args.world)],
            check=True,
        )
    truth = json.loads((args.world / "ground-truth.json").read_text())
    os.environ["GIT_LOCAL_ROOTS"] = str(args.world.resolve())
    # The in-process profile serves pages as the server does: DEBUG off, the same cache.
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
    os.environ["REDIS_URL"] = args.redis_url
    # Cache keys of this run's own: an earlier run's page bodies (same database, same data
    # version) would otherwise turn first visits into repeat ones.
    os.environ["CACHE_KEY_PREFIX"] = f"forkhealth-load-{secrets.token_hex(4)}"
    if args.page_cache_seconds is not None:
        os.environ["PAGE_CACHE_SECONDS"] = str(args.page_cache_seconds)
    import django

    django.setup()
    from django.db import connections

    password = secrets.token_urlsafe(16)
    exists = _admin(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{LOAD_DB}'")  # noqa: S608
    seeded_now = args.reuse_db and exists and _seeded()
    if seeded_now:
        print(f"reusing the seeded database {LOAD_DB} (migrating it to this checkout)")
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        user = _user(password)
        steps = None
    else:
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{LOAD_DB}"')
        _admin(admin_url, f'CREATE DATABASE "{LOAD_DB}"')
        started = time.perf_counter()
        steps = seed(args.world, truth, args.seed, password)
        seeding = time.perf_counter() - started
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(username=USERNAME)
    counts = _row_counts()

    data_dir = Path(tempfile.mkdtemp(prefix="fh-load-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)  # noqa: S311
    # First visits: 5 + baseline alone, warm-up + requests in the crowd, 5 for the profile.
    first = 5 + args.baseline_requests + args.warmup + args.requests + 5
    urls = _pick_urls(base, rng, first)
    connections.close_all()
    server = start_gunicorn(args, load_url, data_dir, port)
    try:
        import requests

        cookies = login(base, password)
        probe = requests.Session()
        probe.cookies.update(cookies)
        live, skipped = [], []
        wanted = {p.strip() for p in args.pages.split(",") if p.strip()}
        for name, _path, _over in PAGES:
            if wanted and name not in wanted:
                continue
            status = probe.get(urls[name][0], timeout=60, allow_redirects=False).status_code
            (skipped if status == 404 else live).append((name, status))
        for name, _status in skipped:
            print(
                f"skipped: {name} ({urls[name][0].removeprefix(base)} answered 404: not there yet)"
            )
        baseline, loaded = [], []
        for name, _status in live:
            print(f"measuring {name} …", flush=True)
            if name == "CVE first visits":  # each phase its own CVEs, none seen before
                split = 5 + args.baseline_requests
                alone, crowd = urls[name][:split], urls[name][split:]
                alone_warmup, crowd_warmup = 5, args.warmup
            else:  # the warm-ups visit every URL
                alone = crowd = urls[name]
                alone_warmup = max(5, len(alone))
                crowd_warmup = max(args.warmup, len(crowd))
            baseline.append(
                (
                    name,
                    run_load(alone, cookies, 1, args.baseline_requests, alone_warmup, server.pid),
                )
            )
            loaded.append(
                (
                    name,
                    run_load(crowd, cookies, args.clients, args.requests, crowd_warmup, server.pid),
                )
            )
        # Every page type in turn (ten URLs of each), as a crowd of users would mix them.
        everything = [u for name, _s in live for u in urls[name][:10]]
        mixed = (
            [
                (
                    "all pages",
                    run_load(
                        everything, cookies, args.clients, args.requests, args.warmup, server.pid
                    ),
                )
            ]
            if everything
            else []
        )
        # A first visit's profile takes CVE pages no phase requested (the list's tail).
        profile = in_process_profile(
            [
                (name, [u.removeprefix(base) for u in urls[name][-5:]])
                if name == "CVE first visits"
                else (name, [urls[name][0].removeprefix(base)])
                for name, _s in live
            ],
            user,
        )
    finally:
        stop(server)
        log = (
            (data_dir / "gunicorn.log").read_text() if (data_dir / "gunicorn.log").exists() else ""
        )
        shutil.rmtree(data_dir, ignore_errors=True)
        connections.close_all()

    print()
    print(f"world: {args.world} ({truth['upstream']['main_commits']:,} main commits)")
    print(f"database: {LOAD_DB} ({'reused' if steps is None else 'seeded now'})")
    print(
        f"server: gunicorn dashboard.wsgi --workers {args.workers} --worker-class "
        f"{args.worker_class} --threads {args.threads}; DEBUG=false, PostgreSQL, Redis cache"
        + (
            f", PAGE_CACHE_SECONDS={args.page_cache_seconds}"
            if args.page_cache_seconds is not None
            else ""
        )
    )
    print(f"machine: {os.cpu_count()} cores; load generator in the same machine (threads)")
    if steps is not None:
        print()
        print("| seeding step | time | |")
        print("| --- | --- | --- |")
        for name, elapsed, note in steps.rows:
            print(f"| {name} | {elapsed:.1f} s | {note.strip('()')} |")
        print(f"| total | {seeding:.1f} s | |")
    print()
    print("| table | rows |")
    print("| --- | --- |")
    for name, count in counts:
        print(f"| {name} | {count:,} |")
    for name, _status in skipped:
        print(f"\nnot measured: {name} (answered 404: not there yet)")
    _table("Baseline, one client:", baseline)
    _table(
        f"{args.clients} concurrent clients, {args.requests} requests per page after a "
        f"warm-up of at least {args.warmup} (goal: p95 <= {GOAL_P95_MS} ms, zero errors):",
        loaded,
    )
    _table(f"{args.clients} clients, every page mixed:", mixed)
    print()
    print(
        "CPU (all cores: 100 % = one core busy). Server = gunicorn + PostgreSQL backends of "
        f"{LOAD_DB} + Redis; others = the rest of the machine (not this benchmark), of which "
        "steal = time the hypervisor gave to other guests:"
    )
    print()
    print(
        "| phase | page | server CPU per request | server | load generator | others "
        "(steal) | idle |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    cores = os.cpu_count() or 1
    for phase, rows in (("1 client", baseline), (f"{args.clients} clients", loaded)):
        for name, r in [*rows, *(mixed if rows is loaded else [])]:
            server_cpu = r.cpu["gunicorn"] + r.cpu["postgres"] + r.cpu["redis"]
            others = max(0.0, r.cpu["busy"] - server_cpu - r.cpu["client"])
            idle = max(0.0, cores * r.wall - r.cpu["busy"])
            print(
                f"| {phase} | {name} | {server_cpu / r.requests * 1000:.1f} ms "
                f"({r.cpu['postgres'] / r.requests * 1000:.1f} in PostgreSQL, "
                f"{r.cpu['redis'] / r.requests * 1000:.1f} in Redis) "
                f"| {server_cpu / r.wall * 100:.0f} % | {r.cpu['client'] / r.wall * 100:.0f} % "
                f"| {others / r.wall * 100:.0f} % ({r.cpu['steal'] / r.wall * 100:.0f} %) "
                f"| {idle / r.wall * 100:.0f} % |"
            )
    print()
    print("In-process (Django test client, best of 5, this process):")
    print()
    print("| page | time | queries | SQL | templates | slowest query |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, ms, count, sql_ms, template_ms, slow in profile:
        top = f"{float(slow['time']) * 1000:.1f} ms: `{slow['sql'][:80]}…`" if slow else ""
        print(
            f"| {name} | {ms:.1f} ms | {count} | {sql_ms:.1f} ms | {template_ms:.1f} ms | {top} |"
        )
    errors = [
        line
        for line in log.splitlines()
        if ("Error" in line or "Traceback" in line or " ERROR " in line) and "Not Found" not in line
    ]
    if errors:
        print()
        print(f"gunicorn log: {len(errors)} error lines, first: {errors[0][:200]}")


if __name__ == "__main__":
    main()
