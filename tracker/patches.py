"""The fork's patch set on a branch: what it carries, what upstream already has, what would
conflict on the next rebase, and how the set changed since the last look.

Terms (the branch tip is T, the upstream tip it follows U):
- *fork-only commit*: reachable from T and not from U (``git rev-list T ^U``). The branch's
  *first-parent line* is T, its first parent, that one's first parent, and so on, as long as
  they are fork-only.
- *merging-rebase marker*: a merge on the first-parent line whose first parent is an upstream
  commit (reachable from U), which has a fork-only parent besides, and whose tree is its first
  parent's tree. It records the previous fork tip as merged while taking nothing from it (Git
  for Windows' "Start the merging-rebase to ...", ``git merge -s ours``); the rebased patches
  follow on top, straight or merged in as topic branches. The shape decides, never the
  subject. A sync merge is not a marker: ``git merge upstream`` on the fork has the fork as its
  first parent, and a merge of the fork into upstream (upstream as the first parent) takes
  the fork's changes into its tree.
- *patch*: a non-merge fork-only commit that the newest marker's other parents do not reach
  (they hold the copies of every earlier rebase): ``git rev-list --no-merges T ^U ^M^2`` for a
  newest marker M with two parents. Without a marker that is ``git rev-list --no-merges U..T``,
  whatever the merges: topic and pull-request branches merged in (both parents fork-only), and
  upstream merged in through either parent, directly or through a merged sync branch.
- *patch identity*: ``git patch-id --stable`` of the commit's diff; it ignores the message,
  whitespace and line numbers, so a patch reworded upstream keeps its identity.
- *upstreamed*: an upstream commit the branch does not have yet carries the patch's change: the
  same identity, or trailers that name the same change, matched as fix detection matches
  backports (`tracker.forksecurity.rules.MatchIndex`: a cherry-pick trailer naming it or the
  commit it was picked from, ``Cr-Original-Commit-Position``, ``Change-Id``, ``Reviewed-on``).
  The next rebase will drop the patch.
- *conflict forecast*: files ``git merge-tree --write-tree`` reports as conflicted when merging
  the branch with the upstream tip (one merge of the whole series, computed without a worktree),
  attributed to the patches that touch them.

All of it is walks and diffs, left to git through the gate: ``git log -p`` piped through
``git patch-id`` gave the identities of 200 commits in 15 ms, where GitPython's `Commit.diff`
runs one ``git diff`` per commit (678 ms); ``merge-tree`` has no GitPython counterpart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tracker import prefetch
from tracker.footers import parse_footers
from tracker.forksecurity.rules import Fix, MatchIndex, Part, fork_commit
from tracker.git import GitError, check_sha, failure_reason, run_git

PATH_CHUNK = 200  # paths per git call, to stay far below argv limits
CHUNK = 500  # commit ids per git call


@dataclass(frozen=True)
class ForkPatch:
    sha: str
    subject: str
    author: str
    files: tuple[str, ...]
    patch_id: str = ""
    message: str = ""


@dataclass(frozen=True)
class GraphCommit:
    """A commit of the fork graph: a fork-only commit, or (`fork_only` False) an upstream
    commit that a fork-only commit has as a parent."""

    parents: tuple[str, ...]
    tree: str
    fork_only: bool


def read_fork_graph(git_dir, tip: str, upstream_tip: str) -> dict[str, GraphCommit]:
    """The fork-only commits of `tip` against `upstream_tip`, with their parents and trees, and
    the upstream commits they have as parents: one ``git log --boundary`` walk, no diffs."""
    out = run_git(
        [
            "log",
            "--boundary",
            "--format=%m %H %T %P",
            "--end-of-options",
            check_sha(tip),
            f"^{check_sha(upstream_tip)}",
        ],
        git_dir=git_dir,
    ).text
    graph = {}
    for line in out.splitlines():
        mark, sha, tree, *parents = line.split()
        graph[sha] = GraphCommit(tuple(parents), tree, mark != "-")
    return graph


def is_marker(graph: Mapping[str, GraphCommit], sha: str) -> bool:
    """Whether `sha` has the shape of a merging-rebase marker (see the module docstring; that
    it is on the first-parent line is the caller's to know)."""
    commit = graph[sha]
    if len(commit.parents) < 2:
        return False
    first = graph.get(commit.parents[0])
    return (
        first is not None
        and not first.fork_only
        and commit.tree == first.tree
        and any(p in graph and graph[p].fork_only for p in commit.parents[1:])
    )


def newest_marker(graph: Mapping[str, GraphCommit], tip: str) -> str | None:
    """The newest merging-rebase marker on the first-parent line of `tip`, or None."""
    sha: str | None = tip
    while sha is not None and sha in graph and graph[sha].fork_only:
        if is_marker(graph, sha):
            return sha
        parents = graph[sha].parents
        sha = parents[0] if parents else None
    return None


def patch_set_revs(graph: Mapping[str, GraphCommit], tip: str, upstream_tip: str) -> list[str]:
    """Revisions that select the patch set with ``--no-merges``: the tip, minus upstream, minus
    what the newest marker's other parents reach."""
    revs = [check_sha(tip), f"^{check_sha(upstream_tip)}"]
    marker = newest_marker(graph, tip)
    if marker is not None:
        revs += [f"^{p}" for p in graph[marker].parents[1:] if graph[p].fork_only]
    return revs


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


def _parse_named_log(raw: str) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """(sha, author, subject, message, files) from ``git log -z --name-only`` with the format
    ``%x00%H%x00%an%x00%s%x00%B``: each record opens with an empty field (no path is empty),
    then four fields, then the paths, the first after a newline."""
    fields = raw.split("\0")
    out = []
    i = 0
    while i + 4 < len(fields):
        if fields[i]:
            raise GitError(f"unexpected git log output near {fields[i][:40]!r}")
        sha, author, subject, message = fields[i + 1 : i + 5]
        i += 5
        files: list[str] = []
        while i < len(fields) and fields[i]:
            files.append(fields[i].removeprefix("\n") if not files else fields[i])
            i += 1
        out.append((sha, author, subject, message, tuple(files)))
    return out


def list_patches(git_dir, tip: str, upstream_tip: str) -> list[ForkPatch]:
    """The branch's patches (see the module docstring), oldest first (``--topo-order``, so a
    merged topic branch's patches stay together), with their files, messages and identities.

    Two walks (the graph, then the patch set with names and messages) and one ``git log -p |
    git patch-id`` pipe, however many merges or rebases the branch has.
    """
    graph = read_fork_graph(git_dir, tip, upstream_tip)
    revs = ["--no-merges", "--end-of-options", *patch_set_revs(graph, tip, upstream_tip)]
    walk = ["log", "-z", "--topo-order", "--reverse", "--name-only"]
    raw = run_git([*walk, "--format=%x00%H%x00%an%x00%s%x00%B", *revs], git_dir=git_dir).text
    ids = _patch_ids_from_log(git_dir, revs, fork_side=True)
    return [
        ForkPatch(sha, subject, author, files, ids.get(sha, ""), message)
        for sha, author, subject, message, files in _parse_named_log(raw)
    ]


def _carrier(sha: str, message: str) -> Part:
    """An upstream commit as the one-part fix it carries, for fix detection's matching: its
    own id and the commit it was cherry-picked from, its main position (its own, or on a
    branch its original one), its Change-Id and reviews."""
    own = fork_commit(sha, (), message)  # the trailers, read as fix detection reads them
    position = parse_footers(message).commit_position
    number = position.number if position is not None and position.is_main else None
    if number is None and own.original_positions:
        number = own.original_positions[0]
    return Part(
        key=sha,
        position=number,
        shas=[sha, *own.cherry_picked_from],
        change_ids={own.change_id} - {""},
        reviews=set(own.reviews),
    )


def find_upstreamed(
    git_dir, patches: Sequence[ForkPatch], tip: str, upstream_tip: str
) -> dict[str, str]:
    """Patch commit id -> the upstream commit (not yet in the branch) that carries its change
    (see *upstreamed*); the strongest match wins, as in fix detection.

    Only upstream commits touching the patches' files are compared, which keeps this cheap on
    a branch thousands of commits behind.
    """
    paths = sorted({f for p in patches for f in p.files})
    if not patches or not paths:
        return {}
    candidates: dict[str, str] = {}
    for start in range(0, len(paths), PATH_CHUNK):
        out = run_git(
            [
                "log",
                "-z",
                "--format=%H%x00%B",
                "--end-of-options",
                check_sha(upstream_tip),
                f"^{check_sha(tip)}",
                "--",
                *paths[start : start + PATH_CHUNK],
            ],
            git_dir=git_dir,
        ).text
        fields = out.split("\0")
        for sha, message in zip(fields[0::2], fields[1::2], strict=False):
            candidates.setdefault(sha.strip(), message)
    unique = list(candidates)
    ids: dict[str, str] = {}
    for start in range(0, len(unique), CHUNK):
        ids.update(
            _patch_ids_from_log(
                git_dir, ["--no-walk=unsorted", "--end-of-options", *unique[start : start + CHUNK]]
            )
        )
    return match_upstreamed(patches, candidates, ids)


def match_upstreamed(
    patches: Sequence[ForkPatch], candidates: Mapping[str, str], patch_ids: Mapping[str, str]
) -> dict[str, str]:
    """Patch commit id -> the upstream commit among `candidates` (commit id -> message; their
    identities in `patch_ids`) that carries the patch's change, strongest match first."""
    if not candidates:
        return {}
    index = MatchIndex(
        [Fix(n, "", parts=[_carrier(sha, msg)]) for n, (sha, msg) in enumerate(candidates.items())],
        patch_ids,
    )
    found: dict[str, str] = {}
    for p in patches:
        matches = index.match_commit(fork_commit(p.sha, (), p.message, p.patch_id))
        if matches:
            found[p.sha] = matches[0].part  # the part's key: the upstream commit itself
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
