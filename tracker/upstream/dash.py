"""Chromium Dash (https://chromiumdash.appspot.com): releases, milestones and their schedule.

Chromium Dash is an undocumented JSON API that Google's own tools use (SOURCES.md section 1).
Terms:

- *milestone*: the Chrome major version (125).
- *branch*: the release-branch number, which is also the BUILD part of every version cut from
  it (``6422`` for M125, ``refs/branch-heads/6422``).
- *branch position*: `chromium_main_branch_position`, the ``refs/heads/main`` commit position
  the release branch was cut from (its branch point). For Canary/Dev builds cut from main it
  is the build's own position. It is **not** the position of a release commit on the branch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tracker.upstream import (
    SHA1_RE,
    ElementError,
    ParseResult,
    UpstreamFormatError,
    optional_str,
    parse_elements,
    parse_version,
    require_int,
    require_str,
)
from tracker.upstream.http import (
    NOT_MODIFIED,
    NotModified,
    SourceError,
    UpstreamSession,
    ValidatorCache,
    fetch_json,
)

# Release times before Chrome existed or after 2100 are data errors, not releases.
_EARLIEST_MS = int(datetime(2008, 1, 1, tzinfo=UTC).timestamp() * 1000)
_LATEST_MS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEDULE_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?)?$", re.ASCII)
DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_PAGES = 50

# Keys of a fetch_milestone_schedule entry that hold dates ('YYYY-MM-DDT00:00:00', no zone).
SCHEDULE_DATE_FIELDS = (
    "branch_point",
    "earliest_beta",
    "earliest_beta_chromeos",
    "earliest_beta_ios",
    "latest_beta",
    "final_beta_cut",
    "final_beta",
    "feature_freeze",
    "early_stable",
    "early_stable_ios",
    "stable_cut",
    "stable_cut_ios",
    "stable_date",
    "late_stable_date",
    "stable_refresh_first",
    "stable_refresh_second",
    "stable_refresh_third",
    "next_stable_refresh",
    "next_late_stable_refresh",
)


@dataclass(frozen=True)
class DashRelease:
    """One release of a version to a channel on a platform (an element of ``fetch_releases``).

    `version` is the version string and `major`..`patch` its four numbers. `time` is when the
    release happened (aware, UTC; Dash sends epoch milliseconds). `chromium_commit` is
    ``hashes["chromium"]``, the commit the version tag points to; `hashes` maps each
    component (angle, chromium, dawn, devtools, pdfium, skia, v8, webrtc) to a 40-hex SHA.
    `previous_version` is the version this one replaced on the same channel and platform.
    """

    channel: str
    platform: str
    version: str
    major: int
    minor: int
    build: int
    patch: int
    previous_version: str | None
    milestone: int
    time: datetime
    chromium_main_branch_position: int | None
    chromium_commit: str | None
    hashes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DashMilestone:
    """One milestone of ``fetch_milestones``: the milestone -> branch -> branch point table.

    `chromium_branch` is the release-branch number (``6422``), `branch_position` and
    `branch_hash` the main commit it was cut from. `schedule_phase` is ``branch``, ``beta``,
    ``stable_cut`` or ``stable`` while `schedule_active`, else None.
    """

    milestone: int
    chromium_branch: int
    branch_position: int | None
    branch_hash: str | None
    v8_branch: str | None
    schedule_active: bool
    schedule_phase: str | None


@dataclass(frozen=True)
class MilestoneSchedule:
    """The planned dates of one milestone (``fetch_milestone_schedule``); None when not given.

    `stable_date` is the planned Stable promotion, `early_stable` the release to a small
    share of users about a week earlier, `stable_refresh_*` the planned security refreshes.
    """

    mstone: int
    branch_point: date | None = None
    earliest_beta: date | None = None
    earliest_beta_chromeos: date | None = None
    earliest_beta_ios: date | None = None
    latest_beta: date | None = None
    final_beta_cut: date | None = None
    final_beta: date | None = None
    feature_freeze: date | None = None
    early_stable: date | None = None
    early_stable_ios: date | None = None
    stable_cut: date | None = None
    stable_cut_ios: date | None = None
    stable_date: date | None = None
    late_stable_date: date | None = None
    stable_refresh_first: date | None = None
    stable_refresh_second: date | None = None
    stable_refresh_third: date | None = None
    next_stable_refresh: date | None = None
    next_late_stable_refresh: date | None = None


@dataclass(frozen=True)
class DashVersionInfo:
    """What ``fetch_version`` knows about one released version.

    `chromium_main_branch_position` is the branch point of the version's branch (see the
    module docstring); `v8_version` the V8 version it ships (``11.3.244.11``).
    """

    milestone: int
    chromium_main_branch_position: int | None
    chromium_commit: str | None
    hashes: dict[str, str]
    v8_version: str | None
    v8_main_branch_position: int | None


def _hashes(value: Any) -> dict[str, str]:
    """Component -> SHA; entries that are not a 40-hex SHA are left out, not fatal."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ElementError(f"hashes is not an object: {value!r}")
    return {
        key: sha.lower()
        for key, sha in value.items()
        if isinstance(key, str) and isinstance(sha, str) and SHA1_RE.fullmatch(sha.lower())
    }


def _optional_position(value: Any, what: str) -> int | None:
    return None if value is None else require_int(value, what, minimum=1)


def _release_time(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ElementError(f"time is not epoch milliseconds: {value!r}")
    if not _EARLIEST_MS <= value < _LATEST_MS:
        raise ElementError(f"time {value!r} is not epoch milliseconds between 2008 and 2100")
    return _EPOCH + timedelta(milliseconds=int(value))


def _parse_release(element: Any) -> DashRelease:
    if not isinstance(element, dict):
        raise ElementError("release is not an object")
    version = require_str(element.get("version"), "version")
    major, minor, build, patch = parse_version(version)
    previous = element.get("previous_version")
    try:
        parse_version(previous)
    except ElementError:
        # The first release of a channel has none; a malformed one is not worth the release.
        previous = None
    milestone = element.get("milestone", major)
    hashes = _hashes(element.get("hashes"))
    return DashRelease(
        channel=require_str(element.get("channel"), "channel"),
        platform=require_str(element.get("platform"), "platform"),
        version=version,
        major=major,
        minor=minor,
        build=build,
        patch=patch,
        previous_version=previous,
        milestone=require_int(milestone, "milestone", minimum=1),
        time=_release_time(element.get("time")),
        chromium_main_branch_position=_optional_position(
            element.get("chromium_main_branch_position"), "chromium_main_branch_position"
        ),
        chromium_commit=hashes.get("chromium"),
        hashes=hashes,
    )


def parse_releases(data: Any) -> ParseResult[DashRelease]:
    """Parse a ``fetch_releases`` answer: a JSON array of releases, newest first."""
    if not isinstance(data, list):
        raise UpstreamFormatError(f"fetch_releases: expected a JSON array, got {_kind(data)}")
    return parse_elements(data, _parse_release)


def _branch_number(value: Any) -> int:
    # Dash sends the branch as a string ("6422"); accept an int too.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ElementError(f"chromium_branch is not a branch number: {value!r}")


def _parse_milestone(element: Any) -> DashMilestone:
    if not isinstance(element, dict):
        raise ElementError("milestone is not an object")
    branch_hash = element.get("chromium_main_branch_hash")
    if branch_hash is not None and not (
        isinstance(branch_hash, str) and SHA1_RE.fullmatch(branch_hash.lower())
    ):
        raise ElementError(f"chromium_main_branch_hash is not a SHA: {branch_hash!r}")
    active = element.get("schedule_active", False)
    if not isinstance(active, bool):
        raise ElementError(f"schedule_active is not a boolean: {active!r}")
    return DashMilestone(
        milestone=require_int(element.get("milestone"), "milestone", minimum=1),
        chromium_branch=_branch_number(element.get("chromium_branch")),
        branch_position=_optional_position(
            element.get("chromium_main_branch_position"), "chromium_main_branch_position"
        ),
        branch_hash=branch_hash.lower() if branch_hash else None,
        v8_branch=optional_str(element.get("v8_branch"), "v8_branch") or None,
        schedule_active=active,
        schedule_phase=optional_str(element.get("schedule_phase"), "schedule_phase") or None,
    )


def parse_milestones(data: Any) -> ParseResult[DashMilestone]:
    """Parse a ``fetch_milestones`` answer: a JSON array of milestones, newest first."""
    if not isinstance(data, list):
        raise UpstreamFormatError(f"fetch_milestones: expected a JSON array, got {_kind(data)}")
    return parse_elements(data, _parse_milestone)


def _schedule_date(value: Any, what: str) -> date | None:
    """``'YYYY-MM-DDT00:00:00'`` (no zone, as Dash sends) or ``'YYYY-MM-DD'`` -> date."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _SCHEDULE_DATE_RE.fullmatch(value):
        raise ElementError(f"{what} is not YYYY-MM-DD[THH:MM:SS]: {value!r}")
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise ElementError(f"{what} is not a calendar date: {value!r}") from exc


def _parse_schedule(element: Any) -> MilestoneSchedule:
    if not isinstance(element, dict):
        raise ElementError("schedule entry is not an object")
    dates = {name: _schedule_date(element.get(name), name) for name in SCHEDULE_DATE_FIELDS}
    return MilestoneSchedule(
        mstone=require_int(element.get("mstone"), "mstone", minimum=1), **dates
    )


def parse_milestone_schedule(data: Any) -> ParseResult[MilestoneSchedule]:
    """Parse a ``fetch_milestone_schedule`` answer: ``{"mstones": [{...}, ...]}``."""
    if not isinstance(data, dict) or not isinstance(data.get("mstones"), list):
        raise UpstreamFormatError(
            f"fetch_milestone_schedule: expected an object with an mstones array, got {_kind(data)}"
        )
    return parse_elements(data["mstones"], _parse_schedule)


def parse_version_info(data: Any) -> DashVersionInfo:
    """Parse a ``fetch_version`` answer (one object). Raises `UpstreamFormatError` if unusable.

    Dash reports some errors with status 200 and an ``{"error": "..."}`` body; that raises
    too (`fetch_version()` turns it into "not found").
    """
    if not isinstance(data, dict):
        raise UpstreamFormatError(f"fetch_version: expected an object, got {_kind(data)}")
    if "error" in data:
        raise UpstreamFormatError(f"fetch_version: error {str(data['error'])[:200]!r}")
    try:
        hashes = _hashes(data.get("hashes"))
        return DashVersionInfo(
            milestone=require_int(data.get("milestone"), "milestone", minimum=1),
            chromium_main_branch_position=_optional_position(
                data.get("chromium_main_branch_position"), "chromium_main_branch_position"
            ),
            chromium_commit=hashes.get("chromium"),
            hashes=hashes,
            v8_version=optional_str(data.get("v8_version"), "v8_version") or None,
            v8_main_branch_position=_optional_position(
                data.get("v8_main_branch_position"), "v8_main_branch_position"
            ),
        )
    except ElementError as exc:
        raise UpstreamFormatError(f"fetch_version: {exc}") from exc


def default_base_url() -> str:
    """The Chromium Dash base URL from settings (``CHROMIUMDASH_URL``)."""
    from django.conf import settings

    return settings.CHROMIUMDASH_URL


def fetch_releases(
    session: UpstreamSession,
    base_url: str,
    channel: str,
    platform: str,
    *,
    num: int = DEFAULT_PAGE_SIZE,
    offset: int = 0,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> ParseResult[DashRelease]:
    """All releases of `channel` on `platform`, newest first, read `num` at a time.

    Pages are requested at ``offset``, ``offset + num``, ... until a page is shorter than
    `num` or `max_pages` pages were read. A release seen on two pages (the list moved while
    paging) is kept once. Raises `SourceError`.
    """
    result: ParseResult[DashRelease] = ParseResult()
    for page in _iter_release_pages(session, base_url, channel, platform, num, offset, max_pages):
        result.extend(page)
    seen: set[tuple[str, str, str, datetime]] = set()
    unique = []
    for release in result.items:
        key = (release.channel, release.platform, release.version, release.time)
        if key not in seen:
            seen.add(key)
            unique.append(release)
    result.items = unique
    return result


def _iter_release_pages(
    session: UpstreamSession,
    base_url: str,
    channel: str,
    platform: str,
    num: int,
    offset: int,
    max_pages: int,
) -> Iterator[ParseResult[DashRelease]]:
    if num < 1 or offset < 0 or max_pages < 1:
        raise ValueError("num and max_pages must be positive and offset not negative")
    url = f"{base_url.rstrip('/')}/fetch_releases"
    for _ in range(max_pages):
        params = {"channel": channel, "platform": platform, "num": num, "offset": offset}
        data = fetch_json(session, url, params)
        page = _parse_or_source_error(parse_releases, data, url)
        yield page
        if len(data) < num:
            return
        offset += num


def fetch_milestones(
    session: UpstreamSession,
    base_url: str,
    *,
    mstone: int | None = None,
    only_branched: bool = False,
    validators: ValidatorCache | None = None,
) -> ParseResult[DashMilestone] | NotModified:
    """Milestones, newest first (all of them, or the one `mstone`). Raises `SourceError`."""
    params: dict[str, Any] = {}
    if mstone is not None:
        params["mstone"] = mstone
    if only_branched:
        params["only_branched"] = "true"
    url = f"{base_url.rstrip('/')}/fetch_milestones"
    data = fetch_json(session, url, params, validators=validators)
    if data is NOT_MODIFIED:
        return NOT_MODIFIED
    return _parse_or_source_error(parse_milestones, data, url)


def fetch_milestone_schedule(
    session: UpstreamSession,
    base_url: str,
    *,
    mstone: int | str | None = None,
    validators: ValidatorCache | None = None,
) -> ParseResult[MilestoneSchedule] | NotModified:
    """The schedule of `mstone` (a number or ``"current"``; Dash's default is the current
    milestone). Raises `SourceError`."""
    url = f"{base_url.rstrip('/')}/fetch_milestone_schedule"
    params = {"mstone": mstone} if mstone is not None else None
    data = fetch_json(session, url, params, validators=validators)
    if data is NOT_MODIFIED:
        return NOT_MODIFIED
    return _parse_or_source_error(parse_milestone_schedule, data, url)


def fetch_version(session: UpstreamSession, base_url: str, version: str) -> DashVersionInfo | None:
    """What Dash knows about `version`, or None when Dash does not know it.

    Unreleased versions are not in this API (Chromium's bisect-builds.py notes it). Whether
    Dash says so with a 404 or an ``{"error": ...}`` body is unverified, so both mean None.
    Raises `SourceError` for everything else.
    """
    try:
        parse_version(version)
    except ElementError as exc:
        raise ValueError(str(exc)) from exc
    url = f"{base_url.rstrip('/')}/fetch_version"
    try:
        data = fetch_json(session, url, {"version": version})
    except SourceError as exc:
        if exc.status == 404:
            return None
        raise
    if isinstance(data, dict) and "error" in data:
        return None
    return _parse_or_source_error(parse_version_info, data, url)


def _parse_or_source_error(parser: Any, data: Any, url: str) -> Any:
    try:
        return parser(data)
    except UpstreamFormatError as exc:
        raise SourceError(str(exc), transient=False, url=url) from exc


def _kind(data: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string"}.get(type(data), repr(data)[:40])
