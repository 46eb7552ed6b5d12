"""Alert rules across their thresholds and back."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tracker.alerts.rules import (
    BranchFacts,
    ForkReleaseFacts,
    OpenFix,
    Priority,
    SourceFacts,
    Thresholds,
    base_age_conditions,
    fix_conditions,
    lag_conditions,
    new_stable_condition,
    source_conditions,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
T = Thresholds()


def _branch(**kw):
    values = {
        "fork": "acme",
        "branch": "main",
        "days_behind": 0,
        "milestones_behind_stable": 0,
        "conflicting_patches": 0,
        "previous_conflicting_patches": None,
        "patches_upstreamed": 0,
    }
    return BranchFacts(**{**values, **kw})


@pytest.mark.parametrize(
    ("days", "milestones", "fires"),
    [(7, 0, False), (8, 0, True), (0, 2, False), (0, 3, True), (0, 0, False)],
)
def test_rebase_lag_fires_past_either_limit(days, milestones, fires):
    found = [
        c
        for c in lag_conditions([_branch(days_behind=days, milestones_behind_stable=milestones)], T)
        if c.kind == "rebase_lag"
    ]
    assert bool(found) == fires
    if fires:
        assert found[0].key == "lag:acme:main"  # the same key run after run: one alert


def test_conflicts_rising_upstreamed_patches_and_unsupported_milestones():
    kinds = {
        c.kind: c
        for c in lag_conditions(
            [
                _branch(
                    branch="release/120",
                    conflicting_patches=3,
                    previous_conflicting_patches=1,
                    patches_upstreamed=2,
                    milestone=120,
                    milestone_supported=False,
                )
            ],
            T,
        )
    }
    assert set(kinds) == {"conflicts_rising", "patches_upstreamed", "milestone_unsupported"}
    assert kinds["milestone_unsupported"].priority == Priority.HIGH
    steady = lag_conditions([_branch(conflicting_patches=3, previous_conflicting_patches=3)], T)
    assert not steady


@pytest.mark.parametrize(
    ("severity", "wild", "days", "fires"),
    [
        ("high", False, 30, False),
        ("high", False, 31, True),
        ("critical", False, 16, True),
        ("critical", False, 15, False),
        ("medium", False, 61, True),
        ("low", False, 400, False),
        ("medium", True, 4, True),
        ("medium", True, 3, False),
    ],
)
def test_fix_deadlines_by_severity_and_in_the_wild(severity, wild, days, fires):
    # Upstream shipped it `days` days ago, less an hour: day 30 of 30 is not overdue yet.
    fix = OpenFix("acme", "CVE-2026-1", severity, wild, NOW - timedelta(days=days, hours=-1))
    found = fix_conditions([fix], T, NOW)
    assert bool(found) == fires
    if fires and (wild or severity == "critical"):
        assert found[0].priority == Priority.HIGH


def test_fix_without_an_upstream_stable_release_has_no_deadline_yet():
    assert fix_conditions([OpenFix("acme", "CVE-2026-1", "critical", True, None)], T, NOW) == []


def test_base_older_than_ten_weeks_on_the_newest_release_only():
    old = NOW - timedelta(days=71)
    assert base_age_conditions([ForkReleaseFacts("acme", "v1", "120.0.1.2", old, True)], T, NOW)
    assert not base_age_conditions(
        [ForkReleaseFacts("acme", "v0", "120.0.1.2", old, False)], T, NOW
    )
    recent = NOW - timedelta(days=69)
    assert not base_age_conditions(
        [ForkReleaseFacts("acme", "v1", "125.0.1.2", recent, True)], T, NOW
    )


def test_stale_sources_and_the_informational_stable_release():
    fresh = SourceFacts("chromiumdash", None, NOW - timedelta(hours=2), "")
    stale = SourceFacts("fork:acme", "acme", NOW - timedelta(hours=30), "fetch failed")
    never = SourceFacts("chrome_releases", None, None, "")
    found = {c.key for c in source_conditions([fresh, stale, never], T, NOW)}
    assert found == {"stale:fork:acme", "stale:chrome_releases"}
    assert new_stable_condition("125.0.6422.141", []) is None
    assert new_stable_condition("125.0.6422.141", ["CVE-2024-5497"]).priority == Priority.INFO


def test_without_a_milestone_figure_only_the_days_count_and_the_summary_names_none():
    assert not lag_conditions([_branch(days_behind=3, milestones_behind_stable=None)], T)
    (found,) = lag_conditions([_branch(days_behind=8, milestones_behind_stable=None)], T)
    assert found.summary == "acme:main is 8 days behind upstream (limit 7 days)"
    assert found.figures == {"days_behind": 8, "milestones_behind": None}


def test_base_age_needs_a_base_version():
    old = NOW - timedelta(days=200)
    release = ForkReleaseFacts("acme", "v1", "", old, is_newest=True)
    assert not base_age_conditions([release], T, NOW)
    assert base_age_conditions([replace(release, base_version="120.0.6099.1")], T, NOW)
