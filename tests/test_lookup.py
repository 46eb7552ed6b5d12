"""Lookup by CVE, bug id, commit id or version on a generated world, against its truth."""

from __future__ import annotations

import pytest

from tests.forksecurity_world import fork_truth, setup_world
from tracker.generator import build_world, standard_world
from tracker.lookup import lookup
from tracker.models import UpstreamCommit


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(standard_world(seed=7), tmp_path_factory.mktemp("lookup") / "world")


def _release_statuses(result, slug):
    return {(h.name, h.status) for h in result.forks if h.fork == slug and h.target == "release"}


@pytest.mark.django_db
def test_lookup_by_cve_bug_and_fix_commit(world, settings, tmp_path):
    upstream, _forks, _now = setup_world(world, settings, tmp_path)
    vuln = next(
        v for v in world["vulnerabilities"] if v["cherry_picks"] and len(v["fix_commits"]) == 1
    )
    by_cve = lookup(upstream, vuln["cve"].lower())
    assert by_cve.kind == "cve"
    assert [v.cve for v in by_cve.vulnerabilities] == [vuln["cve"]]
    stable = [h for h in by_cve.upstream if h.channel == "stable"]
    assert min(h.since for h in stable).isoformat() == vuln["first_stable_time"]
    for slug in ("acme", "mergeco", "lumen"):
        expected = {
            (r["tag"], r["fixes"][vuln["cve"]]["status"])
            for r in fork_truth(world, slug)["releases"]
        }
        assert _release_statuses(by_cve, slug) == expected
    shipped = [h for h in by_cve.forks if h.contains and h.target == "release"]
    assert all(h.since is not None and h.method for h in shipped)

    for query, kind in [
        (str(vuln["bug_ids"][0]), "bug"),
        (f"crbug.com/{vuln['bug_ids'][0]}", "bug"),
        (vuln["fix_commits"][0]["sha"][:10], "commit"),
        (vuln["cherry_picks"][0]["sha"][:7], "commit"),
    ]:
        result = lookup(upstream, query)
        assert result.kind == kind, query
        assert [v.cve for v in result.vulnerabilities] == [vuln["cve"]], query
        assert _release_statuses(result, "acme") == _release_statuses(by_cve, "acme"), query


@pytest.mark.django_db
def test_lookup_of_any_commit_uses_positions(world, settings, tmp_path):
    upstream, _forks, _now = setup_world(world, settings, tmp_path, slugs=("acme", "mergeco"))
    milestones = {m["ref"]: m for m in world["upstream"]["milestones"]}
    commit = UpstreamCommit.objects.get(
        upstream=upstream, position_ref="refs/heads/main", position=1217350
    )
    result = lookup(upstream, commit.sha[:12])
    assert result.kind == "commit" and result.commits == [commit.sha]
    for slug in ("acme", "mergeco"):
        truth = fork_truth(world, slug)
        refs = {b["name"]: b["upstream_ref"] for b in truth["branches"]}
        expected = set()
        for r in truth["releases"]:
            point = milestones[refs[r["branch"]]]["branch_point_position"]
            expected.add((r["tag"], "base" if point >= 1217350 else "open"))
        assert _release_statuses(result, slug) == expected
    assert any(h.channel == "stable" for h in result.upstream)
    assert {h.name for h in result.forks if h.target == "branch"} >= {"main"}


@pytest.mark.django_db
def test_lookup_by_version(world, settings, tmp_path):
    upstream, _forks, _now = setup_world(world, settings, tmp_path, slugs=("mergeco",))
    roll = next(v for v in world["vulnerabilities"] if v["kind"] == "dependency_roll")
    version = roll["first_stable_version"]
    result = lookup(upstream, version)
    assert result.kind == "version"
    assert roll["cve"] in {v.cve for v in result.vulnerabilities}
    assert {h.version for h in result.upstream} == {version}
    key = tuple(int(x) for x in version.split("."))
    expected = {
        (r["tag"], "base" if tuple(int(x) for x in r["base_version"].split(".")) >= key else "open")
        for r in fork_truth(world, "mergeco")["releases"]
        if r["base_version"].split(".")[2] == version.split(".")[2]
    }
    assert _release_statuses(result, "mergeco") == expected
    assert lookup(upstream, "not a thing").kind == "unknown"
