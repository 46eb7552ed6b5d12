"""Tasks that sync forks and upstream mirrors."""

from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from tracker.git import GitError, UnsafeGitInput
from tracker.health import NoCommonHistory
from tracker.locks import SyncBusy, mirror_lock
from tracker.metrics import record_sync
from tracker.models import Fork, Upstream
from tracker.sync import maintain_upstream_mirror, sync_fork, sync_upstream
from tracker.tasks.alerts import evaluate_alerts_task
from tracker.tasks.upstream import retries_wait

# Errors that a retry cannot fix: bad configuration or data. They stay on the row's last_error.
PERMANENT = (UnsafeGitInput, NoCommonHistory)


def _transient(exc: Exception) -> bool:
    """Worth retrying: git failures that are not bad input, and a database that went away
    (restarting, failing over) in the middle of a sync; never in embedded mode, where the
    next scheduled sync is the retry (`retries_wait`)."""
    if not retries_wait():
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, GitError) and not isinstance(exc, PERMANENT)


@shared_task(bind=True, name="tracker.sync_upstream", max_retries=3)
def sync_upstream_task(self, upstream_id: int) -> str:
    upstream = Upstream.objects.get(pk=upstream_id)
    try:
        with mirror_lock(upstream.slug):
            sync_upstream(upstream, now=timezone.now())
    except SyncBusy as exc:
        return f"skipped: {exc}"  # the running sync brings the mirror up to date
    except (GitError, OperationalError, InterfaceError) as exc:
        if _transient(exc):
            raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from None
        raise
    return "synced"


@shared_task(bind=True, name="tracker.sync_fork", max_retries=3)
def sync_fork_task(self, fork_id: int) -> str:
    fork = Fork.objects.select_related("upstream").get(pk=fork_id)
    try:
        with mirror_lock(fork.upstream.slug):
            started = time.monotonic()
            try:
                sync_fork(fork, now=timezone.now())
            except Exception:
                record_sync(fork.slug, time.monotonic() - started, ok=False)
                raise
            record_sync(fork.slug, time.monotonic() - started, ok=True)
        evaluate_alerts_task.delay()
    except SyncBusy as exc:
        if not retries_wait():
            return f"skipped: {exc}"  # the next scheduled sync takes this fork
        # Retried later: another fork of the same upstream holds the mirror for now.
        wait = min(60, settings.SYNC_LOCK_SECONDS)  # a dead holder's lock is gone by then
        raise self.retry(exc=exc, countdown=wait, max_retries=30) from None
    except (GitError, OperationalError, InterfaceError) as exc:
        if _transient(exc):
            raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from None
        raise
    return "synced"


@shared_task(name="tracker.sync_all_forks")
def sync_all_forks_task() -> int:
    """Queue a sync of every fork (beat runs this); each sync locks its mirror, so the forks of
    one upstream line up one after another while other upstreams proceed in parallel."""
    ids = list(Fork.objects.values_list("pk", flat=True))
    for fork_id in ids:
        sync_fork_task.delay(fork_id)
    return len(ids)


@shared_task(name="tracker.maintain_mirror")
def maintain_mirror_task(upstream_id: int) -> str:
    """Housekeeping of one upstream's mirror (`maintain_upstream_mirror`), under its sync
    lock: a sync running now just moves it to the next scheduled run."""
    upstream = Upstream.objects.filter(pk=upstream_id).first()
    if upstream is None:
        return f"upstream {upstream_id} no longer exists"
    try:
        with mirror_lock(upstream.slug):
            return maintain_upstream_mirror(upstream, now=timezone.now())
    except SyncBusy as exc:
        return f"skipped: {exc}"


@shared_task(name="tracker.maintain_mirrors")
def maintain_mirrors_task() -> int:
    """Queue `maintain_mirror_task` for every upstream (beat runs this); returns how many."""
    ids = list(Upstream.objects.values_list("pk", flat=True))
    for upstream_id in ids:
        maintain_mirror_task.delay(upstream_id)
    return len(ids)
