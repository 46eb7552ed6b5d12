"""Adding forks: hostile input is refused with nothing changed; credentials work and never
show (not in the database, the mirror's config, logs, errors or pages)."""

import logging
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

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

        # A wrong password fails with a message that does not show it either.
        call_command(
            "add_fork",
            "wrong",
            "--name",
            "Wrong",
            "--url",
            server.url("forks/acme.git", "bot", "not-" + SECRET),
        )
        wrong = Fork.objects.get(slug="wrong")
        with pytest.raises(GitError) as failure:
            snapshot_fork(wrong, mirror, now=wrong.created_at)
        errors = str(failure.value) + failure.value.stderr

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
