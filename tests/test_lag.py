"""Pure lag arithmetic."""

from datetime import UTC, datetime, timedelta

from tracker.lag import days_behind, milestones_behind
from tracker.versions import ChromiumVersion

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_days_behind_counts_whole_days_and_is_zero_when_current():
    assert days_behind(None, NOW) == 0
    assert days_behind(NOW - timedelta(hours=23), NOW) == 0
    assert days_behind(NOW - timedelta(days=9, hours=1), NOW) == 9
    assert days_behind(NOW + timedelta(days=1), NOW) == 0  # clock skew never goes negative


def test_milestones_behind():
    base = ChromiumVersion(123, 0, 6264, 54)
    assert milestones_behind(base, ChromiumVersion(125, 0, 6374, 0)) == 2
    assert milestones_behind(base, ChromiumVersion(123, 0, 6264, 60)) == 0
    assert milestones_behind(ChromiumVersion(126, 0, 1, 0), base) == 0
    assert milestones_behind(None, base) == 0
