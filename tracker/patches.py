"""The fork's patch set on a branch: what it carries, what upstream already has, what would
conflict on the next rebase, and how the set changed since the last look.

Terms:
- *patch*: a fork commit on the branch's first-parent line that upstream does not contain, not
  a merge. Walking the first-parent line only is what keeps merging-rebase forks (which keep
  each rebase's old copies reachable through a marker merge) from counting old copies.
- *patch identity*: ``git patch-id --stable`` of the commit's diff; it ignores the message,
  whitespace and line numbers, so a patch reworded upstream keeps its identity.
- *upstreamed*: an upstream commit the branch does not have yet has the patch's identity; the
  next rebase will drop the patch.
- *conflict forecast*: files ``git merge-tree --write-tree`` reports as conflicted when merging
  the branch with the upstream tip (one merge of the whole series, computed without a worktree),
  attributed to the patches that touch them.

All of it is walks and diffs, left to git through the gate: ``git log -p`` piped through
``git patch-id`` gave the identities of 200 commits in 15 ms, where GitPython's `Commit.diff`
runs one ``git diff`` per commit (678 ms); ``merge-tree`` has no GitPython counterpart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tracker import prefetch
from tracker.git import GitError, check_sha, failure_reason, run_git

RECORD = "\x1e"
PATH_CHUNK = 200  # paths per git call, to stay far below argv limits


@dataclass(frozen=True)
class ForkPatch:
    sha: str
    subject: str
    author: str
    files: tuple[str, ...]
    patch_id: str = ""


def _patch_ids_from_log(git_dir, args: list[str], *, fork_side: bool = False) -> dict[str, str]:
    """commit id -> patch id for the commits `git log -p <args>` shows. Blobs the mirror
    lacks are fetched in one batch (tracker.prefetch; from the fork's remote first with
    `fork_side`); a commit whose diff reads one no remote has gets no identity."""
    log = ["log", "-p", "--format=commit %H"]
    shown = prefetch.offline(git_dir, [*log, *args])
    if shown is None:
        commits, unreadable = prefetch.for_diffs(git_dir, args, fork_side=fork_side)
        if unreadable:
            readable = [sha for sha in commits if sha not in unreadable]
            if not readable:
                return {}
            args = ["--no-walk=unsorted", "--end-of-options", *readable]
        shown = run_git([*log, *args], git_dir=git_dir)
    diff = shown.stdout
    if not diff.strip():
        return {}
    out = run_git(["patch-id", "--stable"], git_dir=git_dir, input=diff).text
    ids = {}
    for line in out.splitlines():
        patch_id, sha = line.split()
        ids[sha] = patch_id
    return ids


def list_patches(git_dir, tip: str, upstream_tip: str) -> list[ForkPatch]:
    """The branch's patches, oldest first, with the files they touch and their identities."""
    tip, upstream_tip = check_sha(tip), check_sha(upstream_tip)
    revs = ["--first-parent", "--no-merges", "--end-of-options", tip, f"^{upstream_tip}"]
    out = run_git(
        ["log", "--reverse", f"--format={RECORD}%H%x00%an%x00%s", "--name-only", *revs],
        git_dir=git_dir,
    ).text
    ids = _patch_ids_from_log(git_dir, revs, fork_side=True)
    patches = []
    for record in out.split(RECORD):
        if not record.strip():
            continue
        head, _, names = record.partition("\n")
        sha, author, subject = head.split("\x00", 2)
        files = tuple(n for n in names.splitlines() if n)
        patches.append(ForkPatch(sha, subject, author, files, ids.get(sha, "")))
    return patches


def find_upstreamed(
    git_dir, patches: Sequence[ForkPatch], tip: str, upstream_tip: str
) -> dict[str, str]:
    """Patch commit id -> the upstream commit (not yet in the branch) with the same identity.

    Only upstream commits touching the patches' files are compared, which keeps this cheap on
    a branch thousands of commits behind.
    """
    wanted = {p.patch_id: p.sha for p in patches if p.patch_id}
    paths = sorted({f for p in patches for f in p.files})
    if not wanted or not paths:
        return {}
    candidates: list[str] = []
    for start in range(0, len(paths), PATH_CHUNK):
        out = run_git(
            [
                "log",
                "--format=%H",
                "--end-of-options",
                check_sha(upstream_tip),
                f"^{check_sha(tip)}",
                "--",
                *paths[start : start + PATH_CHUNK],
            ],
            git_dir=git_dir,
        ).text
        candidates.extend(out.split())
    found: dict[str, str] = {}
    unique = list(dict.fromkeys(candidates))
    for start in range(0, len(unique), 500):
        ids = _patch_ids_from_log(git_dir, ["--no-walk=unsorted", *unique[start : start + 500]])
        for upstream_sha, patch_id in ids.items():
            if patch_id in wanted:
                found.setdefault(wanted[patch_id], upstream_sha)
    return found


def conflicting_files(git_dir, tip: str, upstream_tip: str, base: str | None = None) -> list[str]:
    """Files that conflict when merging the branch with the upstream tip (empty when clean).

    Blobs the merge reads and the mirror lacks are fetched in one batch per remote
    (tracker.prefetch, given their merge-base `base`; else git fetches them itself);
    ObjectsUnavailable when some are on no remote, GitError when the merge fails otherwise."""
    args = [
        "merge-tree",
        "--write-tree",
        "--name-only",
        "--no-messages",
        "-z",
        check_sha(upstream_tip),
        check_sha(tip),
    ]
    result = prefetch.offline(git_dir, args, ok=(0, 1))
    if result is None:
        if base is not None:
            prefetch.for_merge(git_dir, base, upstream_tip, tip)
        result = run_git(args, git_dir=git_dir, check=False)
    if result.returncode == 0:
        return []
    if result.returncode != 1:
        raise GitError(
            f"git merge-tree failed: {failure_reason(result.stderr)}",
            returncode=result.returncode,
            stderr=result.stderr,
        )
    fields = result.stdout.decode("utf-8", errors="replace").split("\0")
    # -z output: the tree id, then one conflicted path per field, then an empty field.
    names = []
    for name in fields[1:]:
        if not name:
            break
        names.append(name)
    return list(dict.fromkeys(names))


def attribute_conflicts(files: Sequence[str], patches: Sequence[ForkPatch]) -> dict[str, list[str]]:
    """Patch commit id -> conflicted files it touches (patches touching none are left out)."""
    conflicted = set(files)
    out = {}
    for p in patches:
        hit = [f for f in p.files if f in conflicted]
        if hit:
            out[p.sha] = hit
    return out


def classify_churn(
    previous: Sequence[tuple[str, str]] | None, current: Sequence[tuple[str, str]]
) -> tuple[list[str], list[int]]:
    """Match patches across two snapshots, each a list of (subject, patch id).

    Returns the change of each current patch ("unchanged": same identity; "changed": same
    subject, other identity, as after a conflict resolved during a rebase; "added") and the
    indices of previous patches that are gone ("dropped"). With no previous snapshot, every
    patch is "unchanged": the first look is the baseline, not churn.
    """
    if previous is None:
        return ["unchanged"] * len(current), []
    labels: list[str | None] = [None] * len(current)
    used: set[int] = set()
    by_id: dict[str, list[int]] = {}
    for i, (_subject, patch_id) in enumerate(previous):
        if patch_id:
            by_id.setdefault(patch_id, []).append(i)
    for j, (_subject, patch_id) in enumerate(current):
        for i in by_id.get(patch_id, []) if patch_id else []:
            if i not in used:
                used.add(i)
                labels[j] = "unchanged"
                break
    by_subject: dict[str, list[int]] = {}
    for i, (subject, _patch_id) in enumerate(previous):
        if i not in used:
            by_subject.setdefault(subject, []).append(i)
    for j, (subject, _patch_id) in enumerate(current):
        if labels[j] is None:
            for i in by_subject.get(subject, []):
                if i not in used:
                    used.add(i)
                    labels[j] = "changed"
                    break
            else:
                labels[j] = "added"
    dropped = [i for i in range(len(previous)) if i not in used]
    return [label or "added" for label in labels], dropped
