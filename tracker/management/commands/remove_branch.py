from django.core.management.base import CommandError

from tracker.management.base import TrackerCommand
from tracker.models import Fork, TrackedBranch
from tracker.registry import remove_branch


class Command(TrackerCommand):
    help = (
        "Stop tracking a fork branch: its row, its snapshots (the lag history) and its fix "
        "statuses are deleted, and its refs leave the mirror. A branch with snapshots needs "
        "--yes. Example: remove_branch acme release/124 --yes"
    )

    def add_arguments(self, parser):
        parser.add_argument("fork", help="the fork's slug")
        parser.add_argument("branch", help="the tracked fork branch, as registered")
        parser.add_argument(
            "--yes",
            action="store_true",
            help="delete the branch's snapshots too (its lag history); without it a branch "
            "with snapshots is kept and what would go is shown",
        )

    def handle(self, *args, **o):
        fork = Fork.objects.select_related("upstream").filter(slug=o["fork"]).first()
        if fork is None:
            raise CommandError(f"no fork {o['fork']!r}")
        branch = TrackedBranch.objects.filter(fork=fork, name=o["branch"]).first()
        if branch is None:
            names = ", ".join(fork.branches.values_list("name", flat=True)) or "none"
            raise CommandError(
                f"fork {fork.slug} tracks no branch {o['branch']!r} (it tracks: {names})"
            )
        snapshots = branch.snapshots.count()
        if snapshots and not o["yes"]:
            raise CommandError(
                f"{fork.slug}:{branch.name} has {snapshots} snapshots (its lag history), which "
                "would be deleted with it; run again with --yes to remove it"
            )
        remove_branch(fork, branch.name)
        left = ", ".join(fork.branches.values_list("name", flat=True)) or "none"
        self.stdout.write(
            f"fork {fork.slug}: stopped tracking {branch.name} ({snapshots} snapshots deleted, "
            f"mirror refs removed); still tracked: {left}"
        )
