"""The JSON API: token and session auth, pagination, staff-only writes, checked input."""

import re
from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tracker.generator import build_world, standard_world
from tracker.models import Fork, TrackedBranch, Upstream
from tracker.secrets import decrypt_credentials


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        standard_world(seed=51, main_commits=200, milestones=4, vulnerabilities=4),
        tmp_path_factory.mktemp("api") / "world",
    )


@pytest.fixture
def upstream(db, world, settings):
    settings.GIT_LOCAL_ROOTS = [Path(world["path"])]
    return Upstream.objects.create(
        slug="chromium", name="Chromium", git_url=world["upstream"]["path"]
    )


def _client(user=None, token=False):
    client = APIClient()
    if user is not None and token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    elif user is not None:
        client.force_authenticate(user)
    return client


def _fork_payload(world, **overrides):
    acme = next(f for f in world["forks"] if f["slug"] == "acme")
    return {
        "slug": "acme",
        "name": "Acme",
        "kind": "git",
        "upstream": "chromium",
        "git_url": acme["path"],
        "release_tag_pattern": "refs/tags/v*",
        "branches": [{"name": "main", "upstream_ref": "refs/heads/main"}],
        **overrides,
    }


@pytest.mark.django_db
def test_token_auth_reads_paginated_lists(upstream, django_user_model):
    reader = django_user_model.objects.create_user("reader", password="pw-reader-123")
    response = _client(reader, token=True).get("/api/upstreams/")
    assert response.status_code == 200
    assert response.json()["count"] == 1 and response.json()["results"][0]["slug"] == "chromium"
    assert APIClient().get("/api/upstreams/").status_code in (401, 403)
    assert _client(reader).get("/api/schema/").status_code == 200


@pytest.mark.django_db
def test_only_staff_register_forks(upstream, world, django_user_model, admin_user):
    reader = django_user_model.objects.create_user("reader", password="pw-reader-123")
    assert (
        _client(reader).post("/api/forks/", _fork_payload(world), format="json").status_code == 403
    )
    response = _client(admin_user).post("/api/forks/", _fork_payload(world), format="json")
    assert response.status_code == 201, response.json()
    assert TrackedBranch.objects.get(fork__slug="acme").upstream_ref == "refs/heads/main"
    listed = _client(reader).get("/api/forks/acme/").json()
    assert listed["branches"] == [
        {"name": "main", "upstream_ref": "refs/heads/main", "also_follows": ""}
    ]
    assert "remote_check" not in listed and "check" not in listed
    assert "release tags refs/tags/v*: " in " ".join(response.json()["remote_check"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"git_url": "--upload-pack=touch /tmp/x"}, "git_url"),
        ({"git_url": "ext::sh -c true"}, "git_url"),
        ({"branches": [{"name": "-x", "upstream_ref": "refs/heads/main"}]}, "name"),
        ({"branches": [{"name": "main", "upstream_ref": "refs/heads/../x"}]}, "upstream_ref"),
        ({"pinned_version_file": "../x"}, "pinned_version_file"),
        ({"pinned_version_file": "/etc/passwd"}, "pinned_version_file"),
        ({"patches_dir": "-x"}, "patches_dir"),
    ],
)
def test_hostile_fork_input_is_refused_and_nothing_written(
    upstream, world, admin_user, overrides, field
):
    response = _client(admin_user).post(
        "/api/forks/", _fork_payload(world, **overrides), format="json"
    )
    assert response.status_code == 400
    assert field in str(response.json())
    assert Fork.objects.count() == 0 and TrackedBranch.objects.count() == 0


@pytest.mark.django_db
def test_a_pinned_version_file_outside_the_repository_is_refused_saying_why(
    upstream, world, admin_user
):
    payload = _fork_payload(world, kind="patch_series", pinned_version_file="../x")
    response = _client(admin_user).post("/api/forks/", payload, format="json")
    assert response.status_code == 400
    (message,) = response.json()["pinned_version_file"]
    assert message.startswith("path '../x' is not allowed: it leaves the repository through '..'")
    assert not Fork.objects.exists()


@pytest.mark.django_db
def test_credentials_in_the_url_are_split_off_and_never_returned(upstream, world, admin_user):
    payload = _fork_payload(
        world, git_url="https://bot:s3cret-tok@git.example.com/acme.git", check=False
    )
    response = _client(admin_user).post("/api/forks/", payload, format="json")
    assert response.status_code == 201
    assert "s3cret" not in response.content.decode()
    fork = Fork.objects.get(slug="acme")
    assert fork.git_url == "https://git.example.com/acme.git"
    assert decrypt_credentials(fork.git_credentials) == ("bot", "s3cret-tok")
    assert "s3cret" not in _client(admin_user).get("/api/forks/").content.decode()


@pytest.mark.django_db
def test_sync_action_queues_a_sync_after_commit(
    upstream, world, admin_user, monkeypatch, django_capture_on_commit_callbacks
):
    from tracker.tasks import sync_fork_task

    _client(admin_user).post("/api/forks/", _fork_payload(world), format="json")
    queued = []
    monkeypatch.setattr(sync_fork_task, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(admin_user).post("/api/forks/acme/sync/")
    assert response.status_code == 202
    assert queued == [Fork.objects.get(slug="acme").pk]


@pytest.mark.django_db
def test_staff_register_a_release_with_its_ship_time(
    upstream, world, admin_user, django_user_model
):
    _client(admin_user).post("/api/forks/", _fork_payload(world), format="json")
    reader = django_user_model.objects.create_user("reader", password="pw-reader-123")
    payload = {"fork": "acme", "tag": "v9.0.0", "shipped_at_override": "2026-05-30T12:00:00Z"}
    assert _client(reader).post("/api/releases/", payload, format="json").status_code == 403
    created = _client(admin_user).post("/api/releases/", payload, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["source"] == "manual"
    assert created.json()["shipped_at"].startswith("2026-05-30T12:00:00")
    listed = _client(reader).get("/api/releases/?fork=acme").json()
    assert [r["tag"] for r in listed["results"]] == ["v9.0.0"]
    for bad in ({"tag": "-x"}, {"tag": "a..b"}, {"sha": "not-a-sha"}):
        response = _client(admin_user).post("/api/releases/", {**payload, **bad}, format="json")
        assert response.status_code == 400, bad


@pytest.mark.django_db
def test_swagger_ui_is_for_logged_in_users_and_served_from_vendored_files(
    client, django_user_model
):
    docs = reverse("api-docs")
    anonymous = client.get(docs)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"{reverse('login')}?next={docs}"
    client.force_login(django_user_model.objects.create_user("reader", password="pw-rd-123"))
    page = client.get(docs)
    html = page.content.decode()
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert reverse("api-schema") in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    assert all(s.startswith("/") and not s.startswith("//") for s in sources)  # nothing remote
    for source in sources:
        assert client.get(source).status_code == 200, source  # whitenoise serves each
    schema = client.get(reverse("api-schema"))  # the schema itself, as before
    assert schema.status_code == 200 and schema.content.startswith(b"openapi:")
