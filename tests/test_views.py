import pytest
from django.urls import reverse

from tracker.models import Fork, TrackedBranch, Upstream


@pytest.mark.django_db
def test_overview_requires_login(client):
    response = client.get(reverse("overview"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_overview_lists_forks_branches_and_upstream_from_the_database(staff_client):
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = Fork.objects.create(
        upstream=upstream, slug="acme", name="Acme <b>Browser</b>", git_url="/y"
    )
    TrackedBranch.objects.create(
        fork=fork, name="release/125", upstream_ref="refs/branch-heads/6422"
    )
    response = staff_client.get(reverse("overview"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Acme &lt;b&gt;Browser&lt;/b&gt;" in body
    assert "release/125" in body and "refs/branch-heads/6422" in body
    assert "Chromium" in body


@pytest.mark.django_db
def test_healthz_needs_no_login(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
