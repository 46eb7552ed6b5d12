"""Snapshots of fork branches, measured in a real mirror, against the generator's truth."""

from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import footers, git, patch_id
from tracker.generator import GitForkSpec, build_world, standard_world
from tracker.health import measure_branch, previous_patch_set, record_snapshot
from tracker.lag import rev_parse, upstream_as_of
from tracker.mirrors import Mirror, fetch_upstream
from tracker.models import PatchChange
from tracker.registry import register_fork, register_upstream
from tracker.sync import snapshot_fork


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(standard_world(seed=11), tmp_path_factory.mktemp("health") / "world")


def _register(world, settings, tmp_path, kinds=("git",)):
    root = Path(world["path"])
    settings.GIT_LOCAL_ROOTS = [root]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    upstream = register_upstream("chromium", "Chromium", world["upstream"]["path"])
    forks = {}
    for f in world["forks"]:
        if f["kind"] in kinds:
            forks[f["slug"]] = register_fork(
                upstream,
                f["slug"],
                f["name"],
                f["path"],
                branches=[(b["name"], b["upstream_ref"]) for b in f["branches"]],
                release_tag_pattern=f["release_tag_pattern"],
            )
    return upstream, forks


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _tip_major(world, upstream_ref):
    milestones = world["upstream"]["milestones"]
    if upstream_ref == "refs/heads/main":
        return max(m["milestone"] for m in milestones) + 1
    return next(m["milestone"] for m in milestones if m["ref"] == upstream_ref)


def _versions_behind(world, branch):
    """Version-file changes upstream made after the branch's base, read from the truth."""
    milestones = world["upstream"]["milestones"]
    if branch["upstream_ref"] == "refs/heads/main":
        base_major = int(branch["base_version"].split(".")[0])
        return sum(1 for m in milestones if m["milestone"] + 1 > base_major)
    (m,) = [m for m in milestones if m["ref"] == branch["upstream_ref"]]
    position = branch["base_position"] if branch["base_ref"] == m["ref"] else 0
    return sum(1 for t in m["tags"] if t["branch_position"] > position)


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["world", "shapes_world"])
def test_every_snapshot_figure_matches_the_ground_truth(request, which, settings, tmp_path):
    """Every figure of every branch snapshot, in the standard forks and in a fork of every
    history shape (tests/test_patches.py checks the same shapes against plain git)."""
    world = request.getfixturevalue(which)
    upstream, forks = _register(world, settings, tmp_path)
    mirror = fetch_upstream(upstream)
    now = _when(world["now"])
    seen_styles = set()
    for f in (f for f in world["forks"] if f["kind"] == "git"):
        snapshots = {s.branch.name: s for s in snapshot_fork(forks[f["slug"]], mirror, now=now)}
        for b in f["branches"]:
            s = snapshots[b["name"]]
            label = f"{f['slug']}:{b['name']}"
            assert s.tip_sha == b["tip"], label
            assert s.base_sha == b["base"], label
            assert (s.base_position_ref, s.base_position) == (b["base_ref"], b["base_position"])
            assert s.base_version == b["base_version"], label
            assert s.commits_behind == b["commits_behind"], label
            assert s.commits_behind_first_parent == b["commits_behind"], label  # linear upstream
            assert s.days_behind == b["days_behind"], label
            expected_oldest = b["oldest_missing_time"]
            assert (s.oldest_missing_at and s.oldest_missing_at.isoformat()) == expected_oldest
            base_major = int(b["base_version"].split(".")[0])
            assert s.milestones_behind == _tip_major(world, b["upstream_ref"]) - base_major, label
            assert s.versions_behind == _versions_behind(world, b), label
            assert s.base_moved_at.isoformat() == b["last_base_move"], label
            patches = list(s.patches.order_by("order"))
            assert [p.sha for p in patches] == [p["sha"] for p in b["patches"]], label
            assert s.patch_count == len(b["patches"])
            for p, expected in zip(patches, b["patches"], strict=True):
                assert bool(p.upstream_sha) == expected["upstreamed"], (label, p.subject)
                expected_files = expected["files"] if expected["conflicts"] else []
                assert [x for x in p.conflict_files.split("\n") if x] == expected_files, label
            assert s.patches_upstreamed == sum(p["upstreamed"] for p in b["patches"])
            assert s.conflicting_patches == sum(p["conflicts"] for p in b["patches"])
            seen_styles.add(f["style"])
    assert seen_styles == {"rebase", "merge", "merging-rebase"}


@pytest.mark.django_db
def test_lag_as_of_the_branch_tip_tells_abandoned_from_fallen_behind(world, settings, tmp_path):
    upstream, forks = _register(world, settings, tmp_path)
    mirror = fetch_upstream(upstream)
    (acme_main,) = [
        s
        for s in snapshot_fork(forks["acme"], mirror, now=_when(world["now"]))
        if s.branch.name == "main"
    ]
    # The branch was current when its last commit was made (the last rebase) ...
    assert acme_main.commits_behind_at_tip == 0
    assert acme_main.days_behind_at_tip == 0
    # ... and has fallen behind since.
    assert acme_main.commits_behind > 0 and acme_main.days_behind > 0


@pytest.mark.django_db
def test_upstreamed_patch_points_at_its_reworded_upstream_twin(world, settings, tmp_path):
    upstream, forks = _register(world, settings, tmp_path)
    mirror = fetch_upstream(upstream)
    snapshots = snapshot_fork(forks["acme"], mirror, now=_when(world["now"]))
    upstreamed = [p for s in snapshots for p in s.patches.all() if p.upstream_sha]
    (patch,) = [p for p in upstreamed if p.snapshot.branch.name == "main"]
    subject = git(world["upstream"]["path"], "log", "-1", "--format=%s", patch.upstream_sha)
    assert subject.strip() != patch.subject
    assert patch_id(world["upstream"]["path"], patch.upstream_sha) == patch.patch_id
    # A backport adjusted to the release branch has another identity: its Change-Id names the
    # upstream cherry-pick that landed on the branch since.
    backports = [p for p in upstreamed if p.snapshot.branch.name != "main"]
    assert backports
    for backport in backports:
        mine = footers(git(world["upstream"]["path"], "log", "-1", "--format=%B", backport.sha))
        theirs = footers(
            git(world["upstream"]["path"], "log", "-1", "--format=%B", backport.upstream_sha)
        )
        assert mine["Change-Id"] == theirs["Change-Id"]
        assert patch_id(world["upstream"]["path"], backport.upstream_sha) != backport.patch_id


@pytest.mark.django_db
@pytest.mark.parametrize(
    "slug, kinds",
    [
        ("acme", {"added", "dropped", "changed"}),  # rebase
        ("weaver", {"added", "dropped", "changed"}),  # merging-rebase with topic merges
        ("mergeco", {"added"}),  # merges keep every commit: patches are only ever added
    ],
)
def test_churn_between_snapshots_follows_the_forks_syncs(world, settings, tmp_path, slug, kinds):
    """Replay a fork's past syncs: added, dropped and changed patches as git sees them
    (subjects, and patch identity for same-subject patches)."""
    upstream, forks = _register(world, settings, tmp_path)
    mirror = fetch_upstream(upstream)
    (branch_truth,) = [
        b for f in world["forks"] if f["slug"] == slug for b in f["branches"] if b["name"] == "main"
    ]
    branch = forks[slug].branches.get(name="main")
    main_tip = rev_parse(mirror.path, Mirror.upstream_ref("refs/heads/main"))
    upstream_repo = world["upstream"]["path"]
    totals = {"added": 0, "dropped": 0, "changed": 0}
    previous = None
    for snap in branch_truth["snapshots"]:
        when = _when(snap["time"])
        upstream_then = upstream_as_of(mirror.path, main_tip, when)
        health = measure_branch(
            mirror.path,
            snap["tip"],
            upstream_then,
            version_file="chrome/VERSION",
            now=when,
            previous=previous_patch_set(branch),
        )
        stored = record_snapshot(branch, health)
        current = {p.subject: p.sha for p in stored.patches.exclude(change=PatchChange.DROPPED)}
        assert sorted(current) == sorted(snap["patches"])
        if previous is not None:
            added = set(current) - set(previous)
            dropped = set(previous) - set(current)
            changed = {
                s
                for s in set(current) & set(previous)
                if patch_id(upstream_repo, current[s]) != patch_id(upstream_repo, previous[s])
            }
            assert stored.patches_added == len(added), snap["time"]
            assert stored.patches_dropped == len(dropped), snap["time"]
            assert stored.patches_changed == len(changed), snap["time"]
            for key, value in (("added", added), ("dropped", dropped), ("changed", changed)):
                totals[key] += len(value)
        previous = current
    assert {k for k, v in totals.items() if v} == kinds, totals


@pytest.mark.django_db
def test_branch_exactly_at_upstream_with_no_patches(settings, tmp_path):
    plain = GitForkSpec(
        slug="plain",
        name="Plain",
        patches=0,
        last_sync_days_ago=0,
        release_milestones=(),
        backports=False,
        upstreamed_patch=False,
        conflicting_patch=False,
    )
    world = build_world(
        standard_world(
            seed=5,
            main_commits=200,
            milestones=4,
            vulnerabilities=4,
            git_forks=(plain,),
            patch_series_forks=(),
        ),
        tmp_path / "world",
    )
    (branch,) = world["forks"][0]["branches"]
    assert branch["commits_behind"] == 0 and branch["patches"] == []
    upstream, forks = _register(world, settings, tmp_path)
    (s,) = snapshot_fork(forks["plain"], fetch_upstream(upstream), now=_when(world["now"]))
    assert s.tip_sha == s.base_sha == s.upstream_tip_sha == world["upstream"]["tip"]
    assert (s.commits_behind, s.days_behind, s.versions_behind, s.milestones_behind) == (0, 0, 0, 0)
    assert s.patch_count == 0 and s.base_moved_at is None and s.oldest_missing_at is None
