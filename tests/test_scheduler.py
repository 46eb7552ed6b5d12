"""The embedded mode's scheduler: beat's table run in one process, one task at a time; and
`manage.py run_scheduler` syncing and evaluating alerts on SQLite beside the web server."""

from __future__ import annotations

import logging
import os
import re
import signal
import sqlite3
import threading
from datetime import timedelta

import pytest
import requests
from celery.schedules import crontab
from django.conf import settings

from tests.support.processes import Processes, wait_for
from tests.support.services import free_port
from tracker.generator import build_world, standard_world
from tracker.scheduler import Entry, Scheduler, TaskFailed, celery_runner, read_schedule


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _entries(**every):
    return [Entry(name, f"task.{name}", seconds) for name, seconds in every.items()]


def test_the_schedule_is_beats_table_and_names_the_projects_tasks():
    from celery import current_app

    entries = read_schedule(settings.CELERY_BEAT_SCHEDULE)
    assert [e.name for e in entries] == list(settings.CELERY_BEAT_SCHEDULE)
    by_name = {e.name: e for e in entries}
    assert by_name["sync forks"].every == settings.FORK_SYNC_SECONDS
    assert by_name["evaluate alerts"].task == "tracker.evaluate_alerts"
    current_app.loader.import_default_modules()
    assert {e.task for e in entries} <= set(current_app.tasks)
    assert read_schedule({"x": {"task": "t", "schedule": timedelta(minutes=2)}})[0].every == 120
    with pytest.raises(ValueError, match="'nightly': expected an interval in seconds"):
        read_schedule({"nightly": {"task": "t", "schedule": crontab(hour=3)}})


def test_entries_run_soon_after_start_then_at_their_intervals():
    clock, ran = Clock(), []
    scheduler = Scheduler(
        _entries(often=60, rarely=3600), lambda e: ran.append(e.name), clock=clock, first_run=5
    )
    assert scheduler.run_due() == 5 and ran == []
    clock.now += 5
    assert scheduler.run_due() == 60
    assert ran == ["often", "rarely"]  # the table's order among equals
    for _ in range(3):
        clock.now += 60
        scheduler.run_due()
    assert ran == ["often", "rarely", "often", "often", "often"]


def test_a_failing_task_is_logged_and_the_others_run(caplog):
    clock, ran = Clock(), []

    def run(entry):
        if entry.name == "broken":
            raise RuntimeError("no such repository")
        ran.append(entry.name)
        return "ok"

    scheduler = Scheduler(_entries(broken=60, fine=60), run, clock=clock, first_run=0)
    with caplog.at_level(logging.INFO, logger="tracker.scheduler"):
        scheduler.run_due()
        clock.now += 60
        scheduler.run_due()
    assert ran == ["fine", "fine"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 2 and "scheduled broken (task.broken) failed" in failures[0].message
    assert "no such repository" in caplog.text
    assert "scheduled fine: ok" in caplog.text


def test_a_long_run_neither_overlaps_nor_piles_up_missed_runs():
    clock, ran = Clock(), []

    def run(entry):
        ran.append((entry.name, clock.now))
        if entry.name == "sync":
            clock.now += 600  # ten runs of "deliver" missed meanwhile

    scheduler = Scheduler(_entries(sync=3600, deliver=60), run, clock=clock, first_run=0)
    assert scheduler.run_due() == 60
    # "deliver" waited for "sync" (never two tasks at once), then ran once, not ten times.
    assert ran == [("sync", 1000), ("deliver", 1600)]
    clock.now += 59
    assert scheduler.run_due() == 1
    clock.now += 1
    scheduler.run_due()
    assert ran[-1] == ("deliver", 1660)


def test_stop_ends_the_loop_between_tasks():
    clock, stop, ran = Clock(), threading.Event(), []

    def run(entry):
        ran.append(entry.name)
        stop.set()  # e.g. SIGTERM while this task runs

    Scheduler(_entries(a=60, b=60), run, clock=clock, first_run=0).run_forever(stop)
    assert ran == ["a"]


@pytest.mark.django_db(transaction=True)  # the runner closes connections, as a worker does
def test_a_task_queued_by_a_scheduled_task_fails_alone(monkeypatch, capfd, settings):
    """ "sync forks" queues one sync per fork, run inline: one fork failing does not keep the
    next ones from syncing, as with workers."""
    from celery import current_app

    from tracker.models import Fork, Upstream
    from tracker.tasks import forks as fork_tasks

    monkeypatch.setitem(current_app.conf, "task_eager_propagates", True)  # restored after
    monkeypatch.setitem(current_app.conf, "task_always_eager", True)
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    for slug in ("broken", "fine"):
        Fork.objects.create(upstream=upstream, slug=slug, name=slug, git_url="/x")
    synced = []

    def sync_fork(fork, *, now):
        if fork.slug == "broken":
            raise RuntimeError("the broken fork fails")
        synced.append(fork.slug)

    monkeypatch.setattr(fork_tasks, "sync_fork", sync_fork)
    monkeypatch.setattr(fork_tasks.evaluate_alerts_task, "delay", lambda: None)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MIRROR_DIR = settings.DATA_DIR / "test-scheduler-locks"
    run = celery_runner(current_app)
    assert run(Entry("sync forks", "tracker.sync_all_forks", 3600)) == 2
    assert synced == ["fine"]
    assert "tracker.sync_fork" in capfd.readouterr().err  # Celery logged the failure
    with pytest.raises(TaskFailed, match="upstream_id"):
        run(Entry("broken", "tracker.link_fixes", 60))  # a missing argument: the task fails


def test_run_scheduler_syncs_and_evaluates_alerts_on_sqlite_beside_the_web_server(tmp_path):
    """What script/server runs with nothing configured: manage.py run_scheduler and
    runserver on one SQLite file; no SECRET_KEY, no DEBUG, no broker."""
    world = build_world(
        standard_world(seed=71, main_commits=300, milestones=4, vulnerabilities=4),
        tmp_path / "world",
    )
    acme = next(f for f in world["forks"] if f["slug"] == "acme")
    unset = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "CACHE_KEY_PREFIX"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        DATA_DIR=str(tmp_path),
        LOG_LEVEL="INFO",
        # No live upstream sources: the world's own data is recorded, and tests stay offline.
        CHROMIUMDASH_SYNC_SECONDS="0",
        VERSIONHISTORY_SYNC_SECONDS="0",
        CHROME_RELEASES_SYNC_SECONDS="0",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(env, logs)
    procs.manage("migrate", "--noinput")
    procs.manage(
        "add_upstream", "chromium", "--name", "Chromium", "--url", world["upstream"]["path"]
    )
    procs.manage("add_fork", "acme", "--name", "Acme", "--url", acme["path"])
    procs.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model;"
        "from tracker.models import AlertSettings, Fork;"
        "fork = Fork.objects.get(slug='acme');"
        "AlertSettings.objects.create(fork=fork, branch=fork.branches.get(), lag_days=0);"
        "get_user_model().objects.create_user('ops', password='embedded-pw-1')",
    )
    db = sqlite3.connect(tmp_path / "forkhealth.sqlite3", timeout=10)
    assert db.execute("SELECT count(*) FROM tracker_branchsnapshot").fetchone() == (0,)
    port = free_port()
    scheduler = procs.start("scheduler", "manage", "run_scheduler")
    procs.start("web", "manage", "runserver", "--noreload", f"127.0.0.1:{port}")
    log = logs / "scheduler-0.log"
    try:

        def done():
            text = log.read_text()
            return "scheduled sync forks: 1 " in text and "scheduled evaluate alerts: " in text

        wait_for(done, 120, "a scheduled sync and evaluation", 0.5)
        snapshots = db.execute(
            "SELECT count(*) FROM tracker_branchsnapshot s JOIN tracker_trackedbranch b"
            " ON s.branch_id = b.id JOIN tracker_fork f ON b.fork_id = f.id WHERE f.slug='acme'"
        ).fetchone()[0]
        assert snapshots >= 1
        alert = db.execute("SELECT state FROM tracker_alert WHERE key = 'lag:acme:main'")
        assert alert.fetchone() == ("open",)
        text = log.read_text()
        assert re.search(r"scheduled evaluate alerts: \d+ opened", text)
        assert "scheduled deliver alerts: " in text and "Traceback" not in text

        # The web server, DEBUG off, answers beside it: a log-in (a session written to the
        # same file), a page, a static file through whitenoise.
        base = f"http://127.0.0.1:{port}"
        web = requests.Session()
        wait_for(lambda: _answers(web, f"{base}/login/"), 60, "the web server", 0.5)
        token = web.cookies["csrftoken"]
        login = web.post(
            f"{base}/login/",
            {"username": "ops", "password": "embedded-pw-1", "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/login/"},
            timeout=30,
        )
        assert login.status_code == 200 and "Acme" in login.text, login.text[:500]
        assert web.get(f"{base}/static/css/site.css", timeout=10).status_code == 200

        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(timeout=60) == 0
        assert "scheduler: stopped" in log.read_text()
    finally:
        db.close()
        procs.close()


def _answers(session: requests.Session, url: str) -> bool:
    try:
        return session.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False
