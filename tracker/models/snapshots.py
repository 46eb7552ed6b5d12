"""Rebase health of a tracked fork branch, one snapshot per sync: the trend charts' series."""

from __future__ import annotations

from django.db import models

from tracker.lag import lag_status
from tracker.models.repos import Fork, TrackedBranch


class SnapshotQuerySet(models.QuerySet):
    def latest_by_branch(self, branch_ids: list[int]) -> dict[int, BranchSnapshot]:
        """The newest snapshot of each branch, in one query (overview and fork pages)."""
        # One index probe per branch: comparing each snapshot with its branch's newest would
        # probe once per snapshot (a year of daily ones per branch).
        newest = (
            self.model.objects.filter(branch=models.OuterRef("pk"))
            .order_by("-taken_at")
            .values("pk")[:1]
        )
        ids = TrackedBranch.objects.filter(pk__in=branch_ids).values(latest=models.Subquery(newest))
        return {s.branch_id: s for s in self.filter(pk__in=ids)}

    def trend_points(self, branch_ids: list[int], since=None):
        """The fork page's trend series: one row per snapshot, oldest first."""
        rows = self.filter(branch_id__in=branch_ids)
        if since is not None:
            rows = rows.filter(taken_at__gte=since)
        return rows.order_by("taken_at").values(
            "branch_id",
            "taken_at",
            "days_behind",
            "commits_behind",
            "milestones_behind",
            "patch_count",
            "patches_upstreamed",
            "conflicting_patches",
        )


class BranchSnapshot(models.Model):
    """Lag and patch-set figures of a fork branch at one sync.

    Terms:
    - *base*: the merge-base of the fork branch with the upstream ref it follows.
    - *commits behind*: upstream commits (on the followed ref) the branch does not contain,
      as `git rev-list --count branch..upstream`; `_first_parent` counts only along upstream's
      first-parent line.
    - *days behind*: whole days from the oldest missing upstream commit's commit time to the
      snapshot; 0 when nothing is missing.
    - *versions behind*: upstream versions between the base and the followed ref's tip
      (tracker.lag; for an upstream versioned by its tags, its release tags in between);
      *milestones behind*: the tip's MAJOR minus the base's MAJOR. Both are null when the
      base has no known version (`base_version` empty), and milestones are null for an
      upstream without Chromium versions: no figure without data.
    - *base version*: a Chromium version (with its four integer columns), or for an upstream
      versioned by its tags the newest release tag the base contains (integer columns null).
    - The `_at_tip` figures are the same, measured against upstream as it was when the branch's
      own last commit was made: an abandoned branch has small `_at_tip` lag and large lag now.
    - *patches*: the fork's own non-merge commits (reachable from the tip, not from upstream),
      wherever merges brought them in; for a merging-rebase fork only those since the newest
      marker, so the old copies it keeps reachable are not counted (`tracker.patches`).
    - *base moved at*: commit time of the oldest commit on the branch's first-parent line that
      contains the base, whichever parent brought it in (`tracker.lag.base_move_time`).
    - *other refs behind*: for a branch that also follows other upstream refs
      (`TrackedBranch.also_follows`), upstream ref -> commits of it the branch lacks.
    - *unknown*: the figures that could not be measured, with the reason (see `unknown`).
    """

    branch = models.ForeignKey(TrackedBranch, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField()
    tip_sha = models.CharField(max_length=40)
    tip_time = models.DateTimeField()
    upstream_tip_sha = models.CharField(max_length=40)
    base_sha = models.CharField(max_length=40, blank=True, default="")
    base_position_ref = models.CharField(max_length=200, blank=True, default="")
    base_position = models.IntegerField(null=True, blank=True)
    base_version = models.CharField(max_length=100, blank=True, default="")
    base_major = models.IntegerField(null=True, blank=True)
    base_minor = models.IntegerField(null=True, blank=True)
    base_build = models.IntegerField(null=True, blank=True)
    base_patch = models.IntegerField(null=True, blank=True)
    base_moved_at = models.DateTimeField(null=True, blank=True)

    commits_behind = models.IntegerField()
    commits_behind_first_parent = models.IntegerField()
    oldest_missing_at = models.DateTimeField(null=True, blank=True)
    days_behind = models.IntegerField()
    versions_behind = models.IntegerField(null=True, blank=True)
    milestones_behind = models.IntegerField(null=True, blank=True)
    other_refs_behind = models.JSONField(default=dict, blank=True)

    upstream_tip_at_tip_sha = models.CharField(max_length=40, blank=True, default="")
    commits_behind_at_tip = models.IntegerField()
    days_behind_at_tip = models.IntegerField()
    versions_behind_at_tip = models.IntegerField(null=True, blank=True)
    milestones_behind_at_tip = models.IntegerField(null=True, blank=True)

    patch_count = models.IntegerField()
    patches_upstreamed = models.IntegerField()
    patches_added = models.IntegerField(default=0)
    patches_dropped = models.IntegerField(default=0)
    patches_changed = models.IntegerField(default=0)
    conflicting_patches = models.IntegerField(default=0)
    conflicting_files = models.IntegerField(default=0)
    # Figures that could not be measured -> why (tracker.health.UNKNOWN_FIGURES): objects the
    # mirror lacks and no remote has. Their columns hold 0 then; pages say "unknown".
    unknown = models.JSONField(default=dict, blank=True)

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["branch", "taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["branch", "taken_at"], name="uniq_snapshot_time"),
        ]
        indexes = [
            # Trend charts and "latest snapshot per branch": snapshots of a branch by time.
            models.Index(fields=["branch", "-taken_at"], name="snapshot_branch_time"),
        ]

    def __str__(self) -> str:
        return f"{self.branch} @ {self.taken_at:%Y-%m-%d %H:%M}"

    @property
    def status(self) -> str:
        """ "current", "behind" or "overdue": see tracker.lag.lag_status."""
        return lag_status(self.days_behind, self.milestones_behind or 0)

    @property
    def unknown_versions(self) -> str:
        """Why the base version, versions and milestones behind are unknown ("" if known)."""
        return self.unknown.get("versions", "")

    @property
    def unknown_patch_ids(self) -> str:
        """Why patch identities (already upstream, churn) are unknown ("" if known)."""
        return self.unknown.get("patch_ids", "")

    @property
    def unknown_conflicts(self) -> str:
        """Why the predicted conflicts are unknown ("" if known)."""
        return self.unknown.get("conflicts", "")


class PatchChange(models.TextChoices):
    UNCHANGED = "unchanged", "unchanged"
    ADDED = "added", "added"
    CHANGED = "changed", "changed"
    DROPPED = "dropped", "dropped"


class SnapshotPatch(models.Model):
    """One fork patch in a snapshot (or one dropped since the previous snapshot)."""

    snapshot = models.ForeignKey(BranchSnapshot, on_delete=models.CASCADE, related_name="patches")
    order = models.IntegerField(help_text="Position in the series, oldest first.")
    sha = models.CharField(max_length=40)
    subject = models.TextField()
    author = models.CharField(max_length=200, blank=True, default="")
    patch_id = models.CharField(max_length=40, blank=True, default="")
    files = models.TextField(blank=True, default="", help_text="Paths touched, one per line.")
    change = models.CharField(max_length=10, choices=PatchChange.choices)
    upstream_sha = models.CharField(
        max_length=40, blank=True, default="", help_text="Upstream commit with the same patch id."
    )
    conflict_files = models.TextField(
        blank=True, default="", help_text="Files predicted to conflict on rebase, one per line."
    )

    class Meta:
        ordering = ["snapshot", "order"]
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "order"], name="uniq_snapshot_patch"),
        ]

    def __str__(self) -> str:
        return f"{self.sha[:12]} {self.subject[:60]}"


class SecuritySnapshotQuerySet(models.QuerySet):
    def latest_by_fork(self, fork_ids: list[int]) -> dict[int, ForkSecuritySnapshot]:
        """The newest snapshot of each fork in `fork_ids` (one query; one index probe per
        fork, as `SnapshotQuerySet.latest_by_branch`)."""
        newest = (
            self.model.objects.filter(fork=models.OuterRef("pk"))
            .order_by("-taken_at")
            .values("pk")[:1]
        )
        ids = Fork.objects.filter(pk__in=fork_ids).values(latest=models.Subquery(newest))
        return {row.fork_id: row for row in self.filter(pk__in=ids)}

    def trend_points(self, fork_id: int, since=None):
        """The fork page's open-fixes chart: one row per snapshot, oldest first."""
        rows = self.filter(fork_id=fork_id)
        if since is not None:
            rows = rows.filter(taken_at__gte=since)
        return rows.order_by("taken_at").values(
            "taken_at", "open_critical", "open_high", "open_medium", "open_low"
        )


class ForkSecuritySnapshot(models.Model):
    """A fork's open upstream security fixes at one moment (append-only, for trend charts).

    Counted on the fork's newest release (by ship time), or on its branch tips when it has no
    release: a fix is *open* when its status there is open (not fixed by base or backport and
    not triaged). `oldest_open_days` is the age of the oldest open fix, counted from
    upstream's first Stable release with it (its landing when upstream has not shipped it).
    """

    fork = models.ForeignKey(
        "tracker.Fork", on_delete=models.CASCADE, related_name="security_snapshots"
    )
    taken_at = models.DateTimeField()
    release_tag = models.CharField(max_length=200, blank=True, default="")
    open_critical = models.IntegerField(default=0)
    open_high = models.IntegerField(default=0)
    open_medium = models.IntegerField(default=0)
    open_low = models.IntegerField(default=0)
    oldest_open_days = models.FloatField(null=True, blank=True)

    objects = SecuritySnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["fork", "taken_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["fork", "taken_at"], name="uniq_security_snapshot_time"
            ),
        ]
        indexes = [
            # Trend charts and the overview: a fork's snapshots by time, newest first.
            models.Index(fields=["fork", "-taken_at"], name="security_snapshot_fork_time"),
        ]

    def __str__(self) -> str:
        return f"{self.fork_id} security @ {self.taken_at:%Y-%m-%d %H:%M}"

    @property
    def open_total(self) -> int:
        return self.open_critical + self.open_high + self.open_medium + self.open_low
