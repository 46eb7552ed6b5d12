"""Chromium version numbers: parsing, formatting and ordering.

A Chromium version is ``MAJOR.MINOR.BUILD.PATCH``, for example ``125.0.6422.141``:

- MAJOR is the milestone ("M125"); a new one every four weeks.
- MINOR is almost always 0.
- BUILD is the release-branch number (``refs/branch-heads/6422``).
- PATCH is the release candidate on that branch; it goes up with every build of the branch.

Versions compare as tuples of four integers, never as strings (``"9.0" > "10.0"`` as strings).
The ``chrome/VERSION`` file in chromium/src holds the same four numbers as ``KEY=value`` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_COMPONENT",
    "ChromiumVersion",
    "TagVersion",
    "VersionParseError",
    "format_version_file",
    "parse_version",
    "parse_version_file",
    "tag_order",
]

# Real components are at most a few thousand; the bound keeps garbage such as a timestamp or a
# 4,000-digit number from becoming a "version" (and keeps int() cheap).
MAX_COMPONENT = 10**7
_VERSION = re.compile(r"([0-9]{1,8})\.([0-9]{1,8})\.([0-9]{1,8})\.([0-9]{1,8})")
_NUMBER = re.compile(r"[0-9]{1,8}")
VERSION_FILE_KEYS = ("MAJOR", "MINOR", "BUILD", "PATCH")


class VersionParseError(ValueError):
    """Text that is not a Chromium version (or not a ``chrome/VERSION`` file)."""


def _component(name: str, digits: str) -> int:
    value = int(digits)
    if value >= MAX_COMPONENT:
        raise VersionParseError(f"{name} {value} is out of range (must be < {MAX_COMPONENT})")
    return value


@dataclass(frozen=True, order=True)
class ChromiumVersion:
    """One Chromium version; instances order like the releases they name.

    All four components are non-negative integers below `MAX_COMPONENT`.
    """

    major: int
    minor: int
    build: int
    patch: int

    def __post_init__(self) -> None:
        for name in ("major", "minor", "build", "patch"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < MAX_COMPONENT:
                raise VersionParseError(f"{name} must be an int in [0, {MAX_COMPONENT}): {value!r}")

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.build}.{self.patch}"

    @property
    def milestone(self) -> int:
        """The milestone number, M125 for 125.0.6422.141 (the same as `major`)."""
        return self.major

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(major, minor, build, patch)``, e.g. for the four integer model columns."""
        return (self.major, self.minor, self.build, self.patch)

    @classmethod
    def parse(cls, text: str) -> ChromiumVersion:
        """Same as `parse_version`."""
        return parse_version(text)


def parse_version(text: str) -> ChromiumVersion:
    """Parse ``"125.0.6422.141"`` (surrounding whitespace allowed) into a ChromiumVersion.

    Exactly four dot-separated ASCII decimal numbers; anything else (a ``v`` prefix, three or
    five parts, signs, non-ASCII digits, components >= `MAX_COMPONENT`) raises
    VersionParseError.
    """
    if not isinstance(text, str):
        raise VersionParseError(f"version must be a string, not {type(text).__name__}")
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise VersionParseError(f"not a Chromium version (MAJOR.MINOR.BUILD.PATCH): {text[:80]!r}")
    major, minor, build, patch = (
        _component(name, digits)
        for name, digits in zip(VERSION_FILE_KEYS, match.groups(), strict=True)
    )
    return ChromiumVersion(major, minor, build, patch)


def parse_version_file(text: str) -> ChromiumVersion:
    """Parse the contents of chromium/src ``chrome/VERSION``.

    The file is four ``KEY=value`` lines, ``MAJOR``, ``MINOR``, ``BUILD`` and ``PATCH``, in any
    order; CRLF line ends, blank lines and spaces around ``=`` are tolerated, and lines with
    other keys are ignored. A missing key, a repeated key with a different value, or a
    non-numeric value raises VersionParseError naming the key.
    """
    if not isinstance(text, str):
        raise VersionParseError(f"VERSION file must be a string, not {type(text).__name__}")
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        key = key.strip()
        if not sep or key not in VERSION_FILE_KEYS:
            continue
        raw = raw.strip()
        if not _NUMBER.fullmatch(raw):
            raise VersionParseError(f"VERSION file: {key} is not a number: {raw[:40]!r}")
        value = _component(key, raw)
        if values.setdefault(key, value) != value:
            raise VersionParseError(f"VERSION file: {key} is given twice with different values")
    missing = [key for key in VERSION_FILE_KEYS if key not in values]
    if missing:
        raise VersionParseError(f"VERSION file: missing {', '.join(missing)}")
    return ChromiumVersion(values["MAJOR"], values["MINOR"], values["BUILD"], values["PATCH"])


def format_version_file(version: ChromiumVersion) -> str:
    """The ``chrome/VERSION`` text for `version`: four ``KEY=value`` lines, LF-terminated."""
    return (
        f"MAJOR={version.major}\nMINOR={version.minor}\n"
        f"BUILD={version.build}\nPATCH={version.patch}\n"
    )


_TAG_NUMBERS = re.compile(r"^[^0-9]*?([0-9]{1,8}(?:\.[0-9]{1,8})*)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class TagVersion:
    """A version of an upstream versioned by its release tags (git's ``v2.45.0``): the tag
    name, without ``refs/tags/``. It has no milestone and no four integer columns."""

    tag: str

    def __str__(self) -> str:
        return self.tag


def tag_order(name: str) -> tuple:
    """A sort key for release tag names, as semantic versioning orders them: by the first
    run of dot-separated numbers (``v2.45.0`` -> 2, 45, 0), a tag with more after it (a
    pre-release, ``v2.45.0-rc1``) just below the same numbers without, those by the numbers
    in what follows; tags without a number first, then by name."""
    match = _TAG_NUMBERS.match(name)
    if match is None:
        return (0, (), 0, (), name)
    numbers = tuple(int(n) for n in match.group(1).split("."))
    rest = match.group(2)
    after = tuple(int(n) for n in re.findall(r"[0-9]{1,8}", rest))
    return (1, numbers, 0 if rest else 1, after, name)


def version_columns(version: ChromiumVersion | TagVersion | None, prefix: str = "") -> dict:
    """The database columns of a version: ``{prefix}version`` (the string, "" for None) and
    ``{prefix}major``, ``_minor``, ``_build``, ``_patch`` (None for None and for a tag
    version), which models keep beside the string so that the database sorts versions."""
    numbers = version.as_tuple() if isinstance(version, ChromiumVersion) else (None,) * 4
    columns = {f"{prefix}version": str(version) if version else ""}
    for name, value in zip(("major", "minor", "build", "patch"), numbers, strict=True):
        columns[f"{prefix}{name}"] = value
    return columns
