"""/metrics: Prometheus text with the latest figures, for a token or a logged-in user only."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from tracker.metrics import SYNC_STATS_KEY, record_sync
from tracker.models import SourceState, Upstream


@pytest.mark.django_db
def test_metrics_need_the_token_or_a_login(settings, admin_user):
    from django.test import Client

    client = Client()  # anonymous
    settings.METRICS_TOKEN = "scrape-token-123"
    assert client.get(reverse("metrics")).status_code == 401
    wrong = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    ok = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")
    logged_in = Client()
    logged_in.force_login(admin_user)
    assert logged_in.get(reverse("metrics")).status_code == 200
    settings.METRICS_TOKEN = ""
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.django_db
def test_metrics_carry_lag_sync_and_source_figures(staff_client):
    from django.utils import timezone

    from tests.test_views import _fork_with_snapshot

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = _fork_with_snapshot(upstream, 1)
    fork.last_synced_at = timezone.now()
    fork.save()
    cache.delete(SYNC_STATS_KEY.format(slug="f1"))  # Redis outlives test runs
    record_sync("f1", 12.5, ok=True)
    record_sync("f1", 3.0, ok=False)
    SourceState.objects.create(source="chromiumdash", last_success_at=timezone.now(), failures=2)
    text = staff_client.get(reverse("metrics")).content.decode()
    assert 'forkhealth_branch_commits_behind{branch="main",fork="f1"} 201.0' in text
    assert 'forkhealth_branch_patch_count{branch="release/125",fork="f1"} 11.0' in text
    assert 'forkhealth_fork_syncs_total{fork="f1"} 2.0' in text
    assert 'forkhealth_fork_sync_failures_total{fork="f1"} 1.0' in text
    assert 'forkhealth_fork_sync_duration_seconds{fork="f1"} 3.0' in text
    assert 'forkhealth_source_failures{source="chromiumdash"} 2.0' in text
    assert "forkhealth_fork_last_sync_age_seconds" in text


@pytest.mark.django_db
def test_open_fixes_by_severity_in_each_forks_newest_release(staff_client):
    from datetime import UTC, datetime

    from tracker.models import FixStatus, Fork, ForkRelease, Vulnerability

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = Fork.objects.create(upstream=upstream, slug="acme", name="Acme", git_url="/y")
    old = ForkRelease.objects.create(
        fork=fork, tag="v1", source="tag", tagged_at=datetime(2026, 5, 1, tzinfo=UTC)
    )
    new = ForkRelease.objects.create(
        fork=fork, tag="v2", source="tag", tagged_at=datetime(2026, 5, 8, tzinfo=UTC)
    )
    # Registered by hand, not tagged yet: no ship time, so not the newest release.
    ForkRelease.objects.create(fork=fork, tag="v3", source="manual")
    now = datetime(2026, 5, 9, tzinfo=UTC)
    for n, (severity, statuses) in enumerate(
        [("high", ("open", "open")), ("high", ("open", "base")), ("critical", ("open", "open"))]
    ):
        vuln = Vulnerability.objects.create(
            upstream=upstream, cve=f"CVE-2026-{n + 1}", severity=severity
        )
        for release, status in zip((old, new), statuses, strict=True):
            FixStatus.objects.create(
                fork=fork,
                vulnerability=vuln,
                release=release,
                computed=status,
                status=status,
                computed_at=now,
            )
    other = Fork.objects.create(upstream=upstream, slug="other", name="Other", git_url="/z")
    ForkRelease.objects.create(fork=other, tag="v1", source="tag", tagged_at=now)  # no statuses
    text = staff_client.get(reverse("metrics")).content.decode()
    assert 'forkhealth_fork_open_fixes{fork="acme",severity="high"} 1.0' in text
    assert 'forkhealth_fork_open_fixes{fork="acme",severity="critical"} 1.0' in text
    # Computed and none open is 0; not computed (or no vulnerability data) is no sample.
    assert 'forkhealth_fork_open_fixes{fork="acme",severity="low"} 0.0' in text
    assert 'fork="other"' not in text


@pytest.mark.django_db
def test_no_milestones_sample_without_a_version(staff_client):
    from tests.test_views import _fork_with_snapshot
    from tracker.models import BranchSnapshot

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = _fork_with_snapshot(upstream, 1)
    BranchSnapshot.objects.filter(branch__fork=fork, branch__name="main").update(
        base_version="", milestones_behind=None, versions_behind=None
    )
    text = staff_client.get(reverse("metrics")).content.decode()
    assert 'forkhealth_branch_milestones_behind{branch="release/125",fork="f1"} 2.0' in text
    assert 'forkhealth_branch_milestones_behind{branch="main"' not in text
    assert 'forkhealth_branch_commits_behind{branch="main",fork="f1"} 201.0' in text
