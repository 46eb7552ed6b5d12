"""/healthz without log-in: down (503) when a store fails, degraded when things get old."""

import socket
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tracker.models import SourceState, Upstream
from tracker.tasks import WORKER_HEARTBEAT_KEY, record_worker_heartbeat_task


@pytest.mark.django_db
def test_ok_when_stores_answer_the_worker_beats_and_sources_are_fresh(client):
    from django.core.cache import cache

    now = timezone.now()
    SourceState.objects.create(source="chromiumdash", last_success_at=now - timedelta(hours=1))
    Upstream.objects.create(slug="chromium", name="C", git_url="/x", last_synced_at=now)
    cache.delete(WORKER_HEARTBEAT_KEY)
    silent = client.get(reverse("healthz")).json()
    assert silent["status"] == "degraded" and silent["worker"]["ok"] is False
    record_worker_heartbeat_task()  # what beat makes a worker do every minute
    body = client.get(reverse("healthz"))
    report = body.json()
    assert body.status_code == 200 and report["status"] == "ok"
    assert report["database"] == "ok" and report["redis"] == "ok"
    assert report["worker"]["ok"] is True and report["worker"]["age_seconds"] < 60
    assert report["sources"]["chromiumdash"]["stale"] is False
    assert report["sources"]["mirror:chromium"]["stale"] is False


@pytest.mark.django_db
def test_a_stale_source_makes_it_degraded_but_still_200(client, settings):
    record_worker_heartbeat_task()
    old = timezone.now() - timedelta(hours=settings.SOURCE_STALE_HOURS + 1)
    SourceState.objects.create(source="chrome_releases", last_success_at=old, last_error="500")
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "degraded"
    assert report["sources"]["chrome_releases"] == {
        "last_success_age_seconds": pytest.approx((settings.SOURCE_STALE_HOURS + 1) * 3600, abs=5),
        "stale": True,
        "last_error": "500",
    }


@pytest.mark.django_db
def test_down_when_redis_does_not_answer(client, settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["redis"] == "down" and response.json()["status"] == "down"
