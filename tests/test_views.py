import pytest
from django.urls import reverse

from tracker.models import Fork, TrackedBranch, Upstream


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
    return fork


@pytest.mark.django_db
def test_overview_shows_the_latest_snapshot_in_constant_queries(
    staff_client, django_assert_num_queries
):
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    _fork_with_snapshot(upstream, 1)
    _fork_with_snapshot(upstream, 2)
    with django_assert_num_queries(5) as two:  # session, user, forks, branches, snapshots
        body = staff_client.get(reverse("overview")).content.decode()
    assert ">201</td>" in body and ">14</td>" in body  # the newest snapshot's figures
    assert ">101</td>" not in body
    assert "overdue" in body  # 14 days behind: the status is in words, not colour alone
    for n in range(3, 21):
        _fork_with_snapshot(upstream, n)
    with django_assert_num_queries(len(two.captured_queries)):
        staff_client.get(reverse("overview"))


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
    with django_assert_max_num_queries(8) as few:
        branch_page = staff_client.get(reverse("branch", args=["f1", "main"])).content.decode()
    assert "<script>alert" not in branch_page and "&lt;script&gt;alert(" in branch_page
    assert "<b>Mallory" not in branch_page
    assert "candidate to drop" in branch_page and "conflict" in branch_page
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
