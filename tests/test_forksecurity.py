"""Fork releases and fix statuses on a generated world, against the generator's truth."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from tests.forksecurity_world import FORKS, fork_truth, setup_world, when
from tests.helpers import git
from tracker.forksecurity import triage, update_fork_security
from tracker.forksecurity.rules import lowest_listing, patch_level, patch_level_from_missing
from tracker.generator import build_world, standard_world
from tracker.ingest.bulletins import link_fixes
from tracker.mirrors import ensure_mirror
from tracker.models import (
    BulletinLine,
    FixStatus,
    FixTriage,
    ForkRelease,
    ForkSecuritySnapshot,
    UpstreamRelease,
    Vulnerability,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(standard_world(seed=7), tmp_path_factory.mktemp("forksec") / "world")


def _main_shas(world):
    return {v["cve"]: [c["sha"] for c in v["fix_commits"]] for v in world["vulnerabilities"]}


@pytest.mark.django_db
def test_every_release_status_matches_the_ground_truth(world, settings, tmp_path):
    _upstream, forks, _now = setup_world(world, settings, tmp_path)
    main_shas = _main_shas(world)
    kinds = {v["cve"]: v["kind"] for v in world["vulnerabilities"]}
    seen = set()
    mismatches = []
    for slug in FORKS:
        truth = fork_truth(world, slug)
        releases = {r.tag: r for r in ForkRelease.objects.filter(fork=forks[slug])}
        assert sorted(releases) == sorted(r["tag"] for r in truth["releases"])
        for expected in truth["releases"]:
            release = releases[expected["tag"]]
            label = f"{slug} {expected['tag']}"
            assert release.sha == expected["sha"], label
            assert release.shipped_at == when(expected["time"]), label
            if truth["kind"] == "git":
                assert release.base_sha == expected["base"], label
                assert release.base_version == expected["base_version"], label
                assert release.branch.name == expected["branch"], label
            else:
                assert release.base_version == expected["pinned_version"], label
            statuses = {
                s.vulnerability.cve: s
                for s in FixStatus.objects.filter(release=release).select_related("vulnerability")
            }
            assert sorted(statuses) == sorted(expected["fixes"]), label
            for cve, fix in expected["fixes"].items():
                got = statuses[cve]
                if got.computed != fix["status"]:
                    mismatches.append((label, cve, kinds[cve], fix, got.computed, got.evidence))
                    continue
                if truth["kind"] == "git" and kinds[cve] == "chromium":
                    by_part = {e["part"]: e for e in got.evidence}
                    for part in fix["parts"]:
                        e = by_part[main_shas[cve][part["part"]]]
                        assert e["how"] == part["how"], (label, cve, e)
                        if part["how"] == "backport":
                            assert e["method"] == part["method"], (label, cve, e)
                            assert e["fork_commit"], (label, cve, e)
                            seen.add(part["method"])
                elif truth["kind"] == "patch_series" and fix["status"] == "backport":
                    (e,) = got.evidence
                    assert (e["method"], e["patch"]) == (fix["method"], fix["patch"]), label
                    seen.add(fix["method"])
    assert mismatches == []
    # Every backport method of both fork kinds was met and named.
    assert seen == {
        "trailer",
        "patch-id",
        "change-id",
        "original-position",
        "reviewed-on",
        "patch-name",
        "patch-diff",
    }


def _expected_in_base(world, cve, part, base_ref, base_position):
    """Whether part `part` of `cve` is in an upstream base, from the truth's positions."""
    vuln = next(v for v in world["vulnerabilities"] if v["cve"] == cve)
    position = vuln["fix_commits"][part]["position"]
    if base_ref == "refs/heads/main":
        return position <= base_position
    m = next(m for m in world["upstream"]["milestones"] if m["ref"] == base_ref)
    if position <= m["branch_point_position"]:
        return True
    return any(
        p["branch"] == m["branch"] and p["part"] == part and p["branch_position"] <= base_position
        for p in vuln["cherry_picks"]
    )


@pytest.mark.django_db
def test_every_branch_tip_status_matches_the_ground_truth(world, settings, tmp_path):
    _upstream, forks, _now = setup_world(world, settings, tmp_path)
    checked = 0
    for slug in ("acme", "mergeco"):
        truth = fork_truth(world, slug)
        for b in truth["branches"]:
            backported = {
                (e["vuln"], e["part"]): e["method"] for e in b["patches"] if e.get("vuln")
            }
            rows = FixStatus.objects.filter(branch__fork=forks[slug], branch__name=b["name"])
            assert rows.count() == len(world["vulnerabilities"])
            for row in rows.select_related("vulnerability"):
                cve = row.vulnerability.cve
                vuln = next(v for v in world["vulnerabilities"] if v["cve"] == cve)
                assert row.target_sha == b["tip"]
                hows = []
                for part in range(len(vuln["fix_commits"])):
                    if _expected_in_base(world, cve, part, b["base_ref"], b["base_position"]):
                        hows.append("base")
                    elif (cve, part) in backported:
                        hows.append("backport")
                    else:
                        hows.append("missing")
                expected = (
                    "open" if "missing" in hows else "backport" if "backport" in hows else "base"
                )
                assert row.computed == expected, (slug, b["name"], cve, row.evidence)
                checked += 1
    assert checked
    # The patch-series fork's branch tip is its last release's commit: same statuses.
    lumen = fork_truth(world, "lumen")
    last = lumen["releases"][-1]
    assert last["sha"] == lumen["tip"]
    tip_rows = FixStatus.objects.filter(branch__fork=forks["lumen"]).select_related("vulnerability")
    assert {r.vulnerability.cve: r.computed for r in tip_rows} == {
        cve: fix["status"] for cve, fix in last["fixes"].items()
    }


def _status(fork, tag, cve):
    return FixStatus.objects.get(release__fork=fork, release__tag=tag, vulnerability__cve=cve)


def _find(world, slug, predicate):
    """The first (release, cve, fix) of fork `slug` in the truth that `predicate` accepts."""
    for release in fork_truth(world, slug)["releases"]:
        for cve, fix in release["fixes"].items():
            if predicate(release, cve, fix):
                return release, cve, fix
    raise AssertionError("the world has no such case")


@pytest.mark.django_db
def test_named_cases(world, settings, tmp_path):
    _upstream, forks, _now = setup_world(world, settings, tmp_path)
    acme, mergeco = forks["acme"], forks["mergeco"]
    main_shas = _main_shas(world)
    kinds = {v["cve"]: v["kind"] for v in world["vulnerabilities"]}

    # A fix backported without any trailer: found by patch identity alone.
    release, cve, _fix = _find(
        world, "acme", lambda r, c, f: any(p.get("method") == "patch-id" for p in f["parts"])
    )
    (evidence,) = _status(acme, release["tag"], cve).evidence
    assert (evidence["how"], evidence["method"]) == ("backport", "patch-id")
    message = git(world["forks"][0]["path"], "log", "-1", "--format=%B", evidence["fork_commit"])
    assert "cherry picked" not in message and "Cr-Original" not in message

    # A cherry-pick -x keeps the upstream footers: the trailer is named first, the weaker
    # methods that also matched after it.
    release, cve, _fix = _find(
        world, "acme", lambda r, c, f: any(p.get("method") == "trailer" for p in f["parts"])
    )
    trailer = next(
        e for e in _status(acme, release["tag"], cve).evidence if e["method"] == "trailer"
    )
    assert trailer["also"][:2] == ["change-id", "reviewed-on"]

    # A two-commit fix with only one commit backported stays open.
    release, cve, fix = _find(
        world,
        "acme",
        lambda r, c, f: (
            len(f["parts"]) == 2
            and {p["how"] for p in f["parts"]}
            == {
                "backport",
                "missing",
            }
        ),
    )
    row = _status(acme, release["tag"], cve)
    assert row.computed == "open"
    assert [e["how"] for e in row.evidence] == [p["how"] for p in fix["parts"]]

    # A fix that landed upstream after the release's base (and was not backported) is open.
    vulns = {v["cve"]: v for v in world["vulnerabilities"]}
    release, cve, _fix = _find(
        world,
        "acme",
        lambda r, c, f: (
            f["status"] == "open"
            and len(f["parts"]) == 1
            and when(vulns[c]["landed"]) > when(r["time"])
        ),
    )
    row = _status(acme, release["tag"], cve)
    assert (row.computed, row.evidence[0]["how"]) == ("open", "missing")

    # A dependency roll: placed by the bulletin's version on its milestone, and through the
    # roll's copy on a milestone no bulletin names.
    roll = next(c for c, k in kinds.items() if k == "dependency_roll")
    methods = {
        e["method"]
        for fork in (acme, mergeco)
        for row in FixStatus.objects.filter(
            release__fork=fork, vulnerability__cve=roll, computed="base"
        )
        for e in row.evidence
    }
    assert {"version", "cherry-pick"} <= methods
    assert main_shas[roll]


@pytest.mark.django_db
def test_triage_overrides_open_only_and_keeps_its_history(world, settings, tmp_path):
    upstream, forks, now = setup_world(world, settings, tmp_path, slugs=("acme",))
    acme = forks["acme"]
    user = User.objects.create_user("rel-eng")
    cve = next(
        c
        for c, f in fork_truth(world, "acme")["releases"][0]["fixes"].items()
        if f["status"] == "open"
    )
    vuln = Vulnerability.objects.get(upstream=upstream, cve=cve)
    before = dict(
        FixStatus.objects.filter(fork=acme, vulnerability=vuln).values_list("pk", "computed")
    )
    assert "open" in before.values()

    triage(acme, vuln, "not_affected", "We do not ship that component.", now=now, user=user)
    after = dict(
        FixStatus.objects.filter(fork=acme, vulnerability=vuln).values_list("pk", "status")
    )
    for pk, computed in before.items():
        assert after[pk] == ("not_affected" if computed == "open" else computed)

    # A rerun keeps the decision; reopening withdraws it; both decisions stay on record.
    update_fork_security(acme, ensure_mirror(upstream), now)
    assert FixStatus.objects.filter(fork=acme, vulnerability=vuln, status="not_affected").exists()
    triage(acme, vuln, "reopened", "We ship it again from 2.0.", now=now, user=user)
    statuses = dict(
        FixStatus.objects.filter(fork=acme, vulnerability=vuln).values_list("pk", "status")
    )
    assert statuses == before
    history = list(FixTriage.objects.filter(fork=acme, vulnerability=vuln))
    assert [(t.decision, t.decided_by_name) for t in history] == [
        ("reopened", "rel-eng"),
        ("not_affected", "rel-eng"),
    ]
    with pytest.raises(ValueError):
        triage(acme, vuln, "will_not_fix", "  ", now=now, user=user)


def test_patch_level_is_cumulative():
    stable = [((120, 0, 1, 31), "120.0.1.31"), ((120, 0, 1, 40), "120.0.1.40")]
    stable += [((121, 0, 2, 9), "121.0.2.9"), ((121, 0, 2, 20), "121.0.2.20")]
    listed = {"120.0.1.31": {"CVE-A"}, "121.0.2.9": {"CVE-B"}, "121.0.2.20": {"CVE-C"}}
    assert patch_level(stable, listed, set()) == ""
    assert patch_level(stable, listed, {"CVE-A"}) == "120.0.1.40"
    # CVE-C alone does not make 121.0.2.20: CVE-B, listed for a lower version, is missing.
    assert patch_level(stable, listed, {"CVE-A", "CVE-C"}) == "120.0.1.40"
    assert patch_level(stable, listed, {"CVE-A", "CVE-B", "CVE-C"}) == "121.0.2.20"
    # The same figure from the CVEs a release misses, as the store computes it.
    lowest = lowest_listing(listed)
    every = {"CVE-A", "CVE-B", "CVE-C"}
    for carried in [set(), {"CVE-A"}, {"CVE-A", "CVE-C"}, every, {"CVE-B"}]:
        expected = patch_level(stable, listed, carried)
        assert patch_level_from_missing(stable, lowest, every - carried) == expected


@pytest.mark.django_db
def test_patch_level_of_every_release_follows_its_statuses(world, settings, tmp_path):
    upstream, forks, _now = setup_world(world, settings, tmp_path)
    stable = {
        (tuple(r[1:]), r[0])
        for r in UpstreamRelease.objects.filter(upstream=upstream, channel="stable").values_list(
            "version", "major", "minor", "build", "patch"
        )
    }
    listed: dict[str, set[str]] = {}
    for line in BulletinLine.objects.select_related("bulletin"):
        for version, _platforms in line.bulletin.versions:
            listed.setdefault(version, set()).add(line.cve)
    levels = set()
    for slug in FORKS:
        for expected in fork_truth(world, slug)["releases"]:
            carried = {c for c, f in expected["fixes"].items() if f["status"] != "open"}
            release = ForkRelease.objects.get(fork=forks[slug], tag=expected["tag"])
            level = patch_level(stable, listed, carried)
            assert release.patch_level_version == level, (slug, expected["tag"])
            if level:
                assert release.patch_level_major == int(level.split(".")[0])
            levels.add(level)
    assert len(levels) > 3  # the figure moves with the releases


@pytest.mark.django_db
def test_recomputation_is_incremental(world, settings, tmp_path):
    upstream, forks, now = setup_world(world, settings, tmp_path, slugs=("acme",))
    acme = forks["acme"]
    mirror = ensure_mirror(upstream)
    targets = ForkRelease.objects.filter(fork=acme).count() + acme.branches.count()
    vulns = Vulnerability.objects.filter(upstream=upstream).count()
    assert FixStatus.objects.filter(fork=acme).count() == targets * vulns

    # Nothing new: nothing evaluated, nothing written, the fork's history not read.
    stats = update_fork_security(acme, mirror, now)
    assert (stats.pairs_evaluated, stats.rows_written, stats.fork_reads) == (0, 0, 0)

    # A fix link changes: only that vulnerability's statuses are evaluated again.
    vuln = Vulnerability.objects.get(upstream=upstream, cve=world["vulnerabilities"][2]["cve"])
    vuln.fix_commits.filter(role="cherry_pick").delete()
    stats = update_fork_security(acme, mirror, now)
    assert stats.pairs_evaluated == targets
    link_fixes(upstream)
    stats = update_fork_security(acme, mirror, now)
    assert stats.pairs_evaluated == targets

    # A new vulnerability adds its row per release and branch, nothing else.
    Vulnerability.objects.create(upstream=upstream, cve="CVE-2026-9999", severity="high")
    stats = update_fork_security(acme, mirror, now)
    assert (stats.pairs_evaluated, stats.rows_written) == (targets, targets)

    # A new release (here: one forgotten and found again) computes that release's column only.
    ForkRelease.objects.filter(fork=acme).order_by("tagged_at").last().delete()
    stats = update_fork_security(acme, mirror, now)
    assert (stats.releases_added, stats.bases_computed) == (1, 1)
    assert stats.pairs_evaluated == vulns + 1


@pytest.mark.django_db
def test_a_release_registered_by_hand_gets_its_base_and_statuses(
    world, settings, tmp_path, admin_client
):
    upstream, forks, now = setup_world(world, settings, tmp_path, slugs=("acme",))
    acme = forks["acme"]
    tagged = fork_truth(world, "acme")["releases"][3]
    shipped = when(tagged["time"]) + timedelta(days=2)
    response = admin_client.post(
        "/admin/tracker/forkrelease/add/",
        {
            "fork": acme.pk,
            "tag": "hotfix-1",
            "sha": tagged["sha"],
            "shipped_at_override_0": shipped.strftime("%Y-%m-%d"),
            "shipped_at_override_1": shipped.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302, response.content[:2000]
    # A commit the mirror does not have is kept with its error, not fatal.
    ForkRelease.objects.create(fork=acme, tag="ghost", source="manual", sha="0" * 40)
    stats = update_fork_security(acme, ensure_mirror(upstream), now)
    assert stats.pairs_evaluated == Vulnerability.objects.filter(upstream=upstream).count()
    release = ForkRelease.objects.get(fork=acme, tag="hotfix-1")
    assert (release.source, release.base_sha, release.base_version) == (
        "manual",
        tagged["base"],
        tagged["base_version"],
    )
    assert release.shipped_at == shipped.replace(microsecond=0)
    statuses = {
        s.vulnerability.cve: s.computed
        for s in FixStatus.objects.filter(release=release).select_related("vulnerability")
    }
    assert statuses == {cve: fix["status"] for cve, fix in tagged["fixes"].items()}
    assert ForkRelease.objects.get(fork=acme, tag="ghost").last_error
    assert admin_client.get("/admin/tracker/forkrelease/").status_code == 200
    assert admin_client.get("/admin/tracker/fixtriage/add/").status_code == 200


def _newest_open_by_severity(world, slug):
    severities = {v["cve"]: v["severity"].lower() for v in world["vulnerabilities"]}
    newest = max(fork_truth(world, slug)["releases"], key=lambda r: (when(r["time"]), r["tag"]))
    counts = dict.fromkeys(("critical", "high", "medium", "low"), 0)
    for cve, fix in newest["fixes"].items():
        if fix["status"] == "open":
            counts[severities[cve]] += 1
    return newest["tag"], counts


@pytest.mark.django_db
def test_each_sync_records_the_open_fixes_of_the_newest_release(world, settings, tmp_path):
    upstream, forks, now = setup_world(world, settings, tmp_path)
    latest = ForkSecuritySnapshot.objects.latest_by_fork([f.pk for f in forks.values()])
    for slug, fork in forks.items():
        snapshot = latest[fork.pk]
        tag, counts = _newest_open_by_severity(world, slug)
        assert snapshot.taken_at == now and snapshot.release_tag == tag, slug
        recorded = {s: getattr(snapshot, f"open_{s}") for s in counts}
        assert recorded == counts, slug
        assert (snapshot.oldest_open_days is None) == (sum(counts.values()) == 0), slug

    # A rerun at the same moment replaces its snapshot; a triage records the decision at once.
    slug, fork = next((s, f) for s, f in forks.items() if latest[f.pk].open_total)
    update_fork_security(fork, ensure_mirror(upstream), now)
    assert ForkSecuritySnapshot.objects.filter(fork=fork).count() == 1
    open_row = (
        FixStatus.objects.filter(fork=fork).open_in_newest_release().select_related("vulnerability")
    ).first()
    later = now + timedelta(hours=1)
    triage(fork, open_row.vulnerability, "will_not_fix", "Component removed.", now=later)
    after = ForkSecuritySnapshot.objects.latest_by_fork([fork.pk])[fork.pk]
    assert after.taken_at == later
    assert after.open_total == latest[fork.pk].open_total - 1, slug


@pytest.mark.django_db
def test_a_fork_without_releases_counts_the_fixes_open_on_any_branch_tip():
    from datetime import UTC, datetime

    from tracker.forksecurity import record_security_snapshot
    from tracker.models import Fork, TrackedBranch, Upstream

    now = datetime(2026, 6, 1, tzinfo=UTC)
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = Fork.objects.create(upstream=upstream, slug="weaver", name="Weaver", git_url="/y")
    main = TrackedBranch.objects.create(fork=fork, name="main")
    release = TrackedBranch.objects.create(fork=fork, name="release/125")
    stable = now - timedelta(days=30)
    for n, (severity, main_status, release_status) in enumerate(
        [("high", "open", "open"), ("low", "base", "open"), ("critical", "base", "backport")]
    ):
        vuln = Vulnerability.objects.create(
            upstream=upstream,
            cve=f"CVE-2026-{n + 1}",
            severity=severity,
            first_stable_at=stable + timedelta(days=n),
        )
        for branch, status in ((main, main_status), (release, release_status)):
            FixStatus.objects.create(
                fork=fork,
                vulnerability=vuln,
                branch=branch,
                computed=status,
                status=status,
                computed_at=now,
            )
    snapshot = record_security_snapshot(fork, now)
    assert snapshot.release_tag == ""
    assert (snapshot.open_critical, snapshot.open_high, snapshot.open_low) == (0, 1, 1)
    assert snapshot.oldest_open_days == 30.0


@pytest.mark.django_db
def test_upstreams_own_tags_are_no_fork_releases_and_a_narrower_pattern_removes_releases(
    settings, tmp_path
):
    from tests.helpers import build_tag_world
    from tracker.mirrors import fetch_fork, fetch_upstream
    from tracker.registry import register_fork, register_upstream

    world = build_tag_world(tmp_path / "world")
    settings.GIT_LOCAL_ROOTS = [tmp_path / "world"]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    upstream = register_upstream(
        "tool", "Tool", world["upstream"]["path"], main_ref="refs/heads/master"
    )
    fork = register_fork(
        upstream,
        "tool-win",
        "Tool for Windows",
        world["fork"]["path"],
        branches=[("main", "refs/heads/master"), ("maint", "refs/heads/maint")],
        release_tag_pattern="refs/tags/v*",  # the fork's tags and upstream's alike
    )
    mirror = fetch_upstream(upstream)
    fetch_fork(fork, mirror)
    now = fork.created_at
    update_fork_security(fork, mirror, now)
    # 10 tags match; upstream's 6 (same commits) and v1.1.0.windows.0, on upstream's own
    # commit, are not the fork's releases.
    releases = set(ForkRelease.objects.filter(fork=fork).values_list("tag", flat=True))
    assert releases == set(world["fork"]["own_tags"])

    hand = ForkRelease.objects.create(fork=fork, tag="v1.0.0", source="manual")
    fork.release_tag_pattern = "refs/tags/v*.windows.*, !refs/tags/*-rc*"
    fork.save()
    fetch_fork(fork, mirror)
    update_fork_security(fork, mirror, now + timedelta(hours=1))
    releases = set(ForkRelease.objects.filter(fork=fork).values_list("tag", flat=True))
    assert releases == {"v1.1.0.windows.1", "v1.1.1.windows.1", hand.tag}
