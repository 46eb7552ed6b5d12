"""Git mirrors: one bare repository per upstream under MIRROR_DIR.

The mirror holds the upstream's refs and every fork's refs, each in a namespace of its own, so
merge-base, ancestry and patch identity work across them without network round trips:

- ``refs/upstream/heads/main``, ``refs/upstream/branch-heads/6422``, ``refs/upstream/tags/…``
- ``refs/forks/<fork slug>/heads/<branch>``, ``refs/forks/<fork slug>/tags/…``

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
from tracker.models import Fork, Upstream

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


def upstream_refspecs(upstream: Upstream) -> list[str]:
    return [
        _refspec(upstream.main_ref, Mirror.upstream_ref(upstream.main_ref)),
        _refspec(
            upstream.release_branch_pattern,
            "refs/upstream/" + upstream.release_branch_pattern.removeprefix("refs/"),
        ),
        _refspec(
            upstream.tag_pattern, "refs/upstream/" + upstream.tag_pattern.removeprefix("refs/")
        ),
    ]


def fork_refspecs(fork: Fork) -> list[str]:
    specs = []
    for branch in fork.branches.all():
        source = branch.name if branch.name.startswith("refs/") else f"refs/heads/{branch.name}"
        specs.append(_refspec(source, Mirror.fork_ref(fork, branch.name)))
    if fork.release_tag_pattern:
        pattern = fork.release_tag_pattern
        specs.append(_refspec(pattern, f"refs/forks/{fork.slug}/" + pattern.removeprefix("refs/")))
    return specs


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


def list_refs(mirror: Mirror, prefix: str, *prefixes: str) -> dict[str, str]:
    """Refs under `prefix` (and each of `prefixes`) in the mirror, in one listing: full ref
    name -> commit id (tags peeled)."""
    for each in (prefix, *prefixes):
        check_ref_name(each.rstrip("/"))
    out = run_git(
        [
            "for-each-ref",
            "--format=%(refname)%00%(objectname)%00%(*objectname)",
            prefix,
            *prefixes,
        ],
        git_dir=mirror.path,
    ).text
    refs = {}
    for line in out.splitlines():
        name, sha, peeled = line.split("\0")
        refs[name] = peeled or sha
    return refs
