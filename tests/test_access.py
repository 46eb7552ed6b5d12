"""Every page and API endpoint refuses anonymous requests, except log-in and /healthz."""

import pytest

from tests.helpers import concrete_url, url_routes

PUBLIC = {"login", "logout", "admin:login", "admin:logout", "healthz"}
SAMPLE_KWARGS = {
    "format": "json",
    "slug": "acme",
    "branch": "release/125",
    "pk": "1",
    "object_id": "1",
    "app_label": "tracker",
    "model_name": "fork",
    "url": "x",
    "path": "x",
    "cve": "CVE-2026-1000",
}


def _refused(response) -> bool:
    return response.status_code in (401, 403) or (
        response.status_code == 302 and "login" in response["Location"]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_requests_to_every_url_are_refused(client, method):
    routes = [(r, n) for r, n in url_routes() if n not in PUBLIC]
    assert len(routes) > 10  # the walk found the project's pages and the admin's
    names = {n for _r, n in routes}
    assert {"security", "security-csv", "cve", "cve-triage", "lookup", "sync"} <= names
    for route, name in routes:
        url = concrete_url(route, SAMPLE_KWARGS)
        response = getattr(client, method)(url)
        # A POST to a read-only endpoint may be turned away before authentication.
        not_allowed = method == "post" and response.status_code == 405
        assert _refused(response) or not_allowed, (
            f"{name} {url} answered {response.status_code} to an anonymous {method.upper()}"
        )


@pytest.mark.django_db
def test_public_pages_answer_anonymously(client):
    assert client.get("/login/").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)
