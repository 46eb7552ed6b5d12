"""The demo world: a generated upstream and forks, registered in the database."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from django.db import transaction

from tracker.generator import build_world, standard_world
from tracker.ingest.bulletins import ingest_blog_posts
from tracker.ingest.releases import ingest_dash_milestones, ingest_dash_releases
from tracker.models import Fork, ForkKind, TrackedBranch, Upstream
from tracker.upstream.blog import parse_feed
from tracker.upstream.dash import parse_milestones, parse_releases

logger = logging.getLogger(__name__)

DEMO_UPSTREAM_SLUG = "chromium"


def demo_world_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "demo" / "world"


def build_demo(data_dir: Path, now: datetime, seed: int = 1) -> dict:
    """Write the demo repositories under `data_dir`/demo and return their ground truth.

    `now` is the world's present: the demo is built relative to the real clock so that its
    figures (days behind, ages of open fixes) look like a live fork's.
    """
    return build_world(standard_world(seed=seed, now=now), demo_world_dir(data_dir))


@transaction.atomic
def register_demo(truth: dict) -> Upstream:
    """Create or update the demo upstream, forks and tracked branches (by slug, idempotent)."""
    upstream, _ = Upstream.objects.update_or_create(
        slug=DEMO_UPSTREAM_SLUG,
        defaults={"name": "Chromium (demo)", "git_url": truth["upstream"]["path"]},
    )
    for fork_truth in truth["forks"]:
        is_series = fork_truth["kind"] == "patch_series"
        fork, _ = Fork.objects.update_or_create(
            slug=fork_truth["slug"],
            defaults={
                "upstream": upstream,
                "name": fork_truth["name"],
                "kind": ForkKind.PATCH_SERIES if is_series else ForkKind.GIT,
                "git_url": fork_truth["path"],
                "release_tag_pattern": fork_truth["release_tag_pattern"],
                "pinned_version_file": fork_truth.get("version_file", ""),
                "patches_dir": fork_truth.get("patches_dir", ""),
                "owner_emails": fork_truth.get("owner_email", ""),
            },
        )
        branches = fork_truth.get("branches") or [
            {"name": "main", "upstream_ref": "refs/heads/main"}
        ]
        for branch in branches:
            TrackedBranch.objects.update_or_create(
                fork=fork, name=branch["name"], defaults={"upstream_ref": branch["upstream_ref"]}
            )
    return upstream


def load_recorded_upstream_data(upstream: Upstream, world: Path | str, now: datetime) -> int:
    """Ingest a generated world's recorded Chromium Dash and Chrome Releases data, as the
    sync tasks ingest the live sources. Returns the number of rejected elements (logged)."""
    data = Path(world) / "upstream-data"

    def recorded(name: str):
        return json.loads((data / name).read_text())

    milestones = parse_milestones(recorded("chromiumdash-fetch_milestones.json"))
    releases = parse_releases(recorded("chromiumdash-fetch_releases.json"))
    feed = parse_feed(recorded("chromereleases-feed.json"))
    rejected = [*milestones.rejected, *releases.rejected, *feed.rejected]
    for item in rejected:
        logger.warning("recorded upstream data: rejected %s", item.reason)
    ingest_dash_milestones(upstream, milestones.items)
    ingest_dash_releases(upstream, releases.items)
    ingest_blog_posts(feed.items, now=now)
    return len(rejected)


def replay_demo_history(upstream: Upstream, truth: dict) -> int:
    """Snapshot every past sync of the demo's git forks, as if the dashboard had watched them.

    Each point is measured by the same code as a live sync, on the fork's real tip at that
    sync and upstream as it was then, so the trend charts of a fresh demo show the months of
    history the world has. Returns the number of snapshots written.
    """
    from tracker.health import measure_branch, previous_patch_set, record_snapshot
    from tracker.lag import VersionTags, rev_parse, upstream_as_of
    from tracker.mirrors import Mirror, mirror_path
    from tracker.sync import position_lookup

    git_dir = mirror_path(upstream)
    tags = VersionTags.read(git_dir)
    lookup = position_lookup(upstream)
    written = 0
    for fork_truth in truth["forks"]:
        fork = Fork.objects.get(slug=fork_truth["slug"])
        for branch_truth in fork_truth.get("branches", []):
            branch = fork.branches.get(name=branch_truth["name"])
            upstream_tip = rev_parse(git_dir, Mirror.upstream_ref(branch.upstream_ref))
            syncs = [
                (datetime.fromisoformat(p["time"]), p["tip"]) for p in branch_truth["snapshots"]
            ]
            for when, tip in _sample_times(syncs, now=datetime.fromisoformat(truth["now"])):
                then = upstream_as_of(git_dir, upstream_tip, when)
                if then is None:
                    continue
                health = measure_branch(
                    git_dir,
                    tip,
                    then,
                    version_file=upstream.version_file,
                    now=when,
                    previous=previous_patch_set(branch),
                    upstream_ref=branch.upstream_ref,
                    tags=tags,
                    commit_time_at=lookup,
                )
                record_snapshot(branch, health)
                written += 1
    return written


def replay_security_history(upstream: Upstream, now: datetime, every_days: int = 7) -> int:
    """Security snapshots of the demo's past, so the open-fixes chart of a fresh demo has a
    history: one every `every_days` and one at each release, from the fork's first release
    (its first branch snapshot when it has none) until `now`.

    A point at time T counts what the fork's newest release shipped by T leaves open, as its
    statuses say now, among the fixes upstream had shipped by T (first Stable, or landing
    when not shipped); its ages are taken at T. A fork without releases counts its branch
    tips as they are now. Run it after the fork security update; returns the rows written.
    """
    from django.db.models import Min

    from tracker.gap import count_open
    from tracker.models import BranchSnapshot, FixState, FixStatus, ForkSecuritySnapshot

    facts = {
        pk: (severity, stable or landed)
        for pk, severity, stable, landed in upstream.vulnerabilities.values_list(
            "pk", "severity", "first_stable_at", "landed_at"
        )
    }
    rows = []
    for fork in upstream.forks.order_by("slug"):
        open_in: dict[int | None, set[int]] = defaultdict(set)  # release id (None: tips)
        for release_id, vuln_id in FixStatus.objects.filter(
            fork=fork, status=FixState.OPEN
        ).values_list("release_id", "vulnerability_id"):
            open_in[release_id].add(vuln_id)
        releases = sorted(
            (r.shipped_at, r.tag, r.pk) for r in fork.releases.all() if r.shipped_at is not None
        )
        start = (
            releases[0][0]
            if releases
            else BranchSnapshot.objects.filter(branch__fork=fork).aggregate(t=Min("taken_at"))["t"]
        )
        if start is None:
            continue
        times = {shipped for shipped, _tag, _pk in releases}
        while start < now - timedelta(days=1):
            times.add(start)
            start += timedelta(days=every_days)
        for when in sorted(times):
            shipped = [r for r in releases if r[0] <= when]
            tag, target = (shipped[-1][1], shipped[-1][2]) if shipped else ("", None)
            known = [
                facts[v] for v in open_in[target] if facts[v][1] is not None and facts[v][1] <= when
            ]
            counts = count_open(known, when)
            rows.append(
                ForkSecuritySnapshot(
                    fork=fork,
                    taken_at=when,
                    release_tag=tag,
                    open_critical=counts.by_severity["critical"],
                    open_high=counts.by_severity["high"],
                    open_medium=counts.by_severity["medium"],
                    open_low=counts.by_severity["low"],
                    oldest_open_days=counts.oldest_days,
                )
            )
    ForkSecuritySnapshot.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _sample_times(syncs: list[tuple[datetime, str]], now: datetime, every_days: int = 7):
    """(time, branch tip then): every sync, plus a sample every `every_days` from the first,
    as a dashboard polling on a schedule would have seen the branch."""
    if not syncs:
        return []
    times = {when for when, _ in syncs}
    sample = syncs[0][0]
    while sample < now - timedelta(days=1):
        times.add(sample)
        sample += timedelta(days=every_days)
    return [(when, [tip for synced, tip in syncs if synced <= when][-1]) for when in sorted(times)]
