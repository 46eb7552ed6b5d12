"""Page bodies cached until their data changes; the shell and CSRF tokens stay per request."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from tests.test_security_views import _fork, _vulnerabilities
from tracker.models import BranchSnapshot, FixStatus, FixTriage, Fork, TrackedBranch, Upstream
from tracker.pagecache import CSRF_SLOT, data_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    vulns = _vulnerabilities(upstream, 30)
    return upstream, vulns, [_fork(upstream, n, vulns) for n in (1, 2)]


@pytest.fixture
def user_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("reader", password="pw-rd-123"))
    return client


@pytest.fixture
def page_cache(settings):
    """The page cache on, with keys of this test's own: another test (or an earlier run on a
    fresh test database) can have the same ids, hence the same data versions."""
    settings.PAGE_CACHE_SECONDS = 60
    default = settings.CACHES["default"]
    prefix = f"{default.get('KEY_PREFIX', '')}-{uuid.uuid4().hex}"
    settings.CACHES = {**settings.CACHES, "default": {**default, "KEY_PREFIX": prefix}}


def _queries(client, url, django_assert_max_num_queries) -> tuple[int, str]:
    with django_assert_max_num_queries(50) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries), response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        lambda w: reverse("overview"),
        lambda w: reverse("fork", args=[w[2][0].slug]),
        lambda w: reverse("security") + f"?fork={w[2][0].slug}&severity=high",
        lambda w: reverse("cve", args=[w[1][0].cve]),
        lambda w: reverse("fork-trends", args=[w[2][0].slug]),
    ],
)
def test_a_second_view_is_served_from_the_cache_with_the_same_body(
    world, staff_client, page_cache, url, django_assert_max_num_queries
):
    url = url(world)
    cold, first = _queries(staff_client, url, django_assert_max_num_queries)
    warm, second = _queries(staff_client, url, django_assert_max_num_queries)
    # User and data version (the overview also lists the upstreams for sync progress).
    assert warm < cold and warm <= 3
    strip = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    assert strip.sub("", first) == strip.sub("", second)


def test_cve_pages_share_the_forks_branches_and_releases_and_read_one_data_version(
    world, staff_client, page_cache, django_assert_max_num_queries
):
    shared = ('FROM "tracker_fork"', 'FROM "tracker_trackedbranch"', 'FROM "tracker_forkrelease"')
    for n, vuln in enumerate(world[1][:2]):
        with django_assert_max_num_queries(50) as captured:
            body = staff_client.get(reverse("cve", args=[vuln.cve])).content.decode()
        queries = [q["sql"] for q in captured.captured_queries]
        assert sum("MAX(id)" in q for q in queries) == 1  # the body's, for the shared part too
        assert sum(table in q for q in queries for table in shared) == (3 if n == 0 else 0)
        assert body.count('<section class="fork"') == 2 and "release/125" in body


def test_new_data_shows_at_once(world, staff_client, page_cache):
    fork = world[2][0]
    branch = TrackedBranch.objects.filter(fork=fork).first()
    url = reverse("fork", args=[fork.slug])
    before = data_version()
    staff_client.get(url)
    latest = BranchSnapshot.objects.filter(branch=branch).latest("taken_at")
    latest.pk, latest.commits_behind = None, 987654
    latest.taken_at = latest.taken_at.replace(year=latest.taken_at.year + 1)
    latest.save()
    assert data_version() != before
    assert "987654" in staff_client.get(url).content.decode()


def test_cached_cve_page_carries_each_users_own_token_and_staff_only_forms(
    world,
    staff_client,
    user_client,
    page_cache,
    django_user_model,
):
    _upstream, vulns, forks = world
    url = reverse("cve", args=[vulns[0].cve])
    staff_page = staff_client.get(url).content.decode()
    assert 'class="triage"' in staff_page
    reader_page = user_client.get(url).content.decode()
    assert 'class="triage"' not in reader_page  # staff's cached body is not shown to others

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.get(username="staff"))
    page = strict.get(url).content.decode()  # from the cache: the staff body
    assert CSRF_SLOT not in page
    token = re.search(r'class="triage".*?name="csrfmiddlewaretoken" value="([^"]+)"', page, re.S)
    decision = {"fork": forks[0].slug, "decision": "will_not_fix", "reason": "EOL branch"}
    response = strict.post(
        reverse("cve-triage", args=[vulns[0].cve]),
        {**decision, "csrfmiddlewaretoken": token.group(1)},
    )
    assert response.status_code == 302
    assert FixTriage.objects.filter(vulnerability=vulns[0], fork=forks[0]).exists()
    # The triage is on the page at once (a new security snapshot changed the data version).
    after = strict.get(url).content.decode()
    assert "EOL branch" in after
    assert FixStatus.objects.filter(fork=forks[0], status="will_not_fix").exists()


@pytest.mark.parametrize(
    "url",
    [
        reverse("fork", args=["nope"]),
        reverse("fork-trends", args=["nope"]),
        reverse("fork-security-trends", args=["nope"]),
        reverse("security") + "?fork=nope",
        reverse("cve", args=["CVE-1999-0001"]),
    ],
)
def test_a_page_keyed_by_its_url_answers_404_for_unknown_names_every_time(
    world, staff_client, page_cache, url
):
    assert staff_client.get(url).status_code == 404
    assert staff_client.get(url).status_code == 404  # nothing was cached for it


def test_a_new_fork_with_a_cached_slug_shows_its_own_page(world, staff_client, page_cache):
    url = reverse("fork", args=["f3"])
    assert staff_client.get(url).status_code == 404
    _fork(world[0], 3, world[1])
    assert staff_client.get(url).status_code == 200  # the new fork changed the data version


@pytest.mark.django_db(transaction=True)
def test_data_version_is_prepared_on_the_connection_and_outlives_a_rollback_and_reconnect():
    from django.db import connection, transaction

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    first = data_version()
    for _ in range(5):  # psycopg prepares a query run more than prepare_threshold times
        data_version()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        assert any("MAX(id)" in statement for (statement,) in cursor.fetchall())
    with pytest.raises(RuntimeError), transaction.atomic():
        assert data_version() == first
        raise RuntimeError("roll back")
    assert data_version() == first
    connection.close()  # Django reconnects: the prepared statement went with the session
    assert data_version() == first
    upstream.forks.create(slug="acme", name="Acme", git_url="/y")
    assert data_version() != first


def test_an_expired_value_is_rebuilt_by_one_request_while_the_others_get_the_old_one(
    page_cache, monkeypatch
):
    from tracker import pagecache

    clock = [1000.0]
    monkeypatch.setattr(pagecache.time, "time", lambda: clock[0])
    builds = []

    def build() -> str:
        builds.append(clock[0])
        return f"built at {clock[0]}"

    assert pagecache.cached_value("t", ["x"], build) == "built at 1000.0"
    clock[0] += 59
    assert pagecache.cached_value("t", ["x"], build) == "built at 1000.0"
    assert builds == [1000.0]
    clock[0] += 2  # past PAGE_CACHE_SECONDS
    meanwhile = []

    def rebuild() -> str:
        # A request that arrives while this one rebuilds gets the old value at once.
        meanwhile.append(pagecache.cached_value("t", ["x"], build))
        return "rebuilt"

    assert pagecache.cached_value("t", ["x"], rebuild) == "rebuilt"
    assert meanwhile == ["built at 1000.0"] and builds == [1000.0]
    assert pagecache.cached_value("t", ["x"], build) == "rebuilt"  # fresh again
    clock[0] += 61  # expired again, nobody rebuilding: this request does
    assert pagecache.cached_value("t", ["x"], build) == f"built at {clock[0]}"


def test_a_change_the_admin_logs_shows_at_once(world, staff_client, page_cache, django_user_model):
    from django.contrib.admin.models import CHANGE, LogEntry

    fork = world[2][0]
    url = reverse("fork", args=[fork.slug])
    assert "Fork 1" in staff_client.get(url).content.decode()
    Fork.objects.filter(pk=fork.pk).update(name="Renamed fork")  # changes no other probe
    assert "Renamed fork" not in staff_client.get(url).content.decode()
    # What ModelAdmin.log_change records after saving the change form.
    staff = django_user_model.objects.get(username="staff")
    LogEntry.objects.log_actions(staff.pk, [fork], CHANGE, "Changed name.", single_object=True)
    assert "Renamed fork" in staff_client.get(url).content.decode()
