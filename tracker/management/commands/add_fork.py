from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tracker.git import GitError
from tracker.management.base import TrackerCommand
from tracker.management.commands.add_upstream import _message, report_check
from tracker.models import ForkKind, Upstream
from tracker.registry import register_fork
from tracker.secrets import CredentialsError


class Command(TrackerCommand):
    help = (
        "Add (or update) a fork, checking its branches and refs against the fork's and the "
        "upstream's remotes (git ls-remote) and showing what its patterns select. Example: "
        "add_fork acme --name 'Acme Browser' --url https://git.acme.example/browser.git "
        "--branch main=refs/heads/main "
        "--branch release/125=refs/branch-heads/6422,refs/heads/main "
        "--release-tags 'refs/tags/v*, !refs/tags/*-rc*'. Branches already tracked and not "
        "given stay tracked; remove one with remove_branch."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="short name used in URLs and alert keys")
        parser.add_argument("--name", required=True, help="name shown on the pages")
        parser.add_argument(
            "--url", required=True, help="https://, ssh:// or a local path under GIT_LOCAL_ROOTS"
        )
        parser.add_argument("--upstream", default="chromium", help="the upstream it follows")
        parser.add_argument(
            "--kind",
            choices=ForkKind.values,
            default=ForkKind.GIT.value,
            help="git: branches carry upstream history; patch-series: a pinned version and "
            "patch files",
        )
        parser.add_argument(
            "--branch",
            action="append",
            default=[],
            metavar="BRANCH=UPSTREAM_REF[,UPSTREAM_REF...]",
            help="a tracked branch and the upstream ref it follows; more refs after commas "
            "are followed too, lag is measured against the first (repeatable, each branch "
            "once; default: main=refs/heads/main)",
        )
        parser.add_argument(
            "--release-tags",
            default="",
            help="release tags: ref patterns separated by commas or spaces, '*' any "
            "characters, '!' excludes, e.g. 'refs/tags/v*.windows.*, !refs/tags/*-rc*'",
        )
        parser.add_argument("--owner", action="append", default=[], help="owner email (repeatable)")
        parser.add_argument("--version-file", default="", help="patch-series forks: pinned version")
        parser.add_argument("--patches-dir", default="", help="patch-series forks: patches folder")
        parser.add_argument(
            "--no-check",
            action="store_true",
            help="do not ask the remotes (git ls-remote) whether the branches and refs exist, "
            "e.g. to register offline; the first sync finds what is missing",
        )

    def handle(self, *args, **o):
        upstream = Upstream.objects.filter(slug=o["upstream"]).first()
        if upstream is None:
            raise CommandError(f"no upstream {o['upstream']!r}; add it with add_upstream first")
        branches = []
        for spec in o["branch"] or ["main=refs/heads/main"]:
            name, sep, refs = spec.partition("=")
            if not sep:
                raise CommandError(f"--branch {spec!r}: expected BRANCH=UPSTREAM_REF")
            branches.append((name, refs))
        try:
            fork = register_fork(
                upstream,
                o["slug"],
                o["name"],
                o["url"],
                branches=branches,
                kind=o["kind"],
                check=not o["no_check"],
                release_tag_pattern=o["release_tags"],
                owner_emails=", ".join(o["owner"]),
                pinned_version_file=o["version_file"],
                patches_dir=o["patches_dir"],
            )
        except (GitError, CredentialsError, ValidationError) as exc:
            raise CommandError(_message(exc)) from None
        tracked = list(fork.branches.values_list("name", flat=True))
        count = f"{len(tracked)} branch{'' if len(tracked) == 1 else 'es'}"
        self.stdout.write(f"fork {fork.slug}: {fork.git_url} ({count}: {', '.join(tracked)})")
        report_check(self.stdout, fork.remote_check)
