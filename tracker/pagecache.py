"""Page bodies cached until the data under them changes.

The dashboard's pages are read far more often than their data changes (syncs run hourly), so
the expensive part of a page, its body, is kept in the cache under a key that includes a
*data version*: one cheap query of index probes (the newest snapshot, security snapshot,
release, triage, vulnerability, …) that changes whenever something a page shows may have
changed. A new sync, triage or change in the admin therefore shows at once;
``PAGE_CACHE_SECONDS`` only bounds how stale relative times ("5 minutes ago") get. The page's
shell (header, user name, CSRF token of the log-out form) is rendered per request. Bodies
holding a form carry `CSRF_SLOT` in place of the token, filled in per request.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TypeVar

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.core.cache import cache
from django.db import connection
from django.middleware.csrf import get_token
from django.utils.safestring import SafeString, mark_safe

from tracker.models import (
    Alert,
    BranchSnapshot,
    FixTriage,
    Fork,
    ForkRelease,
    ForkSecuritySnapshot,
    SourceState,
    TrackedBranch,
    Upstream,
    UpstreamRelease,
    Vulnerability,
)

T = TypeVar("T")

CSRF_SLOT = "csrf-slot-8e1f0c"  # stands for the request's CSRF token in cached bodies


def _probes() -> list[str]:
    # Table names come from the models, never from input.
    def newest_id(model) -> str:
        return f"(SELECT MAX(id) FROM {model._meta.db_table})"  # noqa: S608

    fork, upstream, source = (m._meta.db_table for m in (Fork, Upstream, SourceState))
    return [
        *(
            newest_id(m)
            for m in (
                BranchSnapshot,
                ForkSecuritySnapshot,
                FixTriage,
                ForkRelease,
                UpstreamRelease,
                Vulnerability,
                TrackedBranch,
                Alert,
                LogEntry,  # every change made in the admin (a fork renamed, a threshold)
            )
        ),
        f"(SELECT COUNT(*) FROM {fork})",  # noqa: S608
        f"(SELECT MAX(last_synced_at) FROM {fork})",  # noqa: S608
        f"(SELECT COUNT(*) FROM {fork} WHERE last_error <> '')",  # noqa: S608
        f"(SELECT MAX(last_synced_at) FROM {upstream})",  # noqa: S608
        f"(SELECT MAX(last_attempt_at) FROM {source})",  # noqa: S608
    ]


@functools.cache
def _select() -> str:
    return "SELECT " + ", ".join(_probes())


def data_version() -> str:
    """A digest that changes whenever data a page shows may have changed (one query).

    On PostgreSQL psycopg prepares the query after its first few runs on a connection
    (`dashboard.env.database_config`): planning its probes costs about three times what
    running them does (1.3 against 0.4 ms), on every page."""
    with connection.cursor() as cursor:
        cursor.execute(_select())
        row = cursor.fetchone()
    return hashlib.sha1(repr(row).encode(), usedforsecurity=False).hexdigest()[:16]


REBUILD_SECONDS = 30  # how long one request may take to rebuild an expired value
# The data version a value being built was keyed by, for the values its build reads.
_building_on: ContextVar[str | None] = ContextVar("building_on", default=None)


def cached_value(name: str, parts: Iterable[object], build: Callable[[], T]) -> T:
    """What `build()` returns (text, texts, or other plain data that pickles), from the
    cache when the data has not changed since it was built.

    `parts` are whatever else the value depends on (query string, staff or not, …): what
    the URL names rather than database ids, so that a hit needs no lookup; `build` raises
    Http404 for a name that does not exist, and nothing is cached then. With
    ``PAGE_CACHE_SECONDS`` at 0 the value is built every time.

    A value older than ``PAGE_CACHE_SECONDS`` is rebuilt by one request while the others
    keep getting it for the few moments that takes: for the same data version it differs
    only in its relative times, and a crowd on a busy page would otherwise all rebuild it
    at once, every time it expires.

    A value built inside another's `build` (a part shared by many pages) is keyed by the
    data version the outer one read: one query for both."""
    ttl = settings.PAGE_CACHE_SECONDS
    if ttl <= 0:
        return build()
    version = _building_on.get() or data_version()
    raw = "|".join([name, version, *map(str, parts)])
    key = "page:v2:" + hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()
    entry = cache.get(key)
    now = time.time()
    if entry is not None:
        built_at, value = entry
        if now - built_at < ttl or not cache.add(f"{key}:rebuild", 1, REBUILD_SECONDS):
            return value  # fresh, or another request is rebuilding it
    token = _building_on.set(version)
    try:
        value = build()
    finally:
        _building_on.reset(token)
    cache.set(key, (now, value), ttl + REBUILD_SECONDS)
    if entry is not None:
        cache.delete(f"{key}:rebuild")
    return value


def cached_body(name: str, parts: Iterable[object], build: Callable[[], str]) -> SafeString:
    """The page body `build()` renders, through `cached_value`."""
    # A template's output, escaped as it rendered.
    return mark_safe(str(cached_value(name, parts, build)))  # noqa: S308


def cached_titled_body(
    name: str, parts: Iterable[object], build: Callable[[], tuple[str, str]]
) -> tuple[str, SafeString]:
    """The (title, body) pair `build()` renders, through `cached_value`: for pages whose
    title names what the URL names (a fork), so that a cached page needs no lookup."""
    title, body = cached_value(name, parts, build)
    return title, mark_safe(body)  # noqa: S308 - a template's output, escaped as it rendered


def fill_csrf(body: str, request) -> SafeString:
    """`body` with `CSRF_SLOT` replaced by this request's CSRF token."""
    return mark_safe(body.replace(CSRF_SLOT, get_token(request)))  # noqa: S308 - token is [A-Za-z0-9]
