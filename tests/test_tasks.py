"""Tasks run on a real Celery worker process against the real Redis broker."""

import os
import time
import uuid
from pathlib import Path

import pytest
from django.core.cache import cache

from tests.support.processes import Processes
from tracker.tasks import WORKER_HEARTBEAT_KEY, record_worker_heartbeat_task

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(tmp_path):
    """A Celery worker process consuming a queue of its own (so parallel runs cannot meet)."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    procs = Processes(os.environ.copy(), tmp_path)
    procs.worker(queue)
    yield queue
    procs.close()


def test_heartbeat_task_runs_on_a_worker_process(worker):
    cache.delete(WORKER_HEARTBEAT_KEY)
    record_worker_heartbeat_task.apply_async(queue=worker)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and cache.get(WORKER_HEARTBEAT_KEY) is None:
        time.sleep(0.2)
    assert cache.get(WORKER_HEARTBEAT_KEY) is not None
