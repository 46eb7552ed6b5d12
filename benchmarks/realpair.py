"""Benchmark and check: the product's figures for a real upstream/fork pair beside plain git's.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/forkhealth \\
        .venv/bin/python benchmarks/realpair.py UPSTREAM FORK --branch F=U [--branch F=U ...] \\
        [--release-tags 'refs/tags/v*'] [--release-branches 'refs/branch-heads/*'] \\
        [--tags 'refs/tags/*'] [--version-file chrome/VERSION] [--database NAME]

UPSTREAM and FORK are repository URLs (https://, ssh://) or local paths; a local path's folder
is added to GIT_LOCAL_ROOTS for this run. Each `--branch F=U` tracks fork branch F (a name
under refs/heads/ or a full ref) following upstream ref U (e.g. refs/heads/main).

In a database of its own on the server of DATABASE_URL (dropped at the end) and a temporary
DATA_DIR, it registers both, runs a first sync (`tracker.sync.sync_fork`: fetch, ingest,
snapshots, fork security), timed, with the peak memory of this process and of its git
children; then a sync with nothing new, timed. Then, for every branch, it prints each figure
the product recorded beside the same figure computed here by plain git commands on a clone
of its own (fetched, timed, so the product's first sync can be
set against plain git's fetch plus its figures):

- base: ``git merge-base U F``
- commits behind: ``git rev-list --count F..U``; first-parent: ``--first-parent F..U``
- days behind: from the commit time of the last line of ``git rev-list --first-parent F..U``
- patches: ``git rev-list --count --no-merges U..F``; when F's first-parent line holds a
  merging-rebase marker (a merge whose first parent upstream contains, whose other parents it
  does not, and whose tree is its first parent's), the non-merge commits since the newest one:
  ``git rev-list --no-merges F ^U ^M^2 ...``
- already upstream: ``git cherry U F [M^2]`` lines starting with ``-``
- conflicting files: ``git merge-tree --write-tree --name-only --no-messages U F``;
  conflicting patches: patches whose ``--name-only`` files include one of them

CI has no network, so this is a script, not a test. It asserts nothing: it prints, and its
exit status is 1 when a figure differs, so a run can be scripted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.scratchdb import admin, database_urls

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("DEBUG", "true")

DAY = 86400


def _local_folder(url: str) -> str | None:
    if url.startswith("file://"):
        return str(Path(urlsplit(url).path).resolve().parent)
    if url.startswith("/"):
        return str(Path(url).resolve().parent)
    return None


def _peak_mb() -> tuple[float, float]:
    """Peak resident memory so far of this process and of its largest waited-for child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


class Plain:
    """Plain git in a bare repository of its own: no project code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        return subprocess.run(
            ["git", f"--git-dir={self.path}", *args],
            capture_output=True,
            text=True,
            check=check,
            env=env,
        )

    def out(self, *args: str) -> str:
        return self(*args).stdout.strip()


@dataclass
class Figures:
    base: str
    behind: int
    behind_first_parent: int
    days_behind: int
    patches: int
    upstreamed: int
    conflicting_files: int
    conflicting_patches: int
    marker: str = ""


def plain_figures(git: Plain, fork_ref: str, up_ref: str, now: datetime) -> Figures:
    f, u = git.out("rev-parse", fork_ref), git.out("rev-parse", up_ref)
    base = git.out("merge-base", u, f)
    behind = int(git.out("rev-list", "--count", u, f"^{f}"))
    first = git.out("rev-list", "--first-parent", u, f"^{f}").split()
    days = 0
    if first:
        oldest = int(git.out("log", "-1", "--format=%ct", first[-1]))
        days = max(0, int((now.timestamp() - oldest) // DAY))
    marker, excluded = "", []
    upstream_has = set(git.out("rev-list", u).split())  # one walk, not one query a merge
    for line in git.out("rev-list", "--first-parent", "--parents", f, f"^{u}").splitlines():
        sha, *parents = line.split()
        if len(parents) < 2:
            continue
        if parents[0] in upstream_has and not any(p in upstream_has for p in parents[1:]):
            # ...and it takes its tree from upstream: a fork merged into upstream is no marker.
            tree, first_tree = (git.out("rev-parse", f"{c}^{{tree}}") for c in (sha, f"{sha}^1"))
            if tree == first_tree:
                marker, excluded = sha, parents[1:]
                break
    revs = [f, f"^{u}", *(f"^{p}" for p in excluded)]
    patch_list = git.out("rev-list", "--no-merges", *revs).split()
    cherry_args = ["cherry", u, f, *excluded[:1]]
    upstreamed = sum(1 for line in git.out(*cherry_args).splitlines() if line.startswith("- "))
    result = git("merge-tree", "--write-tree", "--name-only", "--no-messages", u, f, check=False)
    if result.returncode not in (0, 1):
        raise SystemExit(f"plain git merge-tree failed: {result.stderr.strip()}")
    conflicted = set(result.stdout.splitlines()[1:]) - {""} if result.returncode == 1 else set()
    touching = 0
    if conflicted and patch_list:
        log = git.out("log", "--no-merges", "--format=%x1e%H", "--name-only", *revs)
        for record in log.split("\x1e"):
            files = set(record.split()[1:])
            touching += bool(files & conflicted)
    return Figures(
        base,
        behind,
        len(first),
        days,
        len(patch_list),
        upstreamed,
        len(conflicted),
        touching,
        marker,
    )


def _objects_dir(url: str) -> Path | None:
    """The object folder of a local repository (bare or not), None for a remote URL."""
    folder = _local_folder(url)
    if folder is None:
        return None
    path = Path(urlsplit(url).path if url.startswith("file://") else url).resolve()
    for candidate in (path / "objects", path / ".git" / "objects"):
        if candidate.is_dir():
            return candidate
    return None


def plain_clone(upstream_url: str, fork_url: str, specs, work: Path) -> tuple[Plain, float]:
    """Fetch both into a new bare repository, refs where the product's mirror has them.

    A local repository lends its objects (``objects/info/alternates``), so plain git reads
    every object it has, as a full clone would; a remote one is fetched in full. (A partial
    clone of two promisor remotes cannot merge-tree them: git asks one remote for the blobs
    of both.)"""
    started = time.perf_counter()
    git = Plain(work / "plain.git")
    subprocess.run(["git", "init", "--quiet", "--bare", str(git.path)], check=True)
    lent = [d for d in (_objects_dir(upstream_url), _objects_dir(fork_url)) if d]
    if lent:
        (git.path / "objects" / "info" / "alternates").write_text("".join(f"{d}\n" for d in lent))
    for name, url in (("upstream", upstream_url), ("fork", fork_url)):
        git("config", f"remote.{name}.url", url)
        git("fetch", "--quiet", "--no-tags", name, *specs[name])
    return git, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upstream", help="upstream repository URL or local path")
    parser.add_argument("fork", help="fork repository URL or local path")
    parser.add_argument(
        "--branch", action="append", required=True, metavar="F=U", help="fork branch=upstream ref"
    )
    parser.add_argument("--release-tags", default="", help="fork release tag pattern")
    parser.add_argument("--release-branches", default="refs/branch-heads/*")
    parser.add_argument("--tags", default="refs/tags/*", help="upstream version tag pattern")
    parser.add_argument("--version-file", default="chrome/VERSION")
    parser.add_argument("--database", default="forkhealth_bench_realpair")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (mirror, plain clone)"
    )
    args = parser.parse_args()

    pairs = []
    for spec in args.branch:
        name, sep, ref = spec.partition("=")
        if not sep:
            parser.error(f"--branch {spec!r}: expected F=U")
        pairs.append((name, ref))
    roots = [r for r in (_local_folder(args.upstream), _local_folder(args.fork)) if r]
    work = Path(tempfile.mkdtemp(prefix="forkhealth-realpair."))
    os.environ["DATA_DIR"] = str(work / "data")
    os.environ["GIT_LOCAL_ROOTS"] = ",".join([str(work / "data"), *roots])
    bench_url, admin_url = database_urls(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/forkhealth"),
        args.database,
        "benchmarks/realpair.py",
    )
    admin(admin_url, f'DROP DATABASE IF EXISTS "{args.database}"')
    admin(admin_url, f'CREATE DATABASE "{args.database}"')
    os.environ["DATABASE_URL"] = bench_url
    status = 0
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        status = run(args, pairs, work)
    finally:
        from django.db import connections

        connections.close_all()
        admin(admin_url, f'DROP DATABASE IF EXISTS "{args.database}"')
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


def run(args, pairs, work: Path) -> int:
    from tracker.mirrors import Mirror, mirror_path
    from tracker.models import BranchSnapshot
    from tracker.registry import register_fork, register_upstream
    from tracker.sync import sync_fork

    upstream = register_upstream(
        "upstream",
        "Upstream",
        args.upstream,
        main_ref=pairs[0][1],
        release_branch_pattern=args.release_branches,
        tag_pattern=args.tags,
        version_file=args.version_file,
    )
    fork = register_fork(
        upstream,
        "fork",
        "Fork",
        args.fork,
        branches=pairs,
        release_tag_pattern=args.release_tags,
    )
    now = datetime.now(UTC)
    started = time.perf_counter()
    sync_fork(fork, now=now, fetch_upstream_first=True)
    first = time.perf_counter() - started
    own_mb, git_mb = _peak_mb()
    started = time.perf_counter()
    sync_fork(fork, now=datetime.now(UTC), fetch_upstream_first=True)
    noop = time.perf_counter() - started
    fork.refresh_from_db()

    up_refs = sorted({ref for _, ref in pairs})
    specs = {
        "upstream": [f"+{ref}:{Mirror.upstream_ref(ref)}" for ref in up_refs],
        "fork": [
            f"+{n if n.startswith('refs/') else 'refs/heads/' + n}:{Mirror.fork_ref(fork, n)}"
            for n, _ in pairs
        ],
    }
    git, plain_fetch = plain_clone(fork.upstream.git_url, fork.git_url, specs, work)
    started = time.perf_counter()
    plain = {
        name: plain_figures(git, Mirror.fork_ref(fork, name), Mirror.upstream_ref(ref), now)
        for name, ref in pairs
    }
    plain_figures_s = time.perf_counter() - started

    print(f"upstream {args.upstream}\nfork     {args.fork}")
    packs = len(list((mirror_path(upstream) / "objects" / "pack").glob("*.pack")))
    print(
        f"mirror   {mirror_path(upstream)} ({_size_mb(mirror_path(upstream)):.1f} MB, "
        f"{packs} packs)"
    )
    print(f"fork last error: {fork.last_error or 'none'}")
    print()
    print("| | product | plain git |")
    print("| --- | --- | --- |")
    print(
        f"| first sync | {first:.2f} s "
        f"| fetch {plain_fetch:.2f} s + figures {plain_figures_s:.2f} s |"
    )
    print(f"| sync with nothing new | {noop:.2f} s | |")
    print(f"| peak RSS | {own_mb:.0f} MB (git child {git_mb:.0f} MB) | |")
    print()
    differ = 0
    latest = BranchSnapshot.objects.latest_by_branch(
        list(fork.branches.values_list("pk", flat=True))
    )
    for branch in fork.branches.order_by("name"):
        snap, want = latest.get(branch.pk), plain[branch.name]
        print(
            f"### {branch.name} = {branch.upstream_ref}"
            + (f" (marker {want.marker[:12]})" if want.marker else "")
        )
        print("| figure | product | plain git | |")
        print("| --- | --- | --- | --- |")
        if snap is None:
            print(f"| snapshot | none ({fork.last_error or 'no error recorded'}) | | differs |")
            differ += 1
            continue
        rows = [
            ("base", snap.base_sha[:12], want.base[:12]),
            ("commits behind", snap.commits_behind, want.behind),
            (
                "commits behind, first-parent",
                snap.commits_behind_first_parent,
                want.behind_first_parent,
            ),
            ("days behind", snap.days_behind, want.days_behind),
            ("patches", snap.patch_count, want.patches),
            ("already upstream", snap.patches_upstreamed, want.upstreamed),
            ("conflicting files", snap.conflicting_files, want.conflicting_files),
            ("conflicting patches", snap.conflicting_patches, want.conflicting_patches),
        ]
        for label, mine, theirs in rows:
            same = mine == theirs
            differ += not same
            print(f"| {label} | {mine} | {theirs} | {'' if same else 'differs'} |")
        print()
    print(f"{differ} figure(s) differ")
    return 1 if differ else 0


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


if __name__ == "__main__":
    sys.exit(main())
