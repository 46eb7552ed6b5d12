"""Progress of long syncs: reported while ingesting, shown on the overview, logged, cleared."""

import logging
from pathlib import Path

import pytest
from django.urls import reverse

from tracker import progress
from tracker.generator import build_world, standard_world
from tracker.ingest.history import ingest_upstream_history
from tracker.models import Fork, Upstream


@pytest.mark.django_db
def test_overview_shows_a_sync_in_progress(staff_client):
    upstream = Upstream.objects.create(slug="chromium-p", name="Chromium", git_url="/x")
    Fork.objects.create(upstream=upstream, slug="acme", name="Acme", git_url="/y")
    progress.report("chromium-p", "ingesting refs/heads/main", 340_000, 1_000_000)
    body = staff_client.get(reverse("overview")).content.decode()
    assert "Syncing Chromium: ingesting refs/heads/main" in body
    assert '<progress value="340000" max="1000000">' in body
    progress.finish("chromium-p")
    assert "Syncing" not in staff_client.get(reverse("overview")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_ingest_reports_progress_with_totals_and_logs_it(tmp_path, caplog, monkeypatch):
    world = build_world(
        standard_world(seed=81, main_commits=400, milestones=4, vulnerabilities=4),
        tmp_path / "world",
    )
    upstream = Upstream.objects.create(slug="chromium-q", name="C", git_url="/x")
    seen = []
    real_report = progress.report
    monkeypatch.setattr(
        "tracker.ingest.history.report_progress",
        lambda *args: (seen.append(args), real_report(*args)),
    )
    caplog.set_level(logging.INFO, logger="tracker.progress")
    repo = Path(world["upstream"]["path"])
    ingest_upstream_history(
        upstream, repo, [("refs/heads/main", "refs/heads/main")], batch_size=100
    )
    assert seen[-1] == ("chromium-q", "ingesting refs/heads/main", 400, 400)
    assert [done for _slug, _phase, done, _total in seen] == [100, 200, 300, 400]
    assert "sync chromium-q: ingesting refs/heads/main 400 of 400" in caplog.text
    assert progress.current(["chromium-q"]) == {}  # cleared when the ingest ended
