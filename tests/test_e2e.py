"""End to end with real processes: gunicorn, a Celery worker and beat on Redis and PostgreSQL.

The test only talks to them as a user and an operator would (a management command, the JSON
API over HTTP, the pages): it calls no project function directly.
"""

import os
import re

import pytest
import requests

from tests.support.processes import Processes, suite_database_url, wait_for
from tests.support.services import free_port
from tracker.generator import build_world, standard_world


def _get(url, **kwargs):
    """The response, or None while the server is not answering yet: refused, or accepted
    and not answered in time (gunicorn's workers still booting on a loaded machine)."""
    try:
        return requests.get(url, timeout=5, **kwargs)
    except (requests.ConnectionError, requests.Timeout):
        return None


@pytest.fixture
def stack(tmp_path, transactional_db, django_user_model):
    from rest_framework.authtoken.models import Token

    world = build_world(
        standard_world(seed=61, main_commits=300, milestones=4, vulnerabilities=6),
        tmp_path / "world",
    )
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": suite_database_url(),
        "DATA_DIR": str(tmp_path / "data"),
        "GIT_LOCAL_ROOTS": str(tmp_path),
        "SITE_URL": f"http://127.0.0.1:{port}",
        "WORKER_HEARTBEAT_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
    }
    admin = django_user_model.objects.create_superuser("ops", password="e2e-password-1")
    token = Token.objects.create(user=admin).key
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(env, logs)
    procs.start(
        "web", "gunicorn", "dashboard.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"
    )
    procs.worker("default,git,http", "--concurrency", "2")
    procs.start(
        "beat",
        "celery",
        "-A",
        "dashboard",
        "beat",
        "--loglevel",
        "WARNING",
        "--schedule",
        str(tmp_path / "beat-schedule"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/healthz") is not None, 60, "the web server", 0.5)
        yield {"world": world, "base": base, "token": token, "procs": procs}
    finally:
        procs.close()


def test_a_fork_added_through_the_api_is_synced_by_the_worker_and_shown(stack):
    world, base = stack["world"], stack["base"]
    api = requests.Session()
    api.headers["Authorization"] = f"Token {stack['token']}"

    stack["procs"].manage(
        "add_upstream", "chromium", "--name", "Chromium", "--url", world["upstream"]["path"]
    )
    acme = next(f for f in world["forks"] if f["slug"] == "acme")
    created = api.post(
        f"{base}/api/forks/",
        json={
            "slug": "acme",
            "name": "Acme Browser",
            "kind": "git",
            "upstream": "chromium",
            "git_url": acme["path"],
            "release_tag_pattern": "refs/tags/v*",
            "branches": [
                {"name": b["name"], "upstream_ref": b["upstream_ref"]} for b in acme["branches"]
            ],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert api.post(f"{base}/api/forks/acme/sync/", timeout=10).status_code == 202

    def synced():
        rows = api.get(f"{base}/api/snapshots/?fork=acme", timeout=10).json()["results"]
        return rows if len(rows) == len(acme["branches"]) else None

    snapshots = {s["branch"]: s for s in wait_for(synced, 120, "the worker's sync", 0.5)}
    for branch in acme["branches"]:
        assert snapshots[branch["name"]]["tip_sha"] == branch["tip"]
        assert snapshots[branch["name"]]["base_sha"] == branch["base"]

    page = requests.Session()
    login = page.get(f"{base}/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    page.post(
        f"{base}/login/",
        data={
            "csrfmiddlewaretoken": csrf,
            "username": "ops",
            "password": "e2e-password-1",
            "next": "/",
        },
        headers={"Referer": f"{base}/login/"},
        timeout=10,
    )
    overview = page.get(f"{base}/", timeout=10).text
    assert "Acme Browser" in overview and "not synced yet" not in overview
    fork_page = page.get(f"{base}/forks/acme/", timeout=10).text
    main = next(b for b in acme["branches"] if b["name"] == "main")
    assert f">{main['commits_behind']}</td>" in fork_page

    # Beat schedules the heartbeat; a worker runs it; /healthz sees the worker alive.
    health = wait_for(
        lambda: (r := _get(f"{base}/healthz")) is not None and r.json()["worker"]["ok"] and r,
        60,
        "a worker heartbeat",
        0.5,
    )
    assert health.json()["database"] == "ok" and health.json()["redis"] == "ok"
