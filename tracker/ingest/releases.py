"""Upstream releases and milestones into the database, and the bookkeeping of every source.

One function per source writes parsed items keyed by their natural keys, so running it twice
with the same items changes nothing:

- `ingest_dash_releases`: Chromium Dash ``fetch_releases`` -> `UpstreamRelease`
  (upstream, version, channel, platform);
- `ingest_dash_milestones` / `ingest_milestone_schedules`: ``fetch_milestones`` and
  ``fetch_milestone_schedule`` -> `Milestone` (upstream, milestone);
- `ingest_versionhistory_releases`: VersionHistory serving periods -> the serving columns of
  `UpstreamRelease`.

`sync_chromiumdash` and `sync_versionhistory` fetch, then write, then record the run in
`SourceState`: everything is fetched before anything is written, so a bad response leaves the
last good data in place; the error goes to ``last_error`` and the source turns stale once its
last success is older than ``SOURCE_STALE_HOURS``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction

from tracker.models import (
    Channel,
    Milestone,
    Platform,
    Source,
    SourceState,
    Upstream,
    UpstreamRelease,
)
from tracker.upstream import ParseResult, Rejected, dash, versionhistory
from tracker.upstream import http as upstream_http
from tracker.upstream.dash import DashMilestone, DashRelease, MilestoneSchedule
from tracker.upstream.http import NOT_MODIFIED, UpstreamSession, Validators
from tracker.upstream.versionhistory import VersionHistoryRelease

__all__ = [
    "DASH_CHANNELS",
    "DASH_PLATFORMS",
    "VERSIONHISTORY_CHANNELS",
    "StateValidators",
    "SyncStats",
    "WriteStats",
    "ingest_dash_milestones",
    "ingest_dash_releases",
    "ingest_milestone_schedules",
    "ingest_versionhistory_releases",
    "normalise_channel",
    "normalise_platform",
    "source_run",
    "sync_chromiumdash",
    "sync_versionhistory",
]

logger = logging.getLogger(__name__)

# What a sync asks Chromium Dash for: every channel a fork measures against, on the desktop
# and mobile platforms. Dash has no "all platforms" query, so this is 25 small requests.
DASH_CHANNELS = ("Stable", "Extended", "Beta", "Dev", "Canary")
DASH_PLATFORMS = ("Windows", "Mac", "Linux", "Android", "iOS")
# Releases per Dash request. The first sync reads up to DASH_FIRST_PAGES pages per channel and
# platform (years of history); later ones one page, which covers months of releases.
DASH_PAGE_SIZE = 100
DASH_FIRST_PAGES = 20
DASH_LATER_PAGES = 1
# VersionHistory is read for all platforms at once, per channel.
VERSIONHISTORY_CHANNELS = ("stable", "extended", "beta")
# How far back the first VersionHistory sync reads, and how much later syncs overlap the
# previous one (serving periods end, and fractions change, after they start).
VERSIONHISTORY_FIRST_DAYS = 365
VERSIONHISTORY_OVERLAP_DAYS = 14
# Rejected elements kept on SourceState for review; the rest are only counted in the log.
REJECTED_SAMPLE = 50

_CHANNELS = {choice.value: choice.value for choice in Channel}
_PLATFORMS = {
    "windows": Platform.WINDOWS,
    "win": Platform.WINDOWS,
    "win32": Platform.WINDOWS,
    "win64": Platform.WINDOWS,
    "win_arm64": Platform.WINDOWS,
    "mac": Platform.MAC,
    "mac_arm64": Platform.MAC,
    "linux": Platform.LINUX,
    "android": Platform.ANDROID,
    "webview": Platform.WEBVIEW,
    "ios": Platform.IOS,
    "chromeos": Platform.CHROMEOS,
    "lacros": Platform.LACROS,
    "lacros_arm32": Platform.LACROS,
    "lacros_arm64": Platform.LACROS,
    "fuchsia": Platform.FUCHSIA,
}


def normalise_channel(name: str) -> str | None:
    """``"Stable"`` (Dash) or ``"stable"`` (VersionHistory) -> ``Channel.STABLE``; None if
    unknown."""
    return _CHANNELS.get(name.strip().lower())


def normalise_platform(name: str) -> str | None:
    """Dash and VersionHistory platform names -> `Platform` (``win64`` -> windows); None if
    unknown."""
    return _PLATFORMS.get(name.strip().lower())


@dataclass
class WriteStats:
    """Rows an ingestion call created, changed, found unchanged, or skipped (unknown channel
    or platform)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def add(self, other: WriteStats) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped


@dataclass
class SyncStats:
    """What one sync of a source did: rows written per kind, elements the parsers rejected,
    and the URLs that answered 304 Not Modified."""

    written: dict[str, WriteStats] = field(default_factory=dict)
    rejected: int = 0
    not_modified: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(stats.changed for stats in self.written.values())

    def record(self, kind: str, stats: WriteStats) -> None:
        self.written.setdefault(kind, WriteStats()).add(stats)

    def __str__(self) -> str:
        parts = [
            f"{kind}: +{s.created} ~{s.updated} ={s.unchanged}"
            + (f" skipped {s.skipped}" if s.skipped else "")
            for kind, s in sorted(self.written.items())
        ]
        if self.rejected:
            parts.append(f"rejected {self.rejected}")
        return "; ".join(parts) or "nothing to write"


# --- writing by natural key ------------------------------------------------------------------


def _apply(instance: Any, values: dict[str, Any]) -> bool:
    """Set `values` on `instance`; True when any of them differed."""
    changed = False
    for name, value in values.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed = True
    return changed


def _write(
    model: Any,
    existing: dict[Any, Any],
    rows: dict[Any, tuple[dict[str, Any], dict[str, Any]]],
) -> WriteStats:
    """Create or update `rows` ({key: (create-only values, values)}) against `existing`
    ({key: instance}), in bulk; unchanged rows are not written at all."""
    stats = WriteStats()
    to_create, to_update, fields = [], [], set()
    for key, (create_values, values) in rows.items():
        instance = existing.get(key)
        if instance is None:
            to_create.append(model(**create_values, **values))
            stats.created += 1
            continue
        before = {name: getattr(instance, name) for name in values}
        if _apply(instance, values):
            to_update.append(instance)
            fields.update(name for name in values if before[name] != values[name])
            stats.updated += 1
        else:
            stats.unchanged += 1
    if to_create:
        # A concurrent run of the same sync may have inserted the same keys meanwhile; its
        # rows hold the same values, so keeping them is right.
        model.objects.bulk_create(to_create, batch_size=1000, ignore_conflicts=True)
    if to_update:
        model.objects.bulk_update(to_update, sorted(fields), batch_size=1000)
    return stats


def _chunks(items: Sequence[Any], size: int = 1000) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing_releases(upstream: Upstream, versions: set[str]) -> dict[tuple, UpstreamRelease]:
    existing = {}
    for chunk in _chunks(sorted(versions)):
        for release in UpstreamRelease.objects.filter(upstream=upstream, version__in=chunk):
            existing[(release.version, release.channel, release.platform)] = release
    return existing


def ingest_dash_releases(upstream: Upstream, releases: Iterable[DashRelease]) -> WriteStats:
    """Write Chromium Dash releases of `upstream`, keyed by (version, channel, platform).

    Dash's time, chromium commit, branch position, previous version and component hashes
    replace what a row had; VersionHistory's serving columns are left alone. A release on an
    unknown channel or platform is skipped. When a batch has one key twice, the earlier
    release time wins.
    """
    stats = WriteStats()
    rows: dict[tuple, tuple[dict[str, Any], dict[str, Any]]] = {}
    for release in releases:
        channel = normalise_channel(release.channel)
        platform = normalise_platform(release.platform)
        if channel is None or platform is None:
            stats.skipped += 1
            continue
        key = (release.version, channel, platform)
        if key in rows and rows[key][1]["time"] <= release.time:
            continue
        rows[key] = (
            {
                "upstream": upstream,
                "version": release.version,
                "major": release.major,
                "minor": release.minor,
                "build": release.build,
                "patch": release.patch,
                "channel": channel,
                "platform": platform,
            },
            {
                "milestone": release.milestone,
                "time": release.time,
                "chromium_commit": release.chromium_commit or "",
                "branch_position": release.chromium_main_branch_position,
                "previous_version": release.previous_version or "",
                "hashes": dict(sorted(release.hashes.items())),
                "seen_in_dash": True,
            },
        )
    with transaction.atomic():
        existing = _existing_releases(upstream, {key[0] for key in rows})
        stats.add(_write(UpstreamRelease, existing, rows))
    return stats


def ingest_dash_milestones(upstream: Upstream, milestones: Iterable[DashMilestone]) -> WriteStats:
    """Write ``fetch_milestones`` rows of `upstream`: branch, branch point, phase."""
    rows = {
        item.milestone: (
            {"upstream": upstream, "milestone": item.milestone},
            {
                "branch": item.chromium_branch,
                "branch_position": item.branch_position,
                "branch_sha": item.branch_hash or "",
                "v8_branch": item.v8_branch or "",
                "schedule_active": item.schedule_active,
                "schedule_phase": item.schedule_phase or "",
            },
        )
        for item in milestones
    }
    with transaction.atomic():
        existing = {
            m.milestone: m
            for m in Milestone.objects.filter(upstream=upstream, milestone__in=list(rows))
        }
        return _write(Milestone, existing, rows)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def ingest_milestone_schedules(
    upstream: Upstream, schedules: Iterable[MilestoneSchedule]
) -> WriteStats:
    """Write ``fetch_milestone_schedule`` dates of `upstream` (creating the milestone row if
    ``fetch_milestones`` has not named it yet)."""
    rows = {}
    for item in schedules:
        schedule = {
            name: _iso(getattr(item, name))
            for name in dash.SCHEDULE_DATE_FIELDS
            if getattr(item, name) is not None
        }
        rows[item.mstone] = (
            {"upstream": upstream, "milestone": item.mstone},
            {
                "branch_date": item.branch_point,
                "earliest_beta": item.earliest_beta,
                "early_stable": item.early_stable,
                "stable_date": item.stable_date,
                "stable_refresh_first": item.stable_refresh_first,
                "schedule": schedule,
            },
        )
    with transaction.atomic():
        existing = {
            m.milestone: m
            for m in Milestone.objects.filter(upstream=upstream, milestone__in=list(rows))
        }
        return _write(Milestone, existing, rows)


def ingest_versionhistory_releases(
    upstream: Upstream, releases: Iterable[VersionHistoryRelease]
) -> WriteStats:
    """Write VersionHistory serving periods of `upstream` onto its releases.

    Periods are grouped by (version, channel, platform). `served_from` and `fully_served_at`
    only move earlier (a later sync may read a shorter window); `served_until` is the end of
    the latest period read (None while it is still served). A version Dash does not list gets
    a row whose `time` is its first serving start.
    """
    stats = WriteStats()
    groups: dict[tuple[str, str, str], list[VersionHistoryRelease]] = {}
    for release in releases:
        channel = normalise_channel(release.channel)
        platform = normalise_platform(release.platform)
        if channel is None or platform is None:
            stats.skipped += 1
            continue
        groups.setdefault((release.version, channel, platform), []).append(release)
    with transaction.atomic():
        existing = _existing_releases(upstream, {key[0] for key in groups})
        rows = {}
        for key, periods in groups.items():
            first = min(periods, key=lambda p: p.start_time)
            latest = max(periods, key=lambda p: p.start_time)
            full = [p.start_time for p in periods if p.fraction >= 1]
            served_from = first.start_time
            fully = min(full) if full else None
            row = existing.get(key)
            if row is not None:
                if row.served_from is not None:
                    served_from = min(served_from, row.served_from)
                if row.fully_served_at is not None:
                    fully = min(fully, row.fully_served_at) if fully else row.fully_served_at
            values: dict[str, Any] = {
                "served_from": served_from,
                "fully_served_at": fully,
                "served_until": latest.end_time,
                "seen_in_versionhistory": True,
            }
            if row is None or not row.seen_in_dash:
                values["time"] = served_from
                values["milestone"] = first.major
            version, channel, platform = key
            rows[key] = (
                {
                    "upstream": upstream,
                    "version": version,
                    "major": first.major,
                    "minor": first.minor,
                    "build": first.build,
                    "patch": first.patch,
                    "channel": channel,
                    "platform": platform,
                },
                values,
            )
        stats.add(_write(UpstreamRelease, existing, rows))
    return stats


# --- source bookkeeping ----------------------------------------------------------------------


class StateValidators:
    """A `ValidatorCache` over `SourceState.validators` (``{url: {etag, last_modified}}``).

    Validators learnt during a run are written to the row by `source_run` only when the run
    succeeds, so data that was fetched but never stored is not later answered with a 304.
    """

    def __init__(self, state: SourceState) -> None:
        self.state = state
        self.entries: dict[str, dict[str, str]] = dict(state.validators or {})

    def get(self, url: str) -> Validators | None:
        entry = self.entries.get(url)
        if not entry:
            return None
        return Validators(entry.get("etag", ""), entry.get("last_modified", ""))

    def set(self, url: str, validators: Validators) -> None:
        if validators:
            self.entries[url] = {"etag": validators.etag, "last_modified": validators.last_modified}
        else:
            self.entries.pop(url, None)


@dataclass
class SourceRun:
    """One run of a source: its state row, validators, and rejected elements to keep."""

    state: SourceState
    validators: StateValidators
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, what: str, rejected: Iterable[Rejected]) -> None:
        for item in rejected:
            self.rejected_count += 1
            if len(self.rejected) < REJECTED_SAMPLE:
                self.rejected.append({"what": what, "index": item.index, "reason": item.reason})


@contextlib.contextmanager
def source_run(source: str, now: datetime) -> Iterator[SourceRun]:
    """Record a run of `source` in its `SourceState`.

    The attempt time is saved first. If the block raises, the error is saved as
    ``last_error`` (the data of the last good run stays) and the exception propagates;
    otherwise ``last_success_at`` becomes `now`, the error is cleared and the run's
    validators and rejected sample are kept.
    """
    state, _ = SourceState.objects.get_or_create(source=source)
    state.last_attempt_at = now
    state.save(update_fields=["last_attempt_at"])
    run = SourceRun(state=state, validators=StateValidators(state))
    try:
        yield run
    except Exception as exc:
        state.last_error = str(exc)[:2000] or type(exc).__name__
        state.last_error_at = now
        state.failures += 1
        state.save(update_fields=["last_error", "last_error_at", "failures"])
        logger.warning("source %s failed: %s", source, state.last_error)
        raise
    state.last_success_at = now
    state.last_error = ""
    state.failures = 0
    state.validators = run.validators.entries
    state.rejected = run.rejected
    state.save(
        update_fields=["last_success_at", "last_error", "failures", "validators", "rejected"]
    )
    if run.rejected_count:
        logger.warning("source %s: %d elements rejected", source, run.rejected_count)


def _upstreams(upstreams: Iterable[Upstream] | None) -> list[Upstream]:
    # Every upstream is Chromium or a mirror of it, so one answer from a source serves all.
    return list(Upstream.objects.all()) if upstreams is None else list(upstreams)


def sync_chromiumdash(
    *,
    now: datetime,
    session: UpstreamSession | None = None,
    base_url: str | None = None,
    upstreams: Iterable[Upstream] | None = None,
    channels: Sequence[str] = DASH_CHANNELS,
    platforms: Sequence[str] = DASH_PLATFORMS,
    max_pages: int | None = None,
) -> SyncStats:
    """Fetch Chromium Dash milestones, their schedules and releases; write them for every
    upstream; record the run in `SourceState`.

    Milestones and schedules are conditional requests. Releases are read per channel and
    platform, `max_pages` pages of `DASH_PAGE_SIZE` each (by default many on the first sync,
    one afterwards). Raises `SourceError` (after recording it) when any request fails; then
    nothing is written.
    """
    session = session or upstream_http.default_session()
    base_url = base_url or dash.default_base_url()
    targets = _upstreams(upstreams)
    stats = SyncStats()
    with source_run(Source.CHROMIUMDASH, now) as run:
        if max_pages is None:
            first = run.state.last_success_at is None
            max_pages = DASH_FIRST_PAGES if first else DASH_LATER_PAGES
        milestones = dash.fetch_milestones(session, base_url, validators=run.validators)
        if milestones is NOT_MODIFIED:
            stats.not_modified.append("fetch_milestones")
            active = sorted(
                set(
                    Milestone.objects.filter(schedule_active=True).values_list(
                        "milestone", flat=True
                    )
                )
            )
        else:
            run.reject("fetch_milestones", milestones.rejected)
            active = sorted({m.milestone for m in milestones.items if m.schedule_active})
        schedules: ParseResult[MilestoneSchedule] = ParseResult()
        for mstone in active:
            answer = dash.fetch_milestone_schedule(
                session, base_url, mstone=mstone, validators=run.validators
            )
            if answer is NOT_MODIFIED:
                stats.not_modified.append(f"fetch_milestone_schedule {mstone}")
            else:
                run.reject(f"fetch_milestone_schedule {mstone}", answer.rejected)
                schedules.extend(answer)
        releases: list[DashRelease] = []
        for channel in channels:
            for platform in platforms:
                answer = dash.fetch_releases(
                    session,
                    base_url,
                    channel,
                    platform,
                    num=DASH_PAGE_SIZE,
                    max_pages=max_pages,
                )
                run.reject(f"fetch_releases {channel}/{platform}", answer.rejected)
                releases.extend(answer.items)
        stats.rejected = run.rejected_count
        with transaction.atomic():
            for upstream in targets:
                if milestones is not NOT_MODIFIED:
                    stats.record("milestones", ingest_dash_milestones(upstream, milestones.items))
                stats.record("schedules", ingest_milestone_schedules(upstream, schedules.items))
                stats.record("releases", ingest_dash_releases(upstream, releases))
    return stats


def sync_versionhistory(
    *,
    now: datetime,
    session: UpstreamSession | None = None,
    base_url: str | None = None,
    upstreams: Iterable[Upstream] | None = None,
    channels: Sequence[str] = VERSIONHISTORY_CHANNELS,
    since: datetime | None = None,
) -> SyncStats:
    """Fetch VersionHistory serving periods that started since `since` (by default a year
    before `now` on the first sync, else the last success minus an overlap), for every
    platform, per channel; write them for every upstream; record the run.

    Raises `SourceError` (after recording it) when any request fails; then nothing is written.
    """
    session = session or upstream_http.default_session()
    base_url = base_url or versionhistory.default_base_url()
    targets = _upstreams(upstreams)
    stats = SyncStats()
    with source_run(Source.VERSIONHISTORY, now) as run:
        if since is None:
            last = run.state.last_success_at
            since = (
                now - timedelta(days=VERSIONHISTORY_FIRST_DAYS)
                if last is None
                else last - timedelta(days=VERSIONHISTORY_OVERLAP_DAYS)
            )
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        releases: list[VersionHistoryRelease] = []
        for channel in channels:
            for page in versionhistory.iter_releases(
                session, base_url, "all", channel, filter=f"starttime>={stamp}"
            ):
                run.reject(f"releases all/{channel}", page.rejected)
                releases.extend(page.items)
        stats.rejected = run.rejected_count
        with transaction.atomic():
            for upstream in targets:
                stats.record("releases", ingest_versionhistory_releases(upstream, releases))
    return stats
