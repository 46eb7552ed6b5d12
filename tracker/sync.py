"""Syncing: fetch into the mirror, ingest upstream history, snapshot each fork branch.

Both functions record success or failure on their row (`last_synced_at`, `last_error`) and
re-raise failures, so a command can exit non-zero and a task can decide whether to retry.
"""

from __future__ import annotations

import logging
from datetime import datetime

from tracker.forksecurity import update_fork_security
from tracker.git import GitError
from tracker.gitrepo import open_repo
from tracker.health import measure_branch, previous_patch_set, record_snapshot
from tracker.lag import PositionLookup, VersionTags, rev_parse
from tracker.mirrors import Mirror, ensure_mirror, fetch_fork, fetch_upstream, list_refs
from tracker.models import BranchSnapshot, Fork, ForkKind, Upstream, UpstreamCommit
from tracker.secrets import CredentialsError

logger = logging.getLogger(__name__)


def _record_error(obj, exc: Exception) -> None:
    obj.last_error = str(exc)[:2000]
    obj.save(update_fields=["last_error"])


def upstream_tips(upstream: Upstream, mirror: Mirror) -> dict[str, str]:
    """Mirror ref -> commit of main and of every release branch: one ref listing."""
    main = Mirror.upstream_ref(upstream.main_ref)
    prefix = "refs/upstream/" + upstream.release_branch_pattern.removeprefix("refs/")
    prefix = prefix.rsplit("*", 1)[0]
    return {
        local: sha
        for local, sha in list_refs(mirror, main, prefix).items()
        if local == main or local.startswith(prefix)
    }


def upstream_refs(
    upstream: Upstream, mirror: Mirror, tips: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """(upstream ref, mirror ref) for main and every release branch, main first, the branches
    by name; from `tips` (`upstream_tips`) when given, else from a listing of its own."""
    main = Mirror.upstream_ref(upstream.main_ref)
    tips = upstream_tips(upstream, mirror) if tips is None else tips
    refs = [(upstream.main_ref, main)]
    for local in sorted(set(tips) - {main}):
        refs.append(("refs/" + local.removeprefix("refs/upstream/"), local))
    return refs


def sync_upstream(upstream: Upstream, *, now: datetime, ingest: bool = True) -> Mirror:
    """Fetch the upstream into its mirror and ingest its new history."""
    try:
        mirror = fetch_upstream(upstream)
        if ingest:
            from tracker.ingest.history import ingest_upstream_history

            with open_repo(mirror.path):
                tips = upstream_tips(upstream, mirror)
                refs = upstream_refs(upstream, mirror, tips)
                stats = ingest_upstream_history(upstream, mirror.path, refs, tips=tips)
            logger.info("upstream %s: %d new commits", upstream.slug, stats.commits)
    except (GitError, CredentialsError) as exc:
        _record_error(upstream, exc)
        raise
    upstream.last_synced_at, upstream.last_error = now, ""
    upstream.save(update_fields=["last_synced_at", "last_error"])
    return mirror


def position_lookup(upstream: Upstream) -> PositionLookup:
    """Commit time by Cr-Commit-Position from the ingested history (None when not ingested)."""

    def commit_time_at(ref: str, number: int) -> datetime | None:
        return (
            UpstreamCommit.objects.filter(upstream=upstream, position_ref=ref, position=number)
            .values_list("commit_time", flat=True)
            .first()
        )

    return commit_time_at


def snapshot_fork(fork: Fork, mirror: Mirror, *, now: datetime) -> list[BranchSnapshot]:
    """Fetch the fork into the mirror and store a snapshot of every tracked git branch."""
    fetch_fork(fork, mirror)
    tags = VersionTags.read(mirror.path)
    lookup = position_lookup(fork.upstream)
    snapshots = []
    for branch in fork.branches.all():
        tip = rev_parse(mirror.path, Mirror.fork_ref(fork, branch.name))
        upstream_tip = rev_parse(mirror.path, Mirror.upstream_ref(branch.upstream_ref))
        health = measure_branch(
            mirror.path,
            tip,
            upstream_tip,
            version_file=fork.upstream.version_file,
            now=now,
            previous=previous_patch_set(branch),
            upstream_ref=branch.upstream_ref,
            tags=tags,
            commit_time_at=lookup,
        )
        snapshots.append(record_snapshot(branch, health))
    return snapshots


def sync_fork(
    fork: Fork, *, now: datetime, fetch_upstream_first: bool = True
) -> list[BranchSnapshot]:
    """Bring the mirror up to date and snapshot the fork's branches.

    Patch-series forks have no git branches carrying upstream history; their lag is measured
    from the pinned version, with their releases, and they get no branch snapshots here.
    Then the fork's releases and fix statuses are brought up to date (tracker.forksecurity).
    """
    upstream = fork.upstream
    mirror = sync_upstream(upstream, now=now) if fetch_upstream_first else ensure_mirror(upstream)
    try:
        with open_repo(mirror.path):  # one object reader for the whole sync
            if fork.kind == ForkKind.PATCH_SERIES:
                logger.info("fork %s: patch-series fork, no branch snapshots", fork.slug)
                fetch_fork(fork, mirror)  # its releases and pinned versions are read from it
                snapshots: list[BranchSnapshot] = []
            else:
                snapshots = snapshot_fork(fork, mirror, now=now)
            update_fork_security(fork, mirror, now)
    except (GitError, CredentialsError) as exc:
        _record_error(fork, exc)
        raise
    fork.last_synced_at, fork.last_error = now, ""
    fork.save(update_fields=["last_synced_at", "last_error"])
    return snapshots
