"""Upstream tasks: thin shells that retry only transient source errors, with bounded backoff.

Tasks run with ``apply()`` (in this process, retries included) so the recorded transport can
stand in for the network; the real worker round trip is covered by tests/test_tasks.py.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.ingest.upstream_world import ingest_history, ingest_recorded_data, make_upstream
from tests.upstream.recorded import recorded_session
from tracker.generator import build_world, standard_world
from tracker.ingest import releases as ingest_releases
from tracker.models import Source, SourceState, Upstream, UpstreamRelease, Vulnerability
from tracker.tasks import (
    link_all_fixes_task,
    link_fixes_task,
    sync_chrome_releases_task,
    sync_chromiumdash_task,
    sync_versionhistory_task,
)
from tracker.tasks.upstream import RETRY_MAX_SECONDS, SYNC_RETRIES, retry_countdown
from tracker.upstream import http as upstream_http

DASH = "https://chromiumdash.test"
FEED = "https://chromereleases.test/feeds/posts/default"
VH = "https://versionhistory.test/v1"


@pytest.fixture
def recorded(monkeypatch, settings):
    """The production session factory, answering from recorded responses."""
    settings.CHROMIUMDASH_URL = DASH
    settings.CHROME_RELEASES_FEED_URL = FEED
    settings.VERSIONHISTORY_URL = VH
    rec = recorded_session()
    monkeypatch.setattr(upstream_http, "default_session", lambda: rec.session)
    return rec


@pytest.fixture(autouse=True)
def retries_run_in_process(monkeypatch):
    """Let ``apply()`` run a task's retries in this process instead of raising ``Retry``
    (the project propagates eager exceptions, which includes the retry signal)."""
    monkeypatch.setitem(sync_chromiumdash_task.app.conf, "task_eager_propagates", False)


@pytest.fixture
def upstream(db):
    return Upstream.objects.create(slug="chromium", name="Chromium", git_url="/srv/chromium.git")


def _queue_dash(transport, milestones="cve-2024-5497/dash.fetch_milestones.http"):
    transport.add_file(f"{DASH}/fetch_milestones", milestones)
    transport.add_file(
        f"{DASH}/fetch_milestone_schedule",
        "cve-2024-5497/dash.fetch_milestone_schedule.mstone-125.http",
    )
    for channel in ingest_releases.DASH_CHANNELS:
        for platform in ingest_releases.DASH_PLATFORMS:
            params = {"channel": channel, "platform": platform}
            if (channel, platform) == ("Stable", "Windows"):
                transport.add_file(
                    f"{DASH}/fetch_releases",
                    "cve-2024-5497/dash.fetch_releases.Stable-Windows.http",
                    params=params,
                )
            else:
                transport.add(
                    f"{DASH}/fetch_releases",
                    headers={"Content-Type": "application/json"},
                    body="[]",
                    params=params,
                )


def test_retry_countdown_grows_exponentially_and_is_bounded():
    assert [retry_countdown(n) for n in range(8)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_countdown(0, retry_after=300) == 300
    assert retry_countdown(0, retry_after=86400) == RETRY_MAX_SECONDS


def test_a_transient_failure_is_retried_and_the_retry_succeeds(
    upstream, recorded, django_capture_on_commit_callbacks
):
    # An HTML error page served with status 200 is a transient failure.
    recorded.transport.add_file(f"{DASH}/fetch_milestones", "errors/html-error-page.200.http")
    _queue_dash(recorded.transport)

    with django_capture_on_commit_callbacks() as callbacks:
        result = sync_chromiumdash_task.apply()

    assert result.successful()
    assert "releases: +2" in result.get()
    assert recorded.transport.pending == []
    milestone_calls = [r for r in recorded.transport.requests if "fetch_milestones" in r.url]
    assert len(milestone_calls) == 2
    state = SourceState.objects.get(source=Source.CHROMIUMDASH)
    assert state.last_success_at is not None
    assert (state.last_error, state.failures) == ("", 0)
    assert UpstreamRelease.objects.filter(version="125.0.6422.141").exists()
    # New data: fix linking is queued for every upstream once the transaction commits.
    assert len(callbacks) == 1


def test_a_permanent_failure_is_recorded_and_not_retried(upstream, recorded):
    recorded.transport.add_file(f"{DASH}/fetch_milestones", "errors/404.http")

    result = sync_chromiumdash_task.apply()

    assert result.successful()
    assert result.get().startswith("failed: HTTP 404")
    assert len(recorded.transport.requests) == 1
    state = SourceState.objects.get(source=Source.CHROMIUMDASH)
    assert "HTTP 404" in state.last_error and state.failures == 1
    assert state.last_success_at is None


def test_transient_failures_are_retried_a_bounded_number_of_times(upstream, recorded):
    for _ in range(SYNC_RETRIES + 1):
        recorded.transport.add_file(f"{DASH}/fetch_milestones", "errors/html-error-page.200.http")

    result = sync_chromiumdash_task.apply()

    assert result.get().startswith("failed: expected JSON, got an HTML page")
    assert len(recorded.transport.requests) == SYNC_RETRIES + 1
    assert SourceState.objects.get(source=Source.CHROMIUMDASH).failures == SYNC_RETRIES + 1


def test_in_embedded_mode_a_transient_failure_waits_for_the_next_scheduled_run(
    upstream, recorded, settings
):
    """Tasks run inline there, where a retry would run at once and hold up the scheduler."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    recorded.transport.add_file(f"{DASH}/fetch_milestones", "errors/html-error-page.200.http")

    result = sync_chromiumdash_task.apply()

    assert result.get().startswith("failed: expected JSON, got an HTML page")
    assert len(recorded.transport.requests) == 1
    assert SourceState.objects.get(source=Source.CHROMIUMDASH).failures == 1


def test_sync_chrome_releases_task_stores_bulletins(upstream, recorded):
    recorded.transport.add_file(FEED, "cve-2024-5497/blog.feed.http")

    result = sync_chrome_releases_task.apply()

    assert result.get() == "posts: +1 ~0 =0"
    assert Vulnerability.objects.filter(upstream=upstream, cve="CVE-2024-5497").exists()


def test_sync_versionhistory_task_stores_serving_periods(upstream, recorded):
    url = f"{VH}/chrome/platforms/all/channels/{{}}/versions/all/releases"
    for channel in ingest_releases.VERSIONHISTORY_CHANNELS:
        recorded.transport.add(
            url.format(channel), headers={"Content-Type": "application/json"}, body="{}"
        )

    result = sync_versionhistory_task.apply()

    assert result.get() == "releases: +0 ~0 =0"
    assert SourceState.objects.get(source=Source.VERSIONHISTORY).last_success_at is not None


@pytest.mark.django_db
def test_link_fixes_task_links_one_upstream(tmp_path, settings):
    settings.MIRROR_DIR = tmp_path / "mirrors"  # no mirror: positions only
    truth = build_world(standard_world(seed=7), tmp_path / "w")
    upstream = make_upstream(tmp_path / "w" / "upstream.git")
    ingest_history(upstream, tmp_path / "w" / "upstream.git")
    ingest_recorded_data(upstream, tmp_path / "w", datetime.fromisoformat(truth["now"]))

    result = link_fixes_task.apply(args=[upstream.pk])

    assert result.get().startswith("12 vulnerabilities: 11 by commits, 1 by version")
    assert link_fixes_task.apply(args=[upstream.pk + 1000]).get().endswith("no longer exists")


def test_link_all_fixes_task_queues_one_link_per_upstream(upstream, monkeypatch):
    other = Upstream.objects.create(slug="mirror", name="Mirror", git_url="/srv/mirror.git")
    queued = []
    monkeypatch.setattr(link_fixes_task, "delay", queued.append)

    assert link_all_fixes_task.apply().get() == 2
    assert sorted(queued) == sorted([upstream.pk, other.pk])
