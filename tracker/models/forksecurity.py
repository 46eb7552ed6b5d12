"""Which upstream security fixes each fork release and fork branch carries, and how.

Terms:

- *fork release*: a version the fork shipped, from a tag matching the fork's
  `release_tag_pattern` or registered by hand. Its *ship time* is `shipped_at_override` when
  set, else the tag date (the tagger date of an annotated tag, the commit date otherwise).
- *upstream base*: the upstream commit the release is built on. Git fork: the merge-base of
  the release commit with the upstream ref its branch follows; patch-series fork: the commit
  of the upstream version tag named by the pinned version file. *Base version*: the
  ``chrome/VERSION`` at the base (the pinned version for a patch-series fork); for an
  upstream versioned by its tags, the newest release tag the base contains
  (tracker.versionschemes), without the four integer columns.
- *security patch level*: the newest upstream Stable version V such that the release carries
  every fix listed by the bulletins of V and of every lower Stable version (Android's
  cumulative meaning: "patched up to V").
- *fix status*: for one (vulnerability, fork release or tracked branch tip): fixed by
  ``base`` (every fix part is in the upstream base), fixed by ``backport`` (at least one part
  only through a fork commit or patch file), ``open``; a person can triage an open fix as
  ``not_affected`` or ``will_not_fix`` (see `FixTriage`).

Versions are stored as the string plus four integer columns, so the database sorts them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

from tracker.models.releases import Vulnerability
from tracker.models.repos import Fork, TrackedBranch


class ReleaseSource(models.TextChoices):
    TAG = "tag", "release tag in the fork"
    MANUAL = "manual", "registered by hand"


class ForkReleaseQuerySet(models.QuerySet):
    def newest_first(self):
        """Releases by ship time, newest first; those without a ship time last (a release
        registered by hand before its tag exists is not the newest)."""
        shipped = Coalesce("shipped_at_override", "tagged_at")
        return self.order_by(shipped.desc(nulls_last=True), "-pk")

    def newest_by_fork(self, fork_ids: list[int]) -> dict[int, ForkRelease]:
        """The newest release of each fork in `fork_ids`, in one query (overview page)."""
        # One index probe per fork, not one per release.
        ids = Fork.objects.filter(pk__in=fork_ids).values(latest=_newest_release_of("pk"))
        return {row.fork_id: row for row in self.filter(pk__in=ids)}


def _newest_release_of(fork: str) -> models.Subquery:
    """Subquery: the pk of the newest release of the fork the outer query's `fork` names."""
    newest = ForkRelease.objects.filter(fork=models.OuterRef(fork)).newest_first()
    return models.Subquery(newest.values("pk")[:1])


class ForkRelease(models.Model):
    """A release of a fork (see the module docstring for base, ship time and patch level).

    `tag` is the tag name without ``refs/tags/`` (the natural key with the fork; a release
    registered by hand names the tag it will be found under, or any label when `sha` is given).
    `sha` is the released commit. `upstream_ref` is the upstream ref the base was taken on;
    `base_position_ref`/`base_position` the base's Cr-Commit-Position and
    `base_branch_point` its branch's main branch-point position (None on main).
    `inputs_fingerprint` digests what the release's statuses depend on (sha and base), so a
    rerun can skip unchanged releases.
    """

    fork = models.ForeignKey(Fork, on_delete=models.CASCADE, related_name="releases")
    tag = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=ReleaseSource.choices)
    sha = models.CharField(max_length=40, blank=True, default="")
    branch = models.ForeignKey(
        TrackedBranch, on_delete=models.SET_NULL, null=True, blank=True, related_name="releases"
    )
    tagged_at = models.DateTimeField(null=True, blank=True, help_text="Tag date from git.")
    shipped_at_override = models.DateTimeField(
        null=True, blank=True, help_text="Ship time when it differs from the tag date."
    )
    upstream_ref = models.CharField(max_length=200, blank=True, default="")
    base_sha = models.CharField(max_length=40, blank=True, default="")
    base_position_ref = models.CharField(max_length=200, blank=True, default="")
    base_position = models.IntegerField(null=True, blank=True)
    base_branch_point = models.IntegerField(null=True, blank=True)
    base_version = models.CharField(max_length=100, blank=True, default="")
    base_major = models.IntegerField(null=True, blank=True)
    base_minor = models.IntegerField(null=True, blank=True)
    base_build = models.IntegerField(null=True, blank=True)
    base_patch = models.IntegerField(null=True, blank=True)
    patch_level_version = models.CharField(max_length=40, blank=True, default="")
    patch_level_major = models.IntegerField(null=True, blank=True)
    patch_level_minor = models.IntegerField(null=True, blank=True)
    patch_level_build = models.IntegerField(null=True, blank=True)
    patch_level_patch = models.IntegerField(null=True, blank=True)
    inputs_fingerprint = models.CharField(max_length=40, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ForkReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["fork__name", "tagged_at"]
        constraints = [
            models.UniqueConstraint(fields=["fork", "tag"], name="uniq_fork_release_tag"),
        ]

    def __str__(self) -> str:
        return f"{self.fork.slug} {self.tag}"

    @property
    def shipped_at(self):
        """Ship time: the override when set, else the tag date (None when neither is known)."""
        return self.shipped_at_override or self.tagged_at


class FixState(models.TextChoices):
    BASE = "base", "fixed by base"
    BACKPORT = "backport", "fixed by backport"
    OPEN = "open", "open"
    NOT_AFFECTED = "not_affected", "not affected"
    WILL_NOT_FIX = "will_not_fix", "will not fix"


FIXED_STATES = (FixState.BASE, FixState.BACKPORT)


class FixStatusQuerySet(models.QuerySet):
    def of_vulnerabilities(self, vuln_ids: list[int]):
        """Every status of these vulnerabilities, releases and branch tips (CVE page, lookup).

        Spelled as two conditions so each matches one of the partial unique indexes that lead
        with the vulnerability: a plain ``vulnerability_id IN (...)`` matches neither and
        scans the whole (fork, vulnerability) index instead."""
        return self.filter(
            models.Q(vulnerability_id__in=vuln_ids, release__isnull=False)
            | models.Q(vulnerability_id__in=vuln_ids, branch__isnull=False)
        )

    def of_newest_release(self):
        """The statuses of each fork's newest release (the metrics: which forks have any)."""
        return self.filter(release=_newest_release_of("fork"))

    def open_in_newest_release(self):
        """The open statuses of each fork's newest release: the metrics' open fixes and the
        security snapshots behind the overview and the fork page's chart."""
        return self.of_newest_release().filter(status=FixState.OPEN)

    def counted_open(self, fork: Fork, newest: ForkRelease | None):
        """The open statuses a fork's security figures count: those of `newest`, its newest
        release, or of its branch tips when it has none (security snapshots, fork page)."""
        rows = self.filter(fork=fork, status=FixState.OPEN)
        return rows.filter(release=newest) if newest else rows.filter(branch__isnull=False)

    def open_fix_facts(self):
        """(cve, severity, since) once per vulnerability among these statuses, where *since*
        is upstream's first Stable release with the fix, else its landing (as
        `tracker.gap.OpenFix`): the fork and branch pages' open fixes, the snapshots' ages."""
        since = Coalesce("vulnerability__first_stable_at", "vulnerability__landed_at")
        return self.values_list("vulnerability__cve", "vulnerability__severity", since).distinct()


class FixStatus(models.Model):
    """The status of one vulnerability in one fork release or one tracked branch tip.

    `computed` is what history says (base, backport or open); `status` is what the pages show:
    `computed`, or the fork's latest triage decision when `computed` is open. `evidence` has
    one entry per fix part: ``{"part": main fix commit id, "how": "base"|"backport"|"missing",
    "method": ..., "upstream": matched upstream commit id, "fork_commit": ..., "patch": ...}``.
    `target_sha` is the release commit or the branch tip it was computed for; `fingerprint`
    digests the inputs (vulnerability's fix facts, target and base), so an unchanged pair is
    not evaluated again.
    """

    # No single-column indexes on fork and vulnerability: the (fork, vulnerability) index and
    # the partial unique (vulnerability, release) and (vulnerability, branch) ones lead with
    # them (`of_vulnerabilities` states their conditions), and a matrix write of hundreds of
    # thousands of rows pays for every index.
    fork = models.ForeignKey(
        Fork, on_delete=models.CASCADE, related_name="fix_statuses", db_index=False
    )
    vulnerability = models.ForeignKey(
        Vulnerability, on_delete=models.CASCADE, related_name="fork_statuses", db_index=False
    )
    release = models.ForeignKey(
        ForkRelease, on_delete=models.CASCADE, null=True, blank=True, related_name="statuses"
    )
    branch = models.ForeignKey(
        TrackedBranch, on_delete=models.CASCADE, null=True, blank=True, related_name="statuses"
    )
    computed = models.CharField(max_length=12, choices=FixState.choices)
    status = models.CharField(max_length=12, choices=FixState.choices)
    evidence = models.JSONField(default=list, blank=True)
    target_sha = models.CharField(max_length=40, blank=True, default="")
    fingerprint = models.CharField(max_length=40, blank=True, default="")
    computed_at = models.DateTimeField()

    objects = FixStatusQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["vulnerability", "release"],
                condition=models.Q(release__isnull=False),
                name="uniq_fix_status_release",
            ),
            models.UniqueConstraint(
                fields=["vulnerability", "branch"],
                condition=models.Q(branch__isnull=False),
                name="uniq_fix_status_branch",
            ),
            models.CheckConstraint(
                condition=models.Q(release__isnull=True) ^ models.Q(branch__isnull=True),
                name="fix_status_one_target",
            ),
        ]
        indexes = [
            # Fork security page and gap figures: every status of a fork by vulnerability.
            models.Index(fields=["fork", "vulnerability"], name="fix_status_fork_vuln"),
            # Patch levels and open-fix lists: the statuses a fork does not carry (partial, so
            # writing the carried majority of a matrix costs it nothing).
            models.Index(
                fields=["fork", "release"],
                condition=models.Q(status__in=["open", "will_not_fix"]),
                name="fix_status_not_carried",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vulnerability} in {self.release or self.branch}: {self.status}"


class TriageDecision(models.TextChoices):
    NOT_AFFECTED = "not_affected", "not affected"
    WILL_NOT_FIX = "will_not_fix", "will not fix"
    REOPENED = "reopened", "reopened (decision withdrawn)"


class FixTriage(models.Model):
    """A person's decision on a vulnerability for a whole fork, with the reason (audited).

    Rows are never updated: each decision is a new row, the latest by `decided_at` wins, and
    ``reopened`` withdraws the previous one. A decision only overrides an open status.
    """

    fork = models.ForeignKey(Fork, on_delete=models.CASCADE, related_name="triages")
    vulnerability = models.ForeignKey(
        Vulnerability, on_delete=models.CASCADE, related_name="triages"
    )
    decision = models.CharField(max_length=12, choices=TriageDecision.choices)
    reason = models.TextField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    decided_by_name = models.CharField(
        max_length=150, blank=True, default="", help_text="Kept when the user is deleted."
    )
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["-decided_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(reason=""), name="triage_has_reason"),
        ]
        indexes = [
            # The latest decision per (fork, vulnerability).
            models.Index(fields=["fork", "vulnerability", "-decided_at"], name="triage_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.vulnerability} in {self.fork}: {self.decision}"


class UpstreamPatchId(models.Model):
    """``git patch-id --stable`` of an upstream fix commit, computed once and kept.

    Keyed by (upstream, sha); `files` maps each file the commit touches to its added and
    removed lines (``{"path": [[added...], [removed...]]}``), for matching patch files.
    """

    upstream = models.ForeignKey(
        "tracker.Upstream", on_delete=models.CASCADE, related_name="patch_ids"
    )
    sha = models.CharField(max_length=40)
    patch_id = models.CharField(max_length=40, blank=True, default="")
    files = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["upstream", "sha"], name="uniq_upstream_patch_id"),
        ]

    def __str__(self) -> str:
        return f"{self.sha[:12]} {self.patch_id[:12]}"


class RollFix(models.Model):
    """The upstream commits found to carry a dependency-roll fix (one placed by version).

    No commit names a roll fix's bug, so the ``DEPS`` changes between the first fixed version
    and the version before it on that milestone are taken as the fix, and the commits on main
    and other release branches with the same patch identity as its copies. `versions_key`
    records the first fixed versions this was worked out from; `commits` lists
    ``{"sha", "ref", "position", "part"}`` where `part` is the main commit id (or the seed
    commit's id when main has no copy).
    """

    vulnerability = models.OneToOneField(
        Vulnerability, on_delete=models.CASCADE, related_name="roll_fix"
    )
    versions_key = models.CharField(max_length=500)
    commits = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"{self.vulnerability}: {len(self.commits)} roll commits"
