"""Alert rules: pure functions from facts (plain data) and `now` to the conditions that hold.

Each condition carries a *deduplication key*: the same condition found again on the next run
has the same key, so the alert it opened is updated rather than opened twice, and resolved
when the condition is no longer found.

Defaults follow the issue: rebase at least weekly and stay within two milestones of Stable;
ship an upstream security fix within 3 days when exploited in the wild, 15 days when
Critical, 30 when High, 60 when Medium (counted from upstream's Stable release); a fork
release whose upstream base is more than 10 weeks old has lost Chrome's key pinning and
Certificate Transparency enforcement, which switch off in builds that old.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta


class Priority:
    HIGH = "high"  # mailed at once
    NORMAL = "normal"  # in the daily digest
    INFO = "info"  # in the digest, never urgent


@dataclass(frozen=True)
class Thresholds:
    lag_days: int = 7
    lag_milestones: int = 2
    fix_days: dict[str, int] = field(
        default_factory=lambda: {"critical": 15, "high": 30, "medium": 60}
    )
    in_the_wild_days: int = 3
    base_age_days: int = 70  # ten weeks
    stale_hours: int = 24

    def overridden(self, overrides: Mapping[str, int | None]) -> Thresholds:
        """These thresholds with every non-None value of `overrides` put in their place.

        Keys are the field names, plus ``critical_days``, ``high_days`` and ``medium_days``
        for the entries of `fix_days`."""
        fix_days = dict(self.fix_days)
        plain = {}
        for name, value in overrides.items():
            if value is None:
                continue
            if name.endswith("_days") and name[: -len("_days")] in fix_days:
                fix_days[name[: -len("_days")]] = value
            else:
                plain[name] = value
        return replace(self, fix_days=fix_days, **plain)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def milestone_supported(
    milestone: int, stable_milestone: int | None, support_end: date | None, today: date
) -> bool:
    """Whether upstream still ships security fixes to `milestone`.

    Where the end of support is known, that date decides. Otherwise: the current Stable
    milestone and the one before it (still rolling out), and the newest even milestone
    below Stable (Extended Stable, which keeps each even milestone eight weeks longer).
    Without a known Stable milestone, every milestone counts as supported.
    """
    if support_end is not None:
        return today <= support_end
    if stable_milestone is None:
        return True
    if milestone >= stable_milestone - 1:
        return True
    return milestone % 2 == 0 and milestone >= stable_milestone - 2


@dataclass(frozen=True)
class Condition:
    key: str  # deduplication key
    kind: str
    priority: str
    fork: str | None
    summary: str
    figures: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BranchFacts:
    """A tracked branch's latest figures. `previous_conflicting_patches` is the conflict
    forecast right after the branch's last rebase (its base last moved), so "rising" means
    "more predicted conflicts than just after the last rebase"; a rebase clears it."""

    fork: str
    branch: str
    days_behind: int
    milestones_behind_stable: int | None  # None: unknown (no version, or not Chromium)
    conflicting_patches: int
    previous_conflicting_patches: int | None
    patches_upstreamed: int
    milestone: int | None = None  # the upstream milestone a release branch follows
    milestone_supported: bool = True
    # Subjects of the fork patches found upstream and of those predicted to conflict.
    upstreamed_subjects: tuple[str, ...] = ()
    conflicting_subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenFix:
    """An upstream security fix a fork has not shipped yet."""

    fork: str
    cve: str
    severity: str  # critical | high | medium | low
    in_the_wild: bool
    upstream_stable_at: datetime | None
    title: str = ""


@dataclass(frozen=True)
class ForkReleaseFacts:
    fork: str
    tag: str
    base_version: str
    base_released_at: datetime | None  # when upstream shipped the release's base version
    is_newest: bool


@dataclass(frozen=True)
class SourceFacts:
    name: str  # "chromiumdash", "fork:acme", ...
    fork: str | None
    last_success_at: datetime | None
    last_error: str


def lag_conditions(branches: Iterable[BranchFacts], t: Thresholds) -> list[Condition]:
    out = []
    for b in branches:
        where = f"{b.fork}:{b.branch}"
        milestones = b.milestones_behind_stable
        # Without a known milestone figure only the days can fire, and the summary says none.
        too_many = milestones is not None and milestones > t.lag_milestones
        if b.days_behind > t.lag_days or too_many:
            if milestones is None:
                summary = (
                    f"{where} is {b.days_behind} days behind upstream (limit {t.lag_days} days)"
                )
            else:
                summary = (
                    f"{where} is {b.days_behind} days and {milestones} milestones behind "
                    f"upstream (limits {t.lag_days} days, {t.lag_milestones} milestones)"
                )
            out.append(
                Condition(
                    key=f"lag:{where}",
                    kind="rebase_lag",
                    priority=Priority.NORMAL,
                    fork=b.fork,
                    summary=summary,
                    figures={"days_behind": b.days_behind, "milestones_behind": milestones},
                )
            )
        previous = b.previous_conflicting_patches
        if previous is not None and b.conflicting_patches > previous:
            out.append(
                Condition(
                    key=f"conflicts:{where}",
                    kind="conflicts_rising",
                    priority=Priority.NORMAL,
                    fork=b.fork,
                    summary=f"{where}: patches predicted to conflict on the next rebase rose "
                    f"from {previous} to {b.conflicting_patches} since the last rebase",
                    figures={
                        "conflicting_patches": b.conflicting_patches,
                        "previous": previous,
                        "patches": list(b.conflicting_subjects),
                    },
                )
            )
        if b.patches_upstreamed:
            out.append(
                Condition(
                    key=f"upstreamed:{where}",
                    kind="patches_upstreamed",
                    priority=Priority.INFO,
                    fork=b.fork,
                    summary=f"{where}: already upstream, can be dropped: "
                    f"{_count(b.patches_upstreamed, 'fork patch', 'fork patches')}",
                    figures={
                        "patches_upstreamed": b.patches_upstreamed,
                        "patches": list(b.upstreamed_subjects),
                    },
                )
            )
        if b.milestone is not None and not b.milestone_supported:
            out.append(
                Condition(
                    key=f"unsupported:{where}",
                    kind="milestone_unsupported",
                    priority=Priority.HIGH,
                    fork=b.fork,
                    summary=f"{where} follows M{b.milestone}, which upstream no longer supports: "
                    "no more upstream security fixes will reach it",
                    figures={"milestone": b.milestone},
                )
            )
    return out


def fix_deadline(fix: OpenFix, t: Thresholds) -> timedelta | None:
    """How long after upstream's Stable release the fork has to ship `fix` (None: no rule)."""
    if fix.in_the_wild:
        return timedelta(days=t.in_the_wild_days)
    days = t.fix_days.get(fix.severity)
    return None if days is None else timedelta(days=days)


def fix_conditions(fixes: Iterable[OpenFix], t: Thresholds, now: datetime) -> list[Condition]:
    out = []
    for fix in fixes:
        deadline = fix_deadline(fix, t)
        if deadline is None or fix.upstream_stable_at is None:
            continue
        overdue = now - (fix.upstream_stable_at + deadline)
        if overdue <= timedelta(0):
            continue
        age = (now - fix.upstream_stable_at).days
        wild = ", exploited in the wild" if fix.in_the_wild else ""
        title = f" ({fix.title[:120]})" if fix.title else ""
        out.append(
            Condition(
                key=f"fix:{fix.fork}:{fix.cve}",
                kind="fix_overdue",
                priority=Priority.HIGH
                if fix.in_the_wild or fix.severity == "critical"
                else Priority.NORMAL,
                fork=fix.fork,
                summary=f"{fix.fork} has not shipped {fix.cve}{title}, {fix.severity}{wild}, "
                f"{age} days after upstream did (deadline {deadline.days} days)",
                figures={
                    "cve": fix.cve,
                    "title": fix.title,
                    "severity": fix.severity,
                    "days_since_upstream": age,
                    "deadline_days": deadline.days,
                    "in_the_wild": fix.in_the_wild,
                },
            )
        )
    return out


def base_age_conditions(
    releases: Iterable[ForkReleaseFacts], t: Thresholds, now: datetime
) -> list[Condition]:
    out = []
    for r in releases:
        # Chrome's rule: it needs a known Chromium base version (facts leave the time unknown
        # otherwise), and says nothing without one.
        if not r.is_newest or r.base_released_at is None or not r.base_version:
            continue
        age = (now - r.base_released_at).days
        if age > t.base_age_days:
            out.append(
                Condition(
                    key=f"base-age:{r.fork}",
                    kind="base_too_old",
                    priority=Priority.HIGH,
                    fork=r.fork,
                    summary=f"{r.fork} {r.tag} ships upstream {r.base_version}, {age} days old: "
                    "Chrome stops enforcing key pins and Certificate Transparency in "
                    f"builds older than {t.base_age_days // 7} weeks",
                    figures={"tag": r.tag, "base_version": r.base_version, "base_age_days": age},
                )
            )
    return out


def source_conditions(
    sources: Iterable[SourceFacts], t: Thresholds, now: datetime
) -> list[Condition]:
    out = []
    for s in sources:
        age = None if s.last_success_at is None else now - s.last_success_at
        if age is not None and age <= timedelta(hours=t.stale_hours):
            continue
        since = (
            "never succeeded"
            if age is None
            else f"last succeeded {int(age.total_seconds() // 3600)} hours ago"
        )
        out.append(
            Condition(
                key=f"stale:{s.name}",
                kind="source_stale",
                priority=Priority.NORMAL,
                fork=s.fork,
                summary=f"{s.name} {since}" + (f": {s.last_error[:200]}" if s.last_error else ""),
                figures={"hours": None if age is None else age.total_seconds() / 3600},
            )
        )
    return out


def new_stable_condition(version: str, cves: list[str]) -> Condition | None:
    """Informational: upstream shipped a Stable release with security fixes."""
    if not cves:
        return None
    return Condition(
        key=f"stable:{version}",
        kind="upstream_stable",
        priority=Priority.INFO,
        fork=None,
        summary=f"Upstream Stable {version} ships "
        f"{_count(len(cves), 'security fix', 'security fixes')}: "
        + ", ".join(cves[:10])
        + ("…" if len(cves) > 10 else ""),
        figures={"version": version, "cves": cves},
    )
