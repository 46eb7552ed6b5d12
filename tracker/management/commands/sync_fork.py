from django.core.management.base import CommandError
from django.utils import timezone

from tracker.alerts.lifecycle import evaluate_alerts
from tracker.alerts.outbox import deliver_due
from tracker.git import GitError
from tracker.locks import SyncBusy, mirror_lock
from tracker.management.base import TrackerCommand
from tracker.models import Fork
from tracker.secrets import CredentialsError
from tracker.sync import sync_fork


class Command(TrackerCommand):
    help = (
        "Sync one fork now, in this process (no broker needed; suitable for cron), then "
        "evaluate the alerts, as the sync task does, and send the alert mail that is due."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the fork to sync")
        parser.add_argument(
            "--no-upstream", action="store_true", help="do not fetch and ingest the upstream first"
        )

    def handle(self, *args, slug: str, no_upstream: bool, **options):
        fork = Fork.objects.select_related("upstream").filter(slug=slug).first()
        if fork is None:
            raise CommandError(f"no fork {slug!r}")
        try:
            with mirror_lock(fork.upstream.slug):
                snapshots = sync_fork(
                    fork, now=timezone.now(), fetch_upstream_first=not no_upstream
                )
        except SyncBusy as exc:
            raise CommandError(f"not synced: {exc}") from None  # the running sync evaluates
        except (GitError, CredentialsError) as exc:
            # Evaluated after a failure too: where cron runs this, nothing else would ever
            # alert that the fork's syncs keep failing.
            self._alerts()
            raise CommandError(f"sync of {slug} failed: {exc}") from None
        for s in snapshots:
            if not s.base_version:
                versions = " behind (base version unknown)"
            elif s.milestones_behind is not None:
                versions = f" / {s.milestones_behind} milestones behind (base {s.base_version})"
            else:
                versions = f" / {s.versions_behind} versions behind (base {s.base_version})"
            self.stdout.write(
                f"{fork.slug}:{s.branch.name}: {s.commits_behind} commits / {s.days_behind} days"
                f"{versions}, {s.patch_count} patches, {s.patches_upstreamed} upstreamed, "
                f"{s.conflicting_patches} predicted conflicts"
            )
        self._alerts()

    def _alerts(self) -> None:
        """The alert rules over all forks (tracker.alerts.lifecycle), then the outbox."""
        now = timezone.now()
        evaluated = evaluate_alerts(now)
        self.stdout.write(f"alerts: {evaluated}; mail: {deliver_due(timezone.now())}")
