"""The VersionHistory API (https://versionhistory.googleapis.com/v1): when versions were served.

Terms (SOURCES.md section 2):

- A *version* (``131.0.6778.205``) is served on a platform (``win``, ``mac``, ``linux``, ...)
  and channel (``stable``, ``beta``, ...).
- A *release* is one stretch of serving: a new release starts each time the rollout
  `fraction` changes. ``serving.startTime`` is inclusive, ``serving.endTime`` exclusive and
  absent while the release is still served. Fractions are only comparable within the same
  `fraction_group`.
- "First reached any users" is the earliest `start_time` of a version; "fully rolled out" is
  the earliest release with ``fraction == 1``. Which one counts as shipped is the caller's call.

The API has no commit hashes or branch positions; join to Chromium Dash by version string.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tracker.upstream import (
    ElementError,
    Page,
    Rejected,
    UpstreamFormatError,
    parse_rfc3339,
    parse_version,
    require_str,
)
from tracker.upstream.http import SourceError, UpstreamSession, fetch_json

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_PAGES = 50
_RELEASE_NAME_RE = re.compile(
    r"(?P<product>[a-z0-9_]+)/platforms/(?P<platform>[a-z0-9_]+)/channels/(?P<channel>[a-z0-9_]+)"
    r"/versions/(?P<version>[^/]+)/releases/(?P<release_id>[^/]+)",
    re.ASCII,
)
_VERSION_NAME_RE = re.compile(
    r"(?P<product>[a-z0-9_]+)/platforms/(?P<platform>[a-z0-9_]+)/channels/(?P<channel>[a-z0-9_]+)"
    r"/versions/(?P<version>[^/]+)",
    re.ASCII,
)
# Path segments a caller may ask for: lowercase names like "win_arm64", "canary_asan", "all".
_SEGMENT_RE = re.compile(r"[a-z0-9_]+", re.ASCII)


@dataclass(frozen=True)
class VersionHistoryRelease:
    """One serving period of a version on a platform and channel.

    `name` is the resource name (``chrome/platforms/win/channels/stable/versions/<v>/releases/
    <id>``); `product`, `platform`, `channel` and `release_id` are taken from it. `start_time`
    and `end_time` are aware datetimes (UTC); `end_time` is None while still served.
    `fraction` is the share of users served, 0 to 1 (1 when the API leaves it out).
    `pinnable` is None when the API did not say.
    """

    name: str
    product: str
    platform: str
    channel: str
    release_id: str
    version: str
    major: int
    minor: int
    build: int
    patch: int
    start_time: datetime
    end_time: datetime | None
    fraction: float
    fraction_group: int | None
    pinnable: bool | None


@dataclass(frozen=True)
class VersionHistoryVersion:
    """One version known on a platform and channel (an element of a ``versions`` page)."""

    name: str
    product: str
    platform: str
    channel: str
    version: str
    major: int
    minor: int
    build: int
    patch: int


def _fraction(value: Any) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ElementError(f"fraction is not a number: {value!r}")
    # Compare before any float conversion: a huge JSON integer does not fit in a float.
    if not (0 <= value <= 1) or not math.isfinite(value):
        raise ElementError(f"fraction is not between 0 and 1: {value!r}")
    return float(value)


def _fraction_group(value: Any) -> int | None:
    # An int64 in JSON, so Google APIs send it as a string ("144").
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ElementError(f"fractionGroup is not an integer: {value!r}")


def _parse_release(element: Any) -> VersionHistoryRelease:
    if not isinstance(element, dict):
        raise ElementError("release is not an object")
    name = require_str(element.get("name"), "name")
    match = _RELEASE_NAME_RE.fullmatch(name)
    if match is None:
        raise ElementError(f"name {name!r} is not .../versions/<version>/releases/<id>")
    version = element.get("version", match["version"])
    if version != match["version"]:
        raise ElementError(f"version {version!r} differs from the one in name {name!r}")
    major, minor, build, patch = parse_version(version)
    serving = element.get("serving")
    if not isinstance(serving, dict):
        raise ElementError("serving is missing or not an object")
    start_time = parse_rfc3339(serving.get("startTime"))
    end_raw = serving.get("endTime")
    end_time = None if end_raw is None else parse_rfc3339(end_raw)
    if end_time is not None and end_time < start_time:
        raise ElementError(f"serving ends ({end_raw}) before it starts")
    pinnable = element.get("pinnable")
    if pinnable is not None and not isinstance(pinnable, bool):
        raise ElementError(f"pinnable is not a boolean: {pinnable!r}")
    return VersionHistoryRelease(
        name=name,
        product=match["product"],
        platform=match["platform"],
        channel=match["channel"],
        release_id=match["release_id"],
        version=version,
        major=major,
        minor=minor,
        build=build,
        patch=patch,
        start_time=start_time,
        end_time=end_time,
        fraction=_fraction(element.get("fraction")),
        fraction_group=_fraction_group(element.get("fractionGroup")),
        pinnable=pinnable,
    )


def _parse_version_element(element: Any) -> VersionHistoryVersion:
    if not isinstance(element, dict):
        raise ElementError("version is not an object")
    name = require_str(element.get("name"), "name")
    match = _VERSION_NAME_RE.fullmatch(name)
    if match is None:
        raise ElementError(f"name {name!r} is not .../channels/<channel>/versions/<version>")
    version = element.get("version", match["version"])
    if version != match["version"]:
        raise ElementError(f"version {version!r} differs from the one in name {name!r}")
    major, minor, build, patch = parse_version(version)
    return VersionHistoryVersion(
        name=name,
        product=match["product"],
        platform=match["platform"],
        channel=match["channel"],
        version=version,
        major=major,
        minor=minor,
        build=build,
        patch=patch,
    )


def _parse_page(data: Any, key: str, parse_one: Any, seen: set[str] | None) -> Page[Any]:
    if not isinstance(data, dict):
        raise UpstreamFormatError(f"expected an object with {key!r}, got {type(data).__name__}")
    elements = data.get(key, [])  # an empty page leaves the list out entirely
    if not isinstance(elements, list):
        raise UpstreamFormatError(f"{key!r} is not an array")
    token = data.get("nextPageToken")
    if token is not None and not isinstance(token, str):
        raise UpstreamFormatError(f"nextPageToken is not a string: {token!r}")
    page: Page[Any] = Page(has_more=bool(token))
    seen = set() if seen is None else seen
    for index, element in enumerate(elements):
        try:
            item = parse_one(element)
        except ElementError as exc:
            page.rejected.append(Rejected(index, str(exc), element))
            continue
        # The API's own examples list some entries twice; keep the first.
        if item.name not in seen:
            seen.add(item.name)
            page.items.append(item)
    return page


def parse_releases_page(data: Any, *, seen: set[str] | None = None) -> Page[VersionHistoryRelease]:
    """Parse one ``releases`` page: ``{"releases": [...], "nextPageToken": "..."}``.

    Releases whose `name` is in `seen` (and repeats within the page) are dropped as
    duplicates; `seen` is updated, so passing the same set across pages de-duplicates them.
    Use `next_page_token()` for the token.
    """
    return _parse_page(data, "releases", _parse_release, seen)


def parse_versions_page(data: Any, *, seen: set[str] | None = None) -> Page[VersionHistoryVersion]:
    """Parse one ``versions`` page: ``{"versions": [...], "nextPageToken": "..."}``.

    Versions that are not ``MAJOR.MINOR.BUILD.PATCH`` (``unknown_version``) are rejected;
    duplicates are dropped as in `parse_releases_page()`.
    """
    return _parse_page(data, "versions", _parse_version_element, seen)


def next_page_token(data: Any) -> str | None:
    """The token for the next page, or None on the last page (field absent or empty)."""
    token = data.get("nextPageToken") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def default_base_url() -> str:
    """The VersionHistory base URL from settings (``VERSIONHISTORY_URL``, ending in ``/v1``)."""
    from django.conf import settings

    return settings.VERSIONHISTORY_URL


def iter_releases(
    session: UpstreamSession,
    base_url: str,
    platform: str,
    channel: str,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    order_by: str = "starttime desc",
    filter: str | None = None,
    product: str = "chrome",
    version: str = "all",
    max_pages: int = DEFAULT_MAX_PAGES,
) -> Iterator[Page[VersionHistoryRelease]]:
    """Yield the releases of `platform`/`channel` one page at a time, following page tokens.

    `platform`, `channel` and `version` may be ``all``. `filter` is the API's filter string
    (``"endtime=none"``, ``"version>=124"``, ...). At most `max_pages` pages are read; if the
    source had more, the last page yielded has ``has_more=True`` and a warning is logged.
    Releases repeated across pages are yielded once. Raises `SourceError`.
    """
    url = _collection_url(base_url, product, platform, channel, version, "releases")
    yield from _iter_pages(
        session, url, parse_releases_page, page_size, order_by, filter, max_pages
    )


def iter_versions(
    session: UpstreamSession,
    base_url: str,
    platform: str,
    channel: str,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    order_by: str = "version desc",
    filter: str | None = None,
    product: str = "chrome",
    max_pages: int = DEFAULT_MAX_PAGES,
) -> Iterator[Page[VersionHistoryVersion]]:
    """Yield the versions of `platform`/`channel` one page at a time; see `iter_releases()`."""
    url = _collection_url(base_url, product, platform, channel, None, "versions")
    yield from _iter_pages(
        session, url, parse_versions_page, page_size, order_by, filter, max_pages
    )


def _collection_url(
    base_url: str, product: str, platform: str, channel: str, version: str | None, kind: str
) -> str:
    for what, segment in (("product", product), ("platform", platform), ("channel", channel)):
        if not _SEGMENT_RE.fullmatch(segment):
            raise ValueError(f"{what} {segment!r} is not a VersionHistory name")
    path = f"{product}/platforms/{platform}/channels/{channel}"
    if version is not None:
        if version != "all":
            try:
                parse_version(version)
            except ElementError as exc:
                raise ValueError(str(exc)) from exc
        path += f"/versions/{quote(version, safe='')}"
    return f"{base_url.rstrip('/')}/{path}/{kind}"


def _iter_pages(
    session: UpstreamSession,
    url: str,
    parse_page: Any,
    page_size: int,
    order_by: str,
    filter: str | None,
    max_pages: int,
) -> Iterator[Page[Any]]:
    if page_size < 1 or max_pages < 1:
        raise ValueError("page_size and max_pages must be positive")
    seen_names: set[str] = set()
    seen_tokens: set[str] = set()
    token: str | None = None
    for page_number in range(1, max_pages + 1):
        params = {"pageSize": page_size, "order_by": order_by, "filter": filter, "pageToken": token}
        data = fetch_json(session, url, params)
        try:
            page = parse_page(data, seen=seen_names)
        except UpstreamFormatError as exc:
            raise SourceError(str(exc), transient=False, url=url) from exc
        token = next_page_token(data)
        yield page
        if token is None:
            return
        if token in seen_tokens:
            raise SourceError(f"page token {token!r} came back twice", transient=False, url=url)
        seen_tokens.add(token)
        if page_number == max_pages:
            logger.warning("versionhistory %s: stopped at the %d-page cap", url, max_pages)
