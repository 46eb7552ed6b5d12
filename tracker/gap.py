"""Patch gap figures of a fork: pure functions on plain data, with an explicit `now`.

Terms (all durations in days, fractional, never clamped):

- *first fork release* of a fix: the fork release with the earliest ship time that carries
  the fix (status fixed by base or by backport); ties go to the lower tag name.
- *days from landing*: first fork release's ship time minus the fix's upstream landing time
  (`landed_at`: when the last fix commit landed on main). None for a fix without a landing
  time (a dependency roll placed by version).
- *days from stable*: first fork release's ship time minus upstream's first Stable release
  with the fix. Negative when the fork shipped the fix before upstream Stable did.
- *upstream gap*: upstream Chrome's own days from landing to first Stable (the reference line).
- *open fix*: a fix no fork release carries, not triaged as not affected / will not fix; its
  *age* is `now` minus the first Stable time (or the landing time when upstream has not
  shipped it), None when neither is known.
- *median* and *90th percentile*: linear interpolation between the closest ranks (the
  "inclusive" method: p90 of [a] is a).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

SECONDS_PER_DAY = 86400
# Chromium's severities, most severe first (the values of tracker.models.Severity).
SEVERITIES = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class FixFacts:
    """An upstream fix as the gap figures need it."""

    cve: str
    severity: str
    landed_at: datetime | None
    first_stable_at: datetime | None
    upstream_gap_days: float | None


@dataclass(frozen=True)
class ShippedRelease:
    """A fork release: its tag, ship time and the CVEs it carries (fixed by base or backport)."""

    tag: str
    shipped_at: datetime | None
    carried: frozenset[str]


@dataclass(frozen=True)
class FixGap:
    cve: str
    severity: str
    release: str
    shipped_at: datetime
    days_from_landing: float | None
    days_from_stable: float | None
    upstream_gap_days: float | None

    @property
    def month(self) -> str:
        """The month the fork shipped the fix, ``YYYY-MM`` (the by-month grouping)."""
        return f"{self.shipped_at:%Y-%m}"


@dataclass(frozen=True)
class OpenFix:
    cve: str
    severity: str
    since: datetime | None
    age_days: float | None


@dataclass(frozen=True)
class Summary:
    """Median and 90th percentile of a group of fixes (None for an empty series)."""

    count: int
    median_from_landing: float | None
    p90_from_landing: float | None
    median_from_stable: float | None
    p90_from_stable: float | None
    upstream_median: float | None
    upstream_p90: float | None


@dataclass
class ForkGaps:
    fixes: list[FixGap] = field(default_factory=list)
    open: list[OpenFix] = field(default_factory=list)
    by_severity: dict[str, Summary] = field(default_factory=dict)
    by_month: dict[str, Summary] = field(default_factory=dict)
    overall: Summary | None = None


def days_between(start: datetime | None, end: datetime | None) -> float | None:
    """(end - start) in fractional days; None when either is unknown. Never clamped."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / SECONDS_PER_DAY


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(gaps: Sequence[FixGap]) -> Summary:
    def series(name: str) -> list[float]:
        return [v for v in (getattr(g, name) for g in gaps) if v is not None]

    landing, stable, upstream = (
        series("days_from_landing"),
        series("days_from_stable"),
        series("upstream_gap_days"),
    )
    return Summary(
        count=len(gaps),
        median_from_landing=percentile(landing, 50),
        p90_from_landing=percentile(landing, 90),
        median_from_stable=percentile(stable, 50),
        p90_from_stable=percentile(stable, 90),
        upstream_median=percentile(upstream, 50),
        upstream_p90=percentile(upstream, 90),
    )


def first_release(cve: str, releases: Iterable[ShippedRelease]) -> ShippedRelease | None:
    """The earliest-shipped release carrying `cve` (ties: lower tag)."""
    carrying = [r for r in releases if r.shipped_at is not None and cve in r.carried]
    return min(carrying, key=lambda r: (r.shipped_at, r.tag), default=None)


def fork_gaps(
    fixes: Iterable[FixFacts],
    releases: Sequence[ShippedRelease],
    *,
    now: datetime,
    triaged: Iterable[str] = (),
) -> ForkGaps:
    """Every gap figure of one fork (see the module docstring)."""
    result = ForkGaps()
    skipped = set(triaged)
    for fix in fixes:
        release = first_release(fix.cve, releases)
        if release is None:
            if fix.cve in skipped:
                continue
            since = fix.first_stable_at or fix.landed_at
            result.open.append(OpenFix(fix.cve, fix.severity, since, days_between(since, now)))
            continue
        result.fixes.append(
            FixGap(
                cve=fix.cve,
                severity=fix.severity,
                release=release.tag,
                shipped_at=release.shipped_at,
                days_from_landing=days_between(fix.landed_at, release.shipped_at),
                days_from_stable=days_between(fix.first_stable_at, release.shipped_at),
                upstream_gap_days=fix.upstream_gap_days,
            )
        )
    by_severity: dict[str, list[FixGap]] = defaultdict(list)
    by_month: dict[str, list[FixGap]] = defaultdict(list)
    for gap in result.fixes:
        by_severity[gap.severity].append(gap)
        by_month[gap.month].append(gap)
    result.by_severity = {k: summarize(v) for k, v in sorted(by_severity.items())}
    result.by_month = {k: summarize(v) for k, v in sorted(by_month.items())}
    result.overall = summarize(result.fixes)
    result.open.sort(key=lambda o: (-(o.age_days or 0), o.cve))
    return result


@dataclass(frozen=True)
class OpenCounts:
    """Open fixes by severity and the age in days of the oldest (None when none has a known
    start): the figures of a fork security snapshot."""

    by_severity: dict[str, int]
    oldest_days: float | None

    @property
    def total(self) -> int:
        return sum(self.by_severity.values())


def count_open(fixes: Iterable[tuple[str, datetime | None]], now: datetime) -> OpenCounts:
    """Count open fixes given as (severity, since) pairs, where *since* is the first Stable
    time (the landing when upstream has not shipped it) as for `OpenFix`; ages are taken at
    `now`. Every severity of `SEVERITIES` is present, zero when none is open."""
    by_severity = dict.fromkeys(SEVERITIES, 0)
    oldest: float | None = None
    for severity, since in fixes:
        by_severity[severity] = by_severity.get(severity, 0) + 1
        age = days_between(since, now)
        if age is not None and (oldest is None or age > oldest):
            oldest = age
    return OpenCounts(by_severity, oldest)


def open_fixes(fixes: Iterable[tuple[str, str, datetime | None]], now: datetime) -> list[OpenFix]:
    """(cve, severity, since) triples as `OpenFix` with their ages at `now`, oldest first
    (those of unknown age last)."""
    found = [
        OpenFix(cve, severity, since, days_between(since, now)) for cve, severity, since in fixes
    ]
    return sorted(found, key=lambda o: (o.age_days is None, -(o.age_days or 0), o.cve))


def by_release(gaps: ForkGaps) -> list[tuple[str, datetime, Summary]]:
    """(release tag, ship time, summary of the fixes it shipped first) per release, in ship
    order: the fork page's patch gap per release, with upstream's own gap for the same fixes
    (`Summary.upstream_median`) as the reference."""
    groups: dict[tuple[datetime, str], list[FixGap]] = defaultdict(list)
    for gap in gaps.fixes:
        groups[(gap.shipped_at, gap.release)].append(gap)
    return [(tag, shipped, summarize(group)) for (shipped, tag), group in sorted(groups.items())]
