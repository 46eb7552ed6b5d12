"""One sync at a time per mirror.

Mirrors are local to each git worker host (git on shared network storage is slow and fragile),
so two hosts never share a repository; what must not happen is two syncs of the same upstream
at once — on one host they would race on the repository, on two hosts they would do the work
twice and race on the same database rows. So a sync holds two locks:

- across hosts, a Redis lock per upstream (when REDIS_URL is set) with a short time to live
  (SYNC_LOCK_SECONDS), which a thread of the holder renews while the sync runs: if the holder
  dies (SIGKILL, lost host), renewals stop and the lock expires within SYNC_LOCK_SECONDS;
- on the host, an flock on a file beside the mirror, which the kernel releases the moment the
  holder's process dies, and which also guards the embedded mode and the sync_fork command.

A sync that finds either lock taken raises SyncBusy at once rather than waiting: the running
sync brings the mirror up to date anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


class SyncBusy(Exception):
    """Another sync of the same mirror holds its lock."""


def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def _keep_alive(lock, stop: threading.Event, slug: str) -> None:
    """Renew `lock` to a full time to live every third of it, until `stop` is set."""
    import redis

    ttl = settings.SYNC_LOCK_SECONDS
    while not stop.wait(ttl / 3):
        try:
            lock.reacquire()
        except redis.exceptions.LockError:
            logger.error("sync lock of %s was lost while the sync ran", slug)
            return
        except redis.exceptions.RedisError as exc:  # Redis restarting: try again next round
            logger.warning("sync lock of %s not renewed: %s", slug, exc)


@contextlib.contextmanager
def mirror_lock(slug: str) -> Iterator[None]:
    """Hold the sync lock of upstream `slug`'s mirror for the duration of the block."""
    directory = Path(settings.MIRROR_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{slug}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncBusy(f"a sync of {slug} is already running on this host") from None
        remote = None
        if settings.REDIS_URL:
            prefix = settings.CACHES["default"].get("KEY_PREFIX", "forkhealth")
            # thread_local=False: the renewing thread must see the token this thread took.
            remote = _redis().lock(
                f"{prefix}:lock:mirror:{slug}",
                timeout=settings.SYNC_LOCK_SECONDS,
                thread_local=False,
            )
            if not remote.acquire(blocking=False):
                raise SyncBusy(f"a sync of {slug} is already running on another host")
        stop = threading.Event()
        if remote is not None:
            threading.Thread(
                target=_keep_alive, args=(remote, stop, slug), daemon=True, name=f"lock-{slug}"
            ).start()
        try:
            yield
        finally:
            stop.set()
            if remote is not None:
                import redis

                try:
                    remote.release()
                except redis.exceptions.LockError:
                    # It expired while we held it: the sync outlived SYNC_LOCK_SECONDS.
                    logger.warning("sync lock of %s expired before the sync ended", slug)
    finally:
        os.close(fd)  # closing releases the flock
