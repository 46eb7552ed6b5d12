"""Security pages: matrix, CSV, CVE page, triage and lookup, on a hand-built world; every page
in a fixed number of queries (2 forks as 20), git and upstream text escaped."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from tracker.models import (
    BranchSnapshot,
    Bulletin,
    FixCommit,
    FixStatus,
    FixTriage,
    Fork,
    ForkRelease,
    TrackedBranch,
    Upstream,
    Vulnerability,
    VulnerabilityBug,
)
from tracker.security_views import MATRIX_PAGE_SIZE, csv_safe

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEVERITIES = ("critical", "high", "medium", "low")
XSS = "<script>alert('x')</script>"


def _vulnerabilities(upstream, count):
    vulns = Vulnerability.objects.bulk_create(
        Vulnerability(
            upstream=upstream,
            cve=f"CVE-2026-{1000 + n}",
            severity=SEVERITIES[n % 4],
            title=f"Use after free in component {n}",
            in_the_wild=n % 10 == 0,
            placement="commits",
            landed_at=T0 + timedelta(days=n),
            first_stable_at=T0 + timedelta(days=n + 10) if n % 7 else None,
            first_stable_version=f"125.0.6422.{n}" if n % 7 else "",
            upstream_gap_days=10.0 if n % 7 else None,
        )
        for n in range(count)
    )
    first = vulns[0]
    first.title = f'=HYPERLINK("http://evil") {XSS}'
    first.reporter = "<b>Reporter</b>"
    first.first_bulletin = Bulletin.objects.create(
        post_id="post-1",
        url="javascript:alert(1)",  # a feed could say anything
        title=f"Stable Channel Update {XSS}",
        published=T0,
        updated=T0,
        first_seen_at=T0,
        changed_at=T0,
    )
    first.save()
    VulnerabilityBug.objects.create(vulnerability=first, bug_id=40075979)
    FixCommit.objects.create(
        vulnerability=first,
        sha="f" * 40,
        subject=f"Fix {XSS}",
        ref="refs/heads/main",
        position=1217350,
        role="main",
        found_by="footer",
        landed_at=T0,
    )
    return vulns


def _fork(upstream, n, vulns):
    """A fork with two tracked branches and three releases, each with a status for every
    vulnerability: fixed by base, by backport (with evidence), or open."""
    fork = Fork.objects.create(upstream=upstream, slug=f"f{n}", name=f"Fork {n}", git_url="/y")
    targets = []
    for name in ("main", "release/125"):
        branch = TrackedBranch.objects.create(fork=fork, name=name)
        BranchSnapshot.objects.create(
            branch=branch,
            taken_at=T0,
            tip_sha="a" * 40,
            tip_time=T0,
            upstream_tip_sha="b" * 40,
            base_sha="b" * 40,
            base_version="125.0.6422.60",
            commits_behind=1,
            commits_behind_first_parent=1,
            days_behind=1,
            versions_behind=0,
            milestones_behind=0,
            commits_behind_at_tip=0,
            days_behind_at_tip=0,
            versions_behind_at_tip=0,
            milestones_behind_at_tip=0,
            patch_count=1,
            patches_upstreamed=0,
        )
        targets.append({"branch": branch})
    for r in range(3):
        release = ForkRelease.objects.create(
            fork=fork,
            tag=f"v{r}",
            source="tag",
            sha="c" * 40,
            tagged_at=T0 + timedelta(days=30 * r),
            base_version=f"124.0.6367.{r}",
            base_major=124,
            base_minor=0,
            base_build=6367,
            base_patch=r,
        )
        targets.append({"release": release})
    rows = []
    for i, vuln in enumerate(vulns):
        for t, target in enumerate(targets):
            state = ("base", "backport", "open")[(i + t) % 3]
            evidence = {"part": "f" * 40, "how": "missing", "method": None, "upstream": ""}
            if state == "base":
                evidence = {"part": "f" * 40, "how": "base", "method": "position", "upstream": ""}
            elif state == "backport":
                evidence = {
                    "part": "f" * 40,
                    "how": "backport",
                    "method": "trailer",
                    "upstream": "e" * 40,
                    "fork_commit": "d" * 40,
                    "patch": "patches/<b>fix</b>.patch",
                }
            rows.append(
                FixStatus(
                    fork=fork,
                    vulnerability=vuln,
                    computed=state,
                    status=state,
                    evidence=[evidence],
                    computed_at=T0,
                    **target,
                )
            )
    FixStatus.objects.bulk_create(rows)
    return fork


@pytest.fixture
def world(db):
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    vulns = _vulnerabilities(upstream, MATRIX_PAGE_SIZE + 20)
    forks = [_fork(upstream, n, vulns) for n in (1, 2)]
    return upstream, vulns, forks


def _more_forks(world, upto=20):
    upstream, vulns, forks = world
    for n in range(len(forks) + 1, upto + 1):
        forks.append(_fork(upstream, n, vulns))


@pytest.fixture
def user_client(django_user_model):
    """A logged-in user who is not staff (its own client: staff_client takes `client`)."""
    user = django_user_model.objects.create_user("reader", password="pw-reader-123")
    client = Client()
    client.force_login(user)
    return client


def _body(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def _same_queries_for_20_forks(world, client, url, django_assert_num_queries, expected):
    with django_assert_num_queries(expected) as two:
        response = client.get(url)
        body = _body(response)
    assert response.status_code == 200, body[:500]
    _more_forks(world)
    with django_assert_num_queries(len(two.captured_queries)):
        again = client.get(url)
        _body(again)  # a streamed response queries while it is read
    assert again.status_code == 200
    return body


# --- matrix -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_matrix_shows_branches_and_releases_in_words_in_constant_queries(
    world, staff_client, django_assert_num_queries
):
    # user, fork, forks for the selector, branches, releases, count, page, statuses
    body = _same_queries_for_20_forks(
        world, staff_client, reverse("security") + "?fork=f1", django_assert_num_queries, 8
    )
    assert "branch <code>main</code>" in body and "release <code>v2</code>" in body
    for word in (">base<", ">backport<", ">open<"):
        assert word in body
    assert body.count('<th scope="row"') == MATRIX_PAGE_SIZE
    assert "page 1 of 2" in body
    page2 = staff_client.get(reverse("security") + "?fork=f1&page=2").content.decode()
    assert page2.count('<th scope="row"') == 20
    assert XSS not in page2 and "&lt;script&gt;alert(" in page2  # the oldest CVE's title
    assert "fork=f1" in page2.split("page 2 of 2")[0]  # the pager keeps the filters


@pytest.mark.django_db
def test_matrix_filters(world, staff_client):
    _upstream, vulns, _forks = world

    def rows(query):
        body = staff_client.get(reverse("security") + "?fork=f1&" + query).content.decode()
        return {line.split(">")[1].split("<")[0] for line in body.split('class="cve"><a ')[1:]}

    assert all(v.severity == "critical" for v in vulns if v.cve in rows("severity=critical"))
    assert len(rows("severity=critical")) == 30
    assert rows("in_the_wild=yes") == {v.cve for v in vulns if v.in_the_wild}
    # Dates: first Stable, or landing when upstream has not shipped it.
    since, until = T0 + timedelta(days=20), T0 + timedelta(days=25)
    expected = {
        v.cve
        for v in vulns
        if since.date() <= (v.first_stable_at or v.landed_at).date() <= until.date()
    }
    assert rows(f"since={since:%Y-%m-%d}&until={until:%Y-%m-%d}") == expected
    # Status: in any shown column. With three targets per state cycle, every vulnerability
    # is open somewhere; "not affected" nowhere until triaged.
    assert rows("status=not_affected") == set()
    assert len(rows("status=open&severity=low")) == 30
    # Unknown values are ignored with a message, not a failure.
    response = staff_client.get(reverse("security") + "?fork=f1&severity=nope&since=soon")
    assert response.status_code == 200 and "not understood" in response.content.decode()
    assert staff_client.get(reverse("security") + "?fork=nope").status_code == 404
    assert staff_client.get(reverse("security") + "?fork=f1&page=999").status_code == 200


@pytest.mark.django_db
def test_matrix_without_forks(staff_client):
    assert "No forks yet" in staff_client.get(reverse("security")).content.decode()


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_cells_never_start_a_formula():
    assert csv_safe("=1+1") == "'=1+1"
    for text in ("+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_safe(text) == "'" + text
    assert csv_safe("CVE-2026-1") == "CVE-2026-1" and csv_safe(-1.5) == -1.5


@pytest.mark.django_db
def test_csv_streams_the_whole_filtered_matrix_in_constant_queries(
    world, staff_client, django_assert_num_queries
):
    url = reverse("security-csv") + "?fork=f1"
    # user, fork, branches, releases, statuses, vulnerabilities
    text = _same_queries_for_20_forks(world, staff_client, url, django_assert_num_queries, 6)
    rows = list(csv.reader(io.StringIO(text)))
    header, data = rows[0], rows[1:]
    assert header[:3] == ["cve", "severity", "in_the_wild"]
    assert header[-5:] == [
        "branch main",
        "branch release/125",
        "release v2",
        "release v1",
        "release v0",
    ]
    assert len(data) == MATRIX_PAGE_SIZE + 20  # not paginated
    first = next(r for r in data if r[0] == "CVE-2026-1000")
    assert first[3].startswith("'=HYPERLINK")  # a spreadsheet shows it as text
    assert set(first[-5:]) <= {"base", "backport", "open"}
    response = staff_client.get(reverse("security-csv") + "?fork=f1&severity=high")
    assert response["Content-Disposition"] == 'attachment; filename="security-f1.csv"'
    high = list(csv.reader(io.StringIO(_body(response))))[1:]
    assert len(high) == 30 and {r[1] for r in high} == {"high"}


# --- CVE page and triage ------------------------------------------------------------------------


@pytest.mark.django_db
def test_cve_page_shows_status_and_evidence_per_fork_escaped_in_constant_queries(
    world, staff_client, django_assert_num_queries
):
    # user, vulnerability, the upstream's forks, branches (with their base versions) and
    # releases (cached when the page cache is on), statuses, triage history, bugs, fix
    # commits, fixed versions
    url = reverse("cve", args=["cve-2026-1000"])  # any case
    body = _same_queries_for_20_forks(world, staff_client, url, django_assert_num_queries, 10)
    assert "<h1>CVE-2026-1000" in body
    assert XSS not in body and "&lt;script&gt;alert(" in body  # title and commit subject
    assert "<b>Reporter" not in body and "&lt;b&gt;Reporter" in body
    assert "Stable Channel Update &lt;script&gt;" in body and "javascript:" not in body
    assert "40075979" in body and "refs/heads/main@{#1217350}" in body
    # Evidence: method, upstream commit, fork commit (its trailer), patch file, base version.
    assert "by <code>trailer</code>" in body and "fork commit <code" in body
    assert "patch <code>patches/&lt;b&gt;fix&lt;/b&gt;.patch</code>" in body
    assert "by <code>position</code>" in body and "124.0.6367.2" in body
    assert body.count('<section class="fork"') == 2
    # Each fork: its branch tips by name, then its releases newest first.
    section = body.split('id="fork-f1"')[1].split("</section>")[0]
    names = ("main", "release/125", "v2", "v1", "v0")
    assert [section.index(f"<code>{n}</code>") for n in names] == sorted(
        section.index(f"<code>{n}</code>") for n in names
    )
    assert body.count('class="triage"') == 2  # staff may triage each fork
    assert staff_client.get(reverse("cve", args=["CVE-1999-0001"])).status_code == 404


@pytest.mark.django_db
def test_staff_triage_updates_statuses_and_history(world, staff_client):
    _upstream, vulns, forks = world
    vuln, fork = vulns[0], forks[0]
    url = reverse("cve-triage", args=[vuln.cve])
    response = staff_client.post(
        url, {"fork": fork.slug, "decision": "not_affected", "reason": f"Not built {XSS}"}
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"#fork-{fork.slug}")
    assert FixStatus.objects.filter(fork=fork, vulnerability=vuln, status="open").count() == 0
    assert FixStatus.objects.filter(fork=fork, vulnerability=vuln, status="not_affected").exists()
    assert not FixStatus.objects.filter(fork=forks[1], status="not_affected").exists()
    body = staff_client.get(response["Location"]).content.decode()
    assert "recorded as not affected" in body
    assert "triaged: not affected" in body
    history = body.split("Triage history")[1]
    assert "Fork 1" in history and "staff" in history and "Not built &lt;script&gt;" in history


@pytest.mark.django_db
def test_triage_needs_staff_a_reason_a_post_and_a_csrf_token(
    world, user_client, staff_client, django_user_model
):
    _upstream, vulns, forks = world
    url = reverse("cve-triage", args=[vulns[0].cve])
    decision = {"fork": forks[0].slug, "decision": "will_not_fix", "reason": "No."}
    assert user_client.post(url, decision).status_code == 403
    page = user_client.get(reverse("cve", args=[vulns[0].cve])).content.decode()
    assert 'class="triage"' not in page  # no form for non-staff
    assert staff_client.get(url).status_code == 405
    response = staff_client.post(url, {**decision, "reason": "   "})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert staff_client.post(url, {**decision, "fork": "nope"}).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.get(username="staff"))
    assert strict.post(url, decision).status_code == 403
    assert not FixTriage.objects.exists()
    assert not FixStatus.objects.filter(status="will_not_fix").exists()


# --- lookup -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_lookup_answers_cve_bug_commit_and_version_in_constant_queries(world, staff_client):
    queries = ("CVE-2026-1000", "40075979", "f" * 12, "124.0.6367.2")
    counts = {}
    for query in queries:
        body = staff_client.get(reverse("lookup"), {"q": query}).content.decode()
        assert "Nothing matched" not in body, query
        assert XSS not in body, query
        if query == "124.0.6367.2":  # the fork releases built on that version
            assert "release <code>v2</code>" in body
        else:
            assert 'href="/security/CVE-2026-1000/?upstream=chromium"' in body, query
        counts[query] = len(_captured(staff_client, f"{reverse('lookup')}?q={query}"))
    _more_forks(world)
    for query in queries:
        assert len(_captured(staff_client, f"{reverse('lookup')}?q={query}")) == counts[query]


@pytest.mark.django_db
def test_lookup_of_a_plain_commit_in_constant_queries(world, staff_client):
    from tracker.models import UpstreamCommit

    upstream = world[0]
    for sha, position, subject in (("1" * 40, 100, XSS), ("b" * 40, 200, "base")):
        UpstreamCommit.objects.create(
            upstream=upstream,
            sha=sha,
            author_time=T0,
            commit_time=T0,
            subject=subject,
            ref="refs/heads/main",
            position_ref="refs/heads/main",
            position=position,
        )
    url = f"{reverse('lookup')}?q={'1' * 10}"
    body = staff_client.get(url).content.decode()
    assert "branch <code>release/125</code>" in body and "fixed by base" in body
    assert XSS not in body
    two = len(_captured(staff_client, url))
    _more_forks(world)
    assert len(_captured(staff_client, url)) == two


def _captured(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return captured.captured_queries


@pytest.mark.django_db
def test_lookup_is_friendly_for_empty_unknown_and_odd_queries(world, staff_client):
    url = reverse("lookup")
    assert "Type a CVE" in staff_client.get(url).content.decode()
    for query in ("zzz", XSS, "CVE-1999-0001", "999999999999", "1.2.3.99999999", "\x00"):
        response = staff_client.get(url, {"q": query})
        body = response.content.decode()
        assert response.status_code == 200, query
        assert XSS not in body, query
    assert "Nothing matched" in staff_client.get(url, {"q": "zzz"}).content.decode()
    long = staff_client.get(url, {"q": "x" * 500}).content.decode()
    assert "longer than anything" in long
    # The header's box keeps the query.
    assert 'value="CVE-2026-1000"' in staff_client.get(url, {"q": "CVE-2026-1000"}).content.decode()


def test_evidence_items_escape_every_field():
    from tracker.security_views import evidence_items

    html = evidence_items(
        [
            {
                "part": "a" * 40,
                "how": "backport",
                "method": "patch-file",
                "upstream": "b" * 40,
                "fork_commit": "c" * 40,
                "patch": "<script>alert(1)</script>.patch",
                "also": ["change-id", "<b>x</b>"],
            },
            {"part": "d" * 40, "how": "missing", "method": None},
            {"part": "e" * 40, "how": "base", "method": "version"},
        ],
        "125.0.6422.<i>1</i>",
    )
    assert html.count("<li>") == 3
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;x" in html
    assert "backported by <code>patch-file</code>" in html
    assert f"upstream <code>{'b' * 12}</code>" in html
    assert f'fork commit <code title="{"c" * 40}">{"c" * 12}</code>' in html
    assert "<strong>missing</strong>" in html
    assert "base version 125.0.6422.&lt;i&gt;1&lt;/i&gt;" in html


def test_cve_target_rows_escape_names_versions_and_evidence():
    from tracker.security_views import CveTarget, older_releases, target_rows

    shipped = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    evidence = json.dumps([{"part": "a" * 40, "how": "missing", "patch": "<i>p</i>"}])
    rows = [
        CveTarget("branch", "<script>b</script>", None, "open", "open", "1.<b>2</b>", "[]"),
        CveTarget("release", 'v1"><img>', shipped, "not_affected", "open", "", evidence),
    ]
    html = target_rows(rows)
    assert html.count("<tr>") == 2
    assert "<script>" not in html and "&lt;script&gt;b&lt;/script&gt;" in html
    assert "<img>" not in html and "v1&quot;&gt;&lt;img&gt;" in html
    assert "1.&lt;b&gt;2&lt;/b&gt;" in html and "<td>unknown</td>" in html
    assert '<time datetime="2026-05-01T12:00:00+00:00">2026-05-01</time>' in html
    assert "not affected</span> <small>(computed: open)</small>" in html
    assert "patch <code>&lt;i&gt;p&lt;/i&gt;</code>" in html
    older = older_releases(rows)
    assert "&lt;script&gt;" in older and "<script>" not in older and " · " in older
