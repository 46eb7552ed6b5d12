"""The facts alert rules need, read from the database in a fixed number of queries.

Terms used here (the rules in `tracker.alerts.rules` define the rest):

- *upstream Stable milestone*: the highest milestone upstream has released to the Stable
  channel on any platform (`UpstreamRelease`).
- *milestones behind Stable* of a branch: that milestone minus the milestone of the branch's
  upstream base (never below 0); unknown (None) without a Stable milestone or a base
  version, and for an upstream without Chromium versions (tracker.versionschemes), whose
  forks get none of Chrome's rules (milestones, milestone support, key pinning).
- *newest release* of a fork: its release with the latest ship time. An upstream fix is
  *not shipped* when its status in that release is open (fixed neither by base nor by
  backport, not triaged); a fork without releases is judged on its branch tips.
- *base release time* of a release: when upstream first released the release's base
  version on any channel, else the base commit's commit time; unknown without a base
  version or Chromium versions, so no rule needing it fires.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import F, Max, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from tracker.alerts.rules import (
    BranchFacts,
    ForkReleaseFacts,
    OpenFix,
    SourceFacts,
    Thresholds,
    milestone_supported,
)
from tracker.models import (
    AlertSettings,
    BranchSnapshot,
    Channel,
    FixState,
    FixStatus,
    Fork,
    ForkRelease,
    Milestone,
    SnapshotPatch,
    SourceState,
    TrackedBranch,
    UpstreamCommit,
    UpstreamRelease,
    Vulnerability,
)
from tracker.versionschemes import chrome_rules

THRESHOLD_FIELDS = (
    "lag_days",
    "lag_milestones",
    "in_the_wild_days",
    "critical_days",
    "high_days",
    "medium_days",
    "base_age_days",
    "stale_hours",
)


@dataclass
class ForkFacts:
    """Everything the rules look at for one fork, with the thresholds that apply."""

    fork: Fork
    thresholds: Thresholds
    enabled: bool
    branches: list[tuple[BranchFacts, Thresholds]] = field(default_factory=list)
    open_fixes: list[OpenFix] = field(default_factory=list)
    newest_release: ForkReleaseFacts | None = None
    source: SourceFacts | None = None


@dataclass
class WorldFacts:
    forks: list[ForkFacts]
    sources: list[SourceFacts]  # upstream data sources (Chromium Dash, VersionHistory, blog)
    stable: list[tuple[str, list[str]]]  # (newest Stable version, its CVEs) per upstream
    defaults: Thresholds


def _threshold_overrides(row: AlertSettings | None) -> dict[str, int | None]:
    if row is None:
        return {}
    return {name: getattr(row, name) for name in THRESHOLD_FIELDS}


def default_thresholds() -> Thresholds:
    return Thresholds(stale_hours=settings.SOURCE_STALE_HOURS)


def stable_milestones() -> dict[int, int]:
    """Upstream id → its highest Stable milestone."""
    rows = (
        UpstreamRelease.objects.filter(channel=Channel.STABLE)
        .values("upstream_id")
        .annotate(top=Max("milestone"))
    )
    return {r["upstream_id"]: r["top"] for r in rows}


def _latest_snapshots(branch_ids: list[int]) -> dict[int, BranchSnapshot]:
    """Each branch's latest snapshot (`latest_by_branch`), with `baseline_conflicts`: the
    conflict forecast of the first snapshot taken since its base last moved whose forecast is
    known (one that could not be made is 0 there, not a baseline)."""
    latest = BranchSnapshot.objects.latest_by_branch(branch_ids)
    after_rebase = (
        BranchSnapshot.objects.filter(
            branch=OuterRef("branch"),
            taken_at__gte=Coalesce(OuterRef("base_moved_at"), "taken_at"),
        )
        .exclude(unknown__has_key="conflicts")
        .order_by("taken_at")
    )
    baselines = dict(
        BranchSnapshot.objects.filter(pk__in=[s.pk for s in latest.values()])
        .annotate(baseline=Subquery(after_rebase.values("conflicting_patches")[:1]))
        .values_list("branch_id", "baseline")
    )
    for snapshot in latest.values():
        snapshot.baseline_conflicts = baselines.get(snapshot.branch_id)
    return latest


def _patch_subjects(snapshot_ids: list[int]) -> tuple[dict, dict]:
    upstreamed: dict[int, list[str]] = defaultdict(list)
    conflicting: dict[int, list[str]] = defaultdict(list)
    rows = (
        SnapshotPatch.objects.filter(snapshot_id__in=snapshot_ids)
        .filter(~Q(upstream_sha="") | ~Q(conflict_files=""))
        .exclude(change="dropped")
        .order_by("order")
        .values_list("snapshot_id", "subject", "upstream_sha", "conflict_files")
    )
    for snapshot_id, subject, upstream_sha, conflict_files in rows:
        if upstream_sha:
            upstreamed[snapshot_id].append(subject)
        if conflict_files:
            conflicting[snapshot_id].append(subject)
    return upstreamed, conflicting


def _branch_facts(forks: dict[int, ForkFacts], settings_rows, stable: dict, now) -> None:
    branches = list(
        TrackedBranch.objects.filter(fork_id__in=list(forks)).select_related("fork__upstream")
    )
    latest = _latest_snapshots([b.pk for b in branches])
    upstreamed, conflicting = _patch_subjects([s.pk for s in latest.values()])
    support_end = {
        (m.upstream_id, m.milestone): m.support_end
        for m in Milestone.objects.filter(support_end__isnull=False)
    }
    for branch in branches:
        snap = latest.get(branch.pk)
        facts = forks[branch.fork_id]
        if snap is None:
            continue
        override = settings_rows.get((branch.fork_id, branch.pk))
        if override is not None and not override.enabled:
            continue
        thresholds = facts.thresholds.overridden(_threshold_overrides(override))
        upstream = branch.fork.upstream
        chromium = chrome_rules(upstream)
        top = stable.get(upstream.pk)
        known = chromium and top is not None and snap.base_major is not None
        behind = max(0, top - snap.base_major) if known else None
        on_release_branch = branch.upstream_ref != upstream.main_ref
        milestone = snap.base_major if chromium and on_release_branch else None
        supported = milestone is None or milestone_supported(
            milestone, top, support_end.get((upstream.pk, milestone)), now.date()
        )
        facts.branches.append(
            (
                BranchFacts(
                    fork=facts.fork.slug,
                    branch=branch.name,
                    days_behind=snap.days_behind,
                    milestones_behind_stable=behind,
                    conflicting_patches=snap.conflicting_patches,
                    # An unknown forecast (0 then) neither rises nor falls.
                    previous_conflicting_patches=(
                        None if snap.unknown_conflicts else snap.baseline_conflicts
                    ),
                    patches_upstreamed=snap.patches_upstreamed,
                    milestone=milestone,
                    milestone_supported=supported,
                    upstreamed_subjects=tuple(upstreamed.get(snap.pk, ())),
                    conflicting_subjects=tuple(conflicting.get(snap.pk, ())),
                ),
                thresholds,
            )
        )


def newest_releases(fork_ids: list[int]) -> dict[int, ForkRelease]:
    """Each fork's newest release (`ForkRelease.objects.newest_by_fork`), with its fork."""
    return ForkRelease.objects.select_related("fork").newest_by_fork(fork_ids)


def _base_release_times(releases: list[ForkRelease]) -> dict[int, datetime | None]:
    versions = {r.base_version for r in releases if r.base_version}
    first_seen = dict(
        UpstreamRelease.objects.filter(version__in=versions)
        .values("version")
        .annotate(first=Min("time"))
        .values_list("version", "first")
    )
    shas = [r.base_sha for r in releases if r.base_version not in first_seen and r.base_sha]
    commit_time = dict(
        UpstreamCommit.objects.filter(sha__in=shas).values_list("sha", "commit_time")
    )
    return {r.pk: first_seen.get(r.base_version) or commit_time.get(r.base_sha) for r in releases}


def _open_fixes(forks: dict[int, ForkFacts], newest: dict[int, ForkRelease]) -> None:
    by_release = Q(release_id__in=[r.pk for r in newest.values()])
    without_release = [pk for pk in forks if pk not in newest]
    by_branch = Q(fork_id__in=without_release, branch__isnull=False)
    rows = (
        FixStatus.objects.filter(by_release | by_branch, status=FixState.OPEN)
        .values_list(
            "fork_id",
            "vulnerability__cve",
            "vulnerability__severity",
            "vulnerability__in_the_wild",
            "vulnerability__first_stable_at",
            "vulnerability__title",
        )
        .distinct()
        .order_by("fork_id", "vulnerability__cve")
    )
    for fork_id, cve, severity, wild, stable_at, title in rows:
        facts = forks[fork_id]
        facts.open_fixes.append(OpenFix(facts.fork.slug, cve, severity, wild, stable_at, title))


def gather(now: datetime) -> WorldFacts:
    """Every fork's facts, the upstream sources and the newest Stable releases."""
    defaults = default_thresholds()
    settings_rows = {(s.fork_id, s.branch_id): s for s in AlertSettings.objects.all()}
    forks: dict[int, ForkFacts] = {}
    for fork in Fork.objects.select_related("upstream"):
        row = settings_rows.get((fork.pk, None))
        thresholds = defaults.overridden(_threshold_overrides(row))
        forks[fork.pk] = ForkFacts(fork, thresholds, enabled=row is None or row.enabled)
        forks[fork.pk].source = SourceFacts(
            name=f"fork sync {fork.slug}",
            fork=fork.slug,
            # A fork never synced counts from when it was added, not as failing at once.
            last_success_at=fork.last_synced_at or fork.created_at,
            last_error=fork.last_error,
        )
    stable = stable_milestones()
    _branch_facts(forks, settings_rows, stable, now)
    newest = newest_releases(list(forks))
    base_times = _base_release_times(list(newest.values()))
    for fork_id, release in newest.items():
        fork = forks[fork_id].fork
        dated = release.base_version and chrome_rules(fork.upstream)
        forks[fork_id].newest_release = ForkReleaseFacts(
            fork=fork.slug,
            tag=release.tag,
            base_version=release.base_version,
            base_released_at=base_times.get(release.pk) if dated else None,
            is_newest=True,
        )
    _open_fixes(forks, newest)
    sources = [
        SourceFacts(s.get_source_display(), None, s.last_success_at, s.last_error)
        for s in SourceState.objects.order_by("source")
    ]
    return WorldFacts(
        forks=[f for f in forks.values() if f.enabled],
        sources=sources,
        stable=_newest_stable(),
        defaults=defaults,
    )


def _newest_stable() -> list[tuple[str, list[str]]]:
    """Per upstream, its newest Stable version and the CVEs first shipped in it."""
    newest = (
        UpstreamRelease.objects.filter(channel=Channel.STABLE, upstream=OuterRef("upstream"))
        .order_by("-major", "-minor", "-build", "-patch")
        .values("version")[:1]
    )
    versions = list(
        UpstreamRelease.objects.filter(channel=Channel.STABLE)
        .annotate(newest=Subquery(newest))
        .filter(version=F("newest"))
        .values_list("upstream_id", "version")
        .distinct()
    )
    out = []
    for upstream_id, version in versions:
        cves = list(
            Vulnerability.objects.filter(upstream_id=upstream_id, first_stable_version=version)
            .order_by("cve")
            .values_list("cve", flat=True)
        )
        out.append((version, cves))
    return out
