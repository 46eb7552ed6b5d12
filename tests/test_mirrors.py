"""Mirrors: namespaced refs, partial clone with lazy blob fetches, commit-graph, incremental."""

from pathlib import Path

import pytest

from tests.helpers import git
from tracker.generator import build_world, standard_world
from tracker.git import run_git
from tracker.mirrors import Mirror, ensure_mirror, fetch_fork, fetch_upstream, list_refs
from tracker.registry import register_fork, register_upstream
from tracker.sync import snapshot_fork


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
