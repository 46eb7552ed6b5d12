"""Rebase health of one fork branch: measure it in the mirror, store it as a snapshot.

`measure_branch` reads git only and returns plain data; `record_snapshot` is the one place
that writes snapshots to the database.

A figure that needs objects the mirror lacks and no remote has (a partial clone whose server
lost a blob) is *unknown*: recorded with the reason in `BranchHealth.unknown`, and the rest of
the snapshot is measured as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from tracker.footers import parse_footers
from tracker.git import GitError
from tracker.gitrepo import describe_unavailable, unavailable_mark, unavailable_since
from tracker.lag import (
    NO_LAG,
    Lag,
    PositionLookup,
    VersionTags,
    base_move_time,
    commit_message,
    commit_time,
    line_build,
    measure_lag,
    merge_base,
    read_version,
    upstream_as_of,
)
from tracker.models import BranchSnapshot, PatchChange, SnapshotPatch, TrackedBranch
from tracker.patches import (
    attribute_conflicts,
    classify_churn,
    conflicting_files,
    find_upstreamed,
    list_patches,
)
from tracker.versions import ChromiumVersion, version_columns

# The figures that can be unknown, with what each covers.
UNKNOWN_FIGURES = {
    "versions": "base version, versions and milestones behind",
    "patch_ids": "patch identities (already upstream, changes since the last sync)",
    "conflicts": "predicted conflicts",
}


class NoCommonHistory(GitError):
    """The fork branch and the upstream ref it follows share no commit."""


@dataclass(frozen=True)
class PatchState:
    sha: str
    subject: str
    author: str
    files: tuple[str, ...]
    patch_id: str
    change: str
    upstream_sha: str = ""
    conflict_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class BranchHealth:
    """Everything a snapshot records; see BranchSnapshot for the terms."""

    taken_at: datetime
    tip_sha: str
    tip_time: datetime
    base_sha: str
    base_position_ref: str
    base_position: int | None
    base_version: ChromiumVersion | None
    base_moved_at: datetime | None
    lag: Lag
    lag_at_tip: Lag
    patches: list[PatchState] = field(default_factory=list)
    dropped: list[PatchState] = field(default_factory=list)
    # Figures that could not be measured (a key of UNKNOWN_FIGURES) -> why.
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def upstreamed(self) -> int:
        return sum(1 for p in self.patches if p.upstream_sha)

    @property
    def conflicting_patches(self) -> int:
        return sum(1 for p in self.patches if p.conflict_files)

    @property
    def conflicting_files(self) -> int:
        return len({f for p in self.patches for f in p.conflict_files})


def measure_branch(
    git_dir,
    tip: str,
    upstream_tip: str,
    *,
    version_file: str,
    now: datetime,
    previous: Sequence[tuple[str, str, str]] | None = None,
    upstream_ref: str = "refs/heads/main",
    tags: VersionTags | None = None,
    commit_time_at: PositionLookup | None = None,
) -> BranchHealth:
    """Measure a fork branch (`tip`) against the upstream ref it follows (`upstream_tip`).

    `previous` is the last snapshot's patch set as (sha, subject, patch id), for churn;
    `tags` the upstream's version tags and `commit_time_at` a lookup of commit times by
    position (both optional, they make the lag cheaper on a large upstream).
    """
    base = merge_base(git_dir, tip, upstream_tip)
    if base is None:
        raise NoCommonHistory(
            f"fork branch {tip[:12]} shares no history with upstream {upstream_tip[:12]}"
        )
    unknown: dict[str, str] = {}
    mark = unavailable_mark()
    base_version = read_version(git_dir, base, version_file)
    position = parse_footers(commit_message(git_dir, base)).commit_position
    tip_time = commit_time(git_dir, tip)
    common = {
        "version_file": version_file,
        "build": line_build(upstream_ref),
        "tags": tags,
        "commit_time_at": commit_time_at,
    }
    lag = measure_lag(
        git_dir, tip, upstream_tip, base=base, base_version=base_version, now=now, **common
    )
    then = upstream_as_of(git_dir, upstream_tip, tip_time)
    then_base = merge_base(git_dir, tip, then) if then else None
    if then is None or then_base is None:  # the branch predates everything on the upstream ref
        lag_at_tip = NO_LAG
    else:
        then_version = read_version(git_dir, then_base, version_file)
        lag_at_tip = measure_lag(
            git_dir, tip, then, base=then_base, base_version=then_version, now=tip_time, **common
        )
    if unreadable := unavailable_since(mark):
        unknown["versions"] = describe_unavailable(unreadable)

    mark = unavailable_mark()
    patches = list_patches(git_dir, tip, upstream_tip)
    upstreamed = find_upstreamed(git_dir, patches, tip, upstream_tip)
    if unreadable := unavailable_since(mark):
        unknown["patch_ids"] = describe_unavailable(unreadable)
    try:
        files = conflicting_files(git_dir, tip, upstream_tip, base)
    except GitError as exc:  # ObjectsUnavailable above all: the forecast alone is lost
        unknown["conflicts"] = str(exc)
        files = []
    conflicts = attribute_conflicts(files, patches)
    labels, dropped_indices = classify_churn(
        None if previous is None else [(s, pid) for _sha, s, pid in previous],
        [(p.subject, p.patch_id) for p in patches],
    )
    states = [
        PatchState(
            p.sha,
            p.subject,
            p.author,
            p.files,
            p.patch_id,
            label,
            upstreamed.get(p.sha, ""),
            tuple(conflicts.get(p.sha, ())),
        )
        for p, label in zip(patches, labels, strict=True)
    ]
    dropped = (
        [
            PatchState(previous[i][0], previous[i][1], "", (), previous[i][2], PatchChange.DROPPED)
            for i in dropped_indices
        ]
        if previous is not None
        else []
    )
    return BranchHealth(
        taken_at=now,
        tip_sha=tip,
        tip_time=tip_time,
        base_sha=base,
        base_position_ref=position.ref if position else "",
        base_position=position.number if position else None,
        base_version=base_version,
        base_moved_at=base_move_time(git_dir, tip, base),
        lag=lag,
        lag_at_tip=lag_at_tip,
        patches=states,
        dropped=dropped,
        unknown=unknown,
    )


def previous_patch_set(branch: TrackedBranch) -> list[tuple[str, str, str]] | None:
    """The latest snapshot's patches as (sha, subject, patch id); None before the first."""
    latest = branch.snapshots.order_by("-taken_at").first()
    if latest is None:
        return None
    return list(
        latest.patches.exclude(change=PatchChange.DROPPED)
        .order_by("order")
        .values_list("sha", "subject", "patch_id")
    )


@transaction.atomic
def record_snapshot(branch: TrackedBranch, health: BranchHealth) -> BranchSnapshot:
    """Store a measurement as the branch's snapshot at `health.taken_at` (replacing one taken
    at the same instant, so a retried sync does not add a second point)."""
    lag, then, version = health.lag, health.lag_at_tip, health.base_version
    known = version is not None  # without a base version, versions and milestones say nothing
    changes = [p.change for p in health.patches]
    values = {
        "tip_sha": health.tip_sha,
        "tip_time": health.tip_time,
        "upstream_tip_sha": lag.upstream_tip,
        "base_sha": health.base_sha,
        "base_position_ref": health.base_position_ref,
        "base_position": health.base_position,
        **version_columns(version, prefix="base_"),
        "base_moved_at": health.base_moved_at,
        "commits_behind": lag.commits_behind,
        "commits_behind_first_parent": lag.commits_behind_first_parent,
        "oldest_missing_at": lag.oldest_missing_at,
        "days_behind": lag.days_behind,
        "versions_behind": lag.versions_behind if known else None,
        "milestones_behind": lag.milestones_behind if known else None,
        "upstream_tip_at_tip_sha": then.upstream_tip,
        "commits_behind_at_tip": then.commits_behind,
        "days_behind_at_tip": then.days_behind,
        "versions_behind_at_tip": then.versions_behind if known else None,
        "milestones_behind_at_tip": then.milestones_behind if known else None,
        "patch_count": len(health.patches),
        "patches_upstreamed": health.upstreamed,
        "patches_added": changes.count(PatchChange.ADDED),
        "patches_changed": changes.count(PatchChange.CHANGED),
        "patches_dropped": len(health.dropped),
        "conflicting_patches": health.conflicting_patches,
        "conflicting_files": health.conflicting_files,
        "unknown": health.unknown,
    }
    snapshot, _ = BranchSnapshot.objects.update_or_create(
        branch=branch, taken_at=health.taken_at, defaults=values
    )
    snapshot.patches.all().delete()
    SnapshotPatch.objects.bulk_create(
        SnapshotPatch(
            snapshot=snapshot,
            order=order,
            sha=p.sha,
            subject=p.subject,
            author=p.author,
            patch_id=p.patch_id,
            files="\n".join(p.files),
            change=p.change,
            upstream_sha=p.upstream_sha,
            conflict_files="\n".join(p.conflict_files),
        )
        for order, p in enumerate([*health.patches, *health.dropped])
    )
    return snapshot
