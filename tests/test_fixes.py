"""Fix linking: the pure rules of tracker.fixes, a generated world against its ground truth,
and the worked example CVE-2024-5497 end to end on a repository built from its real commits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.helpers import git
from tests.ingest.upstream_world import (
    CVE_2024_5497_COMMITS,
    CVE_2024_5497_ISSUE,
    build_cve_2024_5497_repo,
    ingest_history,
    ingest_recorded_data,
    make_upstream,
    real_messages,
    upstream_refs,
)
from tests.upstream.recorded import recorded_session
from tracker import fixes
from tracker.footers import parse_footers
from tracker.generator import build_world, standard_world
from tracker.ingest.bulletins import link_fixes, sync_chrome_releases
from tracker.ingest.history import ingest_upstream_history
from tracker.ingest.releases import sync_chromiumdash
from tracker.models import (
    Bulletin,
    BulletinLine,
    Evidence,
    FixCommit,
    FixRole,
    FoundBy,
    Milestone,
    Placement,
    UpstreamCommit,
    UpstreamRelease,
    Vulnerability,
    VulnerabilityBug,
    VulnerabilityFixedVersion,
    VulnerabilityRelease,
)
from tracker.versions import parse_version

T0 = datetime(2024, 5, 20, 21, 29, 9, tzinfo=UTC)
MAIN = "refs/heads/main"


# --- pure rules ------------------------------------------------------------------------------


def _facts_from_message(sha: str, message: str, when: datetime) -> fixes.CommitFacts:
    footers = parse_footers(message)
    position = footers.commit_position
    original = next((p.number for p in footers.original_positions if p.is_main), None)
    return fixes.CommitFacts(
        sha=sha,
        ref=position.ref,
        position=position.number,
        commit_time=when,
        subject=footers.subject,
        change_id=footers.change_id or "",
        cherry_picked_from=footers.cherry_picked_from,
        original_position=original,
        names_bug=CVE_2024_5497_ISSUE in footers.chromium_bug_ids,
    )


def test_real_cherry_picks_group_with_their_main_commit():
    messages = real_messages()
    commits = [
        _facts_from_message(sha, messages[sha], T0 + timedelta(days=n))
        for n, sha in enumerate(CVE_2024_5497_COMMITS.values())
    ]

    fix = fixes.group_fix_commits(commits)

    main_sha = CVE_2024_5497_COMMITS["main"]
    assert [(p.sha, p.position, p.role) for p in fix.parts] == [(main_sha, 1303471, "main")]
    assert sorted((p.branch, p.position, p.original_sha, p.role) for p in fix.picks) == [
        (6099, 2040, main_sha, "cherry_pick"),
        (6367, 1241, main_sha, "cherry_pick"),
        (6422, 1174, main_sha, "cherry_pick"),
    ]
    assert fix.landed_at == T0


def _commit(sha, ref, position, *, days=0, **kwargs):
    return fixes.CommitFacts(
        sha=sha * 40, ref=ref, position=position, commit_time=T0 + timedelta(days=days), **kwargs
    )


def test_cherry_picks_tie_by_trailer_position_or_change_id_and_reverts_are_not_fixes():
    main = _commit("a", MAIN, 100, change_id="Iaaa")
    by_trailer = _commit("b", "refs/branch-heads/10", 5, cherry_picked_from=("a" * 40,))
    by_position = _commit("c", "refs/branch-heads/11", 7, original_position=100)
    by_change_id = _commit("d", "refs/branch-heads/12", 9, change_id="Iaaa", names_bug=False)
    chained = _commit("e", "refs/branch-heads/13", 3, cherry_picked_from=("b" * 40,))
    branch_only = _commit("f", "refs/branch-heads/14", 2, change_id="Ifff")
    revert = _commit("9", MAIN, 120, subject='Revert "Fix the overflow"')
    unrelated = _commit("8", "refs/branch-heads/15", 4, change_id="Ixxx", names_bug=False)

    fix = fixes.group_fix_commits(
        [main, by_trailer, by_position, by_change_id, chained, branch_only, revert, unrelated]
    )

    assert [p.sha[0] for p in fix.parts] == ["a"]
    roles = {p.sha[0]: (p.role, p.found_by, (p.original_sha or " ")[0]) for p in fix.picks}
    assert roles == {
        "b": ("cherry_pick", "footer", "a"),
        "c": ("cherry_pick", "footer", "a"),
        "d": ("cherry_pick", "change_id", "a"),
        "e": ("cherry_pick", "footer", "a"),
        "f": ("branch", "footer", " "),
    }


def _fix(*parts, picks=()):
    return fixes.FixSet(
        parts=[
            fixes.LinkedCommit(f"{n}" * 40, MAIN, position, T0, "main", "footer")
            for n, position in enumerate(parts)
        ],
        picks=[
            fixes.LinkedCommit(
                f"p{n}".ljust(40, "0"),
                f"refs/branch-heads/{branch}",
                position,
                T0,
                "cherry_pick",
                "footer",
                original_sha=f"{part}" * 40,
            )
            for n, (part, branch, position) in enumerate(picks)
        ],
    )


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        # The bot's own rule in the CVE-2024-5497 thread: main@{#1303471} is after M125's
        # branch point 1287751, so M125 has it only through the cherry-pick 6422@{#1174}.
        (fixes.ReleasePoint("refs/branch-heads/6422", 1182, 1287751), True),
        (fixes.ReleasePoint("refs/branch-heads/6422", 1174, 1287751), True),
        (fixes.ReleasePoint("refs/branch-heads/6422", 1155, 1287751), False),
        # M127 was cut at 1313161 >= 1303471: there by the branch point, no pick needed.
        (fixes.ReleasePoint("refs/branch-heads/6533", 5, 1313161), True),
        # M126 (cut at 1300313) has no cherry-pick in this fix set.
        (fixes.ReleasePoint("refs/branch-heads/6478", 900, 1300313), False),
        (fixes.ReleasePoint(MAIN, 1304100), True),
        (fixes.ReleasePoint(MAIN, 1303471), True),
        (fixes.ReleasePoint(MAIN, 1303470), False),
        # Without a branch point, a missing pick cannot be told from an unknown one.
        (fixes.ReleasePoint("refs/branch-heads/6478", 900, None), None),
    ],
)
def test_contains_by_positions_follows_the_branch_point_rule(point, expected):
    fix = _fix(1303471, picks=[(0, 6422, 1174)])

    assert fixes.contains_by_positions(fix, point) is expected


def test_a_two_part_fix_needs_both_parts():
    fix = _fix(100, 120, picks=[(0, 7, 3)])  # part 1 was never picked to branch 7

    assert fixes.contains_by_positions(fix, fixes.ReleasePoint(MAIN, 110)) is False
    assert fixes.contains_by_positions(fix, fixes.ReleasePoint(MAIN, 120)) is True
    assert fixes.contains_by_positions(fix, fixes.ReleasePoint("refs/branch-heads/7", 9, 90)) is (
        False
    )
    assert fixes.contains_by_positions(fix, fixes.ReleasePoint("refs/branch-heads/8", 1, 130)) is (
        True
    )


def _release(version, *, point=None, branch_point=None, commit="c" * 40, channel="stable"):
    return fixes.ReleaseFacts(
        key=version,
        version=parse_version(version),
        channel=channel,
        platform="windows",
        time=T0,
        commit=commit,
        point=point,
        branch_point=branch_point,
    )


def test_place_release_prefers_positions_then_branch_point_then_ancestry():
    fix = _fix(1303471, picks=[(0, 6422, 1174)])
    asked = []

    def is_ancestor(ancestor, descendant):
        asked.append((ancestor[:2], descendant[:2]))
        return ancestor == fix.picks[0].sha

    known = _release("125.0.6422.141", point=fixes.ReleasePoint("refs/branch-heads/6422", 1182))
    cut_after = _release("127.0.6533.17", branch_point=1313161)
    unknown = _release("125.0.6422.141", branch_point=1287751)

    assert fixes.place_release(fix, known, is_ancestor=is_ancestor) == (True, fixes.BRANCH_POINT)
    assert fixes.place_release(fix, cut_after, is_ancestor=is_ancestor) == (
        True,
        fixes.BRANCH_POINT,
    )
    assert asked == []
    assert fixes.place_release(fix, unknown, is_ancestor=is_ancestor) == (True, fixes.ANCESTRY)
    assert asked == [("00", "cc"), ("p0", "cc")]
    assert fixes.place_release(fix, unknown) is None


def test_a_fix_without_commits_is_placed_by_the_bulletin_version():
    fixed = fixes.fixed_versions(["122.0.6209.39", "122.0.6209.40", "unknown_version"])

    def place(version):
        return fixes.place_release(fixes.FixSet(), _release(version), fixed_by_version=fixed)

    assert place("122.0.6209.39") == (True, fixes.VERSION)
    assert place("122.0.6209.46") == (True, fixes.VERSION)
    assert place("122.0.6209.31") == (False, fixes.VERSION)
    assert place("123.0.6264.46") is None  # nothing is known about other branches
    assert fixes.place_release(fixes.FixSet(), _release("122.0.6209.39")) is None


def test_first_releases_and_first_fixed_versions():
    def at(version, hours, channel="stable"):
        release = _release(version, channel=channel)
        return fixes.ReleaseFacts(**{**release.__dict__, "time": T0 + timedelta(hours=hours)})

    releases = [
        at("125.0.6422.112", 1),
        at("124.0.6367.216", 2, "extended"),
        at("125.0.6422.141", 3),
        at("124.0.6367.233", 4, "extended"),
        at("125.0.6422.142", 5),
    ]
    contains = {"125.0.6422.141", "125.0.6422.142", "124.0.6367.233"}

    def decide(release):
        return (str(release.version) in contains, fixes.BRANCH_POINT)

    index = fixes.ReleaseIndex(reversed(releases))
    firsts = fixes.first_releases(index, decide)
    per_milestone = fixes.first_fixed_per_milestone(index, decide)
    later = fixes.first_releases(index, decide, not_before=T0 + timedelta(hours=4))

    assert {key: str(r.version) for key, (r, _how) in firsts.items()} == {
        ("stable", "windows"): "125.0.6422.141",
        ("extended", "windows"): "124.0.6367.233",
    }
    assert {m: str(v) for m, (v, _how) in per_milestone.items()} == {
        124: "124.0.6367.233",
        125: "125.0.6422.141",
    }
    assert {key: str(r.version) for key, (r, _how) in later.items()} == {
        ("stable", "windows"): "125.0.6422.142",
        ("extended", "windows"): "124.0.6367.233",
    }


def test_upstream_gap_days():
    shipped = datetime(2024, 5, 30, 21, 0, tzinfo=UTC)

    assert fixes.upstream_gap_days(T0, shipped) == pytest.approx(9.98, abs=0.01)
    assert fixes.upstream_gap_days(None, shipped) is None
    assert fixes.upstream_gap_days(T0, None) is None


# --- a generated world against its ground truth ------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixes-world") / "w"
    truth = build_world(standard_world(seed=7), out)
    return out, truth


def _dt(text):
    return datetime.fromisoformat(text) if text else None


def _linked_world(world, *, git_dir=None):
    out, truth = world
    upstream = make_upstream(out / "upstream.git")
    ingest_history(upstream, out / "upstream.git")
    ingest_recorded_data(upstream, out, _dt(truth["now"]))
    link_fixes(upstream, git_dir=git_dir)
    return upstream, truth


def _assert_matches_truth(upstream, truth):
    assert Vulnerability.objects.filter(upstream=upstream).count() == len(truth["vulnerabilities"])
    for expected in truth["vulnerabilities"]:
        vuln = Vulnerability.objects.get(upstream=upstream, cve=expected["cve"])
        assert sorted(vuln.bugs.values_list("bug_id", flat=True)) == sorted(expected["bug_ids"])
        assert vuln.severity == expected["severity"].lower()
        assert (vuln.title, vuln.component) == (expected["title"], expected["component"])
        assert vuln.in_the_wild is expected["in_the_wild"]
        assert vuln.first_bulletin.url == expected["bulletin_url"]
        assert vuln.first_stable_version == expected["first_stable_version"]
        assert vuln.first_stable_at == _dt(expected["first_stable_time"])
        stable = VulnerabilityRelease.objects.filter(vulnerability=vuln, channel="stable")
        assert {(r.platform, r.release.version) for r in stable} == {
            (platform, expected["first_stable_version"]) for platform in ("windows", "mac", "linux")
        }
        fixed = {row.milestone: row for row in vuln.fixed_versions.all()}

        if expected["kind"] == "dependency_roll":
            # No commit names the bug of a V8 roll: placed by the bulletin's version, and the
            # record says so. Its landing (and so its gap) cannot be known from Chromium.
            assert vuln.placement == Placement.VERSION
            assert not vuln.fix_commits.exists()
            assert vuln.landed_at is None and vuln.upstream_gap_days is None
            assert {r.how for r in stable} == {Evidence.VERSION}
            assert fixed
            for milestone, row in fixed.items():
                assert row.how == Evidence.VERSION
                assert expected["first_fixed"][str(milestone)] == row.version
            continue

        assert vuln.placement == Placement.COMMITS
        mains = vuln.fix_commits.filter(role=FixRole.MAIN).order_by("position")
        assert [(c.sha, c.position, c.change_id, c.landed_at) for c in mains] == [
            (c["sha"], c["position"], c["change_id"], _dt(c["time"]))
            for c in expected["fix_commits"]
        ]
        part_sha = [c["sha"] for c in expected["fix_commits"]]
        picks = vuln.fix_commits.filter(role=FixRole.CHERRY_PICK).select_related("original")
        assert sorted((p.branch, p.sha, p.position, p.original.sha) for p in picks) == sorted(
            (p["branch"], p["sha"], p["branch_position"], part_sha[p["part"]])
            for p in expected["cherry_picks"]
        )
        assert all(p.landed_at == _dt(e["time"]) for p, e in _paired(picks, expected))
        assert vuln.landed_at == _dt(expected["landed"])
        assert {m: row.version for m, row in fixed.items()} == {
            int(m): v for m, v in expected["first_fixed"].items()
        }
        assert vuln.upstream_gap_days == pytest.approx(expected["upstream_gap_days"], abs=0.001)


def _paired(picks, expected):
    by_sha = {p["sha"]: p for p in expected["cherry_picks"]}
    return [(pick, by_sha[pick.sha]) for pick in picks]


@pytest.mark.django_db
def test_linking_a_generated_world_matches_its_ground_truth(world):
    upstream, truth = _linked_world(world)

    _assert_matches_truth(upstream, truth)
    kinds = {v["kind"] for v in truth["vulnerabilities"]}
    assert kinds == {"chromium", "dependency_roll"}
    assert any(len(v["fix_commits"]) > 1 for v in truth["vulnerabilities"])
    assert any(len(v["bug_ids"]) > 1 for v in truth["vulnerabilities"])
    # Positions decided everything: every release commit is in the ingested history.
    assert set(
        VulnerabilityRelease.objects.exclude(how=Evidence.VERSION).values_list("how", flat=True)
    ) == {Evidence.BRANCH_POINT}


def _snapshot():
    models = (
        Bulletin,
        BulletinLine,
        Milestone,
        UpstreamRelease,
        Vulnerability,
        VulnerabilityBug,
        FixCommit,
        VulnerabilityRelease,
        VulnerabilityFixedVersion,
    )
    return {model.__name__: sorted(map(repr, model.objects.values())) for model in models}


@pytest.mark.django_db
def test_ingesting_and_linking_twice_changes_nothing(world):
    upstream, truth = _linked_world(world)
    before = _snapshot()

    out, _ = world
    ingest_recorded_data(upstream, out, _dt(truth["now"]) + timedelta(hours=1))
    stats = link_fixes(upstream)

    assert stats.rows_changed == 0
    assert _snapshot() == before


@pytest.mark.django_db
def test_linking_again_takes_a_few_queries_whatever_the_number_of_fixes(
    world, django_assert_max_num_queries
):
    upstream, _truth = _linked_world(world)

    # Reads are batched (not one query per vulnerability) and unchanged rows are not written.
    with django_assert_max_num_queries(25):
        link_fixes(upstream)


@pytest.mark.django_db
def test_releases_whose_commit_is_not_ingested_are_placed_by_git_ancestry(world):
    out, truth = world
    upstream = make_upstream(out / "upstream.git")
    ingest_history(upstream, out / "upstream.git")
    ingest_recorded_data(upstream, out, _dt(truth["now"]))
    # The release commits (the version tags) are unknown, as when tags were never ingested.
    tagged = set(UpstreamRelease.objects.values_list("chromium_commit", flat=True))
    UpstreamCommit.objects.filter(sha__in=tagged).delete()

    link_fixes(upstream, git_dir=out / "upstream.git")

    _assert_matches_truth(upstream, truth)
    hows = set(VulnerabilityRelease.objects.values_list("how", flat=True))
    assert Evidence.ANCESTRY in hows
    assert Evidence.BRANCH_POINT in hows  # where the branch point alone settles it, no git


@pytest.mark.django_db
def test_without_positions_or_git_a_release_is_left_undecided(world):
    out, truth = world
    upstream = make_upstream(out / "upstream.git")
    ingest_history(upstream, out / "upstream.git")
    ingest_recorded_data(upstream, out, _dt(truth["now"]))
    tagged = set(UpstreamRelease.objects.values_list("chromium_commit", flat=True))
    UpstreamCommit.objects.filter(sha__in=tagged).delete()

    link_fixes(upstream)

    # A fix shipped only through a cherry-pick cannot be placed on its branch without the
    # release commit's position or ancestry; it is not guessed.
    cve = next(v for v in truth["vulnerabilities"] if v["first_stable_version"] == "120.0.6099.31")[
        "cve"
    ]
    vuln = Vulnerability.objects.get(upstream=upstream, cve=cve)
    assert vuln.first_stable_version != "120.0.6099.31"
    assert not VulnerabilityRelease.objects.filter(how=Evidence.ANCESTRY).exists()


# --- the worked example: CVE-2024-5497 ---------------------------------------------------------

DASH = "https://chromiumdash.test"
FEED = "https://chromereleases.test/feeds/posts/default"


def _queue_dash(transport, name="cve-2024-5497"):
    transport.add_file(f"{DASH}/fetch_milestones", f"{name}/dash.fetch_milestones.http")
    transport.add_file(
        f"{DASH}/fetch_milestone_schedule",
        f"{name}/dash.fetch_milestone_schedule.mstone-125.http",
        params={"mstone": 125},
    )
    for channel in ("Stable", "Extended", "Canary"):
        transport.add_file(
            f"{DASH}/fetch_releases",
            f"{name}/dash.fetch_releases.{channel}-Windows.http",
            params={"channel": channel, "platform": "Windows"},
        )


@pytest.mark.django_db
def test_cve_2024_5497_end_to_end(tmp_path):
    repo = tmp_path / "chromium.git"
    shas = build_cve_2024_5497_repo(repo)
    # The recorded Dash answers name the version commits of this repository; the builder is
    # deterministic, so they stay the same.
    assert shas["125.0.6422.141"] == "0daa3dd133bc6ed45bc63b2417fa1dffbc23d954"
    assert (
        git(repo, "rev-parse", "refs/tags/125.0.6422.141^{commit}").strip()
        == (shas["125.0.6422.141"])
    )
    upstream = make_upstream(repo)
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

    ingest_upstream_history(upstream, repo, upstream_refs(repo))
    recorded = recorded_session()
    _queue_dash(recorded.transport)
    sync_chromiumdash(
        now=now,
        session=recorded.session,
        base_url=DASH,
        channels=("Stable", "Extended", "Canary"),
        platforms=("Windows",),
    )
    recorded.transport.add_file(FEED, "cve-2024-5497/blog.feed.http")
    sync_chrome_releases(now=now, session=recorded.session, feed_url=FEED)
    link_fixes(upstream, git_dir=repo)
    assert recorded.transport.pending == []

    vuln = Vulnerability.objects.get(upstream=upstream, cve="CVE-2024-5497")
    assert (vuln.severity, vuln.title) == ("high", "Out of bounds memory access in Keyboard Inputs")
    assert vuln.reporter == "zh1x1an1221 of Ant Group Tianqiong Security Lab"
    assert vuln.report_date == date(2024, 5, 7)
    assert list(vuln.bugs.values_list("bug_id", flat=True)) == [CVE_2024_5497_ISSUE]
    assert vuln.first_bulletin.url == (
        "https://chromereleases.googleblog.com/2024/05/stable-channel-update-for-desktop_30.html"
    )

    # Landing on main, and the cherry-picks to the three release branches grouped with it.
    assert vuln.placement == Placement.COMMITS
    assert vuln.landed_at == datetime(2024, 5, 20, 21, 29, 9, tzinfo=UTC)
    main = vuln.fix_commits.get(role=FixRole.MAIN)
    assert (main.sha, main.ref, main.position) == (shas["main"], MAIN, 1303471)
    assert main.change_id == "I0c0b66fc93ddcbe57b42646126a1f2ca651b2df2"
    picks = vuln.fix_commits.filter(role=FixRole.CHERRY_PICK).order_by("branch")
    assert [(p.sha, p.branch, p.position, p.original_id, p.found_by) for p in picks] == [
        (shas["6099"], 6099, 2040, main.pk, FoundBy.FOOTER),
        (shas["6367"], 6367, 1241, main.pk, FoundBy.FOOTER),
        (shas["6422"], 6422, 1174, main.pk, FoundBy.FOOTER),
    ]
    assert [p.landed_at.isoformat() for p in picks] == [
        "2024-07-09T15:13:40+00:00",
        "2024-05-28T13:43:24+00:00",
        "2024-05-28T18:26:47+00:00",
    ]

    # The shipping release and its date, and about ten days of upstream gap.
    assert vuln.first_stable_version == "125.0.6422.141"
    assert vuln.first_stable_at == datetime(2024, 5, 30, 21, 0, tzinfo=UTC)
    assert vuln.first_stable_at.date() == date(2024, 5, 30)
    assert vuln.upstream_gap_days == pytest.approx(9.98, abs=0.01)
    assert round(vuln.upstream_gap_days) == 10
    firsts = {
        (r.channel, r.platform): (r.release.version, r.how)
        for r in VulnerabilityRelease.objects.filter(vulnerability=vuln).select_related("release")
    }
    assert firsts == {
        ("stable", "windows"): ("125.0.6422.141", Evidence.BRANCH_POINT),
        ("extended", "windows"): ("124.0.6367.233", Evidence.BRANCH_POINT),
        ("canary", "windows"): ("127.0.6509.0", Evidence.BRANCH_POINT),
    }
    assert {row.milestone: row.version for row in vuln.fixed_versions.all()} == {
        124: "124.0.6367.233",
        125: "125.0.6422.141",
        127: "127.0.6509.0",
    }
    m125 = Milestone.objects.get(upstream=upstream, milestone=125)
    assert (m125.branch, m125.branch_position, m125.stable_date) == (
        6422,
        1287751,
        date(2024, 5, 14),
    )
