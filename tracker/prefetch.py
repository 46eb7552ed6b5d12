"""Objects a computation will read, fetched before it runs: one batch per remote.

A mirror is a partial clone: commits and trees are all there, file contents (blobs) only once
something has read them. Left to itself, git fetches what it lacks as it goes, and that went
wrong three ways on real mirrors: one pack per blob, or per commit's diff (1,006 packs in an
hour, until git's automatic gc failed and stopped); with two promisor remotes, the upstream and
a fork, each lacking the other's blobs, ``git merge-tree`` sends its one batch of both to each
remote in turn, both refuse it, and it fails with ``could not fetch <id> from promisor remote``
naming a blob neither was asked for alone; and a blob that no remote has aborts the command.

So ``git merge-tree`` and ``git log -p`` run first without fetching anything (`offline`); on
a mirror that has what they read (every repeated sync) that is all. When git stops for an
object the mirror lacks, the blobs the command reads are listed from the trees (``git
diff-tree`` and ``git log --raw`` read no blob), and `Repository.fetch` fetches the ones
missing: those of the upstream side from the upstream first, those of the fork side from the
fork first, each remote once for its whole batch; then the command runs again. A blob no
remote has is not fetched one by one: the figure that needs it is unknown, with the reason
(tracker.health), and the rest of the snapshot stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from tracker.git import GitError, GitResult, check_sha, failure_reason, run_git
from tracker.gitrepo import ObjectsUnavailable, open_repo

NULL = "0" * 40
GITLINK = "160000"  # a submodule's commit, in the submodule's repository
# What git says when GIT_NO_LAZY_FETCH kept it from fetching an object it needed.
LAZY_FETCH_REFUSED = "lazy fetching disabled"


def offline(git_dir, args: Sequence[str], *, ok: Sequence[int] = (0,)) -> GitResult | None:
    """Run git on `git_dir` without fetching any object (``GIT_NO_LAZY_FETCH``): its result
    when it exits with a code in `ok`, None when it stopped for an object the repository
    lacks (fetch it, and run again). Raises GitError when it fails otherwise."""
    result = run_git(args, git_dir=git_dir, env={"GIT_NO_LAZY_FETCH": "1"}, check=False)
    if result.returncode in ok:
        return result
    if LAZY_FETCH_REFUSED in result.stderr:
        return None
    raise GitError(
        f"git {args[0]} failed (exit {result.returncode}): {failure_reason(result.stderr)}",
        returncode=result.returncode,
        stderr=result.stderr,
    )


def _changes(git_dir, old: str, new: str) -> dict[str, tuple[str, str]]:
    """path -> (blob before, blob after) of each file that differs between two commits
    (``git diff-tree -r --no-renames``: the trees only); NULL for an absent side."""
    out = run_git(
        [
            "diff-tree",
            "-r",
            "-z",
            "--no-renames",
            "--end-of-options",
            check_sha(old),
            check_sha(new),
        ],
        git_dir=git_dir,
    ).text
    fields = out.split("\0")
    changes = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        old_mode, new_mode, old_id, new_id, _status = meta.lstrip(":").split(" ")
        changes[path] = (
            NULL if old_mode == GITLINK else old_id,
            NULL if new_mode == GITLINK else new_id,
        )
    return changes


def merge_needs(
    git_dir, base: str, upstream_tip: str, tip: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The blobs ``git merge-tree`` reads to merge `tip` with `upstream_tip` over their
    merge-base `base`, as (upstream side, fork side), each id -> path.

    A file both sides changed, differently, is merged line by line: its base, upstream and fork
    blobs. A file one side deleted and the other changed sends git looking for a rename among
    the deleting side's new files, first those with the same file name: their blobs too. Other
    renames git may look for are fetched by git itself, from one side's remote.
    """
    upstream = _changes(git_dir, base, upstream_tip)
    fork = _changes(git_dir, base, tip)
    upstream_side: dict[str, str] = {}
    fork_side: dict[str, str] = {}
    for path in upstream.keys() & fork.keys():
        (before, on_upstream), (_before, on_fork) = upstream[path], fork[path]
        if on_upstream == on_fork:
            continue  # the same change on both sides: nothing to merge
        upstream_side[before] = upstream_side[on_upstream] = path
        fork_side[on_fork] = path
        deleting = upstream if on_upstream == NULL else fork if on_fork == NULL else None
        if deleting is not None:
            side = upstream_side if deleting is upstream else fork_side
            name = PurePosixPath(path).name
            for other, (was, now) in deleting.items():
                if was == NULL and PurePosixPath(other).name == name:
                    side[now] = other
    upstream_side.pop(NULL, None)
    fork_side.pop(NULL, None)
    return upstream_side, fork_side


def _order(repo) -> tuple[list[str], list[str]]:
    """The remotes to ask for the upstream side's objects and for the fork side's."""
    upstream_first = repo.fetch_order()
    return upstream_first, upstream_first[1:] + upstream_first[:1]


def for_merge(git_dir, base: str, upstream_tip: str, tip: str) -> None:
    """Fetch what merging `tip` with `upstream_tip` (over `base`) reads, in one batch per
    remote. Raises ObjectsUnavailable naming the blobs, and where they were wanted, that no
    remote has."""
    with open_repo(git_dir) as repo:
        if not repo.is_partial_clone():
            return
        upstream_side, fork_side = merge_needs(git_dir, base, upstream_tip, tip)
        upstream_first, fork_first = _order(repo)
        wanted = {
            **dict.fromkeys(fork_side, fork_first),
            **dict.fromkeys(upstream_side, upstream_first),
        }
        reasons = repo.fetch(wanted, paths={**fork_side, **upstream_side})
    if reasons:
        raise ObjectsUnavailable(reasons)


def diff_needs(git_dir, log_args: Sequence[str]) -> dict[str, dict[str, str]]:
    """The blobs ``git log -p <log_args>`` reads, by commit: commit id -> {blob id: path},
    in git log's order (``git log --raw --no-renames``: the trees only; renames are found
    among the same files)."""
    out = run_git(
        ["log", "--raw", "-z", "--no-renames", "--no-abbrev", "--format=commit %H", *log_args],
        git_dir=git_dir,
    ).text
    commits: dict[str, dict[str, str]] = {}
    blobs: dict[str, str] = {}
    fields = iter(out.split("\0"))
    for field in fields:
        field = field.lstrip("\n")
        if field.startswith("commit "):
            blobs = commits.setdefault(field.removeprefix("commit ").strip(), {})
        elif field.startswith(":"):
            path = next(fields, "")
            old_mode, new_mode, old_id, new_id, _status = field[1:].split(" ")
            for mode, oid in ((old_mode, old_id), (new_mode, new_id)):
                if oid != NULL and mode != GITLINK:
                    blobs[oid] = path
    return commits


def for_diffs(
    git_dir, log_args: Sequence[str], *, fork_side: bool = False
) -> tuple[list[str], set[str]]:
    """Fetch what ``git log -p <log_args>`` reads, in one batch per remote (the upstream's
    first, or with `fork_side` the fork's). Returns the commits it shows, in git log's order,
    and those of them whose diffs read a blob no remote has (noted for `unavailable_since`);
    nothing at all outside a partial clone."""
    with open_repo(git_dir) as repo:
        if not repo.is_partial_clone():
            return [], set()
        commits = diff_needs(git_dir, log_args)
        upstream_first, fork_first = _order(repo)
        order = fork_first if fork_side else upstream_first
        wanted: dict[str, list[str]] = {}
        paths: dict[str, str] = {}
        for sha, blobs in commits.items():
            for oid, path in blobs.items():
                wanted[oid] = order
                paths[oid] = f"{path} at {sha[:12]}"
        reasons = repo.fetch(wanted, paths=paths)
    return list(commits), {sha for sha, blobs in commits.items() if blobs.keys() & reasons.keys()}
