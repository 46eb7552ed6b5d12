"""Mirrors: namespaced refs, partial clones of upstream and forks with blobs fetched when read,
commit-graph, incremental fetches, a server without filters noted once, housekeeping."""

import os
import socket
from pathlib import Path

import pytest

from tests.helpers import git, packs, serve
from tracker.generator import build_world, standard_world
from tracker.git import run_git
from tracker.gitrepo import open_repo
from tracker.mirrors import (
    Mirror,
    ensure_mirror,
    fetch_fork,
    fetch_upstream,
    list_refs,
    mirror_size,
)
from tracker.models import Upstream
from tracker.registry import register_fork, register_upstream
from tracker.sync import maintain_upstream_mirror, snapshot_fork
from tracker.tasks import maintain_mirror_task


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    truth = build_world(
        standard_world(seed=31, main_commits=300, milestones=4, vulnerabilities=6),
        tmp_path_factory.mktemp("mirrors") / "world",
    )
    # Let the served repository honour --filter, as googlesource.com does.
    git(truth["upstream"]["path"], "config", "uploadpack.allowFilter", "true")
    return truth


@pytest.fixture
def registered(world, settings, tmp_path):
    settings.GIT_LOCAL_ROOTS = [Path(world["path"])]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    settings.GIT_CLONE_FILTER = "blob:none"
    upstream = register_upstream("chromium", "Chromium", f"file://{world['upstream']['path']}")
    acme = next(f for f in world["forks"] if f["slug"] == "acme")
    fork = register_fork(
        upstream,
        "acme",
        "Acme",
        acme["path"],
        branches=[(b["name"], b["upstream_ref"]) for b in acme["branches"]],
        release_tag_pattern="refs/tags/v*",
    )
    return upstream, fork, acme


def _missing_objects(repo: Path) -> int:
    out = run_git(["rev-list", "--objects", "--all", "--missing=print"], git_dir=repo).text
    return sum(1 for line in out.splitlines() if line.startswith("?"))


@pytest.mark.django_db
def test_partial_clone_fetches_blobs_lazily_and_snapshots_still_work(registered, world):
    upstream, fork, acme = registered
    mirror = fetch_upstream(upstream)
    missing_before = _missing_objects(mirror.path)
    assert missing_before > 0  # file contents were not downloaded with the history
    assert git(mirror.path, "config", "remote.upstream.promisor").strip() == "true"
    assert (mirror.path / "objects" / "info" / "commit-graphs").exists() or (
        mirror.path / "objects" / "info" / "commit-graph"
    ).exists()
    snapshots = {s.branch.name: s for s in snapshot_fork(fork, mirror, now=fork.created_at)}
    for branch in acme["branches"]:
        assert snapshots[branch["name"]].base_version == branch["base_version"]
    assert _missing_objects(mirror.path) < missing_before  # what was read came lazily


@pytest.mark.django_db
def test_refs_live_in_their_namespaces_and_fetch_is_incremental(registered, world):
    upstream, fork, acme = registered
    mirror = fetch_upstream(upstream)
    snapshot_fork(fork, mirror, now=fork.created_at)
    refs = list_refs(mirror, "refs/")
    assert refs["refs/upstream/heads/main"] == world["upstream"]["tip"]
    branch_heads = [r for r in refs if r.startswith("refs/upstream/branch-heads/")]
    assert len(branch_heads) == len(world["upstream"]["milestones"])
    assert refs[Mirror.fork_ref(fork, "main")] == acme["branches"][0]["tip"]
    assert any(r.startswith("refs/forks/acme/tags/v") for r in refs)
    assert not any(r.startswith("refs/heads/") for r in refs)  # nothing outside namespaces

    # A new upstream commit arrives: the next fetch brings just that.
    upstream_repo = world["upstream"]["path"]
    tree = git(upstream_repo, "rev-parse", "refs/heads/main^{tree}").strip()
    new = run_git(
        [
            "commit-tree",
            tree,
            "-p",
            world["upstream"]["tip"],
            "-m",
            "Next commit\n\nCr-Commit-Position: refs/heads/main@{#9999999}",
        ],
        git_dir=upstream_repo,
        env={
            "GIT_AUTHOR_NAME": "A",
            "GIT_AUTHOR_EMAIL": "a@example.com",
            "GIT_COMMITTER_NAME": "A",
            "GIT_COMMITTER_EMAIL": "a@example.com",
        },
    ).text.strip()
    git(upstream_repo, "update-ref", "refs/heads/main", new)
    try:
        fetch_upstream(upstream)
        assert list_refs(mirror, "refs/upstream/heads/")["refs/upstream/heads/main"] == new
    finally:
        git(upstream_repo, "update-ref", "refs/heads/main", world["upstream"]["tip"])


@pytest.mark.django_db
def test_config_and_remotes_are_written_only_when_they_change(registered, world):
    upstream, fork, acme = registered
    mirror = ensure_mirror(upstream)
    fetch_fork(fork, mirror)
    config = mirror.path / "config"
    written = config.stat().st_mtime_ns
    assert git(mirror.path, "config", "remote.fork-acme.url").strip() == acme["path"]
    ensure_mirror(upstream)
    fetch_fork(fork, mirror)
    assert config.stat().st_mtime_ns == written  # read by GitPython, nothing to write
    upstream.git_url = acme["path"]  # the upstream moved (to any repository under the roots)
    upstream.save()
    ensure_mirror(upstream)
    assert config.stat().st_mtime_ns != written
    assert git(mirror.path, "config", "remote.upstream.url").strip() == acme["path"]
    assert git(mirror.path, "config", "remote.upstream.promisor").strip() == "true"


@pytest.fixture
def tool(tmp_path, settings):
    """The tag world (tests.helpers.build_tag_world) registered: an upstream with vX.Y.Z
    tags and a fork carrying upstream's tags beside its own."""
    from tests.helpers import build_tag_world

    world = build_tag_world(tmp_path / "world")
    settings.GIT_LOCAL_ROOTS = [tmp_path / "world"]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    settings.GIT_CLONE_FILTER = ""
    upstream = register_upstream(
        "tool",
        "Tool",
        world["upstream"]["path"],
        main_ref="refs/heads/master",
        release_branch_pattern="refs/heads/release-*",
        tag_pattern="refs/tags/v*, !refs/tags/*-rc*",
        version_scheme="tags",
    )
    fork = register_fork(
        upstream,
        "tool-win",
        "Tool for Windows",
        world["fork"]["path"],
        branches=[("main", "refs/heads/master"), ("maint", "refs/heads/maint")],
        release_tag_pattern="refs/tags/v*.windows.*, !refs/tags/*-rc*",
    )
    return world, upstream, fork


@pytest.mark.django_db
def test_pattern_lists_decide_what_the_mirror_holds(tool):
    from tracker.mirrors import fetch_fork

    _world, upstream, fork = tool
    mirror = fetch_upstream(upstream)
    fetch_fork(fork, mirror)
    refs = list_refs(mirror, "refs/")
    assert sorted(r for r in refs if r.startswith("refs/upstream/")) == [
        "refs/upstream/heads/maint",  # followed by the fork's maint, so fetched too
        "refs/upstream/heads/master",
        "refs/upstream/heads/release-2.0",  # a glob right after '-', not '/'
        "refs/upstream/tags/v1.0.0",
        "refs/upstream/tags/v1.1.0",
        "refs/upstream/tags/v1.1.1",
        "refs/upstream/tags/v1.2.0",
        "refs/upstream/tags/v2.0.0",  # v2.0.0-rc1 excluded
    ]
    assert sorted(r for r in refs if r.startswith("refs/forks/")) == [
        "refs/forks/tool-win/heads/main",
        "refs/forks/tool-win/heads/maint",
        "refs/forks/tool-win/tags/v1.1.0.windows.0",
        "refs/forks/tool-win/tags/v1.1.0.windows.1",
        "refs/forks/tool-win/tags/v1.1.1.windows.1",
    ]

    # A branch no longer tracked, and a narrower pattern: the next fetch drops their refs.
    fork.branches.filter(name="maint").delete()
    fork.release_tag_pattern = "refs/tags/v1.1.1.*"
    fork.save()
    fetch_fork(fork, mirror)
    assert sorted(list_refs(mirror, "refs/forks/")) == [
        "refs/forks/tool-win/heads/main",
        "refs/forks/tool-win/tags/v1.1.1.windows.1",
    ]
    fetch_upstream(upstream)
    assert "refs/upstream/heads/maint" not in list_refs(mirror, "refs/upstream/")


@pytest.mark.django_db
def test_release_branches_selected_by_a_glob_after_any_character_are_ingested(tool):
    from tracker.models import IngestCursor, UpstreamCommit
    from tracker.sync import sync_upstream, upstream_refs

    world, upstream, _fork = tool
    mirror = sync_upstream(upstream, now=upstream.created_at)
    assert upstream_refs(upstream, mirror) == [
        ("refs/heads/master", "refs/upstream/heads/master"),
        ("refs/heads/release-2.0", "refs/upstream/heads/release-2.0"),
        ("refs/heads/maint", "refs/upstream/heads/maint"),
    ]
    assert UpstreamCommit.objects.filter(sha=world["upstream"]["release"]).exists()
    assert UpstreamCommit.objects.filter(sha=world["upstream"]["maint"]).exists()
    assert set(IngestCursor.objects.values_list("ref", flat=True)) == {
        "refs/heads/master",
        "refs/heads/release-2.0",
        "refs/heads/maint",
    }


@pytest.mark.django_db
def test_forks_are_promisors_fetched_with_the_upstreams_filter(
    registered, world, tmp_path, settings
):
    upstream, fork, acme = registered
    settings.GIT_LOCAL_ROOTS = [Path(world["path"]), tmp_path]
    served = tmp_path / "acme.git"
    run_git(["clone", "--quiet", "--mirror", acme["path"], str(served)])
    serve(served)
    fork.git_url = str(served)
    fork.save()
    mirror = fetch_upstream(upstream)
    fetch_fork(fork, mirror)
    assert git(mirror.path, "config", "remote.fork-acme.promisor").strip() == "true"
    assert git(mirror.path, "config", "remote.fork-acme.partialclonefilter").strip() == "blob:none"
    tip = acme["branches"][0]["tip"]
    fork_files = git(mirror.path, "ls-tree", "-r", "--format=%(objectname)", tip).split()
    with open_repo(mirror.path) as repo:
        assert repo.missing(fork_files)  # the fork's files stayed on its server
    fork.refresh_from_db()
    assert fork.filter_warning == "" and upstream.filter_warning == ""


@pytest.mark.django_db
def test_a_server_ignoring_the_filter_is_reported_once_with_the_mirrors_size(
    registered, world, caplog
):
    upstream, fork, acme = registered  # acme's server has no uploadpack.allowFilter
    mirror = fetch_upstream(upstream)
    with caplog.at_level("WARNING", logger="tracker.mirrors"):
        fetch_fork(fork, mirror)
        fork.refresh_from_db()
        warning = fork.filter_warning
        assert "ignores the partial-clone filter blob:none" in warning
        _packs, megabytes = mirror_size(mirror)
        assert f"the mirror is {megabytes:,.1f} MB after this fetch" in warning
        git(acme["path"], "update-ref", "refs/heads/extra", acme["branches"][0]["tip"] + "~1")
        try:
            fetch_fork(fork, mirror)  # git warns again; the note stays as first written
        finally:
            git(acme["path"], "update-ref", "-d", "refs/heads/extra")
    fork.refresh_from_db()
    assert fork.filter_warning == warning
    assert [r.message for r in caplog.records].count(f"fork acme: {warning}") == 1
    assert Upstream.objects.get(pk=upstream.pk).filter_warning == ""  # its server filters


def _lazy_packs(mirror: Path, tip: str, count: int) -> None:
    """Read `count` files one at a time with plain git: one lazy fetch, one pack, each."""
    for oid in git(mirror, "ls-tree", "-r", "--format=%(objectname)", tip).split()[:count]:
        git(mirror, "cat-file", "-p", oid)


@pytest.mark.django_db
def test_housekeeping_repacks_the_packs_lazy_fetches_left(registered, world):
    upstream, fork, acme = registered
    mirror = fetch_upstream(upstream)
    assert git(mirror.path, "config", "gc.auto").strip() == "0"
    assert git(mirror.path, "config", "repack.writeBitmaps").strip() == "false"
    _lazy_packs(mirror.path, world["upstream"]["tip"], 30)
    before = packs(mirror.path)
    missing = _missing_objects(mirror.path)
    assert before > 30
    (mirror.path / "gc.log").write_text("warning: Failed to write bitmap index\nfatal: x\n")
    result = maintain_mirror_task.apply(args=[upstream.pk], throw=True).get()
    upstream.refresh_from_db()
    assert upstream.maintenance_error == "" and upstream.maintained_at is not None
    assert upstream.maintenance_summary == result
    assert result.startswith(f"gc: {before} packs (")
    assert "an earlier automatic gc had failed: fatal: x" in result
    assert not (mirror.path / "gc.log").exists()
    assert packs(mirror.path) <= 2
    assert _missing_objects(mirror.path) == missing  # still a partial clone: nothing fetched
    snapshots = snapshot_fork(fork, mirror, now=fork.created_at)
    assert {s.tip_sha for s in snapshots} == {b["tip"] for b in acme["branches"]}


@pytest.mark.django_db
def test_a_failed_housekeeping_is_recorded_and_git_goes_on(registered, world):
    upstream, fork, _acme = registered
    mirror = fetch_upstream(upstream)
    # Another gc holds the repository (a live process on this host): git gc refuses to run.
    (mirror.path / "gc.pid").write_text(f"{os.getpid()} {socket.gethostname()}")
    assert maintain_upstream_mirror(upstream, now=fork.created_at).startswith("failed: ")
    upstream.refresh_from_db()
    assert "gc is already running" in upstream.maintenance_error
    assert upstream.maintained_at is None
    fetch_upstream(upstream)  # git works as before
    snapshot_fork(fork, mirror, now=fork.created_at)
    (mirror.path / "gc.pid").unlink()
    maintain_upstream_mirror(upstream, now=fork.created_at)
    upstream.refresh_from_db()
    assert upstream.maintenance_error == "" and upstream.maintained_at == fork.created_at
