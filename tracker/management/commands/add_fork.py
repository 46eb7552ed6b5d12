from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tracker.git import UnsafeGitInput
from tracker.management.commands.add_upstream import _message
from tracker.models import ForkKind, Upstream
from tracker.registry import register_fork


class Command(BaseCommand):
    help = (
        "Add (or update) a fork. Example: add_fork acme --name 'Acme Browser' "
        "--url https://git.acme.example/browser.git --branch main=refs/heads/main "
        "--branch release/125=refs/branch-heads/6422 --release-tags 'refs/tags/v*'"
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--url", required=True, help="https://, ssh:// or a local path")
        parser.add_argument("--upstream", default="chromium", help="upstream slug")
        parser.add_argument("--kind", choices=ForkKind.values, default=ForkKind.GIT)
        parser.add_argument(
            "--branch",
            action="append",
            default=[],
            metavar="BRANCH=UPSTREAM_REF",
            help="a tracked branch and the upstream ref it follows (repeatable)",
        )
        parser.add_argument("--release-tags", default="", help="e.g. refs/tags/v*")
        parser.add_argument("--owner", action="append", default=[], help="owner email (repeatable)")
        parser.add_argument("--version-file", default="", help="patch-series forks: pinned version")
        parser.add_argument("--patches-dir", default="", help="patch-series forks: patches folder")

    def handle(self, *args, **o):
        upstream = Upstream.objects.filter(slug=o["upstream"]).first()
        if upstream is None:
            raise CommandError(f"no upstream {o['upstream']!r}; add it with add_upstream first")
        branches = []
        for spec in o["branch"] or ["main=refs/heads/main"]:
            name, sep, ref = spec.partition("=")
            if not sep:
                raise CommandError(f"--branch {spec!r}: expected BRANCH=UPSTREAM_REF")
            branches.append((name, ref))
        try:
            fork = register_fork(
                upstream,
                o["slug"],
                o["name"],
                o["url"],
                branches=branches,
                kind=o["kind"],
                release_tag_pattern=o["release_tags"],
                owner_emails=", ".join(o["owner"]),
                pinned_version_file=o["version_file"],
                patches_dir=o["patches_dir"],
            )
        except (UnsafeGitInput, ValidationError) as exc:
            raise CommandError(_message(exc)) from None
        self.stdout.write(f"fork {fork.slug}: {fork.git_url} ({len(branches)} branches)")
