"""Every URL answers HEAD as it answers GET, without a body: pages, feeds, /healthz, /metrics,
the API and the admin (a page that only allows GET answers HEAD with 405 and fails here)."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.helpers import concrete_url, url_routes
from tests.test_security_views import _fork, _vulnerabilities
from tracker.alerts import rules
from tracker.alerts.lifecycle import reconcile
from tracker.models import Alert, Upstream

pytestmark = pytest.mark.django_db

# Pages that must really be found (200) with the world below, so that the comparison is not
# between two 404s; the others (API details, the admin) need only answer HEAD as GET.
PAGES = {
    "login",
    "overview",
    "healthz",
    "metrics",
    "sync",
    "security",
    "security-csv",
    "cve",
    "lookup",
    "fork",
    "fork-trends",
    "fork-security-trends",
    "branch",
    "alerts",
    "alert",
    "alert-feed",
    "api-root",
    "api-schema",
    "api-docs",
    "admin:index",
    "admin:tracker_fork_changelist",
    "admin:tracker_fork_change",
}
# Django's own deviations, left alone: the admin's log-in page sends a logged-in user to the
# admin's index on GET only (django.contrib.admin.sites.AdminSite.login); HEAD gets the form.
DIFFERENT = {"admin:login"}
QUERIES = {"security": "?fork=f1", "security-csv": "?fork=f1", "lookup": "?q=CVE-2026-1000"}


@pytest.fixture
def world():
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = _fork(upstream, 1, _vulnerabilities(upstream, 3))
    condition = rules.Condition("lag:f1:main", "rebase_lag", "normal", "f1", "f1:main behind")
    reconcile([condition], timezone.now())
    alert = Alert.objects.get(key="lag:f1:main")
    return {
        "slug": fork.slug,
        "branch": "release/125",
        "cve": "CVE-2026-1000",
        "pk": str(alert.pk),
        "token": fork.alert_feed_token,
        "object_id": str(fork.pk),
        "format": "json",
        "app_label": "tracker",
    }


def test_every_url_answers_head_as_get_with_an_empty_body(admin_client, world):
    statuses = {}
    for route, name in url_routes():
        url = concrete_url(route, world) + QUERIES.get(name, "")
        get = admin_client.get(url)
        head = admin_client.head(url)
        if name in DIFFERENT:
            continue
        assert head.status_code == get.status_code, (
            f"{name} {url}: GET {get.status_code}, HEAD {head.status_code}"
        )
        assert b"".join(head) == b"", f"{name} {url}: HEAD answered with a body"
        statuses.setdefault(name, get.status_code)
    missing = {name: statuses.get(name) for name in PAGES if statuses.get(name) != 200}
    assert missing == {}


def test_head_fills_and_reads_the_page_cache_like_get(admin_client, world, settings):
    settings.PAGE_CACHE_SECONDS = 60
    default = settings.CACHES["default"]
    prefix = f"{default.get('KEY_PREFIX', '')}-{uuid.uuid4().hex}"
    settings.CACHES = {**settings.CACHES, "default": {**default, "KEY_PREFIX": prefix}}
    url = reverse("fork", args=["f1"])
    first = admin_client.head(url)  # builds the body and caches it
    assert first.status_code == 200 and first.content == b""
    page = admin_client.get(url)
    assert page.status_code == 200 and "release/125" in page.content.decode()
    assert admin_client.head(url)["Content-Length"] == page["Content-Length"]
