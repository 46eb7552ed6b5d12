"""Placing upstream security fixes in history and in releases: pure functions on plain data.

Terms:

- *fix commits* of a vulnerability: the upstream commits whose ``Bug:``/``Fixed:`` footers
  name one of its bug ids, plus cherry-picks of them found by trailer or Change-Id.
- *parts*: the fix commits that landed on main, in position order. A fix in two CLs has two
  parts, and a release contains the fix only when it contains every part. Reverts are not
  parts (their subject is ``Revert "…"``).
- *cherry-pick*: a release-branch copy of a part, tied to it by its ``(cherry picked from
  commit …)`` trailer, its ``Cr-Original-Commit-Position`` or its Change-Id (Gerrit keeps the
  Change-Id on every cherry-pick). A branch commit that names the bug but ties to no part is a
  *branch-only* fix: the branch's own version of the fix.
- *branch-point rule*: a main commit at position P is in a release branch cut at main position
  B when P <= B; otherwise the branch has it only through a cherry-pick, which a release at
  branch position N contains when the cherry-pick's branch position is <= N.
- *landing time*: when the last part landed on main (its commit time).
- *upstream gap*: days from the landing time to the first Stable release containing the fix.

A fix that reached Chromium through a dependency roll (V8, Skia, ANGLE, …) has no commit
naming its bug; it is placed by version: a bulletin that lists the CVE for version V says
every release of V's branch from V on contains it.

Nothing here touches git or the database; ancestry questions go through a callback.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from tracker.footers import is_main_ref
from tracker.versions import ChromiumVersion, VersionParseError, parse_version

__all__ = [
    "ANCESTRY",
    "BRANCH_POINT",
    "VERSION",
    "CommitFacts",
    "FixSet",
    "LinkedCommit",
    "ReleaseFacts",
    "ReleaseIndex",
    "ReleasePoint",
    "branch_number",
    "contains_by_positions",
    "contains_by_version",
    "first_fixed_per_milestone",
    "first_releases",
    "fixed_versions",
    "group_fix_commits",
    "place_release",
    "upstream_gap_days",
]

# Evidence that a release contains a fix (the values of tracker.models.Evidence).
ANCESTRY = "ancestry"
BRANCH_POINT = "branch_point"
VERSION = "version"
Evidence = Literal["ancestry", "branch_point", "version"]

_BRANCH_REF = re.compile(r"refs/branch-heads/([0-9]{1,9})")
_REVERT = re.compile(r'^(?:\[[^\]]*\]\s*)*Revert(?:\^[0-9]+)? "')
SECONDS_PER_DAY = 86400


def branch_number(ref: str) -> int | None:
    """6422 for ``refs/branch-heads/6422``; None for main, side branches (``6099_225``) etc."""
    match = _BRANCH_REF.fullmatch(ref)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class CommitFacts:
    """What is known of one candidate upstream commit (from `UpstreamCommit`).

    `ref`/`position` are its Cr-Commit-Position; `original_position` its
    Cr-Original-Commit-Position on main; `names_bug` whether its own footers name one of the
    vulnerability's bug ids (otherwise it was found through a part's Change-Id or position).
    """

    sha: str
    ref: str
    position: int | None
    commit_time: datetime
    subject: str = ""
    change_id: str = ""
    cherry_picked_from: tuple[str, ...] = ()
    original_position: int | None = None
    names_bug: bool = True

    @property
    def is_revert(self) -> bool:
        return _REVERT.match(self.subject) is not None


@dataclass(frozen=True)
class LinkedCommit:
    """A fix commit with its role: ``main`` (a part), ``cherry_pick`` (of part
    `original_sha`) or ``branch`` (branch-only). `found_by` is ``footer``, ``cherry_pick``
    (trailer or original position) or ``change_id``."""

    sha: str
    ref: str
    position: int | None
    commit_time: datetime
    role: str
    found_by: str
    original_sha: str | None = None
    change_id: str = ""
    subject: str = ""

    @property
    def branch(self) -> int | None:
        return branch_number(self.ref)


@dataclass
class FixSet:
    """The fix commits of one vulnerability, grouped: `parts` on main (position order) and
    `picks` on release branches (cherry-picks and branch-only commits)."""

    parts: list[LinkedCommit] = field(default_factory=list)
    picks: list[LinkedCommit] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.parts or self.picks)

    @property
    def landed_at(self) -> datetime | None:
        """When the last part landed on main; None when no part is on main."""
        return max((part.commit_time for part in self.parts), default=None)

    @property
    def earliest(self) -> datetime | None:
        """The earliest commit time of any fix commit (no release before it can contain one)."""
        return min((c.commit_time for c in [*self.parts, *self.picks]), default=None)

    def commits(self) -> list[LinkedCommit]:
        return [*self.parts, *self.picks]


def group_fix_commits(commits: Iterable[CommitFacts]) -> FixSet:
    """Group candidate commits into main parts and their cherry-picks.

    Main commits that name the bug (reverts excepted) are the parts. A branch commit is tied
    to a part by, in order: a ``(cherry picked from commit <part sha>)`` trailer; its
    Cr-Original-Commit-Position equal to the part's position; the same Change-Id; or a
    trailer naming another cherry-pick already tied (a cherry-pick of a cherry-pick). Branch
    commits found only by Change-Id or position must tie to a part, else they are dropped;
    those that name the bug and tie to none are branch-only. Duplicate shas count once.
    """
    unique: dict[str, CommitFacts] = {}
    for commit in commits:
        if commit.sha not in unique or commit.names_bug:
            unique[commit.sha] = commit
    parts_facts = sorted(
        (
            c
            for c in unique.values()
            if is_main_ref(c.ref) and c.names_bug and not c.is_revert and c.position is not None
        ),
        key=lambda c: (c.position, c.commit_time),
    )
    parts = [
        LinkedCommit(
            sha=c.sha,
            ref=c.ref,
            position=c.position,
            commit_time=c.commit_time,
            role="main",
            found_by="footer",
            change_id=c.change_id,
            subject=c.subject,
        )
        for c in parts_facts
    ]
    by_sha = {p.sha: p for p in parts}
    by_position = {p.position: p for p in parts}
    by_change_id: dict[str, LinkedCommit] = {}
    for part in parts:
        if part.change_id:
            by_change_id.setdefault(part.change_id, part)

    branch_facts = [
        c for c in unique.values() if not is_main_ref(c.ref) and not c.is_revert and c.ref
    ]
    tied: dict[str, tuple[LinkedCommit, str]] = {}  # branch sha -> (part, how)
    for commit in branch_facts:
        found = _tie(commit, by_sha, by_position, by_change_id)
        if found is not None:
            tied[commit.sha] = found
    # A cherry-pick of a cherry-pick may name only the intermediate commit; follow the chain.
    changed = True
    while changed:
        changed = False
        for commit in branch_facts:
            if commit.sha in tied:
                continue
            for source in commit.cherry_picked_from:
                if source in tied:
                    tied[commit.sha] = (tied[source][0], "cherry_pick")
                    changed = True
                    break

    picks = []
    for commit in sorted(branch_facts, key=lambda c: (c.ref, c.position or 0, c.sha)):
        if commit.sha in tied:
            part, how = tied[commit.sha]
            picks.append(
                LinkedCommit(
                    sha=commit.sha,
                    ref=commit.ref,
                    position=commit.position,
                    commit_time=commit.commit_time,
                    role="cherry_pick",
                    found_by="footer" if commit.names_bug else how,
                    original_sha=part.sha,
                    change_id=commit.change_id,
                    subject=commit.subject,
                )
            )
        elif commit.names_bug:
            picks.append(
                LinkedCommit(
                    sha=commit.sha,
                    ref=commit.ref,
                    position=commit.position,
                    commit_time=commit.commit_time,
                    role="branch",
                    found_by="footer",
                    change_id=commit.change_id,
                    subject=commit.subject,
                )
            )
    return FixSet(parts=parts, picks=picks)


def _tie(
    commit: CommitFacts,
    by_sha: dict[str, LinkedCommit],
    by_position: dict[int | None, LinkedCommit],
    by_change_id: dict[str, LinkedCommit],
) -> tuple[LinkedCommit, str] | None:
    for source in commit.cherry_picked_from:
        if source in by_sha:
            return by_sha[source], "cherry_pick"
    if commit.original_position is not None and commit.original_position in by_position:
        return by_position[commit.original_position], "cherry_pick"
    if commit.change_id and commit.change_id in by_change_id:
        return by_change_id[commit.change_id], "change_id"
    return None


@dataclass(frozen=True)
class ReleasePoint:
    """Where a release commit sits in history: commit `position` on `ref`.

    On a release branch `branch_point` is the main position the branch was cut from (its
    Cr-Branched-From); on main it is None.
    """

    ref: str
    position: int | None
    branch_point: int | None = None


@dataclass(frozen=True)
class ReleaseFacts:
    """One release as linking sees it.

    `key` identifies the release to the caller (a primary key); `point` is None when the
    release commit is not in the ingested history; `branch_point` is the main position its
    branch was cut from, when known from elsewhere (Chromium Dash, the milestone table).
    """

    key: object
    version: ChromiumVersion
    channel: str
    platform: str
    time: datetime
    commit: str = ""
    point: ReleasePoint | None = None
    branch_point: int | None = None


def contains_by_positions(fix: FixSet, point: ReleasePoint) -> bool | None:
    """Whether the release commit at `point` contains every part of `fix`, by positions.

    On main: every part's position is <= the release's. On release branch N: each part is
    either at or before the branch point, or cherry-picked to N at or before the release's
    branch position (a branch-only fix on N stands in for a part it could not be tied to).
    None when positions cannot decide (no parts on main, or a position is missing).
    """
    positions = [part.position for part in fix.parts if part.position is not None]
    if not positions or len(positions) != len(fix.parts):
        return None
    if is_main_ref(point.ref):
        return None if point.position is None else max(positions) <= point.position
    for part, position in zip(fix.parts, positions, strict=True):
        if point.branch_point is not None and position <= point.branch_point:
            continue
        if point.position is None:
            return None
        picked = any(
            pick.ref == point.ref
            and pick.position is not None
            and pick.position <= point.position
            and (pick.original_sha == part.sha or pick.role == "branch")
            for pick in fix.picks
        )
        if not picked:
            # Without the branch point, "not picked" cannot be told from "there already".
            return None if point.branch_point is None else False
    return True


def fixed_versions(versions: Iterable[str]) -> dict[tuple[int, int], ChromiumVersion]:
    """The lowest version per (milestone, branch) among the versions bulletins list a fix for.

    Strings that are not versions are ignored.
    """
    lowest: dict[tuple[int, int], ChromiumVersion] = {}
    for text in versions:
        try:
            version = parse_version(text)
        except VersionParseError:
            continue
        key = (version.major, version.build)
        if key not in lowest or version < lowest[key]:
            lowest[key] = version
    return lowest


def contains_by_version(
    fixed: dict[tuple[int, int], ChromiumVersion], version: ChromiumVersion
) -> bool | None:
    """Whether `version` contains a fix first listed for the versions in `fixed`.

    A release branch is linear, so a version of the same milestone and branch at or after the
    listed one contains it; an earlier one does not. None for other branches: nothing is
    known there.
    """
    listed = fixed.get((version.major, version.build))
    if listed is None:
        return None
    return version >= listed


def place_release(
    fix: FixSet,
    release: ReleaseFacts,
    *,
    fixed_by_version: dict[tuple[int, int], ChromiumVersion] | None = None,
    is_ancestor: Callable[[str, str], bool] | None = None,
) -> tuple[bool, Evidence] | None:
    """Whether `release` contains the fix, and the evidence; None when it cannot be told.

    With fix commits: commit positions when the release commit is in the ingested history;
    else the branch-point rule on the release's known branch point (enough when every part
    predates it); else git ancestry through `is_ancestor(commit, release_commit)` (each part,
    or one of its cherry-picks, must be an ancestor). Without fix commits (a dependency roll):
    the bulletin versions in `fixed_by_version`.
    """
    if not fix:
        if not fixed_by_version:
            return None
        found = contains_by_version(fixed_by_version, release.version)
        return None if found is None else (found, VERSION)
    if release.point is not None:
        found = contains_by_positions(fix, release.point)
        if found is not None:
            return found, BRANCH_POINT
    if (
        fix.parts
        and release.branch_point is not None
        and all(p.position is not None and p.position <= release.branch_point for p in fix.parts)
    ):
        return True, BRANCH_POINT
    if is_ancestor is not None and release.commit:
        return _contains_by_ancestry(fix, release.commit, is_ancestor), ANCESTRY
    return None


def _contains_by_ancestry(
    fix: FixSet, commit: str, is_ancestor: Callable[[str, str], bool]
) -> bool:
    if not fix.parts:
        return any(is_ancestor(pick.sha, commit) for pick in fix.picks)
    for part in fix.parts:
        candidates = [part.sha] + [
            pick.sha for pick in fix.picks if pick.original_sha == part.sha or pick.role == "branch"
        ]
        if not any(is_ancestor(candidate, commit) for candidate in candidates):
            return False
    return True


Decide = Callable[[ReleaseFacts], "tuple[bool, Evidence] | None"]


class ReleaseIndex:
    """Releases arranged once per linking run, so each fix is placed without a full scan.

    `releases` are sorted by time (ties: lower version first); `last_index` is the position of
    the last release of each (channel, platform); `milestones` holds, per milestone, one
    release per version (its earliest) in ascending version order, and `milestone_end` the
    time of the milestone's last release.
    """

    def __init__(self, releases: Iterable[ReleaseFacts]) -> None:
        self.releases = sorted(releases, key=lambda r: (r.time, r.version))
        self.times = [release.time for release in self.releases]
        self.last_index: dict[tuple[str, str], int] = {}
        earliest: dict[ChromiumVersion, ReleaseFacts] = {}
        self.milestone_end: dict[int, datetime] = {}
        for index, release in enumerate(self.releases):
            self.last_index[(release.channel, release.platform)] = index
            earliest.setdefault(release.version, release)
            self.milestone_end[release.version.major] = release.time
        self.milestones: dict[int, list[ReleaseFacts]] = {}
        for version in sorted(earliest):
            self.milestones.setdefault(version.major, []).append(earliest[version])


def first_releases(
    index: ReleaseIndex, decide: Decide, *, not_before: datetime | None = None
) -> dict[tuple[str, str], tuple[ReleaseFacts, Evidence]]:
    """The first release by time on each (channel, platform) that `decide` says contains the
    fix, with the evidence.

    Releases before `not_before` (the earliest fix commit: no release can contain a commit
    made after it) are skipped, and the scan stops once every (channel, platform) still
    without a release has had its last one. Ties in time go to the lower version.
    """
    releases = index.releases
    start = bisect.bisect_left(index.times, not_before) if not_before is not None else 0
    found: dict[tuple[str, str], tuple[ReleaseFacts, Evidence]] = {}
    pending = {key for key, last in index.last_index.items() if last >= start}
    limit = max((index.last_index[key] for key in pending), default=-1)
    position = start
    while position <= limit:
        release = releases[position]
        position += 1
        key = (release.channel, release.platform)
        if key in found:
            continue
        decision = decide(release)
        if decision is not None and decision[0]:
            found[key] = (release, decision[1])
            pending.discard(key)
            limit = max((index.last_index[k] for k in pending), default=-1)
    return found


def first_fixed_per_milestone(
    index: ReleaseIndex, decide: Decide, *, not_before: datetime | None = None
) -> dict[int, tuple[ChromiumVersion, Evidence]]:
    """Per milestone, the lowest released version that `decide` says contains the fix.

    Versions are tried in ascending order, each once (by its earliest release); a version
    first released before `not_before` cannot contain the fix and is skipped, and so is a
    milestone whose last release is. A milestone none of whose versions contains the fix is
    left out.
    """
    result: dict[int, tuple[ChromiumVersion, Evidence]] = {}
    for milestone, releases in index.milestones.items():
        if not_before is not None and index.milestone_end[milestone] < not_before:
            continue
        for release in releases:
            if not_before is not None and release.time < not_before:
                continue
            decision = decide(release)
            if decision is not None and decision[0]:
                result[milestone] = (release.version, decision[1])
                break
    return result


def upstream_gap_days(landed_at: datetime | None, first_stable_at: datetime | None) -> float | None:
    """Days (fractional) from the fix landing on main to the first Stable release with it.

    None when either is unknown. Negative values are possible in principle (a branch-only
    fix shipped before main got it) and are returned as they are.
    """
    if landed_at is None or first_stable_at is None:
        return None
    return (first_stable_at - landed_at).total_seconds() / SECONDS_PER_DAY
