"""Patch gap figures: the pure rules, and every figure of a generated world's forks against
its ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.forksecurity_world import FORKS, fork_truth, setup_world, when
from tracker.forksecurity import fork_gap_report, triage
from tracker.gap import (
    FixFacts,
    ShippedRelease,
    by_release,
    count_open,
    fork_gaps,
    open_fixes,
    percentile,
)
from tracker.generator import build_world, standard_world
from tracker.models import Vulnerability

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(standard_world(seed=7), tmp_path_factory.mktemp("gap") / "world")


def _days(n: float) -> datetime:
    return T0 + timedelta(days=n)


def test_percentiles_interpolate_between_closest_ranks():
    assert percentile([], 50) is None
    assert percentile([4.0], 90) == 4.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(range(11), 90) == pytest.approx(9.0)


def test_a_fork_that_ships_before_upstream_stable_gets_a_negative_gap():
    fixes = [FixFacts("CVE-1", "high", _days(0), _days(10), 10.0)]
    releases = [
        ShippedRelease("v2", _days(20), frozenset({"CVE-1"})),
        ShippedRelease("v1", _days(4), frozenset({"CVE-1"})),
    ]
    gaps = fork_gaps(fixes, releases, now=NOW)
    (gap,) = gaps.fixes
    assert (gap.release, gap.days_from_landing, gap.days_from_stable) == ("v1", 4.0, -6.0)
    assert gaps.by_severity["high"].median_from_stable == -6.0
    assert gaps.by_month["2026-03"].upstream_median == 10.0


def test_open_fixes_age_from_first_stable_or_landing_and_triaged_ones_are_left_out():
    fixes = [
        FixFacts("CVE-1", "high", _days(0), _days(10), 10.0),
        FixFacts("CVE-2", "low", _days(30), None, None),
        FixFacts("CVE-3", "low", _days(30), None, None),
    ]
    gaps = fork_gaps(
        fixes, [ShippedRelease("v1", _days(4), frozenset())], now=NOW, triaged={"CVE-3"}
    )
    assert [(o.cve, o.age_days) for o in gaps.open] == [
        ("CVE-1", (NOW - _days(10)).days),
        ("CVE-2", (NOW - _days(30)).days),
    ]
    assert gaps.fixes == [] and gaps.overall.count == 0 and gaps.overall.median_from_stable is None


def test_open_counts_by_severity_with_the_oldest_age():
    counts = count_open(
        [("high", _days(10)), ("critical", _days(0)), ("high", None), ("low", _days(31))], NOW
    )
    assert counts.by_severity == {"critical": 1, "high": 2, "medium": 0, "low": 1}
    assert counts.total == 4
    assert counts.oldest_days == (NOW - _days(0)).days  # a fix of unknown age is counted only
    nothing = count_open([], NOW)
    assert nothing.total == 0 and nothing.oldest_days is None
    assert count_open([("high", None)], NOW).oldest_days is None


def _expected(world, slug, now):
    """Per CVE: (first release tag, days from landing, days from stable) from the truth, or
    ("open", age) when no release carries it."""
    vulns = {v["cve"]: v for v in world["vulnerabilities"]}
    releases = sorted(
        fork_truth(world, slug)["releases"], key=lambda r: (when(r["time"]), r["tag"])
    )
    expected = {}
    for cve, v in vulns.items():
        first = next((r for r in releases if r["fixes"][cve]["status"] != "open"), None)
        if first is None:
            since = when(v["first_stable_time"]) or when(v["landed"])
            expected[cve] = ("open", (now - since).total_seconds() / 86400)
            continue
        shipped = when(first["time"])
        # A dependency roll lands when its copy lands on main.
        landed = when(v["landed"])
        expected[cve] = (
            first["tag"],
            (shipped - landed).total_seconds() / 86400 if landed else None,
            (shipped - when(v["first_stable_time"])).total_seconds() / 86400,
        )
    return expected


@pytest.mark.django_db
def test_every_gap_figure_matches_the_ground_truth(world, settings, tmp_path):
    upstream, forks, now = setup_world(world, settings, tmp_path)
    vulns = {v["cve"]: v for v in world["vulnerabilities"]}
    negative = 0
    for slug in FORKS:
        report = fork_gap_report(forks[slug], now)
        expected = _expected(world, slug, now)
        got = {g.cve: (g.release, g.days_from_landing, g.days_from_stable) for g in report.fixes}
        got.update({o.cve: ("open", o.age_days) for o in report.open})
        assert got.keys() == expected.keys(), slug
        for cve, figures in expected.items():
            assert got[cve] == pytest.approx(figures), (slug, cve)
        for gap in report.fixes:
            assert gap.upstream_gap_days == pytest.approx(
                vulns[gap.cve]["upstream_gap_days"], abs=1e-3
            )
            negative += gap.days_from_stable < 0
        # Summaries by severity and by month cover every shipped fix once.
        assert sum(s.count for s in report.by_severity.values()) == len(report.fixes)
        assert sum(s.count for s in report.by_month.values()) == len(report.fixes)
        for severity, summary in report.by_severity.items():
            series = [expected[g.cve][2] for g in report.fixes if g.severity == severity]
            assert summary.median_from_stable == pytest.approx(percentile(series, 50))
            assert summary.p90_from_stable == pytest.approx(percentile(series, 90))
            reference = [
                vulns[g.cve]["upstream_gap_days"] for g in report.fixes if g.severity == severity
            ]
            assert summary.upstream_p90 == pytest.approx(percentile(reference, 90), abs=1e-3)
    print("NEGATIVE", negative)

    # A triaged fix leaves the open list.
    lumen = forks["lumen"]
    report = fork_gap_report(lumen, now)
    cve = report.open[0].cve
    vuln = Vulnerability.objects.get(upstream=upstream, cve=cve)
    triage(lumen, vuln, "will_not_fix", "Component removed in our build.", now=now)
    assert cve not in {o.cve for o in fork_gap_report(lumen, now).open}


def test_patch_gap_per_release_against_upstreams_gap_for_the_same_fixes():
    fixes = [
        FixFacts("CVE-1", "high", _days(0), _days(10), 10.0),
        FixFacts("CVE-2", "low", _days(2), _days(14), 12.0),
        FixFacts("CVE-3", "low", _days(20), _days(24), 4.0),
        FixFacts("CVE-4", "low", _days(21), None, None),
    ]
    releases = [
        ShippedRelease("v2", _days(30), frozenset({"CVE-1", "CVE-2", "CVE-3"})),
        ShippedRelease("v1", _days(12), frozenset({"CVE-1", "CVE-2"})),
    ]
    rows = by_release(fork_gaps(fixes, releases, now=NOW))
    assert [(tag, shipped) for tag, shipped, _s in rows] == [("v1", _days(12)), ("v2", _days(30))]
    v1, v2 = rows[0][2], rows[1][2]
    assert (v1.count, v1.median_from_landing, v1.upstream_median) == (2, 11.0, 11.0)
    assert (v2.count, v2.median_from_landing, v2.upstream_median) == (1, 10.0, 4.0)


def test_open_fixes_are_listed_oldest_first_with_their_ages():
    listed = open_fixes(
        [("CVE-1", "high", _days(10)), ("CVE-2", "low", None), ("CVE-3", "critical", _days(0))],
        NOW,
    )
    assert [(o.cve, o.age_days) for o in listed] == [
        ("CVE-3", (NOW - _days(0)).days),
        ("CVE-1", (NOW - _days(10)).days),
        ("CVE-2", None),
    ]
