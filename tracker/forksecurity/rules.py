"""Fix status rules: pure functions on plain data (no git, no database).

Terms:

- *part*: one fix commit on main (its id is the part key); a vulnerability with several fix
  commits is fixed only when every part is present. A vulnerability whose fix commits are all
  branch commits has one part per commit. A dependency-roll fix (placed by version) has one
  part, ``"version"``.
- *base*: the fork target's upstream base (`Base`); a part is *in the base* on main when its
  position is at or below the base's position; on a release branch when it is at or below the
  branch point (the branch-point rule) or its cherry-pick onto that branch is at or below the
  base's branch position.
- *backport*: a fork commit (git fork) or a patch file (patch-series fork) that carries a part.
  Methods, strongest first: ``trailer`` (``(cherry picked from commit <sha>)`` naming the part
  or one of its cherry-picks), ``original-position`` (``Cr-Original-Commit-Position`` equal to
  the part's main position), ``change-id``, ``reviewed-on`` (same code review change),
  ``patch-id`` (same ``git patch-id --stable`` as the part or a cherry-pick); for patch files
  ``patch-name`` (the name carries 12+ hex digits of a fix commit id), ``patch-content`` (the
  content names a fix commit id or its review) and ``patch-diff`` (the file's added and
  removed lines, per file, equal those of the fix commit).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tracker.footers import is_main_ref, parse_footers, review_number

GIT_METHODS = ("trailer", "original-position", "change-id", "reviewed-on", "patch-id")
PATCH_METHODS = ("patch-name", "patch-content", "patch-diff")
STRENGTH = {method: rank for rank, method in enumerate(GIT_METHODS + PATCH_METHODS)}
VERSION_PART = "version"
_HEX_RUN = re.compile(r"(?<![0-9a-f])[0-9a-f]{12,40}(?![0-9a-f])")
_URL = re.compile(r"https?://[^\s<>\"')]+")

Version = tuple[int, int, int, int]


@dataclass(frozen=True)
class Pick:
    """An upstream cherry-pick of a part onto release branch `ref` at branch `position`."""

    sha: str
    ref: str
    position: int | None


@dataclass
class Part:
    """One fix part (see the module docstring) and every upstream commit that carries it."""

    key: str
    position: int | None = None
    picks: list[Pick] = field(default_factory=list)
    # Every upstream commit of the part: the main commit and its cherry-picks.
    shas: list[str] = field(default_factory=list)
    change_ids: set[str] = field(default_factory=set)
    reviews: set[tuple[str, int]] = field(default_factory=set)


@dataclass
class Fix:
    """A vulnerability's fix as status computation sees it.

    `fixed_versions` maps a milestone to the first version of it with the fix (dependency
    rolls); `parts` is empty for them. `digest` changes whenever anything here does.
    """

    vuln_id: int
    cve: str
    parts: list[Part] = field(default_factory=list)
    fixed_versions: dict[int, Version] = field(default_factory=dict)
    by_version: bool = False

    @property
    def digest(self) -> str:
        data = [
            self.cve,
            self.by_version,
            sorted(self.fixed_versions.items()),
            [
                (p.key, p.position, [(k.sha, k.ref, k.position) for k in p.picks], sorted(p.shas))
                for p in self.parts
            ],
            [(sorted(p.change_ids), sorted(p.reviews)) for p in self.parts],
        ]
        return hashlib.sha1(
            json.dumps(data, default=str).encode(), usedforsecurity=False
        ).hexdigest()


@dataclass(frozen=True)
class Base:
    """An upstream base: its commit, Cr-Commit-Position and (on a branch) branch point."""

    sha: str
    position_ref: str = ""
    position: int | None = None
    branch_point: int | None = None
    version: Version | None = None


@dataclass(frozen=True)
class ForkCommit:
    """What backport matching needs from one fork commit."""

    sha: str
    parents: tuple[str, ...]
    cherry_picked_from: tuple[str, ...] = ()
    original_positions: tuple[int, ...] = ()
    change_id: str = ""
    reviews: tuple[tuple[str, int], ...] = ()
    patch_id: str = ""


def fork_commit(sha: str, parents: Sequence[str], message: str, patch_id: str = "") -> ForkCommit:
    """Parse the footers of a fork commit message into a `ForkCommit`."""
    footers = parse_footers(message)
    reviews = tuple(r for r in (review_number(u) for u in footers.reviewed_on) if r is not None)
    return ForkCommit(
        sha=sha,
        parents=tuple(parents),
        cherry_picked_from=() if footers.is_revert else footers.cherry_picked_from,
        original_positions=tuple(p.number for p in footers.original_positions if p.is_main),
        change_id=footers.change_id or "",
        reviews=reviews,
        patch_id=patch_id,
    )


@dataclass(frozen=True)
class Match:
    """A fork commit or patch file carrying part `part` of vulnerability `vuln_id`."""

    vuln_id: int
    part: str
    method: str
    upstream: str
    fork_commit: str = ""
    patch: str = ""


class MatchIndex:
    """Every part of every fix, indexed by the keys backport methods look up."""

    def __init__(self, fixes: Iterable[Fix], patch_ids: Mapping[str, str]) -> None:
        self.by_sha: dict[str, list[tuple[int, str, str]]] = {}
        self.by_position: dict[int, list[tuple[int, str, str]]] = {}
        self.by_change_id: dict[str, list[tuple[int, str, str]]] = {}
        self.by_review: dict[tuple[str, int], list[tuple[int, str, str]]] = {}
        self.by_patch_id: dict[str, list[tuple[int, str, str]]] = {}
        self.short_shas: dict[str, list[tuple[int, str, str]]] = {}
        for fix in fixes:
            for part in fix.parts:
                entry = (fix.vuln_id, part.key, part.key)
                if part.position is not None and part.key in part.shas:
                    self.by_position.setdefault(part.position, []).append(entry)
                for cid in part.change_ids:
                    self.by_change_id.setdefault(cid, []).append(entry)
                for review in part.reviews:
                    self.by_review.setdefault(review, []).append(entry)
                for sha in part.shas:
                    hit = (fix.vuln_id, part.key, sha)
                    self.by_sha.setdefault(sha, []).append(hit)
                    self.short_shas.setdefault(sha[:12], []).append(hit)
                    if patch_ids.get(sha):
                        self.by_patch_id.setdefault(patch_ids[sha], []).append(hit)

    def match_commit(self, commit: ForkCommit) -> list[Match]:
        """Every (part, method) the fork commit carries, strongest method first."""
        found: list[Match] = []

        def add(hits, method: str) -> None:
            for vuln_id, part, upstream in hits:
                found.append(Match(vuln_id, part, method, upstream, fork_commit=commit.sha))

        for sha in commit.cherry_picked_from:
            add(self.by_sha.get(sha, ()), "trailer")
        for position in commit.original_positions:
            add(self.by_position.get(position, ()), "original-position")
        if commit.change_id:
            add(self.by_change_id.get(commit.change_id, ()), "change-id")
        for review in commit.reviews:
            add(self.by_review.get(review, ()), "reviewed-on")
        if commit.patch_id:
            add(self.by_patch_id.get(commit.patch_id, ()), "patch-id")
        return found

    def match_patch_file(
        self,
        name: str,
        content: str,
        diff_files: Mapping[str, tuple[list[str], list[str]]],
        upstream_files: Mapping[str, Mapping[str, Sequence[Sequence[str]]]],
    ) -> list[Match]:
        """Every (part, method) a patch file carries: by its name, its content or its diff.

        `diff_files` is the patch file's diff (path -> (added, removed) lines);
        `upstream_files` the same per upstream commit id, from `diff_lines`.
        """
        found: list[Match] = []
        base = name.rsplit("/", 1)[-1].lower()
        for run in _HEX_RUN.findall(base):
            for vuln_id, part, upstream in self._by_prefix(run):
                found.append(Match(vuln_id, part, "patch-name", upstream, patch=name))
        lowered = content.lower()
        for run in set(_HEX_RUN.findall(lowered)):
            for vuln_id, part, upstream in self._by_prefix(run):
                found.append(Match(vuln_id, part, "patch-content", upstream, patch=name))
        for url in set(_URL.findall(content)):
            review = review_number(url)
            for vuln_id, part, upstream in self.by_review.get(review, ()) if review else ():
                found.append(Match(vuln_id, part, "patch-content", upstream, patch=name))
        if diff_files:
            for sha, files in upstream_files.items():
                if files and _same_lines(diff_files, files):
                    for vuln_id, part, upstream in self.by_sha.get(sha, ()):
                        found.append(Match(vuln_id, part, "patch-diff", upstream, patch=name))
        return found

    def _by_prefix(self, run: str) -> list[tuple[int, str, str]]:
        hits = self.short_shas.get(run[:12], [])
        return [hit for hit in hits if hit[2].startswith(run)]


def _same_lines(
    patch: Mapping[str, tuple[list[str], list[str]]], upstream: Mapping[str, Sequence]
) -> bool:
    """True when, for every file the upstream commit touches, the patch adds and removes the
    same lines (as multisets; hunk positions and context are ignored)."""
    for path, (added, removed) in upstream.items():
        mine = patch.get(path)
        if mine is None:
            return False
        if sorted(mine[0]) != sorted(added) or sorted(mine[1]) != sorted(removed):
            return False
    return True


def diff_lines(diff: str) -> dict[str, tuple[list[str], list[str]]]:
    """Path -> (added lines, removed lines) of a unified diff (``git diff`` or a patch file),
    with whitespace at line ends stripped."""
    files: dict[str, tuple[list[str], list[str]]] = {}
    current: tuple[list[str], list[str]] | None = None
    in_hunk = False
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            path = line.split(" b/", 1)[-1] if " b/" in line else line.split()[-1]
            current = files.setdefault(path, ([], []))
            in_hunk = False
        elif line.startswith("@@") and current is not None:
            in_hunk = True
        elif in_hunk and current is not None:
            if line.startswith("+"):
                current[0].append(line[1:].rstrip())
            elif line.startswith("-"):
                current[1].append(line[1:].rstrip())
            elif not line.startswith((" ", "\\")) and line != "":
                in_hunk = False  # e.g. the "-- " signature of format-patch output
    return files


def part_in_base(part: Part, base: Base) -> tuple[bool, str, str] | None:
    """Whether the upstream base contains the part: (found, method, upstream commit), or None
    when positions cannot tell (the base is not in the ingested history)."""
    if base.position is None or not base.position_ref:
        return None
    if is_main_ref(base.position_ref):
        if part.position is None or part.key not in part.shas:
            return False, "", ""
        return part.position <= base.position, "position", part.key
    if (
        part.position is not None
        and part.key in part.shas
        and base.branch_point is not None
        and part.position <= base.branch_point
    ):
        return True, "branch-point", part.key
    for pick in part.picks:
        if (
            pick.ref == base.position_ref
            and pick.position is not None
            and pick.position <= base.position
        ):
            return True, "cherry-pick", pick.sha
    return False, "", ""


def version_in_base(fix: Fix, base: Base) -> bool:
    """A dependency-roll fix by version: the base's milestone has a first fixed version and
    the base version is at or above it."""
    if base.version is None:
        return False
    first = fix.fixed_versions.get(base.version[0])
    return first is not None and base.version >= first


@dataclass(frozen=True)
class Outcome:
    """A computed status (``base``, ``backport`` or ``open``) and its evidence per part."""

    state: str
    evidence: list[dict]


def evaluate(
    fix: Fix, base: Base | None, backports: Mapping[tuple[int, str], Sequence[Match]]
) -> Outcome:
    """The status of `fix` in a target with upstream base `base` and the backports it carries
    (`backports`: (vulnerability id, part) -> its matches, strongest first, from `strongest`).

    A part's evidence names the strongest match; ``also`` lists the other methods that
    matched, strongest first."""
    evidence: list[dict] = []
    if fix.by_version and base is not None and version_in_base(fix, base):
        part = {"part": VERSION_PART, "how": "base", "method": "version", "upstream": ""}
        return Outcome("base", [part])
    if not fix.parts:
        # Nothing placed it in history: neither a fix commit nor (for a roll) a version here.
        missing = {"part": VERSION_PART, "how": "missing", "method": None, "upstream": ""}
        return Outcome("open", [missing])
    for part in fix.parts:
        placed = part_in_base(part, base) if base is not None else None
        if placed is not None and placed[0]:
            evidence.append(
                {"part": part.key, "how": "base", "method": placed[1], "upstream": placed[2]}
            )
            continue
        ranked = backports.get((fix.vuln_id, part.key))
        if ranked:
            match = ranked[0]
            entry = {
                "part": part.key,
                "how": "backport",
                "method": match.method,
                "upstream": match.upstream,
            }
            also = [m.method for m in ranked[1:] if m.method != match.method]
            if also:
                entry["also"] = list(dict.fromkeys(also))
            if match.fork_commit:
                entry["fork_commit"] = match.fork_commit
            if match.patch:
                entry["patch"] = match.patch
            evidence.append(entry)
            continue
        evidence.append({"part": part.key, "how": "missing", "method": None, "upstream": ""})
    hows = {e["how"] for e in evidence}
    state = "open" if "missing" in hows else "backport" if "backport" in hows else "base"
    return Outcome(state, evidence)


def strongest(matches: Iterable[Match]) -> dict[tuple[int, str], tuple[Match, ...]]:
    """Per (vulnerability, part): every match, strongest method first (ties: first seen)."""
    found: dict[tuple[int, str], list[Match]] = {}
    for match in matches:
        found.setdefault((match.vuln_id, match.part), []).append(match)
    return {
        key: tuple(sorted(ranked, key=lambda m: STRENGTH[m.method]))
        for key, ranked in found.items()
    }


def reachable(tip: str, parents: Mapping[str, Sequence[str]]) -> set[str]:
    """Fork commits reachable from `tip` through fork commits only (`parents` holds just the
    fork's own commits, so the walk stops at the upstream base)."""
    seen: set[str] = set()
    stack = [tip]
    while stack:
        sha = stack.pop()
        if sha in seen or sha not in parents:
            continue
        seen.add(sha)
        stack.extend(parents[sha])
    return seen


def patch_level(
    stable_versions: Iterable[tuple[Version, str]],
    listed: Mapping[str, set[str]],
    carried: set[str],
) -> str:
    """The security patch level: the newest Stable version V such that every CVE listed for
    V or any lower Stable version is in `carried` ("" when even the lowest is not).

    `stable_versions` are (version tuple, version string); `listed` maps a version string to
    the CVEs its bulletins list.
    """
    level = ""
    for _version, text in sorted(set(stable_versions)):
        if not listed.get(text, set()) <= carried:
            break
        level = text
    return level


def lowest_listing(listed: Mapping[str, set[str]]) -> dict[str, Version]:
    """CVE -> the lowest version whose bulletins list it (`listed`: version -> CVEs)."""
    lowest: dict[str, Version] = {}
    for text, cves in listed.items():
        try:
            version = tuple(int(x) for x in text.split("."))
        except ValueError:
            continue
        for cve in cves:
            if cve not in lowest or version < lowest[cve]:
                lowest[cve] = version
    return lowest


def patch_level_from_missing(
    stable: Sequence[tuple[Version, str]], lowest: Mapping[str, Version], missing: Iterable[str]
) -> str:
    """`patch_level`, computed from the CVEs a release does *not* carry (usually far fewer):
    the newest Stable version below the lowest version listing a missing CVE. `stable` must
    be sorted; `lowest` is `lowest_listing` of the bulletins."""
    bound = min((lowest[c] for c in missing if c in lowest), default=None)
    level = ""
    for version, text in stable:
        if bound is not None and version >= bound:
            break
        level = text
    return level


def fingerprint(*parts: str) -> str:
    """A short digest of the inputs of one status (unchanged inputs: nothing to recompute)."""
    return hashlib.sha1("\x00".join(parts).encode(), usedforsecurity=False).hexdigest()
