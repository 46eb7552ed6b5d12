from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from tracker.demo import build_demo, register_demo


class Command(BaseCommand):
    help = "Build the demo world (generated upstream and forks) and register it."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, seed: int, **options):
        truth = build_demo(settings.DATA_DIR, timezone.now(), seed=seed)
        register_demo(truth)
        forks = ", ".join(f["name"] for f in truth["forks"])
        self.stdout.write(
            f"demo: upstream with {truth['upstream']['main_commits']} main commits, "
            f"{len(truth['upstream']['milestones'])} release branches, "
            f"{len(truth['vulnerabilities'])} security fixes; forks: {forks}"
        )
