"""Objects fetched before merge-tree and log -p run: one batch per remote, the right remotes,
never one pack per blob; a blob no remote has makes the figure unknown, not the snapshot fail.

The world (tests.helpers.two_remote_world): an upstream and a fork served as GitHub serves, and
a blob:none mirror with both as promisor remotes, each lacking the other's new blobs, the shape
in which git's own lazy fetch made merge-tree fail on real mirrors.
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import git, lose_object, packs, two_promisor_mirror, two_remote_world
from tracker.git import run_git
from tracker.gitrepo import ObjectsUnavailable, init_bare, open_repo
from tracker.health import measure_branch
from tracker.patches import conflicting_files, list_patches


@pytest.fixture
def world(tmp_path):
    return two_remote_world(tmp_path)


def _mirror(tmp_path: Path, world: dict) -> Path:
    return two_promisor_mirror(tmp_path / "mirror.git", world)


def _blob(repo: Path, rev: str, path: str) -> str:
    return git(repo, "rev-parse", f"{rev}:{path}").strip()


def test_merge_with_two_promisor_remotes_fetches_one_batch_from_each(tmp_path, world):
    mirror = _mirror(tmp_path, world)
    # What git does by itself: one batch of both remotes' blobs, refused by each.
    alone = run_git(
        ["merge-tree", "--write-tree", "--name-only", world["up"], world["tip"]],
        git_dir=mirror,
        check=False,
    )
    assert alone.returncode == 128 and "from promisor remote" in alone.stderr
    before = packs(mirror)
    with open_repo(mirror) as repo:
        repo.use_remotes({"upstream": None, "fork-acme": None})
        files = conflicting_files(mirror, world["tip"], world["up"], world["base"])
        assert repo.fetches == 2
    assert files == ["a.txt", "b.txt", "c.txt"]
    assert packs(mirror) == before + 2  # one pack per remote, not one per blob


def test_the_patches_diffs_come_in_one_pack_from_the_forks_remote(tmp_path, world):
    mirror = _mirror(tmp_path, world)
    before = packs(mirror)
    with open_repo(mirror) as repo:
        repo.use_remotes({"upstream": None, "fork-acme": None})
        patches = list_patches(mirror, world["tip"], world["up"])
        assert repo.fetches == 1
    assert len(patches) == 4 and all(p.patch_id for p in patches)
    assert packs(mirror) == before + 1  # four commits' diffs, one fetch


def test_a_blob_no_remote_has_is_named_and_the_others_still_come(tmp_path, world):
    lost = _blob(world["upstream"], world["up"], "a.txt")
    lose_object(world["upstream"], lost)
    mirror = _mirror(tmp_path, world)  # blob:none: the fetch never needs it
    before = packs(mirror)
    with open_repo(mirror) as repo:
        repo.use_remotes({"upstream": None, "fork-acme": None})
        with pytest.raises(ObjectsUnavailable) as info:
            conflicting_files(mirror, world["tip"], world["up"], world["base"])
        assert repo.fetches == 2  # upstream's batch once refused, then without the lost blob
    message = str(info.value)
    assert "1 object is on no remote" in message and f"a.txt (blob {lost[:12]})" in message
    assert "upstream does not have it" in message and "fork-acme does not have it" in message
    assert set(info.value.reasons) == {lost}
    assert packs(mirror) == before + 2
    with open_repo(mirror) as repo:
        fetched = [_blob(mirror, world[side], "b.txt") for side in ("up", "tip", "base")]
        assert repo.missing([lost, *fetched]) == {lost}


def test_a_snapshot_keeps_its_lag_when_the_conflict_forecast_is_unknown(tmp_path, world):
    lost = _blob(world["upstream"], world["up"], "a.txt")
    lose_object(world["upstream"], lost)
    mirror = _mirror(tmp_path, world)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with open_repo(mirror) as repo:
        repo.use_remotes({"upstream": None, "fork-acme": None})
        health = measure_branch(
            mirror, world["tip"], world["up"], version_file="chrome/VERSION", now=now
        )
    assert health.lag.commits_behind == 4 and health.base_sha == world["base"]
    assert str(health.base_version) == "125.0.6422.0"
    assert len(health.patches) == 4 and all(p.patch_id for p in health.patches)
    # The forecast needs the lost blob; so does the upstream commit that changed a.txt, whose
    # identity "already upstream" compares the patch touching a.txt with.
    assert set(health.unknown) == {"conflicts", "patch_ids"}
    assert f"a.txt (blob {lost[:12]})" in health.unknown["conflicts"]
    assert f"(blob {lost[:12]})" in health.unknown["patch_ids"]
    assert health.conflicting_patches == 0


def test_a_diff_reading_a_lost_blob_leaves_that_patch_without_identity(tmp_path, world):
    lost = _blob(world["fork"], world["tip"], "e.txt")  # the fork's newest patch
    lose_object(world["fork"], lost)
    mirror = _mirror(tmp_path, world)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    health = measure_branch(
        mirror, world["tip"], world["up"], version_file="chrome/VERSION", now=now
    )
    ids = {p.files: p.patch_id for p in health.patches}
    assert ids[("e.txt",)] == "" and all(ids[(f"{n}.txt",)] for n in "abc")
    assert set(health.unknown) == {"patch_ids"}
    assert f"e.txt at {world['tip'][:12]} (blob {lost[:12]})" in health.unknown["patch_ids"]
    assert health.conflicting_patches == 3  # the forecast needs e.txt on one side only


def test_a_full_clone_is_left_alone(tmp_path, world):
    mirror = tmp_path / "full.git"
    init_bare(mirror)
    git(mirror, "fetch", "--quiet", f"file://{world['upstream']}", "+refs/heads/*:refs/upstream/*")
    git(mirror, "fetch", "--quiet", f"file://{world['fork']}", "+refs/heads/*:refs/fork/*")
    with open_repo(mirror) as repo:
        assert conflicting_files(mirror, world["tip"], world["up"], world["base"]) == [
            "a.txt",
            "b.txt",
            "c.txt",
        ]
        assert repo.fetches == 0


def test_a_version_file_no_remote_has_leaves_the_versions_unknown(tmp_path, world):
    lost = _blob(world["upstream"], world["base"], "chrome/VERSION")
    for served in (world["upstream"], world["fork"]):
        lose_object(served, lost)
    mirror = _mirror(tmp_path, world)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    health = measure_branch(
        mirror, world["tip"], world["up"], version_file="chrome/VERSION", now=now
    )
    assert health.base_version is None and health.lag.commits_behind == 4
    assert set(health.unknown) == {"versions"}
    assert (
        f"chrome/VERSION at {world['base'][:12]} (blob {lost[:12]})" in health.unknown["versions"]
    )
    assert health.conflicting_patches == 3
