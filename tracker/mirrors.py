"""Git mirrors: one bare repository per upstream under MIRROR_DIR.

The mirror holds the upstream's refs and every fork's refs, each in a namespace of its own, so
merge-base, ancestry and patch identity work across them without network round trips:

- ``refs/upstream/heads/main``, ``refs/upstream/branch-heads/6422``, ``refs/upstream/tags/…``
- ``refs/forks/<fork slug>/heads/<branch>``, ``refs/forks/<fork slug>/tags/…``

Which refs each namespace holds is decided by ref pattern lists (tracker.refpatterns), which
git's one-``*`` refspecs cannot express: each fetch uses broader refspecs and then drops the
refs of the namespace that nothing selects (`drop_unselected`), so readers of the mirror see
exactly the selected refs, and refs of a branch no longer tracked go too.

Upstream and forks are fetched as partial clones (``GIT_CLONE_FILTER``, ``blob:none`` by
default), each remote a promisor: commits and trees arrive at once, file contents only when
something reads them (fetched a batch at a time, tracker.prefetch), so a Chromium-sized
history fits on disk and a fork costs its commits and trees, not every blob it ever had. A
server that ignores the filter (``uploadpack.allowFilter`` off) sends everything; that is
noted once on the upstream or fork, with the mirror's size (`filter_warning`). Each fetch
updates the commit-graph so ancestry queries stay fast.

Git never collects garbage on its own here (``gc.auto=0``, ``maintenance.auto=false``): an
automatic gc that fails leaves ``gc.log`` behind and refuses to run again until someone removes
it, and in a partial clone it failed on bitmaps. `maintain_mirror` repacks on a schedule
instead (``MIRROR_MAINTENANCE_SECONDS``), without bitmaps, and reports what it did or why it
failed on the upstream's row.

The mirror is read as a GitPython repository (tracker.gitrepo): created by GitPython's
``git init``, its config and remotes read by GitPython and written through the gate only when
they change (a sync that changes nothing starts no ``git config``: seven processes fewer per
fork sync). Fetches and ref listings stay on the gate's ``git fetch`` and ``git for-each-ref``
(see tracker.gitrepo for why, with figures).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from tracker import progress
from tracker.git import RemoteURL, check_ref_name, failure_reason, run_git
from tracker.gitrepo import configure, init_bare
from tracker.models import Fork, ForkKind, TrackedBranch, Upstream
from tracker.refpatterns import RefPatterns, RefSelection, parse_ref_list

logger = logging.getLogger(__name__)

UPSTREAM_REMOTE = "upstream"
# What git prints when it asked for a filter the server does not support (and got everything).
FILTER_IGNORED = "filtering not recognized by server"


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
        # No automatic gc inside our commands: maintain_mirror runs it on a schedule.
        "gc.auto": "0",
        "maintenance.auto": "false",
        "gc.autoDetach": "false",
        # A bitmap needs every reachable object in one pack, which a partial clone never has
        # ("Packfile doesn't have full closure"): with it, every repack failed.
        "repack.writeBitmaps": "false",
    }
    values.update(_promisor_config(UPSTREAM_REMOTE))
    configure(path, values)
    return Mirror(path)


def _promisor_config(remote_name: str) -> dict[str, str]:
    if not settings.GIT_CLONE_FILTER:
        return {}
    return {
        f"remote.{remote_name}.promisor": "true",
        f"remote.{remote_name}.partialclonefilter": settings.GIT_CLONE_FILTER,
    }


def _filter_args() -> list[str]:
    return [f"--filter={settings.GIT_CLONE_FILTER}"] if settings.GIT_CLONE_FILTER else []


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


def upstream_refspecs(upstream: Upstream, selection: RefSelection | None = None) -> list[str]:
    selection = selection or upstream_selection(upstream)
    return [
        _refspec(source, UPSTREAM_NAMESPACE + source.removeprefix("refs/"))
        for source in selection.fetch_sources()
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


def drop_unselected(
    mirror: Mirror, namespace: str, selection: RefSelection, listed: dict[str, str] | None = None
) -> list[str]:
    """Delete the refs under `namespace` whose remote name (``refs/`` + the rest) `selection`
    does not select; returns their names. `listed`: the namespace's refs, when the caller
    has listed them already."""
    listed = list_refs(mirror, namespace) if listed is None else listed
    gone = [ref for ref in listed if not selection.matches("refs/" + ref.removeprefix(namespace))]
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


def fetch_upstream(
    upstream: Upstream, mirror: Mirror | None = None, selection: RefSelection | None = None
) -> Mirror:
    """Fetch the upstream's main ref, release branches and tags into the mirror (`selection`:
    `upstream_selection`, when the caller has it already)."""
    return fetch_upstream_refs(upstream, mirror, selection)[0]


def fetch_upstream_refs(
    upstream: Upstream, mirror: Mirror | None = None, selection: RefSelection | None = None
) -> tuple[Mirror, dict[str, str]]:
    """`fetch_upstream`, and the upstream refs the mirror holds afterwards (mirror ref ->
    commit, tags peeled), from the one listing that dropping the unselected ones needs."""
    mirror = mirror or ensure_mirror(upstream)
    selection = selection or upstream_selection(upstream)
    progress.report(upstream.slug, "fetching upstream")
    remote = upstream.remote(settings.GIT_LOCAL_ROOTS)
    args = ["fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", *_filter_args()]
    result = run_git(
        [*args, UPSTREAM_REMOTE, *upstream_refspecs(upstream, selection)],
        git_dir=mirror.path,
        remote=remote,
        timeout=settings.GIT_TIMEOUT,
    )
    listed = list_refs(mirror, UPSTREAM_NAMESPACE)
    gone = set(drop_unselected(mirror, UPSTREAM_NAMESPACE, selection, listed))
    _note_filter_ignored(upstream, mirror, result.stderr)
    return mirror, {ref: sha for ref, sha in listed.items() if ref not in gone}


def fork_remote(fork: Fork) -> str:
    """The name of the fork's remote in its upstream's mirror."""
    return f"fork-{fork.slug}"


def fetch_fork(fork: Fork, mirror: Mirror) -> None:
    """Fetch a fork's tracked branches and release tags into its namespace of the mirror,
    with the upstream's partial-clone filter (its remote a promisor too)."""
    remote_name = fork_remote(fork)
    remote = fork.remote(settings.GIT_LOCAL_ROOTS)
    configure(
        mirror.path, {f"remote.{remote_name}.url": remote.url, **_promisor_config(remote_name)}
    )
    result = run_git(
        [
            "fetch",
            "--quiet",
            "--prune",
            "--no-tags",
            "--no-write-fetch-head",
            *_filter_args(),
            remote_name,
            *fork_refspecs(fork),
        ],
        git_dir=mirror.path,
        remote=remote,
        timeout=settings.GIT_TIMEOUT,
    )
    drop_unselected(mirror, fork_namespace(fork), fork_selection(fork))
    _note_filter_ignored(fork, mirror, result.stderr)


def fetch_remotes(fork: Fork) -> dict[str, RemoteURL]:
    """Where objects a sync of `fork` needs and the mirror lacks are fetched from, in order
    (for `Repository.use_remotes`): the upstream's remote, then the fork's."""
    roots = settings.GIT_LOCAL_ROOTS
    return {UPSTREAM_REMOTE: fork.upstream.remote(roots), fork_remote(fork): fork.remote(roots)}


def mirror_size(mirror: Mirror) -> tuple[int, float]:
    """(packs, megabytes of packs and loose objects) of the mirror (``git count-objects``)."""
    out = run_git(["count-objects", "-v"], git_dir=mirror.path).text
    counts = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    kib = int(counts.get("size-pack", 0)) + int(counts.get("size", 0))
    return int(counts.get("packs", 0)), kib / 1024


def _note_filter_ignored(obj: Upstream | Fork, mirror: Mirror, stderr: str) -> None:
    """Note on the row, once, that the server ignored the partial-clone filter."""
    if FILTER_IGNORED not in stderr or obj.filter_warning:
        return
    _packs, megabytes = mirror_size(mirror)
    obj.filter_warning = (
        f"the server ignores the partial-clone filter {settings.GIT_CLONE_FILTER} (git: "
        f"'{FILTER_IGNORED}'), so every file's contents come with each fetch from it: the "
        f"mirror is {megabytes:,.1f} MB after this fetch. Turn on uploadpack.allowFilter on "
        "the server; clear this note to be told again."
    )
    obj.save(update_fields=["filter_warning"])
    logger.warning("%s %s: %s", type(obj).__name__.lower(), obj.slug, obj.filter_warning)


@dataclass(frozen=True)
class Maintenance:
    """What `maintain_mirror` did: packs and size (MB) before and after, and how long it took
    (seconds); `previous_failure` is the gc.log an earlier automatic gc left, if any."""

    packs_before: int
    size_before: float
    packs_after: int
    size_after: float
    seconds: float
    previous_failure: str = ""

    def __str__(self) -> str:
        text = (
            f"gc: {self.packs_before:,} packs ({self.size_before:,.1f} MB) to "
            f"{self.packs_after:,} ({self.size_after:,.1f} MB) in {self.seconds:.1f} s"
        )
        if self.previous_failure:
            text += f"; an earlier automatic gc had failed: {self.previous_failure}"
        return text


def maintain_mirror(mirror: Mirror) -> Maintenance:
    """Repack the mirror's packs into one (promisor objects into a pack of their own), prune
    old unreachable objects and rewrite the commit-graph: ``git gc`` in the foreground,
    without bitmaps. A ``gc.log`` left by an earlier automatic gc is removed first (git would
    refuse to collect while it is there) and reported. Raises GitError when gc fails."""
    log = mirror.path / "gc.log"
    previous = ""
    if log.exists():
        previous = failure_reason(log.read_text(errors="replace"))
        log.unlink()
    packs_before, size_before = mirror_size(mirror)
    started = time.monotonic()
    run_git(
        ["-c", "gc.autoDetach=false", "-c", "repack.writeBitmaps=false", "gc", "--quiet"],
        git_dir=mirror.path,
        timeout=settings.GIT_TIMEOUT,
    )
    packs_after, size_after = mirror_size(mirror)
    return Maintenance(
        packs_before,
        size_before,
        packs_after,
        size_after,
        time.monotonic() - started,
        previous,
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
