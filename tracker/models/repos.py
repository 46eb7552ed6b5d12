"""What is tracked: an upstream (Chromium or a mirror of it), its forks, and their branches."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from tracker.git import RemoteURL, UnsafeGitInput, check_ref_name, check_remote_url
from tracker.repopaths import UnsafeRepoPath, check_repo_path


def validate_ref_name(value: str) -> None:
    try:
        check_ref_name(value)
    except UnsafeGitInput as exc:
        raise ValidationError(str(exc)) from None


def validate_ref_pattern(value: str) -> None:
    try:
        check_ref_name(value, allow_glob=True)
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


class Upstream(HasRemote, models.Model):
    """The upstream a fork follows: Chromium's chromium/src, or an internal mirror of it."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    # Stored without credentials; see tracker.git.check_remote_url.
    git_url = models.CharField(max_length=500)
    main_ref = models.CharField(
        max_length=200, default="refs/heads/main", validators=[validate_ref_name]
    )
    release_branch_pattern = models.CharField(
        max_length=200,
        default="refs/branch-heads/*",
        validators=[validate_ref_pattern],
        help_text="Release branches, e.g. refs/branch-heads/* (branch names are build numbers).",
    )
    tag_pattern = models.CharField(
        max_length=200,
        default="refs/tags/*",
        validators=[validate_ref_pattern],
        help_text="Tags to fetch; those named MAJOR.MINOR.BUILD.PATCH are upstream versions.",
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
        max_length=200,
        blank=True,
        default="",
        validators=[validate_ref_pattern],
        help_text="Tags that mark fork releases, e.g. refs/tags/v* (ship time = tag date).",
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
    """A fork branch and the upstream ref it follows (main or a release branch)."""

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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["fork__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["fork", "name"], name="uniq_branch_per_fork"),
        ]

    def __str__(self) -> str:
        return f"{self.fork.name}:{self.name}"
