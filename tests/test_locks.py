"""The per-mirror sync lock: refused while held, here or on another host, freed when the
holder dies (at once on its host, after SYNC_LOCK_SECONDS across hosts)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tracker.locks import SyncBusy, mirror_lock

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def slug():
    return f"lock-{uuid.uuid4().hex[:10]}"


def test_a_second_sync_on_the_same_host_is_refused(settings, tmp_path, slug):
    settings.MIRROR_DIR = tmp_path / "mirrors"
    with mirror_lock(slug), pytest.raises(SyncBusy, match="on this host"), mirror_lock(slug):
        pass
    with mirror_lock(slug):  # released when the block ended
        pass


def test_a_sync_on_another_host_is_refused_through_redis(settings, tmp_path, slug):
    settings.MIRROR_DIR = tmp_path / "host-a"
    with mirror_lock(slug):
        settings.MIRROR_DIR = tmp_path / "host-b"  # another host: its own mirror folder
        with pytest.raises(SyncBusy, match="another host"), mirror_lock(slug):
            pass


def test_a_killed_holder_frees_the_host_at_once_and_redis_after_expiry(settings, tmp_path, slug):
    settings.MIRROR_DIR = tmp_path / "mirrors"
    settings.SYNC_LOCK_SECONDS = 3
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import django, sys, time; django.setup()\n"
            "from tracker.locks import mirror_lock\n"
            f"with mirror_lock({slug!r}):\n"
            "    print('held', flush=True); time.sleep(120)",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DATA_DIR": str(tmp_path),
            "SYNC_LOCK_SECONDS": "3",
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SyncBusy), mirror_lock(slug):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # The host lock died with its process; the cluster-wide one waits for its expiry.
        with pytest.raises(SyncBusy, match="another host"), mirror_lock(slug):
            pass
        time.sleep(3.5)
        with mirror_lock(slug):
            pass
    finally:
        holder.kill()


def test_a_living_holder_keeps_its_lock_past_the_time_to_live(settings, tmp_path, slug):
    settings.SYNC_LOCK_SECONDS = 3
    settings.MIRROR_DIR = tmp_path / "host-a"
    with mirror_lock(slug):
        time.sleep(4.5)  # one and a half times the TTL: renewed meanwhile
        settings.MIRROR_DIR = tmp_path / "host-b"
        with pytest.raises(SyncBusy, match="another host"), mirror_lock(slug):
            pass
        settings.MIRROR_DIR = tmp_path / "host-a"
