from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tracker.git import UnsafeGitInput
from tracker.management.base import TrackerCommand
from tracker.registry import register_upstream


class Command(TrackerCommand):
    help = "Add (or update) an upstream: a slug, a name and its git URL."

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
            help="pattern of the upstream's release branches",
        )
        parser.add_argument("--tags", default="refs/tags/*", help="pattern of its version tags")
        parser.add_argument(
            "--version-file",
            default="chrome/VERSION",
            help="file holding the version, relative to the repository's root",
        )

    def handle(self, *args, **o):
        try:
            upstream = register_upstream(
                o["slug"],
                o["name"],
                o["url"],
                main_ref=o["main_ref"],
                release_branch_pattern=o["release_branches"],
                tag_pattern=o["tags"],
                version_file=o["version_file"],
            )
        except (UnsafeGitInput, ValidationError) as exc:
            raise CommandError(_message(exc)) from None
        self.stdout.write(f"upstream {upstream.slug}: {upstream.git_url}")


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)
