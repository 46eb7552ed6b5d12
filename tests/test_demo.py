"""The demo command builds the demo world and registers it; the overview shows it."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from tracker.demo import build_demo, demo_world_dir, register_demo
from tracker.models import (
    BranchSnapshot,
    Fork,
    ForkKind,
    ForkSecuritySnapshot,
    TrackedBranch,
    Upstream,
    UpstreamCommit,
)


@pytest.mark.django_db
def test_demo_registers_upstream_forks_and_branches_idempotently(tmp_path):
    truth = build_demo(tmp_path, datetime(2026, 11, 1, tzinfo=UTC))
    register_demo(truth)
    register_demo(truth)
    assert Upstream.objects.count() == 1
    assert Path(Upstream.objects.get().git_url, "HEAD").exists()
    assert Fork.objects.count() == len(truth["forks"])
    kinds = set(Fork.objects.values_list("kind", flat=True))
    assert kinds == {ForkKind.GIT, ForkKind.PATCH_SERIES}
    git_branches = sum(len(f.get("branches", [])) for f in truth["forks"])
    series = sum(1 for f in truth["forks"] if f["kind"] == "patch_series")
    assert TrackedBranch.objects.count() == git_branches + series
    acme = Fork.objects.get(slug="acme")
    assert acme.owners == ["release@acme.example"]
    assert set(acme.branches.values_list("upstream_ref", flat=True)) >= {"refs/heads/main"}


@pytest.mark.django_db
def test_demo_command_and_overview(settings, tmp_path, staff_client, capsys):
    settings.DATA_DIR = tmp_path
    settings.GIT_LOCAL_ROOTS = [tmp_path]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    call_command("demo")
    assert "demo: upstream with" in capsys.readouterr().out
    commits = UpstreamCommit.objects.count()
    assert commits > 0
    body = staff_client.get(reverse("overview")).content.decode()
    for fork in Fork.objects.all():
        assert fork.name in body
    assert "refs/branch-heads/" in body
    assert "not synced yet" not in body.split("Lumen")[0]  # git forks show their figures
    # Every git branch has today's snapshot and its replayed history (a weekly sample at least).
    for branch in TrackedBranch.objects.filter(fork__kind=ForkKind.GIT):
        assert branch.snapshots.count() > 4, branch
    _check_security_history(settings.DATA_DIR)
    snapshots = BranchSnapshot.objects.count()
    security = ForkSecuritySnapshot.objects.count()
    call_command("demo")  # a second run reuses the world: same commits, one more snapshot each
    assert UpstreamCommit.objects.filter(upstream__slug="chromium").count() == commits
    git_branches = TrackedBranch.objects.filter(fork__kind=ForkKind.GIT).count()
    assert BranchSnapshot.objects.count() == snapshots + git_branches
    assert ForkSecuritySnapshot.objects.count() == security + Fork.objects.count()


def _check_security_history(data_dir):
    """Every fork has a replayed history of security snapshots; each past point counts the
    open fixes of the release newest then, among the fixes upstream had shipped by then."""
    truth = json.loads((demo_world_dir(data_dir) / "ground-truth.json").read_text())
    since = {
        v["cve"]: datetime.fromisoformat(v["first_stable_time"] or v["landed"])
        for v in truth["vulnerabilities"]
    }
    checked = 0
    for fork_truth in truth["forks"]:
        history = list(ForkSecuritySnapshot.objects.filter(fork__slug=fork_truth["slug"]))
        assert len(history) > 4, fork_truth["slug"]
        releases = sorted(fork_truth["releases"], key=lambda r: r["time"])
        for point in history[:-1]:  # the last one is the live sync's
            shipped = [r for r in releases if datetime.fromisoformat(r["time"]) <= point.taken_at]
            if not shipped:
                continue
            newest = shipped[-1]
            expected = sum(
                1
                for cve, fix in newest["fixes"].items()
                if fix["status"] == "open" and since[cve] <= point.taken_at
            )
            assert (point.release_tag, point.open_total) == (newest["tag"], expected), point
            checked += 1
    assert checked


@pytest.mark.django_db
def test_create_login_prints_the_password_once(capsys, django_user_model, client):
    call_command("create_login", "alice")
    first = capsys.readouterr().out
    password = first.split("password ")[1].split("'")[1]
    call_command("create_login", "alice")
    second = capsys.readouterr().out
    assert password not in second and "exists" in second
    response = client.post(reverse("login"), {"username": "alice", "password": password})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    assert django_user_model.objects.get(username="alice").is_staff


def test_the_demo_works_in_embedded_mode_on_sqlite(tmp_path):
    """What `script/server` does with nothing configured: SQLite, tasks in-process."""
    import os
    import sqlite3
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    # Nothing configured, as for a new user: no database, broker, secret key or DEBUG.
    unset = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update({"DATA_DIR": str(tmp_path), "LOG_LEVEL": "WARNING"})

    def manage(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    manage("migrate", "--noinput")
    result = manage("demo")
    assert "demo: upstream with" in result.stdout
    db = sqlite3.connect(tmp_path / "forkhealth.sqlite3")
    snapshots = db.execute("SELECT count(*) FROM tracker_branchsnapshot").fetchone()[0]
    statuses = db.execute("SELECT count(*) FROM tracker_fixstatus").fetchone()[0]
    releases = db.execute("SELECT count(*) FROM tracker_forkrelease").fetchone()[0]
    assert snapshots > 20 and statuses > 0 and releases > 0
    # The pages on SQLite, built from the database (the page cache keeps bodies in memory).
    script = """
from django.contrib.auth import get_user_model
from django.test import Client
from tracker.models import FixStatus, Fork
client = Client()
client.force_login(get_user_model().objects.create_user("sqlite", is_staff=True))
status = FixStatus.objects.exclude(evidence=[]).select_related("vulnerability").first()
for url in ["/", f"/forks/{Fork.objects.first().slug}/", "/security/",
            f"/security/{status.vulnerability.cve}/"]:
    response = client.get(url, HTTP_HOST="localhost")
    print(url, response.status_code, response.content.decode().count('class="evidence"><li>'))
"""
    result = manage("shell", "-c", script)
    pages = [line.split() for line in result.stdout.splitlines() if line.startswith("/")]
    assert [page[1] for page in pages] == ["200"] * 4, result.stdout + result.stderr[-3000:]
    assert int(pages[3][2]) > 0  # the CVE page shows evidence
