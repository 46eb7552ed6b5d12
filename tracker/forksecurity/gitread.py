"""What fork security reads from the mirror, in a few git calls per fork (never one per
(vulnerability, release) pair): release tags, bases, the fork's own commits with their
patch identities, patch files, and the diffs of upstream fix commits.

Files and trees come from the mirror's persistent reader (`tracker.gitrepo`). The rest are
bulk reads left to one git command each through the gate: tag listings (see tracker.gitrepo
for GitPython's ref reading), ``log -p`` piped through ``patch-id`` (200 commits: 15 ms,
against 678 ms for GitPython's per-commit diffs) and commit times by ``log --no-walk`` (100
commits: 5.8 ms, against 9.7 ms for GitPython's commits one by one; below about 30 commits
the reader would be the faster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tracker import prefetch
from tracker.forksecurity.rules import ForkCommit, diff_lines, fork_commit
from tracker.git import check_ref_name, check_sha, run_git
from tracker.gitrepo import open_repo
from tracker.lag import read_objects
from tracker.mirrors import Mirror
from tracker.models import Fork
from tracker.refpatterns import RefPatterns

CHUNK = 500  # commit ids per git call, far below argv limits


@dataclass(frozen=True)
class TagInfo:
    tag: str  # without refs/tags/
    sha: str  # the commit (annotated tags peeled)
    tagged_at: datetime  # tagger date of an annotated tag, else the commit date


def release_tags(mirror: Mirror, fork: Fork) -> list[TagInfo]:
    """The fork's tags in the mirror that its `release_tag_pattern` selects
    (tracker.refpatterns)."""
    if not fork.release_tag_pattern:
        return []
    prefix = f"refs/forks/{fork.slug}/tags/"
    check_ref_name(prefix.rstrip("/"))
    out = run_git(
        [
            "for-each-ref",
            "--format=%(refname)%00%(objectname)%00%(*objectname)%00%(creatordate:unix)",
            prefix,
        ],
        git_dir=mirror.path,
    ).text
    patterns = RefPatterns.parse(fork.release_tag_pattern, under="refs/tags/")
    tags = []
    for line in out.splitlines():
        name, sha, peeled, when = line.split("\0")
        full = "refs/tags/" + name.removeprefix(prefix)
        if not patterns.matches(full):
            continue
        tags.append(TagInfo(full.removeprefix("refs/tags/"), peeled or sha, _when(when or "0")))
    return tags


def upstream_commits(mirror: Mirror, shas: Sequence[str]) -> set[str]:
    """Those of commits `shas` that upstream has: reachable from a ref in the mirror's
    upstream namespace. One walk, over the commits reachable from `shas` and from no
    upstream ref (``git rev-list --stdin --not --glob=refs/upstream/*``)."""
    unique = sorted({check_sha(s) for s in shas})
    if not unique:
        return set()
    out = run_git(
        ["rev-list", "--stdin", "--not", "--glob=refs/upstream/*"],
        git_dir=mirror.path,
        input="".join(f"{sha}\n" for sha in unique).encode(),
    ).text
    own = set(out.split())
    return {sha for sha in unique if sha not in own}


def _when(value: str) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def containing_refs(mirror: Mirror, sha: str, prefix: str) -> list[str]:
    """Refs under `prefix` whose history contains commit `sha`."""
    check_ref_name(prefix.rstrip("/"))
    out = run_git(
        ["for-each-ref", "--format=%(refname)", f"--contains={check_sha(sha)}", prefix],
        git_dir=mirror.path,
    ).text
    return out.split()


def commit_times(mirror: Mirror, shas: Sequence[str]) -> dict[str, datetime]:
    """Commit time of each commit id, in one ``git log --no-walk`` call."""
    unique = sorted({check_sha(s) for s in shas})
    if not unique:
        return {}
    out = run_git(
        ["log", "--no-walk=unsorted", "--format=%H %ct", "--end-of-options", *unique],
        git_dir=mirror.path,
    ).text
    return {sha: _when(ts) for sha, ts in (line.split() for line in out.splitlines())}


def commits_touching(
    mirror: Mirror, revs: Sequence[str], paths: Sequence[str], since: datetime | None = None
) -> list[str]:
    """Commit ids reachable from `revs` (commit ids, ``^id`` to exclude) that change `paths`."""
    checked = [("^" + check_sha(r[1:])) if r.startswith("^") else check_sha(r) for r in revs]
    args = ["log", "--format=%H", "--no-merges"]
    if since is not None:
        args.append(f"--since={int(since.timestamp())}")
    out = run_git([*args, "--end-of-options", *checked, "--", *paths], git_dir=mirror.path).text
    return out.split()


def read_fork_commits(
    mirror: Mirror, tips: Sequence[str], bases: Sequence[str]
) -> dict[str, ForkCommit]:
    """The fork's own commits: reachable from `tips`, not from any upstream `bases`, newest
    first (git log's order).

    One walk: ``git log -p`` with each message indented (so no message line can pass for a
    ``commit`` or ``diff`` line), parsed here for messages and parents and piped as it is
    through ``git patch-id --stable`` (merges show no diff, so they get no identity). In a
    partial clone the blobs the diffs read are fetched first (tracker.prefetch); a commit
    whose diff reads a blob no remote has is read without its diff, and has no identity.
    """
    tips = sorted({check_sha(t) for t in tips})
    if not tips:
        return {}
    revs = ["--end-of-options", *tips, *sorted({f"^{check_sha(b)}" for b in bases if b})]
    # Parents indented too: patch-id takes any line starting with an id for a new commit.
    form = "--format=commit %H%n    %P%n%w(0,4,4)%B"
    shown = prefetch.offline(mirror.path, ["log", "-p", form, *revs])
    order, unreadable = [], set()
    if shown is None:
        order, unreadable = prefetch.for_diffs(mirror.path, revs, fork_side=True)
    without_diff = b""
    if unreadable:
        readable = [sha for sha in order if sha not in unreadable]
        revs = ["--no-walk=unsorted", "--end-of-options", *readable] if readable else []
        without_diff = run_git(
            ["log", form, "--no-walk=unsorted", "--end-of-options", *sorted(unreadable)],
            git_dir=mirror.path,
        ).stdout
    if shown is None and revs:
        shown = run_git(["log", "-p", form, *revs], git_dir=mirror.path)
    raw = shown.stdout if shown is not None else b""
    ids: dict[str, str] = {}
    if raw.strip():
        out = run_git(["patch-id", "--stable"], git_dir=mirror.path, input=raw).text
        for line in out.splitlines():
            patch_id, sha = line.split()
            ids[sha] = patch_id
    commits: dict[str, ForkCommit] = {}
    text = b"\n".join(part for part in (raw, without_diff) if part).decode(errors="replace")
    for record in text.split("\ncommit ") if text else []:
        head, _, rest = record.removeprefix("commit ").partition("\n")
        parents, _, body = rest.partition("\n")
        sha = head.strip()
        message_lines = []
        for line in body.split("\n"):
            if line.startswith("diff --git "):
                break
            message_lines.append(line[4:] if line.startswith("    ") else line.strip())
        commits[sha] = fork_commit(
            sha, parents.split(), "\n".join(message_lines).strip() + "\n", ids.get(sha, "")
        )
    if unreadable:  # git log's order, as a single walk gives it
        commits = {sha: commits[sha] for sha in order if sha in commits}
    return commits


def patch_ids(mirror: Mirror, log_args: Sequence[str]) -> dict[str, str]:
    """commit id -> ``git patch-id --stable`` for the commits ``git log -p <log_args>`` shows."""
    diff = run_git(["log", "-p", "--format=commit %H", *log_args], git_dir=mirror.path).stdout
    if not diff.strip():
        return {}
    out = run_git(["patch-id", "--stable"], git_dir=mirror.path, input=diff).text
    ids = {}
    for line in out.splitlines():
        patch_id, sha = line.split()
        ids[sha] = patch_id
    return ids


def upstream_diffs(
    mirror: Mirror, shas: Sequence[str]
) -> dict[str, tuple[str, dict[str, tuple[list[str], list[str]]]]]:
    """Per upstream commit id: its patch identity and per-file added/removed lines.

    Two git calls per chunk of commits: ``git log -p --no-walk`` and ``git patch-id``.
    """
    result: dict[str, tuple[str, dict]] = {}
    unique = sorted({check_sha(s) for s in shas})
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        revs = ["--no-walk=unsorted", "--end-of-options"]
        log = ["log", "-p", "--format=commit %H", *revs]
        shown = prefetch.offline(mirror.path, [*log, *chunk])
        if shown is None:  # blobs fetched in one batch; a commit reading a lost one left out
            _order, unreadable = prefetch.for_diffs(mirror.path, [*revs, *chunk])
            chunk = [sha for sha in chunk if sha not in unreadable]
            if not chunk:
                continue
            shown = run_git([*log, *chunk], git_dir=mirror.path)
        raw = shown.stdout
        ids = {}
        if raw.strip():
            out = run_git(["patch-id", "--stable"], git_dir=mirror.path, input=raw).text
            for line in out.splitlines():
                patch_id, sha = line.split()
                ids[sha] = patch_id
        for block in raw.decode("utf-8", errors="replace").split("commit ")[1:]:
            sha, _, diff = block.partition("\n")
            sha = sha.strip()
            if len(sha) == 40:
                result[sha] = (ids.get(sha, ""), diff_lines(diff))
    return result


def read_files(mirror: Mirror, names: Sequence[str]) -> list[str | None]:
    """Contents of ``<sha>:<path>`` objects as text, in one ``cat-file --batch`` call."""
    if not names:
        return []
    raw = read_objects(mirror.path, list(names))
    return [r.decode("utf-8", errors="replace") if r is not None else None for r in raw]


def list_tree_files(mirror: Mirror, shas: Sequence[str], path: str) -> dict[str, list[str]]:
    """Per commit: the file paths under directory `path`, read as GitPython trees from the
    mirror's persistent reader (patch-series forks have tens of releases, not thousands)."""
    with open_repo(mirror.path) as repo:
        return {sha: repo.tree_files(sha, path) for sha in dict.fromkeys(shas)}
