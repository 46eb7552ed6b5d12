"""Prometheus metrics, computed from the database at each scrape (so every web process
answers the same, with no shared in-process state).

Sync durations and failures are recorded by the sync tasks in the cache (Redis in
production), since a scrape must not run git.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.core.cache import cache
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

SYNC_STATS_KEY = "metrics:sync:{slug}"


def record_sync(slug: str, seconds: float, ok: bool) -> None:
    """Remember a fork sync's duration and outcome for the metrics (kept for a week)."""
    key = SYNC_STATS_KEY.format(slug=slug)
    try:
        stats = cache.get(key) or {"runs": 0, "failures": 0, "seconds": 0.0}
        stats["runs"] += 1
        stats["failures"] += 0 if ok else 1
        stats["seconds"] = seconds
        cache.set(key, stats, timeout=7 * 86400)
    except Exception as exc:  # any cache failure: metrics never fail the sync they describe
        logging.getLogger(__name__).warning("sync metrics not recorded: %s", exc)


class _Collector:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def collect(self):
        from tracker.models import BranchSnapshot, Fork, SourceState, TrackedBranch

        branches = list(TrackedBranch.objects.select_related("fork"))
        latest = BranchSnapshot.objects.latest_by_branch([b.pk for b in branches])
        gauges = {
            field: GaugeMetricFamily(
                f"forkhealth_branch_{field}", help_text, labels=["fork", "branch"]
            )
            for field, help_text in [
                ("commits_behind", "Upstream commits the branch lacks"),
                ("days_behind", "Days since the oldest upstream commit the branch lacks landed"),
                ("milestones_behind", "Upstream milestones ahead of the branch's base"),
                ("patch_count", "Fork patches carried on top of the base"),
                ("patches_upstreamed", "Fork patches upstream already has (candidates to drop)"),
                ("conflicting_patches", "Fork patches predicted to conflict on the next rebase"),
            ]
        }
        for branch in branches:
            snapshot = latest.get(branch.pk)
            if snapshot is None:
                continue
            for field, gauge in gauges.items():
                value = getattr(snapshot, field)
                if value is not None:  # milestones without a known version: no sample, not 0
                    gauge.add_metric([branch.fork.slug, branch.name], value)
        yield from gauges.values()

        age = GaugeMetricFamily(
            "forkhealth_fork_last_sync_age_seconds",
            "Seconds since the fork last synced",
            labels=["fork"],
        )
        duration = GaugeMetricFamily(
            "forkhealth_fork_sync_duration_seconds",
            "Duration of the fork's last sync",
            labels=["fork"],
        )
        runs = CounterMetricFamily("forkhealth_fork_syncs", "Fork syncs run", labels=["fork"])
        failures = CounterMetricFamily(
            "forkhealth_fork_sync_failures", "Fork syncs that failed", labels=["fork"]
        )
        for slug, synced in Fork.objects.values_list("slug", "last_synced_at"):
            if synced is not None:
                age.add_metric([slug], (self.now - synced).total_seconds())
            stats = cache.get(SYNC_STATS_KEY.format(slug=slug))
            if stats:
                duration.add_metric([slug], stats["seconds"])
                runs.add_metric([slug], stats["runs"])
                failures.add_metric([slug], stats["failures"])
        yield from (age, duration, runs, failures)

        yield self._open_fixes()

        source_age = GaugeMetricFamily(
            "forkhealth_source_last_success_age_seconds",
            "Seconds since the upstream data source last succeeded",
            labels=["source"],
        )
        source_failures = GaugeMetricFamily(
            "forkhealth_source_failures",
            "Failed runs of the source since its last success",
            labels=["source"],
        )
        for state in SourceState.objects.all():
            if state.last_success_at is not None:
                source_age.add_metric(
                    [state.source], (self.now - state.last_success_at).total_seconds()
                )
            source_failures.add_metric([state.source], state.failures)
        yield from (source_age, source_failures)

    def _open_fixes(self) -> GaugeMetricFamily:
        """Upstream security fixes each fork's newest release (by ship time) does not carry:
        every severity, 0 included, for a newest release with computed statuses; nothing
        for a fork without (no vulnerability data, or not computed yet)."""
        from django.db.models import Count

        from tracker.models import FixStatus, Severity

        rows = (
            FixStatus.objects.open_in_newest_release()
            .values("fork__slug", "vulnerability__severity")
            .annotate(n=Count("id"))
        )
        counts = {(r["fork__slug"], r["vulnerability__severity"]): r["n"] for r in rows}
        computed = (
            FixStatus.objects.of_newest_release()
            .values_list("fork__slug", flat=True)
            .distinct()
            .order_by()
        )
        gauge = GaugeMetricFamily(
            "forkhealth_fork_open_fixes",
            "Upstream security fixes the fork's newest release does not carry",
            labels=["fork", "severity"],
        )
        for slug in sorted(computed):
            for severity in Severity.values:
                gauge.add_metric([slug, severity], counts.get((slug, severity), 0))
        return gauge


def render_metrics(now: datetime) -> bytes:
    """The Prometheus text exposition of the current figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(now))
    started = time.perf_counter()
    body = generate_latest(registry)
    elapsed = time.perf_counter() - started
    return body + f"# scrape took {elapsed:.3f} s\n".encode()
