"""Faults with real processes: each ends with the database consistent, nothing lost or doubled."""

import os
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import git
from tests.support.processes import Processes, suite_database_url, wait_for
from tracker.generator import build_world, standard_world
from tracker.models import BranchSnapshot, Fork, IngestCursor, UpstreamCommit


@pytest.fixture(scope="module")
def big_world(tmp_path_factory):
    """Large enough that ingesting it takes seconds: room to kill a worker half-way."""
    return build_world(
        standard_world(
            seed=71, main_commits=60_000, milestones=8, days=8 * 28, files=300, vulnerabilities=10
        ),
        tmp_path_factory.mktemp("faults") / "world",
    )


@pytest.fixture
def workers(tmp_path, big_world, transactional_db):
    """Workers on the suite's database and Redis, consuming a queue of the test's own."""
    queue = f"faults-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DATABASE_URL": suite_database_url(),
        "DATA_DIR": str(tmp_path / "data"),
        "GIT_LOCAL_ROOTS": big_world["path"],
        "SYNC_LOCK_SECONDS": "3",
        "LOG_LEVEL": "WARNING",
    }
    procs = Processes(env, tmp_path)
    procs.queue = queue
    yield procs
    procs.close()


def _register_acme(procs: Processes, world: dict) -> tuple[int, dict]:
    """Add the world's upstream and its rebased fork by command; (upstream commits, truth)."""
    upstream_repo = world["upstream"]["path"]
    total = int(git(upstream_repo, "rev-list", "--count", "--all").strip())
    acme = next(f for f in world["forks"] if f["slug"] == "acme")
    procs.manage("add_upstream", "chromium", "--name", "Chromium", "--url", upstream_repo)
    procs.manage(
        "add_fork",
        "acme",
        "--name",
        "Acme",
        "--url",
        acme["path"],
        "--branch",
        "main=refs/heads/main",
    )
    return total, acme


def test_worker_killed_mid_ingest_then_restarted_leaves_one_row_per_commit(workers, big_world):
    from tracker.tasks import sync_fork_task

    total, acme = _register_acme(workers, big_world)
    fork = Fork.objects.get(slug="acme")
    first = workers.worker(workers.queue)
    sync_fork_task.apply_async(args=[fork.pk], queue=workers.queue)
    wait_for(lambda: UpstreamCommit.objects.count() > total // 10, 120, "ingest to be under way")
    Processes.kill(first)  # SIGKILL mid-ingest, no chance to clean up
    partial = UpstreamCommit.objects.count()
    assert partial < total, "the kill came too late to test anything"
    assert not IngestCursor.objects.filter(ref="refs/heads/main").exists()

    workers.worker(workers.queue)  # restarted; an operator (or beat) asks for the sync again
    sync_fork_task.apply_async(args=[fork.pk], queue=workers.queue)
    wait_for(
        lambda: BranchSnapshot.objects.filter(branch__fork=fork).exists(),
        180,
        "the sync to finish after the restart",
    )

    assert UpstreamCommit.objects.count() == total  # nothing lost ...
    shas = UpstreamCommit.objects.values_list("sha", flat=True)
    assert len(set(shas)) == total  # ... nothing doubled
    cursor = IngestCursor.objects.get(ref="refs/heads/main")
    assert cursor.sha == big_world["upstream"]["tip"]
    (snapshot,) = BranchSnapshot.objects.filter(branch__fork=fork)
    main = next(b for b in acme["branches"] if b["name"] == "main")
    assert snapshot.tip_sha == main["tip"] and snapshot.commits_behind == main["commits_behind"]
    fork.refresh_from_db()
    assert fork.last_error == ""


def test_two_workers_handed_the_same_sync_do_it_once_at_a_time(workers, big_world):
    from tracker.tasks import sync_fork_task

    total, _acme = _register_acme(workers, big_world)
    fork = Fork.objects.get(slug="acme")
    data_dir = workers.env["DATA_DIR"]
    for host in ("a", "b"):  # two hosts: two mirror folders, one database, one Redis
        workers.env["DATA_DIR"] = f"{data_dir}-{host}"
        workers.worker(workers.queue)
    for _ in range(2):
        sync_fork_task.apply_async(args=[fork.pk], queue=workers.queue)
    wait_for(
        lambda: BranchSnapshot.objects.filter(branch__fork=fork).count() == 2,
        240,
        "both syncs, one after the other",
    )
    assert UpstreamCommit.objects.count() == total
    assert len(set(UpstreamCommit.objects.values_list("sha", flat=True))) == total
    first, second = BranchSnapshot.objects.filter(branch__fork=fork).order_by("taken_at")
    assert (first.tip_sha, first.commits_behind) == (second.tip_sha, second.commits_behind)


class FlakyDash:
    """A local stand-in for Chromium Dash serving a world's recorded data, which can be told
    to answer 500s or to hang past the client's timeout."""

    def __init__(self, world: dict) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        data = Path(world["path"]) / "upstream-data"
        self.releases = json.loads((data / "chromiumdash-fetch_releases.json").read_text())
        self.milestones = json.loads((data / "chromiumdash-fetch_milestones.json").read_text())
        self.mode = "ok"
        self.requests = 0
        dash = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                dash.requests += 1
                if dash.mode == "500":
                    body, status = b"<html>Server Error</html>", 500
                else:
                    if dash.mode == "hang":
                        time.sleep(4)  # past UPSTREAM_HTTP_TIMEOUT
                    url = urlsplit(self.path)
                    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                    if url.path == "/fetch_milestones":
                        payload = dash.milestones
                    elif url.path == "/fetch_milestone_schedule":
                        payload = {"mstones": []}
                    else:
                        rows = [
                            r
                            for r in dash.releases
                            if r["channel"] == query.get("channel", r["channel"])
                            and r["platform"] == query.get("platform", r["platform"])
                        ]
                        offset, num = int(query.get("offset", 0)), int(query.get("num", 1000))
                        payload = rows[offset : offset + num]
                    body, status = json.dumps(payload).encode(), 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_upstream_source_failing_for_a_while_keeps_its_data_and_recovers(workers, big_world):
    from tracker.models import SourceState, UpstreamRelease
    from tracker.tasks.upstream import sync_chromiumdash_task

    dash = FlakyDash(big_world)
    workers.env.update({"CHROMIUMDASH_URL": dash.url, "UPSTREAM_HTTP_TIMEOUT": "2"})
    workers.manage(
        "add_upstream", "chromium", "--name", "Chromium", "--url", big_world["upstream"]["path"]
    )
    workers.worker(workers.queue)

    def run_and_wait(condition, what):
        sync_chromiumdash_task.apply_async(queue=workers.queue)
        return wait_for(condition, 120, what)

    def state():
        return SourceState.objects.filter(source="chromiumdash").first()

    run_and_wait(lambda: state() and state().last_success_at, "a first good sync")
    good_at, releases = state().last_success_at, UpstreamRelease.objects.count()
    assert releases > 0

    for mode, sign in (("500", "500"), ("hang", "imed out")):
        dash.mode = mode
        before = state().failures
        run_and_wait(lambda b=before: state().failures > b, f"a failure recorded ({mode})")
        failed = state()
        assert sign.lower() in failed.last_error.lower(), failed.last_error
        assert failed.last_success_at == good_at  # the last good data stays, and says so
        assert UpstreamRelease.objects.count() == releases

    dash.mode = "ok"
    newest = dict(dash.releases[0])
    newest.update(version="999.0.9999.1", previous_version=newest["version"])
    dash.releases.insert(0, newest)
    run_and_wait(lambda: state().last_success_at > good_at and not state().last_error, "recovery")
    assert state().failures == 0
    # Every new release exactly once (one row per channel and platform), nothing doubled.
    assert UpstreamRelease.objects.count() == releases + 1
    assert UpstreamRelease.objects.filter(version="999.0.9999.1").count() == 1
    dash.close()


class PrivateStack(Processes):
    """Workers on a private PostgreSQL and Redis, which the test may restart at will."""

    def __init__(self, tmp_path: Path, world: dict) -> None:
        from tests.support.services import PrivatePostgres, PrivateRedis

        self.pg, self.redis = PrivatePostgres(), PrivateRedis()
        self.pg.start()
        self.redis.start()
        self.world = world
        super().__init__(
            {
                **os.environ,
                "DATABASE_URL": self.pg.url,
                "REDIS_URL": self.redis.url,
                "DATA_DIR": str(tmp_path / "data"),
                "GIT_LOCAL_ROOTS": world["path"],
                "SYNC_LOCK_SECONDS": "3",
                "LOG_LEVEL": "WARNING",
            },
            tmp_path,
        )
        self.manage("migrate", "--noinput")

    def sync(self, fork_id: int) -> None:
        from celery import Celery

        # Not the current app: later tests must keep publishing to the suite's own broker.
        with Celery("faults", broker=self.redis.url, set_as_current=False) as app:
            app.send_task("tracker.sync_fork", args=[fork_id], queue="git")

    def count(self, sql: str, params: tuple = ()) -> int:
        return self.pg.count(sql, params)

    def close(self) -> None:
        for proc in self.procs:
            self.kill(proc)
        self.redis.stop()
        self.pg.stop()


@pytest.fixture
def private(tmp_path, big_world):
    stack = PrivateStack(tmp_path, big_world)
    yield stack
    stack.close()


COMMITS = "SELECT count(*) FROM tracker_upstreamcommit"
DISTINCT = "SELECT count(DISTINCT sha) FROM tracker_upstreamcommit"
SNAPSHOTS = "SELECT count(*) FROM tracker_branchsnapshot"


def _register(stack: PrivateStack):
    total, acme = _register_acme(stack, stack.world)
    fork_id = stack.count("SELECT id FROM tracker_fork WHERE slug = 'acme'")
    main = next(b for b in acme["branches"] if b["name"] == "main")
    return total, fork_id, main


def _assert_consistent(stack: PrivateStack, total: int, main: dict, snapshots: int) -> None:
    assert stack.count(COMMITS) == total  # nothing lost ...
    assert stack.count(DISTINCT) == total  # ... nothing doubled
    assert stack.count(SNAPSHOTS) == snapshots
    right = stack.count(
        "SELECT count(*) FROM tracker_branchsnapshot WHERE tip_sha = %s AND commits_behind = %s",
        (main["tip"], main["commits_behind"]),
    )
    assert right == snapshots


def test_redis_restarted_during_a_sync(private):
    total, fork_id, main = _register(private)
    private.worker("default,git")
    private.sync(fork_id)
    wait_for(lambda: private.count(COMMITS) > total // 10, 120, "ingest to be under way")
    private.redis.restart()  # the broker, the cache and the locks, all gone at once
    wait_for(lambda: private.count(SNAPSHOTS) == 1, 180, "the sync to finish through the restart")
    _assert_consistent(private, total, main, snapshots=1)
    private.sync(fork_id)  # the worker reconnected: the next sync it is handed runs too
    wait_for(lambda: private.count(SNAPSHOTS) == 2, 120, "a sync after the restart")
    _assert_consistent(private, total, main, snapshots=2)


def test_postgres_restarted_during_a_sync(private):
    total, fork_id, main = _register(private)
    private.worker("default,git")
    private.sync(fork_id)
    wait_for(lambda: private.count(COMMITS) > total // 10, 120, "ingest to be under way")
    private.pg.restart()  # cuts the worker's connections mid-batch
    partial = private.count(COMMITS)
    assert 0 < partial <= total
    private.sync(fork_id)  # the interrupted sync is retried later; an operator need not wait
    wait_for(lambda: private.count(SNAPSHOTS) >= 1, 180, "a sync after the restart")
    _assert_consistent(private, total, main, snapshots=private.count(SNAPSHOTS))
    cursor = private.count(
        "SELECT count(*) FROM tracker_ingestcursor WHERE ref = 'refs/heads/main' AND sha = %s",
        (private.world["upstream"]["tip"],),
    )
    assert cursor == 1
