"""manage.py sync_fork: syncs in-process, then evaluates the alerts as the sync task does, so
a cron setup gets alerts too."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tracker.generator import build_world, standard_world
from tracker.models import Alert, AlertSettings, AlertState, BranchSnapshot, Fork
from tracker.registry import register_fork, register_upstream


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        standard_world(seed=61, main_commits=300, milestones=4, vulnerabilities=4),
        tmp_path_factory.mktemp("sync-command") / "world",
    )


@pytest.fixture
def upstream(world, settings, tmp_path):
    settings.GIT_LOCAL_ROOTS = [Path(world["path"])]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    return register_upstream("chromium", "Chromium", world["upstream"]["path"])


@pytest.mark.django_db
def test_sync_fork_opens_the_alert_of_a_branch_over_its_lag_threshold(upstream, world, capsys):
    truth = next(f for f in world["forks"] if f["slug"] == "acme")
    fork = register_fork(
        upstream, "acme", "Acme", truth["path"], branches=[("main", "refs/heads/main")]
    )
    AlertSettings.objects.create(fork=fork, branch=fork.branches.get(), lag_days=0)
    assert not Alert.objects.exists()

    call_command("sync_fork", "acme")

    snapshot = BranchSnapshot.objects.get(branch__fork=fork)
    assert snapshot.days_behind > 0
    alert = Alert.objects.get(key="lag:acme:main")
    assert alert.state == AlertState.OPEN and alert.figures["days_behind"] == snapshot.days_behind
    out = capsys.readouterr().out
    assert "acme:main:" in out and "alerts: " in out and " opened" in out


@pytest.mark.django_db
def test_a_failing_sync_is_evaluated_too_so_cron_hears_of_it(upstream, world, capsys):
    fork = register_fork(
        upstream,
        "gone",
        "Gone",
        str(Path(world["path"]) / "no-such-fork.git"),
        branches=[],
        check=False,  # registered offline; the sync finds it missing
    )
    Fork.objects.filter(pk=fork.pk).update(last_synced_at=timezone.now() - timedelta(days=2))

    with pytest.raises(CommandError, match="sync of gone failed"):
        call_command("sync_fork", "gone")

    alert = Alert.objects.get(key="stale:fork sync gone")
    assert alert.state == AlertState.OPEN and "failed (exit 128)" in alert.summary
