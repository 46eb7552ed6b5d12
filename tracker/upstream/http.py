"""The one HTTP layer every upstream client uses.

`make_session()` builds a `requests` session with a clear User-Agent and a timeout applied to
every request. `fetch_json()` and `fetch_text()` are the only ways clients read a URL:

- **Retries.** Connection errors, timeouts, truncated bodies, HTTP 408, 429 and 5xx are retried
  up to `RetryPolicy.attempts` times in all, sleeping with exponential backoff and jitter between
  attempts. A ``Retry-After`` header (seconds or an HTTP date) replaces the backoff; when it asks
  for longer than `RetryPolicy.retry_after_max` the call gives up at once with a transient
  `SourceError` carrying `retry_after`, so a task can be rescheduled instead of holding a worker.
- **Errors.** Everything that goes wrong is a `SourceError`. ``transient=True`` means "try again
  later" (exhausted retries, an HTML error page served with status 200, a body cut short);
  ``transient=False`` means retrying will not help (404 and other 4xx, a malformed body, a wrong
  Content-Type, an oversized body).
- **Conditional requests.** Pass a `ValidatorCache` and the request carries ``If-None-Match`` /
  ``If-Modified-Since`` from the last successful response of the same URL. A 304 answer is
  returned as `NOT_MODIFIED`; validators are only stored after the body was read and decoded,
  so a broken response is never remembered as current.

Tests replace the network by mounting a transport adapter on the real session.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

PRODUCT = "forkhealth/0.1"
# Upstream JSON documents are at most a few MB (a Blogger page of 50 posts is about 1 MB).
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_RETRY_STATUSES = frozenset({408, 429})
_JSON_TYPES = frozenset(
    {"application/json", "text/json", "text/javascript", "application/javascript"}
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = ("text/", "application/xml", "application/atom+xml", "application/rss+xml")
_XSSI_PREFIX = b")]}'"


class SourceError(Exception):
    """An upstream request failed or answered something unusable.

    `transient` says whether the same request may succeed later (exhausted retries on
    timeouts/429/5xx, an HTML error page, a truncated body) or not (4xx, malformed or
    unexpected content). `status` is the last HTTP status seen, if any; `retry_after` is the
    server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        url: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{message} ({url})" if url else message)
        self.transient = transient
        self.url = url
        self.status = status
        self.retry_after = retry_after


class NotModified(enum.Enum):
    """The type of `NOT_MODIFIED`, the answer to a conditional request that got a 304."""

    NOT_MODIFIED = "not modified"


NOT_MODIFIED = NotModified.NOT_MODIFIED


@dataclass(frozen=True)
class Validators:
    """HTTP cache validators of one response: its ``ETag`` and ``Last-Modified`` header values."""

    etag: str = ""
    last_modified: str = ""

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


class ValidatorCache(Protocol):
    """Where the caller keeps validators between runs, keyed by the full request URL."""

    def get(self, url: str) -> Validators | None: ...

    def set(self, url: str, validators: Validators) -> None: ...


class MemoryValidatorCache:
    """A `ValidatorCache` in a dict; ingestion can persist `entries` per source."""

    def __init__(self, entries: Mapping[str, Validators] | None = None) -> None:
        self.entries: dict[str, Validators] = dict(entries or {})

    def get(self, url: str) -> Validators | None:
        return self.entries.get(url)

    def set(self, url: str, validators: Validators) -> None:
        self.entries[url] = validators


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried. All durations are in seconds.

    `attempts` counts every try, the first included. The n-th retry waits
    ``min(backoff_max, backoff * 2 ** (n - 1))``, scaled by a random factor in
    ``[1 - jitter, 1 + jitter]`` so that several workers do not retry in step.
    """

    attempts: int = 4
    backoff: float = 2.0
    backoff_max: float = 60.0
    jitter: float = 0.25
    retry_after_max: float = 120.0

    def delay(self, retry_number: int, rand: Callable[[], float]) -> float:
        """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
        base = min(self.backoff_max, self.backoff * 2 ** (retry_number - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rand() - 1)))


class UpstreamSession(requests.Session):
    """A `requests.Session` that also carries the request policy used by `fetch_json()`.

    `timeout` is in seconds and applies to connecting and to each read; `sleep` and `rand`
    are injectable so tests can assert the waits without waiting.
    """

    def __init__(
        self,
        *,
        timeout: float,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        rand: Callable[[], float],
        max_body_bytes: int,
    ) -> None:
        super().__init__()
        self.timeout = timeout
        self.retry = retry
        self.sleep = sleep
        self.rand = rand
        self.max_body_bytes = max_body_bytes


def user_agent(site_url: str) -> str:
    """The User-Agent upstream operators see: product/version and where to find the site."""
    return f"{PRODUCT} (+{site_url})" if site_url else PRODUCT


def make_session(
    user_agent: str,
    *,
    timeout: float,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> UpstreamSession:
    """The session all upstream clients share; see the module docstring for its behaviour."""
    session = UpstreamSession(
        timeout=timeout,
        retry=retry or RetryPolicy(),
        sleep=sleep,
        rand=rand,
        max_body_bytes=max_body_bytes,
    )
    session.headers["User-Agent"] = user_agent
    session.max_redirects = 5
    # Retries are ours (they honour Retry-After and classify errors), so urllib3's are off.
    adapter = HTTPAdapter(max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def default_session() -> UpstreamSession:
    """A session configured from settings: ``SITE_URL`` and ``UPSTREAM_HTTP_TIMEOUT``."""
    from django.conf import settings

    return make_session(user_agent(settings.SITE_URL), timeout=settings.UPSTREAM_HTTP_TIMEOUT)


def build_url(url: str, params: Mapping[str, Any] | None = None) -> str:
    """`url` with `params` appended as a query string; spaces become ``%20``, not ``+``.

    VersionHistory wants ``order_by=starttime%20desc`` and Blogger ``category=Stable%20updates``;
    ``%20`` is understood everywhere. Parameters whose value is None are left out.
    """
    if not params:
        return url
    pairs = [(key, value) for key, value in params.items() if value is not None]
    if not pairs:
        return url
    query = urlencode(pairs, doseq=True, quote_via=quote)
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


@dataclass(frozen=True)
class _Body:
    url: str
    status: int
    content: bytes
    content_type: str
    validators: Validators


def fetch_json(
    session: UpstreamSession,
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    validators: ValidatorCache | None = None,
    strip_xssi: bool = False,
) -> Any | NotModified:
    """GET `url` and return its decoded JSON, or `NOT_MODIFIED` after a 304.

    The response must have a JSON Content-Type (or none) and a complete, well-formed JSON
    body. `strip_xssi` removes the ``)]}'`` first line Gitiles and Gerrit put in front of
    JSON (Chromium Dash and VersionHistory do not).
    """
    full_url = build_url(url, params)
    body = _get(session, full_url, accept="application/json", validators=validators)
    if body is NOT_MODIFIED:
        return NOT_MODIFIED
    data = _decode_json(body, strip_xssi=strip_xssi)
    if validators is not None:
        validators.set(full_url, body.validators)
    return data


def fetch_text(
    session: UpstreamSession,
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    validators: ValidatorCache | None = None,
    content_types: tuple[str, ...] = _TEXT_TYPES,
) -> str | NotModified:
    """GET `url` and return its body as text, or `NOT_MODIFIED` after a 304.

    The Content-Type must start with one of `content_types`; the body is decoded with the
    declared charset (UTF-8 when none is declared).
    """
    full_url = build_url(url, params)
    body = _get(session, full_url, accept="*/*", validators=validators)
    if body is NOT_MODIFIED:
        return NOT_MODIFIED
    media_type, charset = _split_content_type(body.content_type)
    if not media_type.startswith(content_types):
        raise SourceError(
            f"expected {' or '.join(content_types)}, got Content-Type {media_type or '(none)'}",
            transient=media_type in _HTML_TYPES,
            url=full_url,
            status=body.status,
        )
    try:
        text = body.content.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"body is not valid {charset or 'utf-8'}: {exc}", transient=False, url=full_url
        ) from exc
    if validators is not None:
        validators.set(full_url, body.validators)
    return text


def _get(
    session: UpstreamSession, url: str, *, accept: str, validators: ValidatorCache | None
) -> _Body | NotModified:
    """GET with retries; returns the complete body of a 2xx answer or `NOT_MODIFIED`."""
    headers = {"Accept": accept}
    known = validators.get(url) if validators is not None else None
    if known:
        if known.etag:
            headers["If-None-Match"] = known.etag
        if known.last_modified:
            headers["If-Modified-Since"] = known.last_modified
    policy = session.retry
    attempts = max(1, policy.attempts)
    for attempt in range(1, attempts + 1):
        retry_after: float | None = None
        status: int | None = None
        try:
            with session.get(url, headers=headers, timeout=session.timeout, stream=True) as resp:
                status = resp.status_code
                if status == 304:
                    if known:
                        return NOT_MODIFIED
                    raise SourceError(
                        "304 Not Modified to an unconditional request",
                        transient=False,
                        url=url,
                        status=status,
                    )
                if status in _RETRY_STATUSES or 500 <= status <= 599:
                    retry_after = _retry_after_seconds(resp.headers.get("Retry-After"))
                    problem = f"HTTP {status}"
                elif not 200 <= status <= 299:
                    raise SourceError(f"HTTP {status}", transient=False, url=url, status=status)
                else:
                    return _Body(
                        url=url,
                        status=status,
                        content=_read_body(resp, session.max_body_bytes, url),
                        content_type=resp.headers.get("Content-Type", ""),
                        validators=Validators(
                            etag=resp.headers.get("ETag", ""),
                            last_modified=resp.headers.get("Last-Modified", ""),
                        ),
                    )
        except requests.exceptions.SSLError as exc:
            # A certificate problem does not fix itself between retries.
            raise SourceError(f"TLS error: {exc}", transient=False, url=url) from exc
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            problem = _describe(exc)
        except requests.exceptions.RequestException as exc:
            # Invalid URL, too many redirects, ...: a programming or configuration error.
            raise SourceError(f"request failed: {exc}", transient=False, url=url) from exc

        if retry_after is not None and retry_after > policy.retry_after_max:
            raise SourceError(
                f"{problem}; server asked to retry after {retry_after:.0f}s",
                transient=True,
                url=url,
                status=status,
                retry_after=retry_after,
            )
        if attempt == attempts:
            raise SourceError(
                f"{problem}; gave up after {attempts} attempts",
                transient=True,
                url=url,
                status=status,
                retry_after=retry_after,
            )
        delay = retry_after if retry_after is not None else policy.delay(attempt, session.rand)
        logger.warning(
            "upstream %s: %s; retry %d of %d in %.1fs", url, problem, attempt, attempts - 1, delay
        )
        session.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_body(resp: requests.Response, limit: int, url: str) -> bytes:
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise SourceError(
            f"body of {declared} bytes is over the {limit}-byte limit",
            transient=False,
            url=url,
            status=resp.status_code,
        )
    chunks: list[bytes] = []
    size = 0
    # A connection that closes before Content-Length bytes arrive raises ChunkedEncodingError
    # here (urllib3 enforces the length), which the caller retries as a truncated body.
    for chunk in resp.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > limit:
            raise SourceError(
                f"body is over the {limit}-byte limit",
                transient=False,
                url=url,
                status=resp.status_code,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_json(body: _Body, *, strip_xssi: bool) -> Any:
    media_type, _charset = _split_content_type(body.content_type)
    content = body.content
    if strip_xssi and content.startswith(_XSSI_PREFIX):
        content = content[len(_XSSI_PREFIX) :]
    head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if media_type in _HTML_TYPES or head == b"<":
        # Google front ends answer outages and quota pages with HTML, sometimes with 200.
        raise SourceError(
            f"expected JSON, got an HTML page (HTTP {body.status})",
            transient=True,
            url=body.url,
            status=body.status,
        )
    if media_type and media_type not in _JSON_TYPES and not media_type.endswith("+json"):
        raise SourceError(
            f"expected JSON, got Content-Type {media_type}",
            transient=False,
            url=body.url,
            status=body.status,
        )
    if not content.strip():
        raise SourceError(
            "expected JSON, got an empty body", transient=True, url=body.url, status=body.status
        )
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        # The decoder stops at the end of a cut body, or at the start of a string left open.
        truncated = exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string")
        raise SourceError(
            f"{'truncated' if truncated else 'malformed'} JSON: {exc}",
            transient=truncated,
            url=body.url,
            status=body.status,
        ) from exc
    except (UnicodeDecodeError, RecursionError) as exc:
        raise SourceError(
            f"undecodable JSON: {exc}", transient=False, url=body.url, status=body.status
        ) from exc


def _split_content_type(value: str) -> tuple[str, str]:
    """``"application/json; charset=UTF-8"`` -> ``("application/json", "UTF-8")``."""
    media_type, _, rest = value.partition(";")
    charset = ""
    for param in rest.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            charset = val.strip().strip('"')
    return media_type.strip().lower(), charset


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"truncated body ({exc})"
    return f"{type(exc).__name__}: {exc}"
