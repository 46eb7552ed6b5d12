"""A fork sync whose mirror cannot get one blob: the snapshot keeps every figure it could
measure, the one that needs the blob is unknown with its reason, and the sync goes on."""

from datetime import datetime
from pathlib import Path

import pytest
from django.urls import reverse

from tests.helpers import git, lose_object, serve
from tracker.generator import build_world, standard_world
from tracker.git import run_git
from tracker.models import BranchSnapshot, ForkSecuritySnapshot
from tracker.registry import register_fork, register_upstream
from tracker.sync import sync_fork


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        standard_world(seed=53, main_commits=300, milestones=4, vulnerabilities=6),
        tmp_path_factory.mktemp("sync") / "world",
    )


def _conflict(truth: dict) -> tuple[dict, str]:
    """A branch of the fork with a patch predicted to conflict, and a file it conflicts in."""
    for branch in truth["branches"]:
        for patch in branch["patches"]:
            if patch["kind"] == "patch" and patch["conflicts"]:
                return branch, patch["files"][0]
    raise AssertionError("the world has no conflicting patch")


@pytest.fixture
def lossy(world, settings, tmp_path):
    """The world's upstream and acme served by copies (as GitHub serves), the upstream's
    copy lacking the blob of a conflicted file at the tip of the ref a branch follows."""
    settings.GIT_LOCAL_ROOTS = [Path(world["path"]), tmp_path]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    settings.GIT_CLONE_FILTER = "blob:none"
    truth = next(f for f in world["forks"] if f["slug"] == "acme")
    served = {}
    for name, source in (("upstream", world["upstream"]["path"]), ("acme", truth["path"])):
        served[name] = tmp_path / f"{name}.git"
        run_git(["clone", "--quiet", "--mirror", "--no-local", source, str(served[name])])
        serve(served[name])
    branch, path = _conflict(truth)
    lost = git(served["upstream"], "rev-parse", f"{branch['upstream_ref']}:{path}").strip()
    assert not git(served["acme"], "cat-file", "-t", lost, check=False).strip()  # fork lacks it
    lose_object(served["upstream"], lost)
    upstream = register_upstream("chromium", "Chromium", str(served["upstream"]))
    fork = register_fork(
        upstream,
        "acme",
        "Acme",
        str(served["acme"]),
        branches=[(b["name"], b["upstream_ref"]) for b in truth["branches"]],
        release_tag_pattern=truth["release_tag_pattern"],
    )
    return fork, truth, branch, path, lost


@pytest.mark.django_db
def test_a_blob_no_remote_has_leaves_the_forecast_unknown_and_the_sync_going_on(
    lossy, world, staff_client
):
    fork, truth, branch, path, lost = lossy
    now = datetime.fromisoformat(world["now"])
    snapshots = {s.branch.name: s for s in sync_fork(fork, now=now)}

    assert set(snapshots) == {b["name"] for b in truth["branches"]}
    hit = snapshots[branch["name"]]
    assert hit.commits_behind == branch["commits_behind"]  # the lag stands
    assert hit.days_behind == branch["days_behind"]
    assert hit.base_version == branch["base_version"]
    assert hit.patch_count == len(branch["patches"])
    assert f"{path} (blob {lost[:12]})" in hit.unknown["conflicts"]
    assert "upstream does not have it; fork-acme does not have it" in hit.unknown["conflicts"]
    assert BranchSnapshot.objects.get(pk=hit.pk).unknown == hit.unknown
    fork.refresh_from_db()
    assert fork.last_synced_at == now and fork.last_error == ""  # synced
    assert f"{branch['name']}: predicted conflicts unknown: " in fork.last_warning
    assert ForkSecuritySnapshot.objects.filter(fork=fork, taken_at=now).exists()  # security ran

    page = staff_client.get(reverse("fork", args=[fork.slug])).content.decode()
    assert "could not measure everything" in page and lost[:12] in page
    assert ">unknown</td>" in page  # the branch's predicted conflicts
    page = staff_client.get(reverse("branch", args=[fork.slug, branch["name"]])).content.decode()
    assert f"predicted conflicts: unknown: 1 object is on no remote: {path}" in page
    assert "unknown how many</small>" in page or "unknown how many predicted" in page
    page = staff_client.get(reverse("sync")).content.decode()
    assert "predicted conflicts unknown" in page and 'status-behind">warning' in page
