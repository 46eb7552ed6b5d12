"""The embedded mode's scheduler: celery beat's periodic table run in one process.

With REDIS_URL unset there is no broker, so no worker and no beat. `manage.py run_scheduler`
(script/server starts it) reads the same table as beat, ``settings.CELERY_BEAT_SCHEDULE``,
and runs each entry's task in that process, eagerly, every `schedule` seconds, the first
time `FIRST_RUN_SECONDS` after it starts.

One task runs at a time, the one due longest first. SQLite lets one process write at a time
anyway, and it gives beat's guarantees without locks: an entry never runs twice at once, and
runs missed while another task ran are not piled up but run once (beat's ``expires`` drops
such runs too). A task that fails is logged and the others go on; it runs again at its next
time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import close_old_connections

logger = logging.getLogger(__name__)

# Seconds from start to each entry's first run: soon, but after the web server came up.
FIRST_RUN_SECONDS = 5.0


@dataclass
class Entry:
    """One row of the table: run the Celery task named `task` every `every` seconds; `due` is
    the next run's time on the scheduler's clock (seconds)."""

    name: str
    task: str
    every: float
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    due: float = 0.0


def read_schedule(table: Mapping[str, Mapping[str, Any]]) -> list[Entry]:
    """The entries of a beat table, in its order. Raises ValueError naming an entry whose
    schedule is not an interval (seconds or a timedelta; crontab is beat's alone)."""
    entries = []
    for name, row in table.items():
        every = row["schedule"]
        if isinstance(every, timedelta):
            every = every.total_seconds()
        if isinstance(every, bool) or not isinstance(every, int | float) or every <= 0:
            raise ValueError(
                f"schedule entry {name!r}: expected an interval in seconds, got {row['schedule']!r}"
            )
        args, kwargs = tuple(row.get("args", ())), dict(row.get("kwargs", {}))
        entries.append(Entry(name, row["task"], float(every), args, kwargs))
    return entries


class Scheduler:
    """Runs `entries` with `run` (an entry → its result), by the clock `clock`."""

    def __init__(
        self,
        entries: Sequence[Entry],
        run: Callable[[Entry], Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        first_run: float = FIRST_RUN_SECONDS,
    ) -> None:
        self.entries, self.run, self.clock = list(entries), run, clock
        start = clock()
        for entry in self.entries:
            entry.due = start + first_run

    def run_due(self, stop: threading.Event | None = None) -> float:
        """Run the entries that are due, the one due longest first (the table's order among
        equals), until none is or `stop` is set; return the seconds until the next is due."""
        while self.entries:
            now = self.clock()
            entry = min(self.entries, key=lambda e: e.due)
            if entry.due > now or (stop is not None and stop.is_set()):
                return max(0.0, entry.due - now)
            # Counted from the start, so a run does not push later ones back; a run longer
            # than the interval leaves the entry due at once, and it runs once, not twice.
            entry.due = now + entry.every
            self._run(entry)
        return 3600.0

    def _run(self, entry: Entry) -> None:
        started = time.monotonic()
        try:
            result = self.run(entry)
        except Exception:
            logger.exception("scheduled %s (%s) failed", entry.name, entry.task)
            return
        logger.info("scheduled %s: %s (%.1f s)", entry.name, result, time.monotonic() - started)

    def run_forever(self, stop: threading.Event) -> None:
        """Run entries as they fall due until `stop` is set (between tasks)."""
        while not stop.is_set():
            stop.wait(self.run_due(stop))


class TaskFailed(Exception):
    """A scheduled task raised; Celery logged its traceback already."""


def celery_runner(app) -> Callable[[Entry], Any]:
    """A `run` for `Scheduler`: the entry's task from the Celery `app`, applied in this
    process with fresh database connections around it, as a worker runs it.

    Tasks that a task queues run inline too (the app is eager in embedded mode); as under a
    worker, their failures are logged without failing the task that queued them, so one
    fork whose sync fails does not keep the next forks of "sync forks" from syncing.
    Raises KeyError for a task the app does not have.
    """
    app.loader.import_default_modules()
    app.conf.task_eager_propagates = False

    def run(entry: Entry) -> Any:
        task = app.tasks[entry.task]
        close_old_connections()
        try:
            result = task.apply(args=entry.args, kwargs=entry.kwargs, throw=False)
        finally:
            close_old_connections()
        if result.failed():
            raise TaskFailed(repr(result.result))
        return result.result

    return run
