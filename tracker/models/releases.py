"""What upstream shipped and which security fixes it carried.

Terms used throughout:

- *release*: one version released to one channel on one platform (Chromium Dash's
  ``fetch_releases`` element, or a VersionHistory serving period). Its *chromium commit* is the
  commit the version tag points to.
- *milestone*: the Chrome major version (M125); its *branch* is the release-branch number
  (``refs/branch-heads/6422``, also the BUILD of every version cut from it) and its *branch
  position* the ``refs/heads/main`` commit position the branch was cut from.
- *bulletin*: a Chrome Releases blog post; its *security lines* name the CVEs it fixed.
- *vulnerability*: a CVE as an upstream knows it, linked to the commits that fixed it
  (*fix commits*) and to the first releases that contained them.
- *upstream gap*: days from the fix landing on main (the last fix commit) to the first Stable
  release that contains every fix commit: how long upstream itself took, the reference line
  for a fork's own figures.

Versions are stored as the string plus four integer columns, so the database sorts them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

from tracker.models.repos import Upstream


class Channel(models.TextChoices):
    STABLE = "stable", "Stable"
    EXTENDED = "extended", "Extended Stable"
    BETA = "beta", "Beta"
    DEV = "dev", "Dev"
    CANARY = "canary", "Canary"
    CANARY_ASAN = "canary_asan", "Canary (ASan)"
    LTS = "lts", "LTS"
    LTC = "ltc", "LTC"


class Platform(models.TextChoices):
    """Platforms in one vocabulary for both sources.

    Chromium Dash says "Windows", VersionHistory "win", "win64" and "win_arm64"; all three are
    "windows" here (likewise "mac" for mac and mac_arm64), so a version's first release on
    Windows is one row whatever the architecture.
    """

    WINDOWS = "windows", "Windows"
    MAC = "mac", "Mac"
    LINUX = "linux", "Linux"
    ANDROID = "android", "Android"
    WEBVIEW = "webview", "Android WebView"
    IOS = "ios", "iOS"
    CHROMEOS = "chromeos", "ChromeOS"
    LACROS = "lacros", "Lacros"
    FUCHSIA = "fuchsia", "Fuchsia"


class Severity(models.TextChoices):
    """Chromium's severity rating, as the bulletin gives it (S0..S3)."""

    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class Source(models.TextChoices):
    CHROMIUMDASH = "chromiumdash", "Chromium Dash"
    VERSIONHISTORY = "versionhistory", "VersionHistory API"
    CHROME_RELEASES = "chrome_releases", "Chrome Releases blog"


class VersionFields(models.Model):
    """A Chromium version: `version` (``125.0.6422.141``) and its four numbers."""

    version = models.CharField(max_length=40)
    major = models.IntegerField()
    minor = models.IntegerField()
    build = models.IntegerField()
    patch = models.IntegerField()

    class Meta:
        abstract = True


class Milestone(models.Model):
    """One milestone of an upstream: its release branch, branch point and schedule.

    `branch` is the release-branch number (None until Dash names it); `branch_position` and
    `branch_sha` are the main commit it was cut from. The dates are Chromium Dash's planned
    schedule (days, no time zone); `support_end` is when upstream stops shipping the
    milestone, where known (Dash does not publish it).
    """

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="milestones")
    milestone = models.IntegerField()
    branch = models.IntegerField(null=True, blank=True)
    branch_position = models.IntegerField(null=True, blank=True)
    branch_sha = models.CharField(max_length=40, blank=True, default="")
    v8_branch = models.CharField(max_length=20, blank=True, default="")
    schedule_active = models.BooleanField(default=False)
    schedule_phase = models.CharField(
        max_length=20, blank=True, default="", help_text="branch, beta, stable_cut or stable."
    )
    branch_date = models.DateField(null=True, blank=True)
    earliest_beta = models.DateField(null=True, blank=True)
    early_stable = models.DateField(null=True, blank=True)
    stable_date = models.DateField(null=True, blank=True)
    stable_refresh_first = models.DateField(null=True, blank=True)
    support_end = models.DateField(null=True, blank=True)
    schedule = models.JSONField(
        default=dict, blank=True, help_text="Every schedule date Dash gave, ISO dates by key."
    )

    class Meta:
        ordering = ["-milestone"]
        constraints = [
            models.UniqueConstraint(fields=["upstream", "milestone"], name="uniq_milestone"),
        ]
        indexes = [
            # Branch number -> milestone and branch point: placing releases and fork branches.
            models.Index(fields=["upstream", "branch"], name="milestone_branch"),
        ]

    def __str__(self) -> str:
        return f"M{self.milestone}"


class UpstreamRelease(VersionFields):
    """A version released to a channel on a platform.

    - `time`: when it was released: Chromium Dash's release time, or the start of its first
      VersionHistory serving period when Dash does not list it.
    - `chromium_commit`: the commit the version tag points to (Dash ``hashes.chromium``).
    - `branch_position`: Dash's ``chromium_main_branch_position``: the branch point of the
      version's release branch (for Canary builds cut from main, the build's own position);
      not the position of the release commit itself.
    - `served_from` / `fully_served_at` / `served_until`: from VersionHistory: when the
      version first reached any users, when it first served 100% (fraction 1), and when its
      latest serving period ended (None while still served or not known).
    """

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="releases")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    platform = models.CharField(max_length=20, choices=Platform.choices)
    milestone = models.IntegerField()
    time = models.DateTimeField()
    chromium_commit = models.CharField(max_length=40, blank=True, default="")
    branch_position = models.IntegerField(null=True, blank=True)
    previous_version = models.CharField(max_length=40, blank=True, default="")
    hashes = models.JSONField(
        default=dict, blank=True, help_text="Component (v8, skia, ...) -> commit, from Dash."
    )
    seen_in_dash = models.BooleanField(default=False)
    seen_in_versionhistory = models.BooleanField(default=False)
    served_from = models.DateTimeField(null=True, blank=True)
    fully_served_at = models.DateTimeField(null=True, blank=True)
    served_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["upstream", "version", "channel", "platform"], name="uniq_upstream_release"
            ),
        ]
        indexes = [
            # First release per channel and platform that contains a fix; release timelines.
            models.Index(fields=["upstream", "channel", "platform", "time"], name="release_time"),
            # Releases in version order: first fixed version per milestone, version lists.
            models.Index(
                fields=["upstream", "major", "minor", "build", "patch"], name="release_version"
            ),
            # The release a commit is (a fork base or pinned commit -> upstream version).
            models.Index(fields=["upstream", "chromium_commit"], name="release_commit"),
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.channel} {self.platform}"


class Bulletin(models.Model):
    """A Chrome Releases post, kept whole so it can be parsed again.

    Posts are edited after publication (CVE lines added or rewritten), so the raw
    `content_html` is kept with its `updated` time and re-parsed when that changes. `versions`
    are the version sentence's ``[version, platforms]`` pairs; `security_fix_count` is N of
    "This update includes N security fixes" (it counts internal fixes that get no line);
    `unparsed_lines` are lines that looked like security lines but did not parse, kept for
    review; `in_the_wild_cves` are the CVEs the post says are exploited in the wild.
    `first_seen_at` and `changed_at` are when ingestion first stored the post and when it
    last stored a different version of it.
    """

    post_id = models.CharField(max_length=200, unique=True)
    url = models.URLField(max_length=500)
    title = models.CharField(max_length=300, blank=True, default="")
    published = models.DateTimeField()
    updated = models.DateTimeField()
    labels = models.JSONField(default=list, blank=True)
    content_html = models.TextField(blank=True, default="")
    versions = models.JSONField(default=list, blank=True)
    security_fix_count = models.IntegerField(null=True, blank=True)
    unparsed_lines = models.JSONField(default=list, blank=True)
    in_the_wild_cves = models.JSONField(default=list, blank=True)
    first_seen_at = models.DateTimeField()
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-published"]
        indexes = [
            # Bulletin list, newest first.
            models.Index(fields=["-published"], name="bulletin_published"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.published:%Y-%m-%d})"


class BulletinLine(models.Model):
    """One parsed security line of a bulletin (``[$reward][ids] Severity CVE: title. …``).

    `bug_ids` are the issue ids in the line's second bracket. The fields are the parser's
    (`tracker.bulletins.SecurityLine`); `raw_line` is the line as the post had it.
    """

    bulletin = models.ForeignKey(Bulletin, on_delete=models.CASCADE, related_name="lines")
    cve = models.CharField(max_length=30)
    raw_line = models.TextField()
    severity = models.CharField(max_length=10, choices=Severity.choices)
    title = models.TextField(blank=True, default="")
    component = models.CharField(max_length=200, blank=True, default="")
    reporter = models.TextField(blank=True, default="")
    reward_text = models.CharField(max_length=200, blank=True, default="")
    report_date = models.DateField(null=True, blank=True)
    bug_ids = models.JSONField(default=list, blank=True)
    trailing_text = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bulletin", "cve"], name="uniq_bulletin_line"),
        ]
        indexes = [
            # The posts that list a CVE: reconciling a vulnerability, its first bulletin.
            models.Index(fields=["cve"], name="bulletin_line_cve"),
        ]

    def __str__(self) -> str:
        return self.raw_line[:80]


class Placement(models.TextChoices):
    """How a vulnerability's fix was placed in upstream history and releases."""

    PENDING = "pending", "not linked yet"
    COMMITS = "commits", "fix commits named by Bug:/Fixed: footers"
    VERSION = "version", "dependency roll: no commit names its bugs, placed by bulletin version"
    UNPLACED = "unplaced", "neither a fix commit nor a bulletin version"


class Evidence(models.TextChoices):
    """Why a release is known to contain a fix."""

    ANCESTRY = "ancestry", "git ancestry of the release commit"
    BRANCH_POINT = "branch_point", "branch-point rule on commit positions"
    VERSION = "version", "bulletin version (dependency roll)"


class Vulnerability(models.Model):
    """A CVE fixed upstream, as the bulletins describe it and as linking placed it.

    The descriptive fields come from the most recently updated post that lists the CVE (posts
    are rewritten after publication); `first_bulletin` is the earliest published one.
    `in_the_wild` is set when any post says an exploit exists in the wild.

    Linking fills the rest: `placement` says how; `landed_at` is when the last fix commit
    landed on main; `first_stable_*` is the first Stable release (any platform) containing
    every fix commit; `upstream_gap_days` = (`first_stable_at` - `landed_at`) in days.
    A dependency-roll fix has no landing time, so no gap.
    """

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="vulnerabilities")
    cve = models.CharField(max_length=30)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    title = models.TextField(blank=True, default="")
    component = models.CharField(max_length=200, blank=True, default="")
    reporter = models.TextField(blank=True, default="")
    reward_text = models.CharField(max_length=200, blank=True, default="")
    report_date = models.DateField(null=True, blank=True)
    in_the_wild = models.BooleanField(default=False)
    raw_line = models.TextField(blank=True, default="")
    first_bulletin = models.ForeignKey(
        Bulletin, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    placement = models.CharField(
        max_length=10, choices=Placement.choices, default=Placement.PENDING
    )
    landed_at = models.DateTimeField(null=True, blank=True)
    first_stable_release = models.ForeignKey(
        UpstreamRelease, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    first_stable_version = models.CharField(max_length=40, blank=True, default="")
    first_stable_at = models.DateTimeField(null=True, blank=True)
    upstream_gap_days = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "vulnerabilities"
        constraints = [
            models.UniqueConstraint(fields=["upstream", "cve"], name="uniq_vulnerability_cve"),
        ]
        indexes = [
            # Security fixes page and fork patch-gap figures: newest shipped first.
            models.Index(fields=["upstream", "first_stable_at"], name="vuln_first_stable"),
        ]

    def __str__(self) -> str:
        return self.cve


class VulnerabilityBug(models.Model):
    """An issue id a bulletin gives for a vulnerability (old Monorail or Buganizer)."""

    vulnerability = models.ForeignKey(Vulnerability, on_delete=models.CASCADE, related_name="bugs")
    bug_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vulnerability", "bug_id"], name="uniq_vuln_bug"),
        ]
        indexes = [
            # The CVE of a bug id (a fork backport's Bug: footer -> CVE).
            models.Index(fields=["bug_id"], name="vuln_bug_id"),
        ]

    def __str__(self) -> str:
        return str(self.bug_id)


class FixRole(models.TextChoices):
    MAIN = "main", "landed on main"
    CHERRY_PICK = "cherry_pick", "cherry-pick of a main fix commit"
    BRANCH = "branch", "branch-only commit (no main original found)"


class FoundBy(models.TextChoices):
    FOOTER = "footer", "its Bug:/Fixed: footer names the bug"
    CHERRY_PICK = "cherry_pick", "cherry-pick trailer or Cr-Original-Commit-Position"
    CHANGE_ID = "change_id", "same Change-Id as a main fix commit"


class FixCommit(models.Model):
    """An upstream commit that fixes a vulnerability.

    `ref` and `position` are its Cr-Commit-Position (``refs/branch-heads/6422`` @ 1174);
    `branch` the release-branch number for branch commits. A cherry-pick points at the main
    commit it copies (`original`), found by its cherry-pick trailer, its
    Cr-Original-Commit-Position or its Change-Id. `landed_at` is the commit (landing) time.
    """

    vulnerability = models.ForeignKey(
        Vulnerability, on_delete=models.CASCADE, related_name="fix_commits"
    )
    sha = models.CharField(max_length=40)
    change_id = models.CharField(max_length=41, blank=True, default="")
    subject = models.TextField(blank=True, default="")
    ref = models.CharField(max_length=200, blank=True, default="")
    branch = models.IntegerField(null=True, blank=True)
    position = models.IntegerField(null=True, blank=True)
    role = models.CharField(max_length=12, choices=FixRole.choices)
    original = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="cherry_picks"
    )
    found_by = models.CharField(max_length=12, choices=FoundBy.choices)
    landed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vulnerability", "sha"], name="uniq_fix_commit"),
        ]
        indexes = [
            # Is an upstream commit a security fix (fork commits cherry-picked from a sha)?
            models.Index(fields=["sha"], name="fix_commit_sha"),
            # Fork backports matched to upstream fixes by Change-Id.
            models.Index(fields=["change_id"], name="fix_commit_change_id"),
        ]

    def __str__(self) -> str:
        return f"{self.sha[:12]} {self.ref}"


class VulnerabilityRelease(models.Model):
    """The first release on a channel and platform that contains a vulnerability's fix."""

    vulnerability = models.ForeignKey(
        Vulnerability, on_delete=models.CASCADE, related_name="first_releases"
    )
    channel = models.CharField(max_length=20, choices=Channel.choices)
    platform = models.CharField(max_length=20, choices=Platform.choices)
    release = models.ForeignKey(UpstreamRelease, on_delete=models.CASCADE, related_name="+")
    how = models.CharField(max_length=12, choices=Evidence.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["vulnerability", "channel", "platform"], name="uniq_vuln_release"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vulnerability} {self.channel}/{self.platform}"


class VulnerabilityFixedVersion(VersionFields):
    """The first released version of a milestone that contains a vulnerability's fix."""

    vulnerability = models.ForeignKey(
        Vulnerability, on_delete=models.CASCADE, related_name="fixed_versions"
    )
    milestone = models.IntegerField()
    how = models.CharField(max_length=12, choices=Evidence.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["vulnerability", "milestone"], name="uniq_vuln_fixed_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vulnerability} M{self.milestone}: {self.version}"


class SourceState(models.Model):
    """How the last runs of one upstream data source went.

    A failed run leaves the data of the last good one in place and records `last_error`; the
    source is *stale* when its last success is older than ``SOURCE_STALE_HOURS``.
    `validators` keeps the ETag / Last-Modified of each URL's last good answer (conditional
    requests); `rejected` samples the elements the last run refused, for review.
    """

    source = models.CharField(max_length=20, choices=Source.choices, unique=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    failures = models.IntegerField(default=0, help_text="Failed runs since the last success.")
    validators = models.JSONField(default=dict, blank=True)
    rejected = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.get_source_display()

    def is_stale(self, now: datetime, hours: int | None = None) -> bool:
        """True when the source never succeeded, or last succeeded more than `hours` (default
        ``SOURCE_STALE_HOURS``) before `now`."""
        if hours is None:
            hours = settings.SOURCE_STALE_HOURS
        if self.last_success_at is None:
            return True
        return now - self.last_success_at > timedelta(hours=hours)
