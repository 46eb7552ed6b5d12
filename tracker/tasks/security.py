"""Tasks that keep fork security (releases, fix statuses) up to date."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from tracker.forksecurity import update_fork_security
from tracker.locks import SyncBusy, mirror_lock
from tracker.mirrors import ensure_mirror
from tracker.models import Fork


@shared_task(name="tracker.update_fork_security")
def update_fork_security_task(fork_id: int) -> str:
    """Recompute a fork's releases and fix statuses (after new fix links, bulletins or a
    release registered by hand). Incremental, so running it often is cheap."""
    fork = Fork.objects.select_related("upstream").get(pk=fork_id)
    try:
        with mirror_lock(fork.upstream.slug):
            stats = update_fork_security(fork, ensure_mirror(fork.upstream), timezone.now())
    except SyncBusy as exc:
        return f"skipped: {exc}"  # the running sync updates fork security at its end
    return str(stats)
