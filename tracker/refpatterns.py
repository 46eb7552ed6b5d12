"""Ref patterns: which refs a field such as a fork's release tags selects. Pure functions.

A *pattern list* is one or more patterns separated by commas or whitespace:

- a *pattern* is a full ref name (it starts with ``refs/``) in which each ``*`` stands for
  any run of characters, ``/`` included, as in git's fetch refspecs and ``git ls-remote``
  (unlike ``git for-each-ref``, where ``*`` stops at ``/``): ``refs/tags/v*.windows.*``
  selects ``refs/tags/v2.45.0.windows.1``, ``refs/heads/*`` selects ``refs/heads/a/b``;
- a pattern starting with ``!`` is an *exclusion*: ``!refs/tags/*-rc*``;
- a ref is *selected* when it matches at least one pattern and no exclusion. A list needs at
  least one pattern that is not an exclusion.

There are no other glob characters: ``?``, ``[`` and ``\\`` are refused, as git refuses them in
ref names. Ref names cannot hold whitespace; a ref name with a comma (git allows one) cannot
be named in a list.

Git's refspecs allow one ``*`` each, so a mirror fetches each pattern through a broader
refspec, the pattern cut after its first ``*`` (``refs/tags/v*`` for ``refs/tags/v*.windows.*``,
see `RefPatterns.fetch_sources`), and then drops the refs the full list does not select.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from tracker.git import UnsafeGitInput, check_ref_name

_SEPARATORS = re.compile(r"[\s,]+")


def split_list(text: str) -> list[str]:
    """The items of a comma- or whitespace-separated list, in order, empty ones dropped."""
    return [item for item in _SEPARATORS.split(text or "") if item]


def _check_body(pattern: str, shown: str) -> None:
    if not pattern.startswith("refs/"):
        raise UnsafeGitInput(
            f"ref pattern {shown!r} is not allowed: it does not start with refs/ "
            "(give the full name, e.g. refs/tags/v*)"
        )
    # As git check-ref-format --refspec-pattern does, read each * as an ordinary character.
    try:
        check_ref_name(pattern.replace("*", "x"))
    except UnsafeGitInput as exc:
        problem = str(exc).partition(" is not allowed: ")[2]
        raise UnsafeGitInput(f"ref pattern {shown!r} is not allowed: {problem}") from None


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


@dataclass(frozen=True)
class RefPatterns:
    """A parsed pattern list: `include` and `exclude` patterns, each without its ``!``."""

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str, *, under: str = "refs/") -> RefPatterns:
        """Parse and check a pattern list; every pattern must start with `under` (e.g.
        ``refs/tags/`` for release tags). Raises UnsafeGitInput naming the bad pattern."""
        include: list[str] = []
        exclude: list[str] = []
        for item in split_list(text):
            body = item[1:] if item.startswith("!") else item
            _check_body(body, item)
            if not body.startswith(under):
                raise UnsafeGitInput(
                    f"ref pattern {item!r} is not allowed: it is not under {under}"
                )
            target = exclude if item.startswith("!") else include
            if body not in target:
                target.append(body)
        if not include:
            raise UnsafeGitInput(
                "ref pattern list selects nothing: it needs a pattern that is not an "
                f"exclusion (got {text.strip()[:200]!r})"
            )
        return cls(tuple(include), tuple(exclude))

    def __str__(self) -> str:
        """The list as stored: patterns, then exclusions, separated by ", "."""
        return ", ".join([*self.include, *(f"!{p}" for p in self.exclude)])

    @cached_property
    def _include(self) -> tuple[re.Pattern[str], ...]:
        return tuple(_regex(p) for p in self.include)

    @cached_property
    def _exclude(self) -> tuple[re.Pattern[str], ...]:
        return tuple(_regex(p) for p in self.exclude)

    def matches(self, ref: str) -> bool:
        """Whether full ref name `ref` is selected."""
        return any(r.fullmatch(ref) for r in self._include) and not any(
            r.fullmatch(ref) for r in self._exclude
        )

    def select(self, refs: Iterable[str]) -> list[str]:
        """The selected refs of `refs`, sorted."""
        return sorted(ref for ref in set(refs) if self.matches(ref))

    def fetch_sources(self) -> list[str]:
        """Refspec sources that fetch at least every selected ref, each with at most one
        ``*`` as git requires: each pattern cut after its first ``*``; a source that another
        source covers is left out."""
        return fetch_sources(self.include)

    def listing_prefixes(self) -> list[str]:
        """Prefixes ending in ``/`` under which every selected ref lies, for listings (git
        for-each-ref matches a prefix only up to a ``/``)."""
        cut = {p.split("*", 1)[0].rsplit("/", 1)[0] + "/" for p in self.include}
        return sorted(p for p in cut if not any(o != p and p.startswith(o) for o in cut))


def fetch_sources(patterns: Iterable[str]) -> list[str]:
    """Refspec sources covering `patterns` (exact refs or patterns), with at most one ``*``
    each and none covered by another (see `RefPatterns.fetch_sources`)."""
    sources = sorted({p[: p.index("*") + 1] if "*" in p else p for p in patterns})
    broad = [s[:-1] for s in sources if s.endswith("*")]

    def covered(source: str) -> bool:
        return any(source != prefix + "*" and source.startswith(prefix) for prefix in broad)

    return [s for s in sources if not covered(s)]


def parse_ref_list(text: str) -> tuple[str, ...]:
    """Exact full ref names (no ``*``) from a comma- or whitespace-separated list, checked
    and without repeats. Raises UnsafeGitInput."""
    refs: list[str] = []
    for item in split_list(text):
        if "*" in item or item.startswith("!"):
            raise UnsafeGitInput(f"ref {item!r} is not allowed here: give exact ref names")
        check_ref_name(item)
        if not item.startswith("refs/"):
            raise UnsafeGitInput(f"ref name {item!r} is not allowed: it does not start with refs/")
        if item not in refs:
            refs.append(item)
    return tuple(refs)


def sample(refs: Iterable[str], limit: int = 5) -> str:
    """A few ref names for a message: ``"a, b, c and 12 more"`` (``"none"`` when empty)."""
    refs = list(refs)
    if not refs:
        return "none"
    shown = ", ".join(refs[:limit])
    return shown if len(refs) <= limit else f"{shown} and {len(refs) - limit} more"


@dataclass(frozen=True)
class RefSelection:
    """Every ref one remote's namespace in a mirror should hold: exact refs, and refs that
    one of several pattern lists selects (each list with its own exclusions)."""

    exact: tuple[str, ...] = ()
    patterns: tuple[RefPatterns, ...] = ()
    # Exact refs that may be missing on the remote: fetched through a pattern (the ref
    # followed by '*'), which git does not fail on when nothing matches.
    optional: tuple[str, ...] = ()

    def matches(self, ref: str) -> bool:
        return (
            ref in self.exact or ref in self.optional or any(p.matches(ref) for p in self.patterns)
        )

    def fetch_sources(self) -> list[str]:
        """Refspec sources for all of it (see `RefPatterns.fetch_sources`)."""
        return fetch_sources(
            [
                *self.exact,
                *(f"{ref}*" for ref in self.optional),
                *(p for patterns in self.patterns for p in patterns.include),
            ]
        )
