import signal
import threading

from django.conf import settings
from django.core.management.base import CommandError

from tracker.management.base import TrackerCommand
from tracker.scheduler import Scheduler, celery_runner, read_schedule


class Command(TrackerCommand):
    help = (
        "Run the periodic tasks of CELERY_BEAT_SCHEDULE in this process, as celery beat and a "
        "worker would: the embedded mode's scheduler (script/server starts it). SIGTERM or "
        "Ctrl-C stops it once the running task ends; a second one stops it at once."
    )

    def handle(self, *args, **options):
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            raise CommandError(
                "REDIS_URL is set: run celery beat and workers instead (README: Processes)"
            )
        from celery import current_app

        try:
            entries = read_schedule(settings.CELERY_BEAT_SCHEDULE)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        run = celery_runner(current_app)
        unknown = sorted({e.task for e in entries} - set(current_app.tasks))
        if unknown:
            raise CommandError(f"CELERY_BEAT_SCHEDULE names unknown tasks: {', '.join(unknown)}")
        stop = threading.Event()

        def on_signal(signum, frame):
            if stop.is_set():
                raise SystemExit(128 + signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        every = ", ".join(f"{e.name} every {e.every:g} s" for e in entries)
        self.stdout.write(f"scheduler: {every}", ending="\n")
        self.stdout.flush()
        Scheduler(entries, run).run_forever(stop)
        self.stdout.write("scheduler: stopped")
