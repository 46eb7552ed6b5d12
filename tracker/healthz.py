"""The service's own health, for /healthz (load balancers, uptime checks) without log-in.

Unhealthy (HTTP 503) when the database or, in production mode, Redis does not answer: the
dashboard cannot serve then. A silent worker or a stale source makes the answer "degraded"
but still 200: pages work, figures are getting old, and alerts say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils.dateparse import parse_datetime

from tracker.tasks.health import WORKER_HEARTBEAT_KEY


def _age(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else int((now - then).total_seconds())


@dataclass(frozen=True)
class Freshness:
    """How fresh one source of the dashboard's figures is.

    `kind` is "source" (an upstream data source), "mirror" (an upstream's git mirror) or
    "fork"; `slug` is the source's name or the upstream's or fork's slug, and `key` names it
    in /healthz ("chromiumdash", "mirror:chromium", "fork:acme").
    *Stale*: no success within ``SOURCE_STALE_HOURS``; *failing*: the last run failed (a
    success clears `last_error`). `warnings` are what a mirror or fork sync could not do
    without failing (figures unknown for missing objects, a server ignoring the partial-clone
    filter, a failed housekeeping); `housekeeping` is a mirror's last housekeeping.
    """

    kind: str
    slug: str
    label: str
    last_success_at: datetime | None
    age_seconds: int | None
    stale: bool
    last_error: str = ""
    warnings: tuple[str, ...] = ()
    housekeeping: str = ""
    housekept_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.slug if self.kind == "source" else f"{self.kind}:{self.slug}"

    @property
    def failing(self) -> bool:
        return bool(self.last_error)

    @property
    def kind_label(self) -> str:
        return {"source": "upstream data source", "mirror": "mirror of"}.get(self.kind, self.kind)


def source_freshness(now: datetime) -> list[Freshness]:
    """Every data source, mirror and fork with its freshness at `now` (three queries)."""
    from tracker.models import Fork, SourceState, Upstream

    found = [
        Freshness(
            "source",
            state.source,
            state.get_source_display(),
            state.last_success_at,
            _age(now, state.last_success_at),
            state.is_stale(now),
            state.last_error,
        )
        for state in SourceState.objects.defer("validators", "rejected").order_by("source")
    ]
    stale_after = timedelta(hours=settings.SOURCE_STALE_HOURS)
    mirrors = Upstream.objects.order_by("name").values_list(
        "slug",
        "name",
        "last_synced_at",
        "last_error",
        "filter_warning",
        "maintenance_error",
        "maintenance_summary",
        "maintained_at",
    )
    for slug, name, synced, error, ignored, failed, summary, kept in mirrors:
        stale = synced is None or now - synced > stale_after
        warnings = (ignored, f"housekeeping failed: {failed}" if failed else "")
        found.append(
            Freshness(
                "mirror",
                slug,
                name,
                synced,
                _age(now, synced),
                stale,
                error,
                tuple(w for w in warnings if w),
                summary,
                kept,
            )
        )
    forks = Fork.objects.order_by("name").values_list(
        "slug", "name", "last_synced_at", "last_error", "last_warning", "filter_warning"
    )
    for slug, name, synced, error, unknown, ignored in forks:
        stale = synced is None or now - synced > stale_after
        warnings = tuple(w for w in (*unknown.splitlines(), ignored) if w)
        found.append(
            Freshness("fork", slug, name, synced, _age(now, synced), stale, error, warnings)
        )
    return found


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
        sources = {}
        for item in source_freshness(now):
            sources[item.key] = {"last_success_age_seconds": item.age_seconds, "stale": item.stale}
            if item.kind == "source":
                sources[item.key]["last_error"] = item.last_error[:200]
            degraded |= item.stale
        report["sources"] = sources
    report["status"] = "down" if down else "degraded" if degraded else "ok"
    return (503 if down else 200), report
