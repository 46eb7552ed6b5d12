"""sync_fork_task and sync_upstream_task: thin, retry only what a retry can fix."""

from pathlib import Path

import pytest
from celery.exceptions import Retry

from tracker.generator import build_world, standard_world
from tracker.git import GitError, UnsafeGitInput
from tracker.models import BranchSnapshot, UpstreamCommit
from tracker.registry import register_fork, register_upstream
from tracker.tasks import sync_fork_task, sync_upstream_task


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        standard_world(seed=41, main_commits=300, milestones=4, vulnerabilities=6),
        tmp_path_factory.mktemp("tasks") / "world",
    )


@pytest.fixture
def acme(world, settings, tmp_path):
    settings.GIT_LOCAL_ROOTS = [Path(world["path"])]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    upstream = register_upstream("chromium", "Chromium", world["upstream"]["path"])
    truth = next(f for f in world["forks"] if f["slug"] == "acme")
    fork = register_fork(
        upstream,
        "acme",
        "Acme",
        truth["path"],
        branches=[(b["name"], b["upstream_ref"]) for b in truth["branches"]],
    )
    return fork, truth


@pytest.mark.django_db(transaction=True)
def test_sync_fork_task_ingests_and_snapshots(acme):
    fork, truth = acme
    sync_fork_task.apply(args=[fork.pk], throw=True)
    assert UpstreamCommit.objects.filter(upstream=fork.upstream).count() > 0
    snapshots = BranchSnapshot.objects.filter(branch__fork=fork)
    assert {s.tip_sha for s in snapshots} == {b["tip"] for b in truth["branches"]}
    fork.refresh_from_db()
    assert fork.last_synced_at is not None and fork.last_error == ""


@pytest.mark.django_db(transaction=True)
def test_transient_git_failure_is_retried_and_recorded(acme, monkeypatch):
    fork, _ = acme

    def unreachable(*args, **kwargs):
        raise GitError("git fetch failed (exit 128): unable to access: connection refused")

    monkeypatch.setattr("tracker.sync.fetch_upstream_refs", unreachable)
    with pytest.raises(Retry):
        sync_fork_task.apply(args=[fork.pk], throw=True)
    fork.upstream.refresh_from_db()
    assert "connection refused" in fork.upstream.last_error


@pytest.mark.django_db(transaction=True)
def test_permanent_failure_is_not_retried(acme, monkeypatch):
    fork, _ = acme

    def refused(*args, **kwargs):
        raise UnsafeGitInput("repository URL scheme 'ext' is not allowed")

    monkeypatch.setattr("tracker.sync.fetch_upstream_refs", refused)
    with pytest.raises(UnsafeGitInput):
        sync_upstream_task.apply(args=[fork.upstream.pk], throw=True)
    fork.upstream.refresh_from_db()
    assert "not allowed" in fork.upstream.last_error


@pytest.mark.django_db(transaction=True)
def test_a_sync_finding_the_mirror_busy_waits_its_turn(acme):
    from tracker.locks import mirror_lock

    fork, _ = acme
    with mirror_lock(fork.upstream.slug), pytest.raises(Retry):
        sync_fork_task.apply(args=[fork.pk], throw=True)
    assert BranchSnapshot.objects.filter(branch__fork=fork).count() == 0  # nothing half-done
    assert sync_fork_task.apply(args=[fork.pk], throw=True).get() == "synced"


@pytest.mark.django_db(transaction=True)
def test_in_embedded_mode_failures_wait_for_the_next_scheduled_sync(acme, monkeypatch, settings):
    """Tasks run inline there: a retry would run at once, its countdown ignored."""
    from tracker.locks import mirror_lock

    settings.CELERY_TASK_ALWAYS_EAGER = True
    fork, _ = acme
    with mirror_lock(fork.upstream.slug):
        assert sync_fork_task.apply(args=[fork.pk], throw=True).get().startswith("skipped: ")
    calls = []

    def unreachable(*args, **kwargs):
        calls.append(args)
        raise GitError("git fetch failed (exit 128): unable to access: connection refused")

    monkeypatch.setattr("tracker.sync.fetch_upstream_refs", unreachable)
    with pytest.raises(GitError):
        sync_fork_task.apply(args=[fork.pk], throw=True)
    assert len(calls) == 1
    fork.upstream.refresh_from_db()
    assert "connection refused" in fork.upstream.last_error


@pytest.mark.django_db(transaction=True)
def test_sync_all_forks_queues_one_sync_per_fork(acme, monkeypatch):
    from tracker.tasks.forks import sync_all_forks_task

    queued = []
    monkeypatch.setattr(sync_fork_task, "delay", queued.append)
    assert sync_all_forks_task.apply(throw=True).get() == 1
    assert queued == [acme[0].pk]


@pytest.mark.django_db(transaction=True)
def test_mirror_housekeeping_queues_one_task_per_upstream_and_waits_for_a_sync(acme, monkeypatch):
    from tracker.locks import mirror_lock
    from tracker.tasks import maintain_mirror_task, maintain_mirrors_task

    fork, _ = acme
    queued = []
    monkeypatch.setattr(maintain_mirror_task, "delay", queued.append)
    assert maintain_mirrors_task.apply(throw=True).get() == 1
    assert queued == [fork.upstream.pk]
    assert maintain_mirror_task.apply(args=[fork.upstream.pk], throw=True).get() == "no mirror yet"
    sync_fork_task.apply(args=[fork.pk], throw=True)
    with mirror_lock(fork.upstream.slug):  # a sync holds the mirror
        assert maintain_mirror_task.apply(args=[fork.upstream.pk]).get().startswith("skipped")
    assert maintain_mirror_task.apply(args=[fork.upstream.pk]).get().startswith("gc: ")
