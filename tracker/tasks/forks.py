"""Tasks that sync forks and upstream mirrors."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from tracker.git import GitError, UnsafeGitInput
from tracker.health import NoCommonHistory
from tracker.models import Fork, Upstream
from tracker.sync import sync_fork, sync_upstream

# Errors that a retry cannot fix: bad configuration or data. They stay on the row's last_error.
PERMANENT = (UnsafeGitInput, NoCommonHistory)


def _transient(exc: Exception) -> bool:
    return isinstance(exc, GitError) and not isinstance(exc, PERMANENT)


@shared_task(bind=True, name="tracker.sync_upstream", max_retries=3)
def sync_upstream_task(self, upstream_id: int) -> None:
    upstream = Upstream.objects.get(pk=upstream_id)
    try:
        sync_upstream(upstream, now=timezone.now())
    except GitError as exc:
        if _transient(exc):
            raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from None
        raise


@shared_task(bind=True, name="tracker.sync_fork", max_retries=3)
def sync_fork_task(self, fork_id: int) -> None:
    fork = Fork.objects.select_related("upstream").get(pk=fork_id)
    try:
        sync_fork(fork, now=timezone.now())
    except GitError as exc:
        if _transient(exc):
            raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from None
        raise
