"""Pure lag arithmetic, and when a branch last moved onto its base in every fork shape."""

from datetime import UTC, datetime, timedelta

from tests.helpers import git, is_ancestor
from tracker.lag import (
    base_move_time,
    days_behind,
    lag_status,
    merge_base,
    milestones_behind,
    rev_parse,
    worst_status,
)
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


def test_first_parent_distance_from_positions():
    from tracker.footers import Position
    from tracker.lag import first_parent_distance

    main = "refs/heads/main"
    assert first_parent_distance(Position(main, 100), Position(main, 130), None) == 30
    branch = Position("refs/branch-heads/6422", 12)
    # 12 branch commits above the branch point at 120, plus 20 main commits above the base.
    assert first_parent_distance(Position(main, 100), branch, Position(main, 120)) == 32
    assert first_parent_distance(Position("refs/branch-heads/6422", 5), branch, None) == 7
    assert first_parent_distance(Position(main, 130), branch, Position(main, 120)) is None
    assert first_parent_distance(None, branch, None) is None
    assert first_parent_distance(Position("refs/heads/master", 1), Position(main, 9), None) is None


def test_versions_behind_counts_releases_on_the_followed_line():
    from tracker.lag import VersionTags, line_build

    tags = VersionTags(
        tuple(
            ChromiumVersion(*v)
            for v in [
                (124, 0, 6367, 0),
                (125, 0, 6422, 0),
                (125, 0, 6422, 60),
                (125, 0, 6422, 76),
                (125, 0, 6422, 112),
                (126, 0, 6478, 0),
                (124, 0, 6367, 201),
            ]
        )
    )
    base = ChromiumVersion(125, 0, 6422, 60)
    tip = ChromiumVersion(125, 0, 6422, 112)
    assert tags.behind(6422, base, tip) == 2
    assert (
        tags.behind(None, ChromiumVersion(124, 0, 6367, 0), ChromiumVersion(126, 0, 6478, 0)) == 2
    )
    assert tags.behind(6422, None, tip) == 0
    assert line_build("refs/branch-heads/6422") == 6422
    assert line_build("refs/heads/main") is None and line_build("refs/branch-heads/x") is None


def test_a_forks_status_is_its_most_urgent_branch_status():
    assert lag_status(0, 0) == "current" and lag_status(3, 1) == "behind"
    assert lag_status(8, 0) == "overdue" and lag_status(1, 3) == "overdue"
    assert worst_status(["current", "overdue", "behind"]) == "overdue"
    assert worst_status(["current", "behind"]) == "behind"
    assert worst_status([]) is None


def test_base_move_follows_the_base_wherever_it_enters(shapes_world):
    """The oldest first-parent commit that contains the base, found with plain git, is when
    the branch moved; in a pull-request sync the base is not a parent of that commit."""
    repo = shapes_world["upstream"]["path"]
    through_a_merged_branch = 0
    for fork in shapes_world["forks"]:
        for branch in fork["branches"]:
            label = f"{fork['slug']}:{branch['name']}"
            tip = branch["tip"]
            base = merge_base(repo, tip, rev_parse(repo, branch["upstream_ref"]))
            moved = base_move_time(repo, tip, base)
            assert moved is not None and moved.isoformat() == branch["last_base_move"], label
            line = git(repo, "rev-list", "--first-parent", tip, f"^{base}").split()
            entered = [c for c in line if is_ancestor(repo, base, c)][-1]
            when = int(git(repo, "log", "-1", "--format=%ct", entered))
            assert moved == datetime.fromtimestamp(when, UTC), label
            parents = git(repo, "log", "-1", "--format=%P", entered).split()
            through_a_merged_branch += base not in parents
    assert through_a_merged_branch >= 3  # sentry's main, mergeco's main and release branch
