"""Git mirrors: one bare repository per upstream under MIRROR_DIR.

The mirror holds the upstream's refs and every fork's refs, each in a namespace of its own, so
merge-base, ancestry and patch identity work across them without network round trips:

- ``refs/upstream/heads/main``, ``refs/upstream/branch-heads/6422``, ``refs/upstream/tags/…``
- ``refs/forks/<fork slug>/heads/<branch>``, ``refs/forks/<fork slug>/tags/…``

Which refs each namespace holds is decided by ref pattern lists (tracker.refpatterns), which
git's one-``*`` refspecs cannot express: each fetch uses broader refspecs and then drops the
refs of the namespace that nothing selects (`drop_unselected`), so readers of the mirror see
exactly the selected refs, and refs of a branch no longer tracked go too.

Upstream is fetched as a partial clone (``GIT_CLONE_FILTER``, ``blob:none`` by default): commits
and trees arrive at once, file contents only when something reads them, so a Chromium-sized
history fits on disk. Each fetch updates the commit-graph so ancestry queries stay fast.

The mirror is read as a GitPython repository (tracker.gitrepo): created by GitPython's
``git init``, its config and remotes read by GitPython and written through the gate only when
they change (a sync that changes nothing starts no ``git config``: seven processes fewer per
fork sync). Fetches and ref listings stay on the gate's ``git fetch`` and ``git for-each-ref``
(see tracker.gitrepo for why, with figures).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from tracker import progress
from tracker.git import check_ref_name, run_git
from tracker.gitrepo import configure, init_bare
from tracker.models import Fork, ForkKind, TrackedBranch, Upstream
from tracker.refpatterns import RefPatterns, RefSelection, parse_ref_list

logger = logging.getLogger(__name__)

UPSTREAM_REMOTE = "upstream"


@dataclass(frozen=True)
class Mirror:
    path: Path

    @staticmethod
    def upstream_ref(ref: str) -> str:
        """Where upstream ref `ref` (e.g. refs/branch-heads/6422) lives in the mirror."""
        check_ref_name(ref)
        return "refs/upstream/" + ref.removeprefix("refs/")

    @staticmethod
    def fork_ref(fork: Fork, ref: str) -> str:
        """Where a fork's branch ("main", "release/125" or a full ref) lives in the mirror."""
        check_ref_name(ref)
        if not ref.startswith("refs/"):
            ref = f"refs/heads/{ref}"
        return f"refs/forks/{fork.slug}/" + ref.removeprefix("refs/")


def mirror_path(upstream: Upstream) -> Path:
    return Path(settings.MIRROR_DIR) / f"{upstream.slug}.git"


def ensure_mirror(upstream: Upstream) -> Mirror:
    """Create the upstream's bare mirror if it does not exist yet, and keep its config current."""
    path = mirror_path(upstream)
    if not (path / "HEAD").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        init_bare(path)
        logger.info("mirror: created %s", path)
    remote = upstream.remote(settings.GIT_LOCAL_ROOTS)
    values = {
        f"remote.{UPSTREAM_REMOTE}.url": remote.url,
        "fetch.writeCommitGraph": "true",  # ancestry queries stay fast
        "core.commitGraph": "true",
        "gc.writeCommitGraph": "true",
    }
    if settings.GIT_CLONE_FILTER:
        values[f"remote.{UPSTREAM_REMOTE}.promisor"] = "true"
        values[f"remote.{UPSTREAM_REMOTE}.partialclonefilter"] = settings.GIT_CLONE_FILTER
    configure(path, values)
    return Mirror(path)


def _refspec(source: str, destination: str) -> str:
    check_ref_name(source, allow_glob=True)
    check_ref_name(destination, allow_glob=True)
    return f"+{source}:{destination}"


UPSTREAM_NAMESPACE = "refs/upstream/"


def upstream_selection(upstream: Upstream) -> RefSelection:
    """The upstream refs the mirror holds: the main ref, release branches, tags, and every ref
    a git fork's tracked branch follows (optional: a ref gone upstream fails that fork's
    snapshot, not every fork's fetch)."""
    followed = set()
    for ref, also in TrackedBranch.objects.filter(
        fork__upstream=upstream, fork__kind=ForkKind.GIT
    ).values_list("upstream_ref", "also_follows"):
        followed.update([ref, *parse_ref_list(also)])
    followed.discard(upstream.main_ref)
    return RefSelection(
        exact=(upstream.main_ref,),
        patterns=(
            RefPatterns.parse(upstream.release_branch_pattern),
            RefPatterns.parse(upstream.tag_pattern),
        ),
        optional=tuple(sorted(followed)),
    )


def upstream_refspecs(upstream: Upstream) -> list[str]:
    return [
        _refspec(source, UPSTREAM_NAMESPACE + source.removeprefix("refs/"))
        for source in upstream_selection(upstream).fetch_sources()
    ]


def fork_namespace(fork: Fork) -> str:
    return f"refs/forks/{fork.slug}/"


def _branch_source(name: str) -> str:
    return name if name.startswith("refs/") else f"refs/heads/{name}"


def fork_selection(fork: Fork) -> RefSelection:
    """The fork refs the mirror holds: its tracked branches and its release tags."""
    branches = tuple(_branch_source(name) for name in fork.branches.values_list("name", flat=True))
    patterns = ()
    if fork.release_tag_pattern:
        patterns = (RefPatterns.parse(fork.release_tag_pattern, under="refs/tags/"),)
    return RefSelection(exact=branches, patterns=patterns)


def fork_refspecs(fork: Fork) -> list[str]:
    namespace = fork_namespace(fork)
    return [
        _refspec(source, namespace + source.removeprefix("refs/"))
        for source in fork_selection(fork).fetch_sources()
    ]


def drop_unselected(mirror: Mirror, namespace: str, selection: RefSelection) -> list[str]:
    """Delete the refs under `namespace` whose remote name (``refs/`` + the rest) `selection`
    does not select; returns their names."""
    gone = [
        ref
        for ref in list_refs(mirror, namespace)
        if not selection.matches("refs/" + ref.removeprefix(namespace))
    ]
    delete_refs(mirror, gone)
    return gone


def delete_refs(mirror: Mirror, refs: list[str]) -> None:
    """Delete `refs` from the mirror in one ``git update-ref --stdin`` (missing ones are
    fine)."""
    if not refs:
        return
    for ref in refs:
        check_ref_name(ref)
    commands = "".join(f"delete {ref}\n" for ref in refs).encode()
    run_git(["update-ref", "--stdin"], git_dir=mirror.path, input=commands)


def fetch_upstream(upstream: Upstream, mirror: Mirror | None = None) -> Mirror:
    """Fetch the upstream's main ref, release branches and tags into the mirror."""
    mirror = mirror or ensure_mirror(upstream)
    progress.report(upstream.slug, "fetching upstream")
    remote = upstream.remote(settings.GIT_LOCAL_ROOTS)
    args = ["fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head"]
    if settings.GIT_CLONE_FILTER:
        args.append(f"--filter={settings.GIT_CLONE_FILTER}")
    run_git(
        [*args, UPSTREAM_REMOTE, *upstream_refspecs(upstream)],
        git_dir=mirror.path,
        remote=remote,
        timeout=settings.GIT_TIMEOUT,
    )
    drop_unselected(mirror, UPSTREAM_NAMESPACE, upstream_selection(upstream))
    return mirror


def fetch_fork(fork: Fork, mirror: Mirror) -> None:
    """Fetch a fork's tracked branches and release tags into its namespace of the mirror."""
    remote_name = f"fork-{fork.slug}"
    remote = fork.remote(settings.GIT_LOCAL_ROOTS)
    configure(mirror.path, {f"remote.{remote_name}.url": remote.url})
    run_git(
        [
            "fetch",
            "--quiet",
            "--prune",
            "--no-tags",
            "--no-write-fetch-head",
            remote_name,
            *fork_refspecs(fork),
        ],
        git_dir=mirror.path,
        remote=remote,
        timeout=settings.GIT_TIMEOUT,
    )
    drop_unselected(mirror, fork_namespace(fork), fork_selection(fork))


def list_refs(mirror: Mirror, prefix: str) -> dict[str, str]:
    """Refs under `prefix` in the mirror: full ref name -> commit id (tags peeled)."""
    check_ref_name(prefix.rstrip("/"))
    out = run_git(
        ["for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)", prefix],
        git_dir=mirror.path,
    ).text
    refs = {}
    for line in out.splitlines():
        name, sha, peeled = line.split("\0")
        refs[name] = peeled or sha
    return refs
