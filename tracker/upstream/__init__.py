"""Clients and pure parsers for the upstream Chromium data sources.

- `http`: the one `requests` session factory, retries, conditional requests, `SourceError`.
- `dash`: Chromium Dash (releases, milestones, milestone schedule, version info).
- `versionhistory`: the VersionHistory API (versions and releases per platform and channel).
- `blog`: the Chrome Releases blog feed (Blogger, ``alt=json``).

Parsers are plain functions on decoded JSON. They never raise for one bad element: the element
goes to ``rejected`` with a reason and the rest of the batch is kept. They raise
`UpstreamFormatError` only when the payload as a whole has the wrong shape (for example an
object where a list was documented). Clients turn that into `http.SourceError`.

This module holds the small types and helpers the source modules share.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from tracker import versions

T = TypeVar("T")

# A Chromium version is exactly four dot-separated decimal numbers: MAJOR.MINOR.BUILD.PATCH.
VERSION_RE = re.compile(r"^(\d{1,6})\.(\d{1,6})\.(\d{1,6})\.(\d{1,6})$", re.ASCII)
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$",
    re.ASCII,
)
# How much of a rejected element is kept for review; upstream elements are small, a few KB.
_REJECTED_REPR_LIMIT = 2000


class UpstreamFormatError(ValueError):
    """A whole upstream payload does not have the documented shape (not one element of it)."""


@dataclass(frozen=True)
class Rejected:
    """One element a parser refused: its position in the payload, why, and the element itself.

    `element` is the decoded JSON value as received (kept so ingestion can store it for
    review); `index` is its 0-based position in the list it came from.
    """

    index: int
    reason: str
    element: Any = None

    def __repr__(self) -> str:
        text = repr(self.element)
        if len(text) > _REJECTED_REPR_LIMIT:
            text = text[:_REJECTED_REPR_LIMIT] + "..."
        return f"Rejected(index={self.index}, reason={self.reason!r}, element={text})"


@dataclass
class ParseResult(Generic[T]):
    """What a parser made of a batch: the valid `items` and the `rejected` elements."""

    items: list[T] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def extend(self, other: ParseResult[T]) -> None:
        self.items.extend(other.items)
        self.rejected.extend(other.rejected)


@dataclass
class Page(ParseResult[T]):
    """One page of a paged source.

    `has_more` is true when the source said another page exists; a client that stops at its
    page cap leaves it true on the last page it yields, so callers can tell "complete" from
    "cut short".
    """

    has_more: bool = False


class ElementError(ValueError):
    """Raised inside element parsers; becomes a `Rejected` entry, never leaves a parser."""


def parse_version(text: Any) -> tuple[int, int, int, int]:
    """Split a strict ``MAJOR.MINOR.BUILD.PATCH`` Chromium version into four ints.

    The grammar is `tracker.versions.parse_version`'s (one grammar for the whole project);
    anything else (``unknown_version``, three parts, a leading ``v``, surrounding spaces,
    non-ASCII digits) raises `ElementError`.
    """
    if not isinstance(text, str) or VERSION_RE.fullmatch(text) is None:
        raise ElementError(f"version {text!r} is not MAJOR.MINOR.BUILD.PATCH")
    try:
        return versions.parse_version(text).as_tuple()
    except versions.VersionParseError as exc:
        raise ElementError(str(exc)) from None


def parse_rfc3339(text: Any) -> datetime:
    """Parse an RFC 3339 timestamp with a zone (``Z`` or ``±HH:MM``) into an aware datetime.

    Fractional seconds of any length up to nanoseconds are accepted and truncated to
    microseconds. The offset is kept as given (Blogger uses ``-07:00``; VersionHistory ``Z``).
    """
    if not isinstance(text, str):
        raise ElementError(f"timestamp is not a string: {text!r}")
    match = _RFC3339_RE.fullmatch(text)
    if match is None:
        raise ElementError(f"timestamp {text!r} is not RFC 3339 with a zone")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu:
        tz = UTC
    else:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= timedelta(hours=24):
            raise ElementError(f"timestamp {text!r} has an impossible offset")
        tz = timezone(-offset if sign == "-" else offset)
    micro = int((fraction or "0").ljust(6, "0")[:6])
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError as exc:
        raise ElementError(f"timestamp {text!r}: {exc}") from exc


def require_int(value: Any, what: str, *, minimum: int = 0) -> int:
    """`value` if it is a JSON integer (not a bool, not a float) and at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ElementError(f"{what} is not an integer: {value!r}")
    if value < minimum:
        raise ElementError(f"{what} is below {minimum}: {value!r}")
    return value


def require_str(value: Any, what: str) -> str:
    """`value` if it is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ElementError(f"{what} is missing or not a non-empty string: {value!r}")
    return value


def optional_str(value: Any, what: str) -> str | None:
    """`value` if it is a string, None if it is null or absent (pass ``None``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ElementError(f"{what} is not a string: {value!r}")
    return value


def parse_elements(elements: Iterable[Any], parse_one: Callable[[Any], T]) -> ParseResult[T]:
    """Apply `parse_one` to each element; an `ElementError` rejects that element only."""
    result: ParseResult[T] = ParseResult()
    for index, element in enumerate(elements):
        try:
            result.items.append(parse_one(element))
        except ElementError as exc:
            result.rejected.append(Rejected(index, str(exc), element))
    return result
