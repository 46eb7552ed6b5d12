"""Adding forks: hostile input is refused with nothing changed; credentials work and never
show (not in the database, the mirror's config, logs, errors or pages)."""

import logging
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.helpers import add_tag_upstream
from tests.support.git_https import GitHTTPSServer
from tracker.generator import build_world, standard_world
from tracker.git import GitError
from tracker.mirrors import fetch_upstream
from tracker.models import Fork, TrackedBranch, Upstream
from tracker.registry import register_upstream
from tracker.sync import snapshot_fork

SECRET = "hunter2-very-secret-token"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        standard_world(seed=21, main_commits=300, milestones=4, vulnerabilities=6),
        tmp_path_factory.mktemp("registry") / "world",
    )


@pytest.fixture
def upstream(world, settings, tmp_path):
    settings.GIT_LOCAL_ROOTS = [Path(world["path"])]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    return register_upstream("chromium", "Chromium", world["upstream"]["path"])


def _nothing_changed(settings):
    assert Fork.objects.count() == 0 and TrackedBranch.objects.count() == 0
    assert not Path(settings.MIRROR_DIR).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "--upload-pack=touch /tmp/pwned"], "may not start with '-'"),
        (["--url", "ext::sh -c touch% /tmp/pwned"], "remote helper"),
        (["--url", "file:///etc"], "outside the allowed roots"),
        (["--url", "/tmp"], "outside the allowed roots"),
        (["--url", "git://example.com/x.git"], "not allowed"),
        (["--url", "https://h.example/x.git", "--branch=-x=refs/heads/main"], "starts with '-'"),
        (["--url", "https://h.example/x.git", "--branch", "main=refs/heads/../../x"], "'..'"),
        (["--url", "https://h.example/x.git", "--release-tags=--tags"], "'--tags' is not allowed"),
        (
            ["--url", "https://h.example/x.git", "--kind=patch_series", "--version-file", "../x"],
            "pinned_version_file: path '../x' is not allowed: it leaves the repository",
        ),
        (
            ["--url", "https://h.example/x.git", "--version-file", "/etc/passwd"],
            "pinned_version_file: path '/etc/passwd' is not allowed: it is absolute",
        ),
        (
            ["--url", "https://h.example/x.git", "--patches-dir=-x"],
            "patches_dir: path '-x' is not allowed: it starts with '-'",
        ),
        (
            ["--url", "https://h.example/x.git", "--patches-dir", "patches/../../.ssh"],
            "patches_dir: path 'patches/../../.ssh' is not allowed: it leaves the repository",
        ),
    ],
)
def test_hostile_input_is_refused_and_nothing_changes(upstream, settings, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("add_fork", "evil", "--name", "Evil", *args)
    _nothing_changed(settings)


@pytest.mark.django_db
def test_add_fork_command_with_a_local_path(upstream, world, settings, capsys):
    acme = next(f for f in world["forks"] if f["slug"] == "acme")
    call_command(
        "add_fork",
        "acme",
        "--name",
        "Acme",
        "--url",
        acme["path"],
        "--branch",
        "main=refs/heads/main",
        "--release-tags",
        "refs/tags/v*",
        "--owner",
        "a@acme.example",
    )
    fork = Fork.objects.get(slug="acme")
    assert fork.owners == ["a@acme.example"] and fork.branches.count() == 1
    assert "fork acme:" in capsys.readouterr().out


@pytest.mark.django_db
def test_url_with_credentials_works_and_never_shows(
    upstream, world, settings, tmp_path, caplog, client, admin_user, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    acme = next(f for f in world["forks"] if f["slug"] == "acme")
    with GitHTTPSServer(Path(world["path"]), "bot", SECRET, tmp_path) as server:
        monkeypatch.setenv("GIT_SSL_CAINFO", str(server.cert))
        call_command(
            "add_fork",
            "acme",
            "--name",
            "Acme",
            "--url",
            server.url("forks/acme.git", "bot", SECRET),
            "--branch",
            "main=refs/heads/main",
            "--release-tags",
            "refs/tags/v*",
        )
        fork = Fork.objects.get(slug="acme")
        mirror = fetch_upstream(upstream)
        (snapshot,) = snapshot_fork(fork, mirror, now=fork.created_at)
        assert snapshot.tip_sha == acme["branches"][0]["tip"]  # it worked, through the server
        assert f"bot:{SECRET}" in server.seen_credentials

        # A wrong password fails with a message that does not show it either: at
        # registration, and at the sync of a fork registered without the check.
        wrong_url = server.url("forks/acme.git", "bot", "not-" + SECRET)
        with pytest.raises(CommandError, match="Authentication failed") as refused:
            call_command("add_fork", "wrong", "--name", "Wrong", "--url", wrong_url)
        assert not Fork.objects.filter(slug="wrong").exists()
        call_command("add_fork", "wrong", "--name", "Wrong", "--url", wrong_url, "--no-check")
        wrong = Fork.objects.get(slug="wrong")
        with pytest.raises(GitError) as failure:
            snapshot_fork(wrong, mirror, now=wrong.created_at)
        errors = str(refused.value) + str(failure.value) + failure.value.stderr

    stored = " ".join(str(v) for row in Fork.objects.values() for v in row.values())
    config = (mirror.path / "config").read_text()
    client.force_login(admin_user)
    pages = client.get(reverse("overview")).content.decode()
    pages += client.get(reverse("admin:tracker_fork_change", args=[fork.pk])).content.decode()
    for place, text in {
        "database": stored,
        "mirror config": config,
        "logs": caplog.text,
        "errors": errors,
        "pages": pages,
    }.items():
        assert SECRET not in text, place
    assert fork.git_url == server.url("forks/acme.git")
    assert "127.0.0.1" in pages and "fork-acme" in config


@pytest.mark.django_db
def test_upstream_command_refuses_hostile_url(settings, tmp_path):
    settings.GIT_LOCAL_ROOTS = [tmp_path]
    with pytest.raises(CommandError, match="may not start"):
        call_command("add_upstream", "x", "--name", "X", "--url=--upload-pack=evil")
    assert Upstream.objects.count() == 0


@pytest.mark.django_db
def test_upstream_command_refuses_a_version_file_outside_the_repository(settings, world):
    settings.GIT_LOCAL_ROOTS = [Path(world["path"])]
    url = world["upstream"]["path"]
    with pytest.raises(CommandError, match=r"version_file: path '\.\./VERSION' is not allowed"):
        call_command("add_upstream", "x", "--name", "X", "--url", url, "--version-file=../VERSION")
    assert Upstream.objects.count() == 0


@pytest.mark.django_db
def test_admin_splits_credentials_off_and_refuses_hostile_urls(upstream, client, admin_user):
    from tracker.secrets import decrypt_credentials

    client.force_login(admin_user)
    data = {
        "upstream": upstream.pk,
        "slug": "viaadmin",
        "name": "Via admin",
        "kind": "git",
        "git_url": f"https://bot:{SECRET}@git.example.com/acme.git",
        "release_tag_pattern": "",
        "pinned_version_file": "",
        "patches_dir": "",
        "owner_emails": "",
        "branches-TOTAL_FORMS": "1",
        "branches-INITIAL_FORMS": "0",
        "branches-0-name": "main",
        "branches-0-upstream_ref": "refs/heads/main",
        "skip_remote_check": "on",  # git.example.com is not there
    }
    response = client.post(reverse("admin:tracker_fork_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    fork = Fork.objects.get(slug="viaadmin")
    assert fork.git_url == "https://git.example.com/acme.git"
    assert decrypt_credentials(fork.git_credentials) == ("bot", SECRET)
    response = client.post(
        reverse("admin:tracker_fork_add"),
        {**data, "slug": "evil", "git_url": "--upload-pack=touch /tmp/x"},
    )
    assert response.status_code == 200 and "may not start with" in response.content.decode()
    assert not Fork.objects.filter(slug="evil").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("pinned_version_file", "../x", "it leaves the repository through &#x27;..&#x27;"),
        ("pinned_version_file", "/etc/passwd", "it is absolute"),
        ("patches_dir", "-x", "it starts with &#x27;-&#x27;"),
    ],
)
def test_admin_refuses_paths_outside_the_repository(
    upstream, client, admin_user, field, value, problem
):
    client.force_login(admin_user)
    data = {
        "upstream": upstream.pk,
        "slug": "series",
        "name": "Series",
        "kind": "patch_series",
        "git_url": "https://git.example.com/series.git",
        "release_tag_pattern": "",
        "pinned_version_file": "CHROMIUM_VERSION",
        "patches_dir": "patches",
        "owner_emails": "",
        "branches-TOTAL_FORMS": "0",
        "branches-INITIAL_FORMS": "0",
        "skip_remote_check": "on",
        field: value,
    }
    response = client.post(reverse("admin:tracker_fork_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field], errors
    assert problem in response.content.decode()
    assert not Fork.objects.exists()
    response = client.post(reverse("admin:tracker_fork_add"), {**data, field: "ok/path"})
    assert response.status_code == 302, response.content.decode()[:2000]


# --- what a real fork is: checked against its remotes at registration ------------------------


@pytest.fixture
def tool(settings, tmp_path):
    """The tag world (tests.helpers.build_tag_world) with its upstream registered."""
    from tests.helpers import build_tag_world

    world = build_tag_world(tmp_path / "world")
    settings.GIT_LOCAL_ROOTS = [tmp_path / "world"]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    add_tag_upstream(world)
    return world


def _add_fork(world, *args, slug="tool-win"):
    call_command(
        "add_fork",
        slug,
        "--name=Tool for Windows",
        "--upstream=tool",
        "--url",
        world["fork"]["path"],
        *args,
    )


@pytest.mark.django_db
def test_registration_shows_what_multi_star_patterns_and_exclusions_select(capsys, tool):
    out = capsys.readouterr().out
    assert "upstream tool: " in out
    assert "main ref refs/heads/master: 1 ref" in out
    assert "release branches refs/heads/release-*: 1 ref: refs/heads/release-2.0" in out
    assert (
        "tags refs/tags/v*, !refs/tags/*-rc*: 5 refs: refs/tags/v1.0.0, refs/tags/v1.1.0, "
        "refs/tags/v1.1.1, refs/tags/v1.2.0, refs/tags/v2.0.0" in out
    )
    _add_fork(
        tool,
        "--branch=main=refs/heads/master",
        "--branch=maint=refs/heads/maint",
        "--release-tags=refs/tags/v*.windows.*, !refs/tags/*-rc*",
    )
    out = capsys.readouterr().out
    assert "fork tool-win: " in out and "(2 branches: main, maint)" in out
    assert (
        "release tags refs/tags/v*.windows.*, !refs/tags/*-rc*: 2 refs: "
        "refs/tags/v1.1.0.windows.1, refs/tags/v1.1.1.windows.1; 1 more on upstream's own "
        "commits (upstream's tags), which are no fork releases" in out
    )
    assert Fork.objects.get(slug="tool-win").release_tag_pattern == (
        "refs/tags/v*.windows.*, !refs/tags/*-rc*"
    )
    # The broad pattern of the issue: the fork's own three, upstream's seven set apart.
    _add_fork(tool, "--branch=main=refs/heads/master", "--release-tags=refs/tags/v*")
    out = capsys.readouterr().out
    assert "release tags refs/tags/v*: 3 refs: refs/tags/v1.1.0-rc1.windows.1" in out
    assert "7 more on upstream's own commits" in out
    assert "(2 branches: main, maint)" in out  # maint is still tracked: not given is not removed


@pytest.mark.django_db
def test_a_branch_given_twice_is_refused(tool, admin_user, client):
    with pytest.raises(CommandError, match="branch 'main' is given twice"):
        _add_fork(tool, "--branch=main=refs/heads/master", "--branch=main=refs/heads/maint")
    assert not Fork.objects.exists()

    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    payload = {
        "slug": "tool-win",
        "name": "Tool for Windows",
        "upstream": "tool",
        "git_url": tool["fork"]["path"],
        "branches": [
            {"name": "main", "upstream_ref": "refs/heads/master"},
            {"name": "main", "upstream_ref": "refs/heads/maint"},
        ],
    }
    response = api.post("/api/forks/", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"branches": ["branch 'main' is given twice; give each branch once"]}

    client.force_login(admin_user)
    data = {
        "upstream": Upstream.objects.get(slug="tool").pk,
        "slug": "tool-win",
        "name": "Tool for Windows",
        "kind": "git",
        "git_url": tool["fork"]["path"],
        "branches-TOTAL_FORMS": "2",
        "branches-INITIAL_FORMS": "0",
        "branches-0-name": "main",
        "branches-0-upstream_ref": "refs/heads/master",
        "branches-1-name": "main",
        "branches-1-upstream_ref": "refs/heads/maint",
    }
    response = client.post(reverse("admin:tracker_fork_add"), data)
    assert response.status_code == 200 and "duplicate" in response.content.decode()
    assert not Fork.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("branch", "problem"),
    [
        ("main=refs/heads/nope", "branch 'main' follows refs/heads/nope is not on upstream"),
        ("main=refs/heads/master,refs/heads/nope", "follows refs/heads/nope is not on upstream"),
        ("nope=refs/heads/master", "branch 'nope': refs/heads/nope is not on"),
    ],
)
def test_a_ref_missing_on_its_remote_is_refused_at_registration(tool, branch, problem):
    with pytest.raises(CommandError, match=re.escape(problem)) as refused:
        _add_fork(tool, f"--branch={branch}")
    # The refs that are there are named, so a typo shows.
    assert "refs/heads/* there: refs/heads/" in str(refused.value)
    assert not Fork.objects.exists() and not TrackedBranch.objects.exists()


@pytest.mark.django_db
def test_an_upstream_main_ref_missing_is_refused(tool):
    with pytest.raises(
        CommandError,
        match=r"main_ref: refs/heads/main is not on .* \(refs/heads/\* there: refs/heads/maint, "
        r"refs/heads/master, refs/heads/release-2.0\)",
    ):
        call_command("add_upstream", "x", "--name=X", "--url", tool["upstream"]["path"])
    assert not Upstream.objects.filter(slug="x").exists()


@pytest.mark.django_db
def test_an_unreachable_remote_is_a_clear_error_and_no_check_registers_offline(
    tool, tmp_path, capsys
):
    gone = tmp_path / "world" / "gone.git"
    with pytest.raises(CommandError, match=r"cannot list the refs of .*gone\.git: .*skip it"):
        call_command("add_fork", "gone", "--name=Gone", "--upstream=tool", "--url", str(gone))
    assert not Fork.objects.exists()
    capsys.readouterr()
    call_command(
        "add_fork", "gone", "--name=Gone", "--upstream=tool", "--url", str(gone), "--no-check"
    )
    assert "remote not checked (--no-check)" in capsys.readouterr().out
    assert Fork.objects.filter(slug="gone").exists()


@pytest.mark.django_db
def test_one_fork_branch_follows_several_upstream_refs(tool, capsys):
    _add_fork(tool, "--branch=maint=refs/heads/maint,refs/heads/master")
    branch = TrackedBranch.objects.get(fork__slug="tool-win")
    assert branch.upstream_ref == "refs/heads/maint" and branch.also_follows == "refs/heads/master"
    assert branch.followed_refs == ("refs/heads/maint", "refs/heads/master")
    out = capsys.readouterr().out
    assert "(1 branch: maint)" in out
    assert "branch maint (refs/heads/maint) following refs/heads/maint, refs/heads/master" in out


@pytest.mark.django_db
def test_a_tracked_branch_is_removed_with_its_mirror_refs(
    tool, admin_user, client, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    from tracker.mirrors import Mirror, list_refs
    from tracker.sync import sync_fork

    _add_fork(
        tool,
        "--branch=main=refs/heads/master",
        "--branch=maint=refs/heads/maint",
        "--branch=refs/heads/main=refs/heads/master",
    )
    fork = Fork.objects.get(slug="tool-win")
    mirror = fetch_upstream(fork.upstream)
    sync_fork(fork, now=fork.created_at, fetch_upstream_first=False)
    refs = list_refs(mirror, "refs/forks/")
    assert {Mirror.fork_ref(fork, "main"), Mirror.fork_ref(fork, "maint")} <= set(refs)

    # The command keeps a branch with a lag history unless told.
    with pytest.raises(CommandError, match=r"has 1 snapshots .* run again with --yes"):
        call_command("remove_branch", "tool-win", "maint")
    with pytest.raises(CommandError, match=r"tracks no branch 'nope' \(it tracks: main, maint"):
        call_command("remove_branch", "tool-win", "nope")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("remove_branch", "tool-win", "maint", "--yes")
    assert list(fork.branches.values_list("name", flat=True)) == ["main", "refs/heads/main"]
    assert Mirror.fork_ref(fork, "maint") not in list_refs(mirror, "refs/forks/")

    # The API.
    api = APIClient()
    api.force_authenticate(admin_user)
    assert api.delete("/api/forks/tool-win/branches/nope/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/forks/tool-win/branches/refs/heads/main/")
    assert response.status_code == 204
    assert list(fork.branches.values_list("name", flat=True)) == ["main"]

    # The admin: a confirmation page that lists the snapshots, then the deletion.
    client.force_login(admin_user)
    main = fork.branches.get()
    url = reverse("admin:tracker_trackedbranch_delete", args=[main.pk])
    page = client.get(url).content.decode()
    assert "Branch snapshots: 1" in page
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, {"post": "yes"}).status_code == 302
    assert not fork.branches.exists()
    assert not list_refs(mirror, "refs/forks/tool-win/heads/")


@pytest.mark.django_db
def test_the_api_and_the_admin_check_the_remotes_too(tool, admin_user, client):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    payload = {
        "slug": "tool-win",
        "name": "Tool for Windows",
        "upstream": "tool",
        "git_url": tool["fork"]["path"],
        "branches": [{"name": "main", "upstream_ref": "refs/heads/nope"}],
    }
    response = api.post("/api/forks/", payload, format="json")
    assert response.status_code == 400
    assert "refs/heads/nope is not on upstream" in response.json()["branches"][0]
    response = api.post("/api/forks/", {**payload, "check": False}, format="json")
    assert response.status_code == 201 and "remote_check" not in response.json()
    Fork.objects.all().delete()

    client.force_login(admin_user)
    data = {
        "upstream": Upstream.objects.get(slug="tool").pk,
        "slug": "tool-win",
        "name": "Tool for Windows",
        "kind": "git",
        "git_url": tool["fork"]["path"],
        "release_tag_pattern": "refs/tags/v*.windows.*",
        "branches-TOTAL_FORMS": "1",
        "branches-INITIAL_FORMS": "0",
        "branches-0-name": "main",
        "branches-0-upstream_ref": "refs/heads/nope",
    }
    response = client.post(reverse("admin:tracker_fork_add"), data)
    assert response.status_code == 200
    assert "refs/heads/nope is not on upstream" in response.content.decode()
    assert not Fork.objects.exists()
    response = client.post(
        reverse("admin:tracker_fork_add"),
        {**data, "branches-0-upstream_ref": "refs/heads/master"},
        follow=True,
    )
    assert Fork.objects.filter(slug="tool-win").exists()
    shown = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("release tags refs/tags/v*.windows.*: 3 refs") for m in shown), shown


@pytest.mark.django_db
def test_the_upstream_admin_checks_the_main_ref(settings, tmp_path, admin_user, client):
    from tests.helpers import build_tag_world

    world = build_tag_world(tmp_path / "world")
    settings.GIT_LOCAL_ROOTS = [tmp_path / "world"]
    client.force_login(admin_user)
    data = {
        "slug": "tool",
        "name": "Tool",
        "git_url": world["upstream"]["path"],
        "main_ref": "refs/heads/main",
        "release_branch_pattern": "refs/heads/release-*",
        "tag_pattern": "refs/tags/v*, !refs/tags/*-rc*",
        "version_scheme": "tags",
        "version_file": "chrome/VERSION",
    }
    response = client.post(reverse("admin:tracker_upstream_add"), data)
    assert response.status_code == 200
    assert "refs/heads/main is not on" in response.content.decode()
    assert not Upstream.objects.exists()
    response = client.post(
        reverse("admin:tracker_upstream_add"),
        {**data, "main_ref": "refs/heads/master"},
        follow=True,
    )
    assert Upstream.objects.get().version_scheme == "tags"
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "tags refs/tags/v*, !refs/tags/*-rc*: 5 refs" in shown
