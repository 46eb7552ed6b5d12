"""Syncing: fetch into the mirror, ingest upstream history, snapshot each fork branch.

Both functions record success or failure on their row (`last_synced_at`, `last_error`) and
re-raise failures, so a command can exit non-zero and a task can decide whether to retry. A
fork sync that could not measure some figures (objects no remote has) still succeeds: the
snapshots say which figures are unknown and why, and the fork's `last_warning` sums them up.
`maintain_upstream_mirror` records the mirror's housekeeping on the upstream's row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from tracker.forksecurity import update_fork_security
from tracker.git import GitError, check_sha
from tracker.gitrepo import open_repo
from tracker.health import UNKNOWN_FIGURES, measure_branch, previous_patch_set, record_snapshot
from tracker.lag import PositionLookup, VersionTags, count, rev_parse
from tracker.mirrors import (
    UPSTREAM_NAMESPACE,
    Mirror,
    ensure_mirror,
    fetch_fork,
    fetch_remotes,
    fetch_upstream_refs,
    list_refs,
    maintain_mirror,
    mirror_path,
    upstream_selection,
)
from tracker.models import BranchSnapshot, Fork, ForkKind, Upstream, UpstreamCommit
from tracker.refpatterns import RefPatterns, RefSelection
from tracker.secrets import CredentialsError
from tracker.versionschemes import scheme_for

logger = logging.getLogger(__name__)


def _record_error(obj, exc: Exception) -> None:
    obj.last_error = str(exc)[:2000]
    obj.save(update_fields=["last_error"])


def upstream_tips(
    upstream: Upstream,
    mirror: Mirror,
    selection: RefSelection | None = None,
    listed: dict[str, str] | None = None,
) -> dict[str, str]:
    """Mirror ref -> commit of main, of every release branch the release branch patterns
    select and of the other refs tracked branches follow: one ref listing, or none when
    `listed` (the mirror's upstream refs, `fetch_upstream_refs`) is given."""
    main = Mirror.upstream_ref(upstream.main_ref)
    patterns = RefPatterns.parse(upstream.release_branch_pattern)
    selection = selection or upstream_selection(upstream)
    followed = {Mirror.upstream_ref(ref) for ref in selection.optional}
    prefixes = [UPSTREAM_NAMESPACE + p.removeprefix("refs/") for p in patterns.listing_prefixes()]
    if listed is None:
        listed = list_refs(mirror, main, *prefixes, *sorted(followed))
    release = set(patterns.select(_upstream_name(local) for local in listed))
    return {
        local: sha
        for local, sha in listed.items()
        if local == main or local in followed or _upstream_name(local) in release
    }


def _upstream_name(local: str) -> str:
    """The upstream's own name of a mirror ref (refs/upstream/heads/x -> refs/heads/x)."""
    return "refs/" + local.removeprefix(UPSTREAM_NAMESPACE)


def upstream_refs(
    upstream: Upstream, mirror: Mirror, tips: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """(upstream ref, mirror ref) for main, then every release branch (those the release
    branch patterns select, by name), then the other refs tracked branches follow that the
    mirror has; from `tips` (`upstream_tips`) when given, else from a listing of its own."""
    main = Mirror.upstream_ref(upstream.main_ref)
    tips = upstream_tips(upstream, mirror) if tips is None else tips
    patterns = RefPatterns.parse(upstream.release_branch_pattern)
    names = [_upstream_name(local) for local in tips if local != main]
    release = patterns.select(names)
    followed = sorted(set(names) - set(release))
    return [(ref, Mirror.upstream_ref(ref)) for ref in [upstream.main_ref, *release, *followed]]


def sync_upstream(upstream: Upstream, *, now: datetime, ingest: bool = True) -> Mirror:
    """Fetch the upstream into its mirror and ingest its new history."""
    try:
        selection = upstream_selection(upstream)  # one query, for the fetch and the listing
        mirror, listed = fetch_upstream_refs(upstream, selection=selection)
        if ingest:
            from tracker.ingest.history import ingest_upstream_history

            with open_repo(mirror.path):
                tips = upstream_tips(upstream, mirror, selection, listed)
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
    """Fetch the fork into the mirror and store a snapshot of every tracked git branch:
    measured against the primary upstream ref it follows, in the upstream's version scheme
    (tracker.versionschemes), with the commits it lacks of each other ref it follows."""
    fetch_fork(fork, mirror)
    tags = VersionTags.read(mirror.path)
    lookup = position_lookup(fork.upstream)
    scheme = scheme_for(fork.upstream)
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
        snapshot = record_snapshot(branch, scheme.revise(mirror.path, health))
        if branch.other_refs:
            snapshot.other_refs_behind = other_refs_behind(mirror, tip, branch.other_refs)
            snapshot.save(update_fields=["other_refs_behind"])
        snapshots.append(snapshot)
    return snapshots


def other_refs_behind(mirror: Mirror, tip: str, refs: Sequence[str]) -> dict[str, int | None]:
    """Upstream ref -> commits of it that `tip` lacks (None for a ref the mirror lacks)."""
    behind: dict[str, int | None] = {}
    for ref in refs:
        try:
            other = rev_parse(mirror.path, Mirror.upstream_ref(ref))
        except GitError:
            behind[ref] = None
            continue
        behind[ref] = count(mirror.path, check_sha(other), f"^{check_sha(tip)}")
    return behind


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
        with open_repo(mirror.path) as repo:  # one object reader for the whole sync
            repo.use_remotes(fetch_remotes(fork))  # missing objects: the upstream's, the fork's
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
    fork.last_warning = unknown_summary(snapshots)
    fork.save(update_fields=["last_synced_at", "last_error", "last_warning"])
    return snapshots


def unknown_summary(snapshots: list[BranchSnapshot]) -> str:
    """One line per branch with unknown figures: which, and why ("" when none)."""
    lines = []
    for snapshot in snapshots:
        for figure, reason in snapshot.unknown.items():
            covers = UNKNOWN_FIGURES.get(figure, figure)
            lines.append(f"{snapshot.branch.name}: {covers} unknown: {reason}")
    return "\n".join(lines)[:4000]


def maintain_upstream_mirror(upstream: Upstream, *, now: datetime) -> str:
    """Housekeeping of the upstream's mirror (`maintain_mirror`), recorded on the upstream:
    `maintained_at` and `maintenance_summary` when it ran, `maintenance_error` when it failed
    (not raised: the next scheduled run tries again, and git goes on working meanwhile)."""
    path = mirror_path(upstream)
    if not (path / "HEAD").exists():
        return "no mirror yet"
    try:
        done = maintain_mirror(Mirror(path))
    except GitError as exc:
        upstream.maintenance_error = str(exc)[:2000]
        upstream.save(update_fields=["maintenance_error"])
        logger.warning("mirror %s: housekeeping failed: %s", upstream.slug, exc)
        return f"failed: {exc}"
    upstream.maintained_at, upstream.maintenance_error = now, ""
    upstream.maintenance_summary = str(done)[:2000]
    upstream.save(update_fields=["maintained_at", "maintenance_error", "maintenance_summary"])
    logger.info("mirror %s: %s", upstream.slug, done)
    return str(done)
