import pytest
from django.urls import reverse

from tracker.models import (
    Fork,
    ForkRelease,
    ForkSecuritySnapshot,
    SourceState,
    TrackedBranch,
    Upstream,
    UpstreamRelease,
)


@pytest.mark.django_db
def test_overview_requires_login(client):
    response = client.get(reverse("overview"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_overview_lists_forks_branches_and_upstream_from_the_database(staff_client):
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = Fork.objects.create(
        upstream=upstream, slug="acme", name="Acme <b>Browser</b>", git_url="/y"
    )
    TrackedBranch.objects.create(
        fork=fork, name="release/125", upstream_ref="refs/branch-heads/6422"
    )
    response = staff_client.get(reverse("overview"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Acme &lt;b&gt;Browser&lt;/b&gt;" in body
    assert "release/125" in body and "refs/branch-heads/6422" in body
    assert "Chromium" in body


@pytest.mark.django_db
def test_healthz_needs_no_login(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def _fork_with_snapshot(upstream, n):
    from datetime import UTC, datetime

    from tracker.models import BranchSnapshot

    fork = Fork.objects.create(upstream=upstream, slug=f"f{n}", name=f"Fork {n}", git_url="/y")
    for name in ("main", "release/125"):
        branch = TrackedBranch.objects.create(fork=fork, name=name)
        for day in (1, 2):
            BranchSnapshot.objects.create(
                branch=branch,
                taken_at=datetime(2026, 5, day, tzinfo=UTC),
                tip_sha="a" * 40,
                tip_time=datetime(2026, 5, 1, tzinfo=UTC),
                upstream_tip_sha="b" * 40,
                base_version="125.0.6422.60",
                commits_behind=100 * day + n,
                commits_behind_first_parent=100 * day + n,
                days_behind=7 * day,
                versions_behind=day,
                milestones_behind=day,
                commits_behind_at_tip=0,
                days_behind_at_tip=0,
                versions_behind_at_tip=0,
                milestones_behind_at_tip=0,
                patch_count=10 + n,
                patches_upstreamed=1,
            )
    ForkRelease.objects.create(
        fork=fork,
        tag=f"v{n}.0",
        source="tag",
        tagged_at=datetime(2026, 4, 20, tzinfo=UTC),
        base_version="124.0.6367.91",
        base_major=124,
        patch_level_version="124.0.6367.60",
    )
    for day, high in ((1, 5), (2, n)):
        ForkSecuritySnapshot.objects.create(
            fork=fork,
            taken_at=datetime(2026, 5, day, tzinfo=UTC),
            release_tag=f"v{n}.0",
            open_critical=1,
            open_high=high,
            oldest_open_days=40.0 + day,
        )
    return fork


def _stable(upstream, version, major):
    from datetime import UTC, datetime

    UpstreamRelease.objects.create(
        upstream=upstream,
        version=version,
        major=major,
        minor=0,
        build=int(version.split(".")[2]),
        patch=int(version.split(".")[3]),
        channel="stable",
        platform="linux",
        milestone=major,
        time=datetime(2026, 4, 1, tzinfo=UTC),
    )


@pytest.mark.django_db
def test_overview_shows_the_latest_figures_in_constant_queries(
    staff_client, django_assert_num_queries
):
    from tracker.models import Vulnerability

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    _stable(upstream, "126.0.6478.61", 126)
    _stable(upstream, "125.0.6422.141", 125)
    Vulnerability.objects.create(upstream=upstream, cve="CVE-2026-0001", severity="critical")
    _fork_with_snapshot(upstream, 1)
    _fork_with_snapshot(upstream, 2)
    # user (the session comes from the cache), upstreams (running syncs), forks (with
    # upstream Stable), branches, snapshots, security snapshots, newest releases, then the
    # sources' freshness: source states, mirrors, forks.
    with django_assert_num_queries(10) as two:
        body = staff_client.get(reverse("overview")).content.decode()
    assert ">201</td>" in body and ">14</td>" in body  # the newest snapshot's figures
    assert ">101</td>" not in body
    assert "overdue" in body  # 14 days behind: the status is in words, not colour alone
    assert 'status status-overdue">overdue</span></h2>' in body  # the fork's, from its branches
    # The newest security snapshot: its counts by severity with words, the oldest's age.
    assert "1 critical" in body and "2 high" in body and "5 high" not in body
    assert "oldest open for 42 days" in body
    # The newest release against upstream's highest Stable version.
    assert "<code>v1.0</code>" in body and "security patch level 124.0.6367.60" in body
    assert "upstream Stable 126.0.6478.61 (2 milestones behind)" in body
    assert "Stale or failing sources" in body  # nothing has synced yet
    for n in range(3, 21):
        _fork_with_snapshot(upstream, n)
    with django_assert_num_queries(len(two.captured_queries)):
        staff_client.get(reverse("overview"))


@pytest.mark.django_db
def test_overview_names_stale_and_failing_sources_only(staff_client, settings):
    from django.utils import timezone

    now = timezone.now()
    fresh = now - timezone.timedelta(hours=1)
    old = now - timezone.timedelta(hours=settings.SOURCE_STALE_HOURS + 2)
    SourceState.objects.create(source="chromiumdash", last_success_at=fresh)
    SourceState.objects.create(source="versionhistory", last_success_at=old)
    SourceState.objects.create(
        source="chrome_releases", last_success_at=fresh, last_error="HTTP 500 <b>x</b>", failures=1
    )
    upstream = Upstream.objects.create(
        slug="chromium", name="Chromium", git_url="/x", last_synced_at=fresh
    )
    Fork.objects.create(
        upstream=upstream, slug="acme", name="Acme", git_url="/y", last_synced_at=now
    )
    body = staff_client.get(reverse("overview")).content.decode()
    banner = body.split('class="banner"')[1].split("</div>")[0]
    assert "VersionHistory API" in banner and "stale" in banner
    assert "Chrome Releases blog" in banner and "failing" in banner
    assert "HTTP 500 &lt;b&gt;x&lt;/b&gt;" in banner
    assert "Chromium Dash" not in banner and "Acme" not in banner


@pytest.mark.django_db
def test_sync_page_shows_sources_cursors_and_progress_in_constant_queries(
    staff_client, django_assert_num_queries
):
    from tracker import progress
    from tracker.models import IngestCursor

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    IngestCursor.objects.create(upstream=upstream, ref="refs/heads/main", sha="a" * 40, commits=42)
    Fork.objects.create(
        upstream=upstream, slug="acme", name="Acme", git_url="/y", last_error="fetch <failed>"
    )
    progress.report("chromium", "ingesting refs/heads/main", 250, 1000)
    try:
        with django_assert_num_queries(5) as few:  # user, 3 freshness, cursors
            body = staff_client.get(reverse("sync")).content.decode()
    finally:
        progress.finish("chromium")
    assert '<progress value="250" max="1000">' in body
    assert 'http-equiv="refresh"' in body  # follows a running sync
    assert "refs/heads/main" in body and ">42</td>" in body
    assert "fetch &lt;failed&gt;" in body and "failing" in body
    for n in range(20):
        Fork.objects.create(upstream=upstream, slug=f"f{n}", name=f"F{n}", git_url="/y")
    with django_assert_num_queries(len(few.captured_queries)):
        body = staff_client.get(reverse("sync")).content.decode()
    assert 'http-equiv="refresh"' not in body


@pytest.mark.django_db
def test_sync_page_summarises_thousands_of_refs_and_lists_them_a_page_at_a_time(
    staff_client, django_assert_num_queries
):
    import re
    from datetime import timedelta

    from django.utils import timezone

    from tracker.models import IngestCursor
    from tracker.views import RECENT_REFS, REFS_PAGE_SIZE

    upstream = Upstream.objects.create(
        slug="angle", name="ANGLE", git_url="/x", release_branch_pattern="refs/heads/chromium/*"
    )
    IngestCursor.objects.bulk_create(
        [IngestCursor(upstream=upstream, ref="refs/heads/main", sha="a" * 40, commits=28_685)]
        + [
            IngestCursor(
                upstream=upstream, ref=f"refs/heads/chromium/{n}", sha="b" * 40, commits=n % 3
            )
            for n in range(2013, 8013)
        ]
    )
    later = timezone.now() + timedelta(hours=1)
    for n in range(8000, 8012):  # moved since, the newest last
        IngestCursor.objects.filter(ref=f"refs/heads/chromium/{n}").update(
            updated_at=later + timedelta(minutes=n - 8000)
        )
    with django_assert_num_queries(5):  # user, 3 freshness, the refs' summary
        body = staff_client.get(reverse("sync")).content.decode()
    assert "6001 refs ingested, 34685 commits counted over them" in body
    shown = re.findall(r"<tr><td><code>(refs/[^<]+)</code>", body)
    assert shown == ["refs/heads/main"] + [
        f"refs/heads/chromium/{n}" for n in range(8011, 8011 - RECENT_REFS, -1)
    ]
    assert len(body) < 20_000  # not 6,001 rows
    refs = reverse("sync-refs", args=["angle"])
    assert f'href="{refs}"' in body

    with django_assert_num_queries(4):  # user, upstream, count, page
        first = staff_client.get(refs).content.decode()
    assert first.count("<tr><td><code>refs/") == REFS_PAGE_SIZE
    assert "page 1 of 61" in first and "refs/heads/chromium/2013<" in first
    last = staff_client.get(refs, {"page": 61}).content.decode()
    assert last.count("<tr><td><code>refs/") == 1 and "refs/heads/main<" in last
    found = staff_client.get(refs, {"q": "6099"}).content.decode()
    assert found.count("<tr><td><code>refs/") == 1 and "refs/heads/chromium/6099<" in found
    assert "page 1 of" not in found
    assert staff_client.get(reverse("sync-refs", args=["nope"])).status_code == 404


@pytest.mark.django_db
def test_fork_and_branch_pages_escape_git_text_and_keep_queries_constant(
    staff_client, django_assert_max_num_queries
):
    from tracker.models import BranchSnapshot, SnapshotPatch

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = _fork_with_snapshot(upstream, 1)
    latest = BranchSnapshot.objects.filter(branch__fork=fork, branch__name="main").latest(
        "taken_at"
    )
    for order in range(3):
        SnapshotPatch.objects.create(
            snapshot=latest,
            order=order,
            sha=f"{order}" * 40,
            change="unchanged",
            subject="<script>alert('subject')</script>",
            author="<b>Mallory</b>",
            files="a.cc",
            conflict_files="a.cc" if order == 1 else "",
            upstream_sha="c" * 40 if order == 2 else "",
        )
    fork_page = staff_client.get(reverse("fork", args=["f1"])).content.decode()
    assert "Fork 1" in fork_page and "release/125" in fork_page
    from tracker.models import FixStatus, Vulnerability

    vuln = Vulnerability.objects.create(upstream=upstream, cve="CVE-2026-7", severity="low")
    FixStatus.objects.create(
        fork=fork,
        vulnerability=vuln,
        branch=latest.branch,
        computed="open",
        status="open",
        computed_at=latest.taken_at,
    )
    with django_assert_max_num_queries(8) as few:
        branch_page = staff_client.get(reverse("branch", args=["f1", "main"])).content.decode()
    assert "<script>alert" not in branch_page and "&lt;script&gt;alert(" in branch_page
    assert "<b>Mallory" not in branch_page
    assert "candidate to drop" in branch_page and "conflict" in branch_page
    assert 'href="/security/CVE-2026-7/"' in branch_page  # a fix the tip lacks
    for order in range(3, 40):
        SnapshotPatch.objects.create(
            snapshot=latest, order=order, sha="d" * 40, change="added", subject=f"patch {order}"
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        staff_client.get(reverse("branch", args=["f1", "main"]))
    assert staff_client.get(reverse("branch", args=["f1", "nope"])).status_code == 404
    assert staff_client.get(reverse("fork", args=["nope"])).status_code == 404


@pytest.mark.django_db
def test_fork_trends_series_per_branch(staff_client):
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    _fork_with_snapshot(upstream, 1)
    data = staff_client.get(reverse("fork-trends", args=["f1"])).json()
    assert set(data["branches"]) == {"main", "release/125"}
    points = data["branches"]["main"]
    assert [p["commits_behind"] for p in points] == [101, 201]  # oldest first
    assert points[0]["taken_at"].startswith("2026-05-01")


def _open_fixes(fork, count, state="open"):
    """`count` vulnerabilities with status `state` in the fork's newest release."""
    from datetime import UTC, datetime, timedelta

    from tracker.models import FixStatus, Vulnerability

    release = ForkRelease.objects.filter(fork=fork).newest_first().first()
    for n in range(count):
        vuln, _ = Vulnerability.objects.get_or_create(
            upstream=fork.upstream,
            cve=f"CVE-2026-{100 + n}",
            defaults={
                "severity": "high" if n else "critical",
                "title": "<script>alert('cve')</script>",
                "first_stable_at": datetime(2026, 4, 1, tzinfo=UTC) - timedelta(days=n),
            },
        )
        FixStatus.objects.get_or_create(
            fork=fork,
            vulnerability=vuln,
            release=release,
            defaults={"computed": state, "status": state, "computed_at": datetime.now(UTC)},
        )


@pytest.mark.django_db
def test_fork_page_shows_releases_and_open_fixes_in_constant_queries(
    staff_client, django_assert_num_queries
):
    from datetime import UTC, datetime

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = _fork_with_snapshot(upstream, 1)
    _fork_with_snapshot(upstream, 2)
    ForkRelease.objects.create(
        fork=fork, tag="v0.9", source="tag", tagged_at=datetime(2026, 3, 1, tzinfo=UTC)
    )
    _open_fixes(fork, 3)
    # user, fork, branches, snapshots, releases, open counts, security snapshot, open fixes
    # of the newest release
    with django_assert_num_queries(8) as few:
        body = staff_client.get(reverse("fork", args=["f1"])).content.decode()
    releases = body.split("<h2>Releases")[1].split("</table>")[0]
    assert releases.index("v1.0") < releases.index("v0.9")  # newest first
    assert "124.0.6367.91" in releases and "124.0.6367.60" in releases
    assert '<td class="num">3</td>' in releases  # its open fixes
    fixes = body.split('class="open-fixes"')[1].split("</table>")[0]
    assert fixes.index("CVE-2026-102") < fixes.index("CVE-2026-100")  # oldest first
    assert 'href="/security/CVE-2026-100/"' in fixes and "critical" in fixes
    assert "1 critical" in body and "oldest open for 42 days" in body  # from the snapshot
    for n in range(3, 21):
        _fork_with_snapshot(upstream, n)
    _open_fixes(fork, 30)
    for n in range(10):
        ForkRelease.objects.create(fork=fork, tag=f"v0.0.{n}", source="tag")
    with django_assert_num_queries(len(few.captured_queries)):
        staff_client.get(reverse("fork", args=["f1"]))


@pytest.mark.django_db
def test_fork_security_trends_open_fixes_and_gap_per_release_against_upstream(staff_client):
    from datetime import UTC, datetime, timedelta

    from tracker.models import FixStatus, Vulnerability

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = _fork_with_snapshot(upstream, 1)
    v1 = ForkRelease.objects.get(fork=fork)
    v1.tagged_at = t0 + timedelta(days=12)
    v1.save()
    v2 = ForkRelease.objects.create(
        fork=fork, tag="v2.0", source="tag", tagged_at=t0 + timedelta(days=40)
    )
    for n, (landed, stable, carried_by) in enumerate(
        [(0, 10, v1), (4, 10, v1), (20, 24, v2), (30, None, None)]
    ):
        vuln = Vulnerability.objects.create(
            upstream=upstream,
            cve=f"CVE-2026-{n}",
            severity="high",
            landed_at=t0 + timedelta(days=landed),
            first_stable_at=t0 + timedelta(days=stable) if stable is not None else None,
            upstream_gap_days=stable - landed if stable is not None else None,
        )
        for release in (v1, v2):
            state = "base" if carried_by and release.tagged_at >= carried_by.tagged_at else "open"
            FixStatus.objects.create(
                fork=fork,
                vulnerability=vuln,
                release=release,
                computed=state,
                status=state,
                computed_at=t0,
            )
    data = staff_client.get(reverse("fork-security-trends", args=["f1"])).json()
    assert [(p["open_critical"], p["open_high"]) for p in data["open"]] == [(1, 5), (1, 1)]
    assert data["open"][0]["taken_at"].startswith("2026-05-01")
    assert data["gap"] == [
        {
            "release": "v1.0",
            "shipped_at": v1.tagged_at.isoformat(),
            "fixes": 2,
            "median_days_from_landing": 10.0,  # 12 and 8 days
            "upstream_median_days": 8.0,  # 10 and 6 days
        },
        {
            "release": "v2.0",
            "shipped_at": v2.tagged_at.isoformat(),
            "fixes": 1,
            "median_days_from_landing": 20.0,
            "upstream_median_days": 4.0,
        },
    ]


def _queries(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_trend_endpoints_answer_in_constant_queries(staff_client):
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = _fork_with_snapshot(upstream, 1)
    _fork_with_snapshot(upstream, 2)
    _open_fixes(fork, 3)
    urls = [reverse(name, args=["f1"]) for name in ("fork-trends", "fork-security-trends")]
    two = [_queries(staff_client, url) for url in urls]
    # user, fork, then the branches and their points; the security snapshots and the gap
    # report (vulnerabilities, roll landings, carried fixes, releases, triage)
    assert two == [4, 8]
    for n in range(3, 21):
        _fork_with_snapshot(upstream, n)
    _open_fixes(fork, 30)
    assert [_queries(staff_client, url) for url in urls] == two


@pytest.mark.django_db
def test_no_figure_without_data(staff_client):
    """No vulnerability loaded: no "none open"; no version: no "0 milestones behind"."""
    from datetime import UTC, datetime

    from tracker.models import BranchSnapshot, Vulnerability

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = _fork_with_snapshot(upstream, 1)
    ForkSecuritySnapshot.objects.create(fork=fork, taken_at=datetime(2026, 5, 3, tzinfo=UTC))
    main = fork.branches.get(name="main")
    BranchSnapshot.objects.filter(branch=main).update(
        base_version="", versions_behind=None, milestones_behind=None
    )
    pages = {
        "overview": staff_client.get(reverse("overview")).content.decode(),
        "fork": staff_client.get(reverse("fork", args=["f1"])).content.decode(),
        "branch": staff_client.get(reverse("branch", args=["f1", "main"])).content.decode(),
    }
    for name, body in pages.items():
        assert "none open" not in body and "every known upstream security fix" not in body, name
        assert "milestones behind upstream" not in body, name
    assert "no vulnerability data yet" in pages["overview"]
    assert "no vulnerability data yet" in pages["fork"]
    assert "security patch level" not in pages["overview"]
    assert "No vulnerability data yet: no upstream security fix of Chromium" in pages["branch"]
    assert "version unknown" in pages["fork"] and ">?</td>" not in pages["fork"]
    assert '<span title="version unknown">—</span>' in pages["fork"]
    assert "</code> version unknown;" in pages["branch"]
    assert "14 days behind upstream" in pages["branch"]

    # Loaded data, nothing open: now "none open" is a statement with data behind it.
    Vulnerability.objects.create(upstream=upstream, cve="CVE-2026-0001", severity="high")
    body = staff_client.get(reverse("fork", args=["f1"])).content.decode()
    assert "none open" in body and "no vulnerability data yet" not in body


def test_sync_page_shows_warnings_and_housekeeping(staff_client):
    from django.utils import timezone

    upstream = Upstream.objects.create(
        slug="chromium",
        name="Chromium",
        git_url="/x",
        filter_warning="the server ignores the partial-clone filter blob:none <x>",
        maintenance_error="git gc failed (exit 128): fatal: gc is already running",
        maintenance_summary="gc: 1,006 packs (41.0 MB) to 2 (38.2 MB) in 3.1 s",
        maintained_at=timezone.now(),
    )
    Fork.objects.create(
        upstream=upstream,
        slug="acme",
        name="Acme",
        git_url="/y",
        last_warning="main: predicted conflicts unknown: 1 object is on no remote: a.txt",
    )
    body = staff_client.get(reverse("sync")).content.decode()
    assert "Warning: the server ignores the partial-clone filter blob:none &lt;x&gt;" in body
    assert "Warning: housekeeping failed: git gc failed (exit 128): fatal: gc is" in body
    assert "gc: 1,006 packs (41.0 MB) to 2 (38.2 MB) in 3.1 s" in body
    assert "main: predicted conflicts unknown: 1 object is on no remote: a.txt" in body
    assert body.count('status-behind">warning') == 2  # the mirror's and the fork's
