"""Tasks that read the upstream data sources and link security fixes.

Each sync task calls one sync function. A transient `SourceError` (timeouts, 429, 5xx, an HTML
error page) is retried with exponential backoff, at most `SYNC_RETRIES` times and never more
than `RETRY_MAX_SECONDS` apart (in embedded mode not at all: see `retries_wait`); a permanent
one is not retried. Either way the error is already on the source's `SourceState` row
(``last_error``) and the last good data stays. When a sync changed data, fix linking is queued
for every upstream once the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from tracker.ingest.bulletins import link_fixes, sync_chrome_releases
from tracker.ingest.releases import SyncStats, sync_chromiumdash, sync_versionhistory
from tracker.models import Upstream
from tracker.upstream.http import SourceError

__all__ = [
    "link_all_fixes_task",
    "link_fixes_task",
    "retries_wait",
    "retry_countdown",
    "sync_chrome_releases_task",
    "sync_chromiumdash_task",
    "sync_versionhistory_task",
]

# Retries of one scheduled run; the next scheduled run starts afresh anyway.
SYNC_RETRIES = 5
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600


def retries_wait() -> bool:
    """Whether a retry waits its countdown. Not in embedded mode: tasks run inline there, a
    retry would run at once and hold up the scheduler, so the entry's next run retries."""
    return not settings.CELERY_TASK_ALWAYS_EAGER


def retry_countdown(retries: int, retry_after: float | None = None) -> int:
    """Seconds before retry number `retries` + 1: 60, 120, 240, … capped at an hour, or the
    server's ``Retry-After`` when that is longer (capped too)."""
    delay = RETRY_BASE_SECONDS * 2**retries
    if retry_after is not None:
        delay = max(delay, int(retry_after))
    return min(RETRY_MAX_SECONDS, delay)


def _run_sync(task: Task, sync: Callable[..., SyncStats]) -> str:
    try:
        stats = sync(now=timezone.now())
    except SourceError as exc:
        if exc.transient and task.request.retries < SYNC_RETRIES and retries_wait():
            raise task.retry(
                exc=exc,
                countdown=retry_countdown(task.request.retries, exc.retry_after),
                max_retries=SYNC_RETRIES,
            ) from exc
        return f"failed: {exc}"
    if stats.changed:
        for upstream_id in Upstream.objects.values_list("pk", flat=True):
            link_fixes_task.delay_on_commit(upstream_id)
    return str(stats)


@shared_task(bind=True, name="tracker.sync_chromiumdash")
def sync_chromiumdash_task(self: Task) -> str:
    """Sync Chromium Dash milestones, schedules and releases (`sync_chromiumdash`)."""
    return _run_sync(self, sync_chromiumdash)


@shared_task(bind=True, name="tracker.sync_versionhistory")
def sync_versionhistory_task(self: Task) -> str:
    """Sync VersionHistory serving periods (`sync_versionhistory`)."""
    return _run_sync(self, sync_versionhistory)


@shared_task(bind=True, name="tracker.sync_chrome_releases")
def sync_chrome_releases_task(self: Task) -> str:
    """Sync Chrome Releases bulletins and their vulnerabilities (`sync_chrome_releases`)."""
    return _run_sync(self, sync_chrome_releases)


@shared_task(name="tracker.link_fixes")
def link_fixes_task(upstream_id: int) -> str:
    """Link the upstream's vulnerabilities to fix commits and releases (`link_fixes`),
    answering ancestry questions in its mirror when there is one."""
    upstream = Upstream.objects.filter(pk=upstream_id).first()
    if upstream is None:
        return f"upstream {upstream_id} no longer exists"
    from tracker.mirrors import mirror_path

    path = mirror_path(upstream)
    git_dir = path if (path / "HEAD").exists() else None
    return str(link_fixes(upstream, git_dir=git_dir))


@shared_task(name="tracker.link_all_fixes")
def link_all_fixes_task() -> int:
    """Queue `link_fixes_task` for every upstream (the periodic safety net); returns how many."""
    ids = list(Upstream.objects.values_list("pk", flat=True))
    for upstream_id in ids:
        link_fixes_task.delay(upstream_id)
    return len(ids)
