"""Tasks about the service itself."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

WORKER_HEARTBEAT_KEY = "worker-heartbeat"


@shared_task(name="tracker.record_worker_heartbeat")
def record_worker_heartbeat_task() -> str:
    """Record that a worker ran a task just now (read by the health check)."""
    now = timezone.now().isoformat()
    cache.set(WORKER_HEARTBEAT_KEY, now, timeout=None)
    return now
