"""Version schemes: an upstream versioned by its vX.Y.Z tags (as git is) gets base versions
and versions behind from its tags, and no milestones; on real repositories (the tag world)."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.helpers import add_tag_upstream, build_tag_world
from tracker.mirrors import fetch_upstream
from tracker.models import BranchSnapshot, Fork, ForkRelease
from tracker.refpatterns import RefPatterns
from tracker.sync import sync_fork
from tracker.versions import TagVersion
from tracker.versionschemes import ChromiumScheme, TagScheme, chrome_rules, scheme_for


@pytest.fixture
def synced(settings, tmp_path):
    world = build_tag_world(tmp_path / "world")
    settings.GIT_LOCAL_ROOTS = [tmp_path / "world"]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    settings.GIT_CLONE_FILTER = ""
    add_tag_upstream(world)
    call_command(
        "add_fork",
        "tool-win",
        "--name=Tool for Windows",
        "--upstream=tool",
        "--url",
        world["fork"]["path"],
        "--branch=main=refs/heads/master",
        "--branch=maint=refs/heads/maint,refs/heads/master",
        "--release-tags=refs/tags/v*.windows.*, !refs/tags/*-rc*",
    )
    fork = Fork.objects.get(slug="tool-win")
    sync_fork(fork, now=fork.created_at)
    return world, fork


@pytest.mark.django_db
def test_a_branch_has_the_newest_release_tag_it_contains_and_no_milestones(synced):
    world, fork = synced
    snapshots = {s.branch.name: s for s in BranchSnapshot.objects.filter(branch__fork=fork)}
    main, maint = snapshots["main"], snapshots["maint"]
    # main is u3 (v1.1.0) + 2 fork commits; master went on to v1.2.0, v2.0.0-rc1 (excluded by
    # the tag pattern) and v2.0.0, 7 commits in all.
    assert main.base_sha == world["upstream"]["master"][2]
    assert (main.base_version, main.base_major) == ("v1.1.0", None)
    assert (main.commits_behind, main.versions_behind, main.milestones_behind) == (7, 2, None)
    assert main.milestones_behind_at_tip is None
    assert main.other_refs_behind == {}
    # maint follows upstream maint (v1.1.1, nothing newer) and, beside it, master.
    assert (maint.base_version, maint.versions_behind, maint.commits_behind) == ("v1.1.1", 0, 0)
    assert maint.other_refs_behind == {"refs/heads/master": 7}
    releases = dict(ForkRelease.objects.filter(fork=fork).values_list("tag", "base_version"))
    assert releases == {"v1.1.0.windows.1": "v1.1.0", "v1.1.1.windows.1": "v1.1.1"}


@pytest.mark.django_db
def test_pages_show_versions_behind_and_never_milestones_for_a_tag_versioned_upstream(
    synced, admin_client
):
    _world, fork = synced
    for url in (reverse("overview"), reverse("fork", args=[fork.slug])):
        page = admin_client.get(url).content.decode()
        assert "Versions behind" in page and "Milestones behind" not in page, url
        assert "v1.1.0" in page and "upstream Stable" not in page, url
    page = admin_client.get(reverse("branch", args=[fork.slug, "maint"])).content.decode()
    assert "milestones" not in page.lower()
    assert "0 versions (release tags)" in page
    assert "also follows <code>refs/heads/master</code>: 7 commits behind" in page


@pytest.mark.django_db
def test_the_scheme_reads_release_tags_by_ancestry(synced, settings):
    world, fork = synced
    mirror = fetch_upstream(fork.upstream)
    up = world["upstream"]
    scheme = scheme_for(fork.upstream)
    assert isinstance(scheme, TagScheme) and not chrome_rules(fork.upstream)
    assert scheme.version_at(mirror.path, up["master"][0]) == TagVersion("v1.0.0")
    assert scheme.version_at(mirror.path, up["master"][7]) == TagVersion("v1.2.0")  # not rc1
    assert scheme.version_at(mirror.path, up["release"]) == TagVersion("v2.0.0")
    # The mirror holds the tags the upstream's pattern selects; a narrower scheme reads fewer.
    ones = TagScheme(RefPatterns.parse("refs/tags/v1.*"))
    assert ones.version_at(mirror.path, up["release"]) == TagVersion("v1.2.0")
    assert ones.versions_between(mirror.path, up["master"][2], up["master"][9]) == 1
    assert scheme.versions_between(mirror.path, up["master"][2], up["master"][9]) == 2
    assert isinstance(scheme_for(type("U", (), {"version_scheme": "chromium"})), ChromiumScheme)


@pytest.mark.django_db
def test_chrome_rules_stay_silent_for_an_upstream_without_chromium_versions(synced):
    from datetime import timedelta

    from tracker.alerts.lifecycle import evaluate_alerts
    from tracker.models import Alert

    _world, fork = synced
    evaluate_alerts(fork.created_at + timedelta(hours=1))
    alerts = {a.kind: a for a in Alert.objects.filter(fork=fork)}
    # Releases based on tags from January would be "too old for key pinning", and the maint
    # release branch's "milestone" unsupported, were the upstream Chromium.
    assert "base_too_old" not in alerts and "milestone_unsupported" not in alerts
    lag = alerts["rebase_lag"]
    assert "milestone" not in lag.summary and lag.summary.endswith("(limit 7 days)")
