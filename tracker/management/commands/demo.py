import json
import shutil

from django.conf import settings
from django.utils import timezone

from tracker.alerts.lifecycle import evaluate_alerts
from tracker.demo import (
    DEMO_UPSTREAM_SLUG,
    build_demo,
    demo_world_dir,
    load_recorded_upstream_data,
    register_demo,
    replay_demo_history,
    replay_security_history,
)
from tracker.forksecurity import update_upstream_security
from tracker.gitrepo import open_repo
from tracker.ingest.bulletins import link_fixes
from tracker.management.base import TrackerCommand
from tracker.mirrors import ensure_mirror, fetch_fork, mirror_path
from tracker.models import Fork, Upstream
from tracker.sync import sync_fork, sync_upstream


class Command(TrackerCommand):
    help = (
        "Build the demo world (generated upstream and forks) once, register it and sync every "
        "fork. Later runs reuse the world, so its lag grows with the real clock."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=1, help="seed of the generated world")
        parser.add_argument(
            "--rebuild", action="store_true", help="write a new world and forget the old one's data"
        )

    def handle(self, *args, seed: int, rebuild: bool, **options):
        now = timezone.now()
        truth_file = demo_world_dir(settings.DATA_DIR) / "ground-truth.json"
        fresh = rebuild or not truth_file.exists()
        if fresh:
            old = Upstream.objects.filter(slug=DEMO_UPSTREAM_SLUG).first()
            if old is not None:
                Fork.objects.filter(upstream=old).delete()
                shutil.rmtree(mirror_path(old), ignore_errors=True)
                old.delete()
            truth = build_demo(settings.DATA_DIR, now, seed=seed)
        else:
            truth = json.loads(truth_file.read_text())
        upstream = register_demo(truth)
        if fresh:
            # A new world has months of history: snapshot its past syncs so the trend charts
            # show them, measured by the live code on the forks' real tips.
            mirror = sync_upstream(upstream, now=now)
            for fork in upstream.forks.all():
                fetch_fork(fork, mirror)
            with open_repo(mirror.path):  # one object reader for the whole replay
                replay_demo_history(upstream, truth)
        for fork in upstream.forks.all():
            sync_fork(fork, now=now)
        load_recorded_upstream_data(upstream, truth["path"], now)
        link_fixes(upstream, git_dir=mirror_path(upstream))
        # The forks were synced before the fixes were linked: place the fixes in them now.
        update_upstream_security(upstream, ensure_mirror(upstream), now)
        if fresh:
            # Likewise the open-fixes chart, from the statuses just computed.
            replay_security_history(upstream, now)
        alerts = evaluate_alerts(now)
        forks = ", ".join(f["name"] for f in truth["forks"])
        self.stdout.write(
            f"demo: upstream with {truth['upstream']['main_commits']} main commits, "
            f"{len(truth['upstream']['milestones'])} release branches, "
            f"{len(truth['vulnerabilities'])} security fixes; forks: {forks}; alerts: {alerts}"
        )
