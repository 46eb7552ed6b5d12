"""What is tracked: an upstream (Chromium or a mirror of it), its forks, and their branches."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from tracker.git import RemoteURL, UnsafeGitInput, check_ref_name, check_remote_url
from tracker.refpatterns import RefPatterns, parse_ref_list
from tracker.repopaths import UnsafeRepoPath, check_repo_path


def validate_ref_name(value: str) -> None:
    try:
        check_ref_name(value)
    except UnsafeGitInput as exc:
        raise ValidationError(str(exc)) from None


def validate_ref_pattern(value: str) -> None:
    """A ref pattern list (tracker.refpatterns): several patterns, `*`s and `!` exclusions."""
    try:
        RefPatterns.parse(value)
    except UnsafeGitInput as exc:
        raise ValidationError(str(exc)) from None


def validate_tag_patterns(value: str) -> None:
    """A ref pattern list under refs/tags/ (fork release tags)."""
    try:
        RefPatterns.parse(value, under="refs/tags/")
    except UnsafeGitInput as exc:
        raise ValidationError(str(exc)) from None


def validate_ref_list(value: str) -> None:
    """Exact full ref names, comma- or space-separated."""
    try:
        parse_ref_list(value)
    except UnsafeGitInput as exc:
        raise ValidationError(str(exc)) from None


def validate_repo_file(value: str) -> None:
    try:
        check_repo_path(value)
    except UnsafeRepoPath as exc:
        raise ValidationError(str(exc)) from None


def validate_repo_folder(value: str) -> None:
    try:
        check_repo_path(value, directory=True)
    except UnsafeRepoPath as exc:
        raise ValidationError(str(exc)) from None


def validate_email_list(value: str) -> None:
    for address in split_emails(value):
        validate_email(address)


def split_emails(value: str) -> list[str]:
    return [a.strip() for a in value.replace(";", ",").replace("\n", ",").split(",") if a.strip()]


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


class HasRemote:
    """Models with `git_url` and encrypted `git_credentials` give git a validated remote."""

    git_url: str
    git_credentials: str

    def remote(self, local_roots) -> RemoteURL:
        from tracker.secrets import decrypt_credentials

        checked = check_remote_url(self.git_url, local_roots)
        username, password = decrypt_credentials(self.git_credentials)
        return RemoteURL(checked.url, username, password)


class VersionScheme(models.TextChoices):
    """How an upstream names its versions.

    - *chromium*: MAJOR.MINOR.BUILD.PATCH in `version_file` and in tags of that name; bases
      get a version and milestones, and Chrome's rules apply (milestones behind Stable,
      milestone support, key pinning that lapses in old builds).
    - *tags*: the upstream's own release tags (those `tag_pattern` selects, such as git's
      v2.45.0): a base's version is the newest release tag it contains, *versions behind*
      counts the release tags between base and tip; no milestones and no Chrome rules.
    """

    CHROMIUM = "chromium", "Chromium versions (MAJOR.MINOR.BUILD.PATCH)"
    TAGS = "tags", "the upstream's release tags"


class Upstream(HasRemote, models.Model):
    """The upstream a fork follows: Chromium's chromium/src, an internal mirror of it, or
    another project whose versions are its release tags (`version_scheme`)."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    # Stored without credentials; see tracker.git.check_remote_url.
    git_url = models.CharField(max_length=500)
    main_ref = models.CharField(
        max_length=200, default="refs/heads/main", validators=[validate_ref_name]
    )
    release_branch_pattern = models.CharField(
        max_length=500,
        default="refs/branch-heads/*",
        validators=[validate_ref_pattern],
        help_text="Release branches: ref patterns separated by commas or spaces, each '*' "
        "any characters ('/' too), '!' to exclude, e.g. refs/branch-heads/* (Chromium's "
        "branch names are build numbers).",
    )
    tag_pattern = models.CharField(
        max_length=500,
        default="refs/tags/*",
        validators=[validate_ref_pattern],
        help_text="Tags to fetch, as ref patterns (e.g. refs/tags/v*, !refs/tags/*-rc*). "
        "Chromium scheme: those named MAJOR.MINOR.BUILD.PATCH are versions; tags scheme: "
        "every tag selected is a release.",
    )
    version_scheme = models.CharField(
        max_length=20,
        choices=VersionScheme.choices,
        default=VersionScheme.CHROMIUM,
        help_text="Chromium versions, or the upstream's own release tags (see tag pattern).",
    )
    version_file = models.CharField(
        max_length=200,
        default="chrome/VERSION",
        validators=[validate_repo_file],
        help_text="The file holding upstream's version, relative to the repository's root.",
    )
    git_credentials = models.TextField(
        blank=True, default="", help_text="Encrypted user name and password (tracker.secrets)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    filter_warning = models.TextField(
        blank=True,
        default="",
        help_text="Set once, when the server first ignored the partial-clone filter: the "
        "mirror then holds every file's contents; with its size at that time.",
    )
    # Mirror housekeeping (tracker.mirrors.maintain_mirror), on its own schedule.
    maintained_at = models.DateTimeField(null=True, blank=True)
    maintenance_summary = models.TextField(blank=True, default="")
    maintenance_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ForkKind(models.TextChoices):
    GIT = "git", "git fork"
    PATCH_SERIES = "patch_series", "patch-series fork"


class Fork(HasRemote, models.Model):
    """A Chromium fork.

    A *git fork* has branches carrying upstream history plus the fork's own commits. A
    *patch-series fork* pins an upstream version in a file (`pinned_version_file`) and keeps its
    changes as patch files in `patches_dir` (Electron, Brave, ungoogled-chromium).
    """

    upstream = models.ForeignKey(Upstream, on_delete=models.PROTECT, related_name="forks")
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=ForkKind.choices, default=ForkKind.GIT)
    git_url = models.CharField(max_length=500)
    release_tag_pattern = models.CharField(
        max_length=500,
        blank=True,
        default="",
        validators=[validate_tag_patterns],
        help_text="Tags that mark fork releases (ship time = tag date): ref patterns under "
        "refs/tags/, e.g. refs/tags/v*.windows.*, !refs/tags/*-rc*. Tags on upstream's own "
        "commits are never fork releases.",
    )
    pinned_version_file = models.CharField(
        max_length=200,
        blank=True,
        default="",
        validators=[validate_repo_file],
        help_text="Patch-series forks: the file pinning the upstream version, relative to the "
        "repository's root.",
    )
    patches_dir = models.CharField(
        max_length=200,
        blank=True,
        default="",
        validators=[validate_repo_folder],
        help_text="Patch-series forks: the patches folder, relative to the repository's root.",
    )
    owner_emails = models.TextField(
        blank=True,
        default="",
        validators=[validate_email_list],
        help_text="Comma-separated addresses that receive this fork's alerts.",
    )
    git_credentials = models.TextField(
        blank=True, default="", help_text="Encrypted user name and password (tracker.secrets)."
    )
    alert_webhook_url = models.URLField(
        blank=True,
        default="",
        help_text="Optional: alert transitions are POSTed here as JSON (chat tools).",
    )
    alert_feed_token = models.CharField(
        max_length=64,
        default=new_feed_token,
        help_text="Secret in the URL of this fork's Atom feed of alerts; change it to revoke.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_warning = models.TextField(
        blank=True,
        default="",
        help_text="What the last sync could not measure, though it succeeded (figures "
        "unknown for objects no remote has); empty when it measured everything.",
    )
    filter_warning = models.TextField(
        blank=True,
        default="",
        help_text="Set once, when the server first ignored the partial-clone filter: the "
        "mirror then holds every file's contents; with its size at that time.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def owners(self) -> list[str]:
        return split_emails(self.owner_emails)


class TrackedBranch(models.Model):
    """A fork branch and the upstream ref it follows (main or a release branch).

    `upstream_ref` is the *primary* ref: lag, base, patches and fix statuses are measured
    against it. A branch may also follow other refs (`also_follows`, e.g. a release branch
    that takes commits from main too): they are fetched and checked like the primary, and
    each snapshot records how many of their commits the branch lacks.
    """

    fork = models.ForeignKey(Fork, on_delete=models.CASCADE, related_name="branches")
    name = models.CharField(
        max_length=200, validators=[validate_ref_name], help_text="Fork branch, e.g. main."
    )
    upstream_ref = models.CharField(
        max_length=200,
        default="refs/heads/main",
        validators=[validate_ref_name],
        help_text="refs/heads/main or a release branch such as refs/branch-heads/6422.",
    )
    also_follows = models.CharField(
        max_length=500,
        blank=True,
        default="",
        validators=[validate_ref_list],
        help_text="Other upstream refs it follows, comma- or space-separated (e.g. "
        "refs/heads/main for a release branch that also takes main's commits).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["fork__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["fork", "name"], name="uniq_branch_per_fork"),
        ]

    def __str__(self) -> str:
        return f"{self.fork.name}:{self.name}"

    @property
    def followed_refs(self) -> tuple[str, ...]:
        """Every upstream ref the branch follows, the primary first."""
        extra = parse_ref_list(self.also_follows) if self.also_follows else ()
        return (self.upstream_ref, *(r for r in extra if r != self.upstream_ref))

    @property
    def other_refs(self) -> tuple[str, ...]:
        return self.followed_refs[1:]
