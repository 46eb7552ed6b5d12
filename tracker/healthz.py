"""The service's own health, for /healthz (load balancers, uptime checks) without log-in.

Unhealthy (HTTP 503) when the database or, in production mode, Redis does not answer: the
dashboard cannot serve then. A silent worker or a stale source makes the answer "degraded"
but still 200: pages work, figures are getting old, and alerts say so.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils.dateparse import parse_datetime

from tracker.tasks.health import WORKER_HEARTBEAT_KEY


def _age(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else int((now - then).total_seconds())


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # any failure means the database cannot serve
        return False


def _redis_ok() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3).ping())
    except redis.exceptions.RedisError:
        return False


def service_health(now: datetime) -> tuple[int, dict]:
    """(HTTP status, report) of the service at `now`."""
    report: dict = {"database": "ok" if _database_ok() else "down"}
    redis_state = "not configured"
    if settings.REDIS_URL:
        redis_state = "ok" if _redis_ok() else "down"
    report["redis"] = redis_state
    down = report["database"] != "ok" or redis_state == "down"
    degraded = False
    if settings.REDIS_URL and redis_state == "ok":
        beat = cache.get(WORKER_HEARTBEAT_KEY)
        age = _age(now, parse_datetime(beat)) if beat else None
        alive = age is not None and age <= 3 * settings.WORKER_HEARTBEAT_SECONDS
        report["worker"] = {"last_heartbeat": beat, "age_seconds": age, "ok": alive}
        degraded |= not alive
    else:
        report["worker"] = {"ok": True, "mode": "tasks run in-process"}
    if report["database"] == "ok":
        from tracker.models import Fork, SourceState, Upstream

        sources = {}
        for state in SourceState.objects.all():
            stale = state.is_stale(now)
            sources[state.source] = {
                "last_success_age_seconds": _age(now, state.last_success_at),
                "stale": stale,
                "last_error": state.last_error[:200],
            }
            degraded |= stale
        stale_after = settings.SOURCE_STALE_HOURS * 3600
        for kind, model in (("mirror", Upstream), ("fork", Fork)):
            for slug, synced in model.objects.values_list("slug", "last_synced_at"):
                age = _age(now, synced)
                stale = age is None or age > stale_after
                sources[f"{kind}:{slug}"] = {"last_success_age_seconds": age, "stale": stale}
                degraded |= stale
        report["sources"] = sources
    report["status"] = "down" if down else "degraded" if degraded else "ok"
    return (503 if down else 200), report
