"""Rebase lag of a fork branch against the upstream ref it follows, read from a mirror.

Terms (units in brackets):
- *base*: merge-base of the branch tip and the upstream tip.
- *commits behind* [commits]: upstream commits the branch does not contain,
  ``git rev-list --count ^tip upstream``; the *first-parent* count walks only upstream's
  first-parent line (on Chromium's linear main the two are equal).
- *oldest missing* [time]: commit time of the first upstream commit, along the first-parent
  line, that the branch lacks; *days behind* [whole days] = now - oldest missing, 0 if none.
- *versions behind* [versions]: upstream commits the branch lacks that change the version file
  (each is one ``chrome/VERSION`` bump); *milestones behind* [milestones]: upstream tip's MAJOR
  minus the base's MAJOR, never below 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.git import GitError, check_sha, git_output_stream, run_git
from tracker.versions import ChromiumVersion, VersionParseError, parse_version_file

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
    return run_git(
        ["rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}"], git_dir=git_dir
    ).text.strip()


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


def commit_time(git_dir, sha: str) -> datetime:
    out = run_git(
        ["log", "-1", "--format=%ct", "--end-of-options", check_sha(sha)], git_dir=git_dir
    ).text
    return _ts(out.strip())


def commit_message(git_dir, sha: str) -> str:
    return run_git(
        ["log", "-1", "--format=%B", "--end-of-options", check_sha(sha)], git_dir=git_dir
    ).text


def read_version(git_dir, sha: str, path: str) -> ChromiumVersion | None:
    """The version in `path` at commit `sha`, or None when the file is missing or malformed."""
    result = run_git(["cat-file", "blob", f"{check_sha(sha)}:{path}"], git_dir=git_dir, check=False)
    if result.returncode != 0:
        return None
    try:
        return parse_version_file(result.text)
    except VersionParseError:
        return None


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


def oldest_missing(git_dir, tip: str, upstream_tip: str) -> tuple[str, datetime] | None:
    """The first upstream commit along the first-parent line that `tip` lacks."""
    args = [
        "log",
        "--first-parent",
        "--reverse",
        "--format=%H %ct",
        "--end-of-options",
        check_sha(upstream_tip),
        f"^{check_sha(tip)}",
    ]
    with git_output_stream(args, git_dir=git_dir) as out:
        line = out.readline().decode().strip()
        # Reading the first line is enough; leaving the block early kills git.
    if not line:
        return None
    sha, ct = line.split()
    return sha, _ts(ct)


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


def measure_lag(
    git_dir,
    tip: str,
    upstream_tip: str,
    *,
    version_file: str,
    base_version: ChromiumVersion | None,
    now: datetime,
) -> Lag:
    """Lag of `tip` behind `upstream_tip` (both commit ids in `git_dir`), as of `now`."""
    tip, upstream_tip = check_sha(tip), check_sha(upstream_tip)
    behind = count(git_dir, upstream_tip, f"^{tip}")
    first_parent = count(git_dir, upstream_tip, f"^{tip}", first_parent=True)
    oldest = oldest_missing(git_dir, tip, upstream_tip) if behind else None
    oldest_at = oldest[1] if oldest else None
    versions = count(git_dir, upstream_tip, f"^{tip}", paths=(version_file,)) if behind else 0
    tip_version = read_version(git_dir, upstream_tip, version_file)
    return Lag(
        upstream_tip=upstream_tip,
        commits_behind=behind,
        commits_behind_first_parent=first_parent,
        oldest_missing_at=oldest_at,
        days_behind=days_behind(oldest_at, now),
        versions_behind=versions,
        milestones_behind=milestones_behind(base_version, tip_version),
    )


def base_move_time(git_dir, tip: str, base: str) -> datetime | None:
    """When the branch last moved onto `base`: the commit time of the first-parent commit that
    has `base` as a parent (the first rebased patch, the marker of a merging-rebase, or the
    merge that brought the base in). None when the branch is exactly at its base."""
    tip, base = check_sha(tip), check_sha(base)
    if tip == base:
        return None
    args = [
        "rev-list",
        "--first-parent",
        "--parents",
        "--format=%ct",
        "--end-of-options",
        tip,
        f"^{base}",
    ]
    found = None
    with git_output_stream(args, git_dir=git_dir) as out:
        header = None
        for raw in out:
            line = raw.decode().strip()
            if line.startswith("commit "):
                header = line.split()[1:]
            elif header is not None:
                if base in header[1:]:
                    found = _ts(line)
                    break
                header = None
    return found
