"""Rebase lag of a fork branch against the upstream ref it follows, read from a mirror.

Terms (units in brackets):
- *base*: merge-base of the branch tip and the upstream tip.
- *commits behind* [commits]: upstream commits the branch does not contain,
  ``git rev-list --count ^tip upstream``; the *first-parent* count walks only upstream's
  first-parent line (on Chromium's linear main the two are equal).
- *oldest missing* [time]: commit time of the first upstream commit, along the first-parent
  line, that the branch lacks; *days behind* [whole days] = now - oldest missing, 0 if none.
- *versions behind* [versions]: upstream versions released on the followed line after the
  base's version, up to the upstream tip's (version tags: on a release branch those of its
  BUILD, on main the main builds MAJOR.0.BUILD.0); without tags, the upstream commits the
  branch lacks that change the version file. *milestones behind* [milestones]: the upstream
  tip's MAJOR minus the base's MAJOR, never below 0.

Single commits, files and refs are read through the repository's persistent reader
(`tracker.gitrepo`); the walks (``rev-list --count``, ``merge-base``, the first-parent stream
of `base_move_time`) stay with git through the gate, which walks with its commit-graph:
GitPython has no walk of its own but reading commit after commit (a 1,000-commit first-parent
walk: 50 ms, against 2.4 ms for ``git log -1 <id>~1000``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.footers import Position, is_main_ref, parse_footers
from tracker.git import GitError, check_sha, git_output_stream, run_git
from tracker.gitrepo import commit_time as committed_at
from tracker.gitrepo import open_repo
from tracker.versions import ChromiumVersion, VersionParseError, parse_version, parse_version_file

DAY = 86400


def days_behind(oldest_missing_at: datetime | None, now: datetime) -> int:
    """Whole days from the oldest missing upstream commit to `now`; 0 when nothing is missing."""
    if oldest_missing_at is None:
        return 0
    return max(0, int((now - oldest_missing_at).total_seconds() // DAY))


def milestones_behind(base: ChromiumVersion | None, tip: ChromiumVersion | None) -> int:
    if base is None or tip is None:
        return 0
    return max(0, tip.major - base.major)


def _ts(value: str) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def rev_parse(git_dir, rev: str) -> str:
    """The commit id `rev` names (a ref: tags peeled), as git resolves it."""
    with open_repo(git_dir) as repo:
        sha = repo.resolve(rev)
    if sha is None:
        raise GitError(f"{rev[:100]!r} names no commit in {git_dir}")
    return sha


def merge_base(git_dir, a: str, b: str) -> str | None:
    result = run_git(
        ["merge-base", "--end-of-options", check_sha(a), check_sha(b)], git_dir=git_dir, check=False
    )
    if result.returncode == 1:
        return None  # no common history
    if result.returncode != 0:
        raise GitError(
            f"git merge-base failed: {result.stderr.strip()}", returncode=result.returncode
        )
    return result.text.strip()


def _commit(git_dir, rev: str):
    """GitPython's commit for a commit id, or ``<id>~N`` (git walks to it in the reader)."""
    with open_repo(git_dir) as repo:
        sha = repo.resolve(rev) if "~" in rev else rev
        commit = repo.commit(sha) if sha else None
    if commit is None:
        raise GitError(f"{rev[:60]!r} names no commit in {git_dir}")
    return commit


def commit_time(git_dir, rev: str) -> datetime:
    """Commit time of a commit id, or of ``<id>~N`` (its Nth first-parent ancestor)."""
    sha, _, back = rev.partition("~")
    check_sha(sha)
    if back and not back.isdigit():
        raise GitError(f"not a first-parent ancestor expression: {rev[:60]!r}")
    return committed_at(_commit(git_dir, rev))


def commit_message(git_dir, sha: str) -> str:
    return _commit(git_dir, check_sha(sha)).message


def read_version(git_dir, sha: str, path: str) -> ChromiumVersion | None:
    """The version in `path` at commit `sha`, or None when the file is missing or malformed."""
    (raw,) = read_objects(git_dir, [f"{check_sha(sha)}:{path}"])
    return _version(raw)


def upstream_as_of(git_dir, upstream_tip: str, when: datetime) -> str | None:
    """The newest first-parent commit of the upstream tip committed at or before `when`."""
    out = run_git(
        [
            "rev-list",
            "-1",
            "--first-parent",
            f"--before={int(when.timestamp())}",
            "--end-of-options",
            check_sha(upstream_tip),
        ],
        git_dir=git_dir,
    ).text.strip()
    return out or None


def count(git_dir, *revs: str, first_parent: bool = False, paths: tuple[str, ...] = ()) -> int:
    args = ["rev-list", "--count"]
    if first_parent:
        args.append("--first-parent")
    args += ["--end-of-options", *revs]
    if paths:
        args += ["--", *paths]
    return int(run_git(args, git_dir=git_dir).text.strip() or 0)


@dataclass(frozen=True)
class Lag:
    upstream_tip: str
    commits_behind: int
    commits_behind_first_parent: int
    oldest_missing_at: datetime | None
    days_behind: int
    versions_behind: int
    milestones_behind: int


NO_LAG = Lag("", 0, 0, None, 0, 0, 0)


def line_build(upstream_ref: str) -> int | None:
    """The branch number of a release-branch ref (refs/branch-heads/6422 -> 6422); None for
    main and anything else."""
    tail = upstream_ref.rsplit("/", 1)[-1]
    return int(tail) if upstream_ref.startswith("refs/branch-heads/") and tail.isdigit() else None


@dataclass(frozen=True)
class VersionTags:
    """The upstream's version tags (MAJOR.MINOR.BUILD.PATCH), read once per sync."""

    versions: tuple[ChromiumVersion, ...]

    @classmethod
    def read(cls, git_dir, prefix: str = "refs/upstream/tags/") -> VersionTags:
        out = run_git(["for-each-ref", "--format=%(refname:lstrip=3)", prefix], git_dir=git_dir)
        found = []
        for name in out.text.split():
            try:
                found.append(parse_version(name))
            except VersionParseError:
                continue  # not a version tag
        return cls(tuple(sorted(set(found))))

    def behind(
        self, build: int | None, base: ChromiumVersion | None, tip: ChromiumVersion | None
    ) -> int:
        """Versions released on a line after `base`, up to `tip`: on a release branch the tags
        of that branch (its BUILD), on main the main builds (PATCH 0)."""
        if base is None or tip is None:
            return 0
        return sum(
            1
            for v in self.versions
            if base < v <= tip and (v.build == build if build is not None else v.patch == 0)
        )


def first_parent_distance(
    base: Position | None, tip: Position | None, tip_branched_from: Position | None
) -> int | None:
    """Commits on the upstream tip's first-parent line above `base`, from Cr-Commit-Position
    numbers alone: the same ref, or a release branch (numbered from 1 above its branch point)
    over main. None when the footers cannot tell."""
    if base is None or tip is None:
        return None
    if base.ref == tip.ref and tip.number >= base.number:
        return tip.number - base.number
    if (
        tip_branched_from is not None
        and is_main_ref(base.ref)
        and is_main_ref(tip_branched_from.ref)
        and base.number <= tip_branched_from.number
    ):
        return tip.number + tip_branched_from.number - base.number
    return None


def read_objects(git_dir, names: list[str]) -> list[bytes | None]:
    """Contents of several objects (``<sha>`` or ``<sha>:<path>``), from the repository's
    persistent reader (tracker.gitrepo); None for a missing one."""
    with open_repo(git_dir) as repo:
        return repo.read_objects(names)


def _positions(raw_commit: bytes | None) -> tuple[Position | None, Position | None]:
    """(Cr-Commit-Position, last Cr-Branched-From) from a raw commit object."""
    if raw_commit is None:
        return None, None
    message = raw_commit.partition(b"\n\n")[2].decode("utf-8", errors="replace")
    footers = parse_footers(message)
    branched = footers.branched_from[-1].position if footers.branched_from else None
    return footers.commit_position, branched


def _version(raw: bytes | None) -> ChromiumVersion | None:
    try:
        return parse_version_file(raw.decode("utf-8", errors="replace")) if raw else None
    except VersionParseError:
        return None


# (ref, number) -> commit time of the upstream commit with that Cr-Commit-Position, if known
# (the database answers in O(1) what a first-parent walk answers in O(commits)).
PositionLookup = Callable[[str, int], datetime | None]


def measure_lag(
    git_dir,
    tip: str,
    upstream_tip: str,
    *,
    base: str,
    base_version: ChromiumVersion | None,
    version_file: str,
    now: datetime,
    build: int | None = None,
    tags: VersionTags | None = None,
    commit_time_at: PositionLookup | None = None,
) -> Lag:
    """Lag of `tip` behind `upstream_tip` (both commit ids in `git_dir`, `base` their
    merge-base), as of `now`.

    One walk counts the missing commits (``rev-list --count``). On a linear upstream with
    Cr-Commit-Position footers the first-parent count and the oldest missing commit follow
    from the positions; otherwise git walks the first-parent line for them.
    """
    tip, upstream_tip = check_sha(tip), check_sha(upstream_tip)
    behind = count(git_dir, upstream_tip, f"^{tip}")
    raw_base, raw_tip, raw_version = read_objects(
        git_dir, [check_sha(base), upstream_tip, f"{upstream_tip}:{version_file}"]
    )
    tip_version = _version(raw_version)
    milestones = milestones_behind(base_version, tip_version)
    if behind == 0:
        return Lag(upstream_tip, 0, 0, None, 0, 0, milestones)
    (base_position, _), (tip_position, branched_from) = _positions(raw_base), _positions(raw_tip)
    distance = first_parent_distance(base_position, tip_position, branched_from)
    linear = distance == behind  # every missing commit is on the first-parent line
    first_parent = behind if linear else count(git_dir, upstream_tip, f"^{tip}", first_parent=True)
    oldest_at = None
    if linear and commit_time_at is not None and base_position is not None:
        oldest_ref = base_position.ref
        oldest_at = commit_time_at(oldest_ref, base_position.number + 1)
    if oldest_at is None and first_parent:
        oldest_at = commit_time(git_dir, f"{upstream_tip}~{first_parent - 1}")
    if tags is not None:
        versions = tags.behind(build, base_version, tip_version)
    else:
        versions = count(git_dir, upstream_tip, f"^{tip}", paths=(version_file,))
    return Lag(
        upstream_tip=upstream_tip,
        commits_behind=behind,
        commits_behind_first_parent=first_parent,
        oldest_missing_at=oldest_at,
        days_behind=days_behind(oldest_at, now),
        versions_behind=versions,
        milestones_behind=milestones,
    )


def base_move_time(git_dir, tip: str, base: str) -> datetime | None:
    """When the branch last moved onto `base`: the commit time of the oldest commit on the
    branch's first-parent line that contains `base`. That is the first rebased patch, the
    marker of a merging-rebase, or the merge that brought the base in, whichever parent it
    came through, directly or through a merged sync branch. None when the branch is exactly
    at its base.

    One walk: ``rev-list --ancestry-path tip ^base`` lists the commits that contain `base`;
    the first-parent line is followed through them."""
    tip, base = check_sha(tip), check_sha(base)
    if tip == base:
        return None
    args = [
        "rev-list",
        "--ancestry-path",
        "--parents",
        "--format=%ct",
        "--end-of-options",
        tip,
        f"^{base}",
    ]
    first_parent: dict[str, str | None] = {}
    times: dict[str, str] = {}
    with git_output_stream(args, git_dir=git_dir) as out:
        header = None
        for raw in out:
            line = raw.decode().strip()
            if line.startswith("commit "):
                header = line.split()[1:]
            elif header is not None:
                first_parent[header[0]] = header[1] if len(header) > 1 else None
                times[header[0]] = line
                header = None
    found = None
    sha: str | None = tip
    while sha is not None and sha in times:
        found = _ts(times[sha])
        sha = first_parent[sha]
    return found


# Issue 7's defaults: rebase at least weekly, never more than two milestones behind Stable.
LAG_DAYS_LIMIT = 7
LAG_MILESTONES_LIMIT = 2


def lag_status(days: int, milestones: int) -> str:
    """A word for a branch's rebase lag: "current" (nothing missing), "behind" (within the
    limits), or "overdue" (more than LAG_DAYS_LIMIT days or LAG_MILESTONES_LIMIT milestones)."""
    if days > LAG_DAYS_LIMIT or milestones > LAG_MILESTONES_LIMIT:
        return "overdue"
    return "current" if days == 0 else "behind"


LAG_STATUSES = ("current", "behind", "overdue")  # least to most urgent


def worst_status(statuses: Iterable[str]) -> str | None:
    """The most urgent of some `lag_status` words (a fork's status from its branches'), or
    None when there are none (nothing measured yet)."""
    return max(statuses, key=LAG_STATUSES.index, default=None)
