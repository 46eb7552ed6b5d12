from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tracker.git import GitError
from tracker.management.base import TrackerCommand
from tracker.models import VersionScheme
from tracker.registry import register_upstream


class Command(TrackerCommand):
    help = (
        "Add (or update) an upstream: a slug, a name and its git URL. Its main ref is checked "
        "against the remote (git ls-remote), and what its patterns select is shown."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="short name used in URLs and forks' --upstream")
        parser.add_argument("--name", required=True, help="name shown on the pages")
        parser.add_argument(
            "--url", required=True, help="https://, ssh:// or a local path under GIT_LOCAL_ROOTS"
        )
        parser.add_argument(
            "--main-ref", default="refs/heads/main", help="the upstream's main branch"
        )
        parser.add_argument(
            "--release-branches",
            default="refs/branch-heads/*",
            help="the upstream's release branches: ref patterns separated by commas or "
            "spaces, '*' any characters, '!' excludes",
        )
        parser.add_argument(
            "--tags",
            default="refs/tags/*",
            help="its version tags, as ref patterns (e.g. 'refs/tags/v*, !refs/tags/*-rc*')",
        )
        parser.add_argument(
            "--version-scheme",
            choices=VersionScheme.values,
            default=VersionScheme.CHROMIUM.value,
            help="chromium: MAJOR.MINOR.BUILD.PATCH in --version-file, milestones and "
            "Chrome's rules; tags: its release tags (--tags) are its versions",
        )
        parser.add_argument(
            "--version-file",
            default="chrome/VERSION",
            help="chromium scheme: file holding the version, relative to the repository's root",
        )
        parser.add_argument(
            "--no-check",
            action="store_true",
            help="do not ask the remote (git ls-remote) whether the main ref exists, e.g. to "
            "register offline",
        )

    def handle(self, *args, **o):
        try:
            upstream = register_upstream(
                o["slug"],
                o["name"],
                o["url"],
                check=not o["no_check"],
                main_ref=o["main_ref"],
                release_branch_pattern=o["release_branches"],
                tag_pattern=o["tags"],
                version_scheme=o["version_scheme"],
                version_file=o["version_file"],
            )
        except (GitError, ValidationError) as exc:
            raise CommandError(_message(exc)) from None
        self.stdout.write(f"upstream {upstream.slug}: {upstream.git_url}")
        report_check(self.stdout, upstream.remote_check)


def report_check(out, check) -> None:
    """The remote check's findings, one per line (or that it was skipped)."""
    if check is None:
        out.write("  remote not checked (--no-check)")
        return
    for line in check.lines():
        out.write(f"  {line}")


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)
