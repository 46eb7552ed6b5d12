"""Progress of long syncs (a first clone, a first full ingest), for the pages and the logs.

Kept in the cache (Redis in production) so every web process sees what a git worker on
another host is doing; an entry left by a worker that died expires by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger(__name__)

KEY = "progress:{slug}"
TTL = 6 * 3600  # a sync still running after this long reports again before it matters
LOG_EVERY = 10.0  # seconds between progress log lines of one sync

_last_logged: dict[str, float] = {}


def _best_effort(call, *args, **kwargs):
    """Progress is for people watching: a cache that is down (Redis restarting) must never
    fail the sync it reports on."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # any cache failure, whatever the backend raises
        logger.warning("progress not recorded: %s", exc)
        return None


def report(slug: str, phase: str, done: int | None = None, total: int | None = None) -> None:
    """Record that the sync of upstream `slug` is in `phase`, `done` of `total` units along."""
    entry = {"phase": phase, "done": done, "total": total, "updated": timezone.now().isoformat()}
    _best_effort(cache.set, KEY.format(slug=slug), entry, timeout=TTL)
    now = time.monotonic()
    if now - _last_logged.get(slug, 0.0) >= LOG_EVERY or (done is not None and done == total):
        _last_logged[slug] = now
        counts = f" {done:,}" + (f" of {total:,}" if total else "") if done is not None else ""
        logger.info("sync %s: %s%s", slug, phase, counts)


def finish(slug: str) -> None:
    _best_effort(cache.delete, KEY.format(slug=slug))
    _last_logged.pop(slug, None)


def current(slugs: Iterable[str]) -> dict[str, dict]:
    """Syncs in progress among `slugs`: slug -> its latest report (one cache round trip)."""
    keys = {KEY.format(slug=s): s for s in slugs}
    found = _best_effort(cache.get_many, list(keys)) or {}
    return {keys[k]: v for k, v in found.items()}
