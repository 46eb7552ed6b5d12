"""Page bodies cached until the data under them changes.

The dashboard's pages are read far more often than their data changes (syncs run hourly), so
the expensive part of a page, its body, is kept in the cache under a key that includes a
*data version*: one cheap query of index probes (the newest snapshot, security snapshot,
release, triage, vulnerability, …) that changes whenever something a page shows may have
changed. A new sync or triage therefore shows at once; the time to live
(``PAGE_CACHE_SECONDS``) only bounds how stale relative times ("5 minutes ago") get. The
page's shell (header, user name, CSRF token of the log-out form) is rendered per request.
Bodies holding a form carry `CSRF_SLOT` in place of the token, filled in per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from django.conf import settings
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
            )
        ),
        f"(SELECT COUNT(*) FROM {fork})",  # noqa: S608
        f"(SELECT MAX(last_synced_at) FROM {fork})",  # noqa: S608
        f"(SELECT COUNT(*) FROM {fork} WHERE last_error <> '')",  # noqa: S608
        f"(SELECT MAX(last_synced_at) FROM {upstream})",  # noqa: S608
        f"(SELECT MAX(last_attempt_at) FROM {source})",  # noqa: S608
    ]


def data_version() -> str:
    """A digest that changes whenever data a page shows may have changed (one query)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(_probes()))
        row = cursor.fetchone()
    return hashlib.sha1(repr(row).encode(), usedforsecurity=False).hexdigest()[:16]


def cached_body(name: str, parts: Iterable[object], build: Callable[[], str]) -> SafeString:
    """The body `build()` renders, from the cache when the data has not changed since.

    `parts` are whatever else the body depends on (query string, staff or not, …). With
    ``PAGE_CACHE_SECONDS`` at 0 the body is built every time."""
    ttl = settings.PAGE_CACHE_SECONDS
    if ttl <= 0:
        return mark_safe(build())  # noqa: S308 - a template's output, escaped as it rendered
    raw = "|".join([name, data_version(), *map(str, parts)])
    key = "page:" + hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()
    body = cache.get(key)
    if body is None:
        body = str(build())
        cache.set(key, body, ttl)
    return mark_safe(body)  # noqa: S308 - a template's output, escaped as it rendered


def fill_csrf(body: str, request) -> SafeString:
    """`body` with `CSRF_SLOT` replaced by this request's CSRF token."""
    return mark_safe(body.replace(CSRF_SLOT, get_token(request)))  # noqa: S308 - token is [A-Za-z0-9]
