"""The JSON API's security data: vulnerabilities, the matrix as fix statuses, lookup, alerts."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.forksecurity_world import setup_world
from tracker.alerts.lifecycle import evaluate_alerts
from tracker.generator import build_world, standard_world
from tracker.models import Alert, FixStatus, Vulnerability

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(standard_world(seed=7), tmp_path_factory.mktemp("apisec") / "world")


@pytest.fixture
def api(world, settings, tmp_path, django_user_model):
    _upstream, _forks, now = setup_world(world, settings, tmp_path, slugs=("acme", "lumen"))
    evaluate_alerts(now)
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("reader"))
    return client


def test_vulnerabilities_with_bugs_and_filters(api, world):
    body = api.get("/api/vulnerabilities/?limit=500").json()
    assert body["count"] == Vulnerability.objects.count() == len(world["vulnerabilities"])
    one = body["results"][0]
    assert one["cve"].startswith("CVE-") and isinstance(one["bugs"], list)
    critical = api.get("/api/vulnerabilities/?severity=critical&limit=500").json()["results"]
    assert {v["severity"] for v in critical} <= {"critical"}
    detail = api.get(f"/api/vulnerabilities/{one['cve']}/").json()
    assert detail["cve"] == one["cve"]


def test_fix_statuses_are_the_matrix_with_evidence(api):
    status = FixStatus.objects.filter(release__isnull=False, status="backport").first()
    assert status is not None
    rows = api.get(
        f"/api/fix-statuses/?fork={status.fork.slug}&cve={status.vulnerability.cve}&limit=500"
    ).json()["results"]
    expected = FixStatus.objects.filter(fork=status.fork, vulnerability=status.vulnerability)
    assert len(rows) == expected.count()
    row = next(r for r in rows if r["release"] == status.release.tag)
    assert row["status"] == "backport" and row["evidence"] == status.evidence
    opened = api.get("/api/fix-statuses/?status=open&limit=1000").json()
    assert opened["count"] == FixStatus.objects.filter(status="open").count()


def _cells(rows):
    return [(r["fork"], r["cve"], r["release"], r["branch"], r["status"]) for r in rows]


def test_fix_statuses_by_cve_use_the_vulnerability_indexes(api, django_assert_num_queries):
    """?cve= resolves the CVE first and filters by vulnerability id, so the statuses come
    from the partial unique indexes (see FixStatus.objects.of_vulnerabilities); the rows,
    their order and the pages are those of the plain join."""
    cves = list(
        Vulnerability.objects.filter(fork_statuses__isnull=False)
        .order_by("cve")
        .values_list("cve", flat=True)
        .distinct()[:2]
    )
    assert len(cves) == 2
    for cve in cves:
        expected = FixStatus.objects.filter(vulnerability__cve=cve).order_by(
            "fork_id", "vulnerability__cve", "release_id", "branch_id"
        )
        cells = [
            (s.fork.slug, cve, s.release and s.release.tag, s.branch and s.branch.name, s.status)
            for s in expected.select_related("fork", "release", "branch")
        ]
        assert len(cells) > 4
        with django_assert_num_queries(3) as queries:  # the CVE, the count, the page
            body = api.get(f"/api/fix-statuses/?cve={cve}&limit=3&offset=2").json()
        assert body["count"] == len(cells) and _cells(body["results"]) == cells[2:5]
        counting = next(q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"])
        assert '"tracker_vulnerability"' not in counting  # by id, not through the join
        fork = cells[0][0]
        rows = api.get(f"/api/fix-statuses/?cve={cve}&fork={fork}&limit=500").json()["results"]
        assert _cells(rows) == [c for c in cells if c[0] == fork]


def test_fix_statuses_by_cve_in_any_case_and_unknown_cve_is_an_empty_page(api):
    cve = FixStatus.objects.select_related("vulnerability").first().vulnerability.cve
    upper = api.get(f"/api/fix-statuses/?cve={cve}").json()
    assert upper["count"] > 0
    assert api.get(f"/api/fix-statuses/?cve={cve.lower()}").json() == upper
    response = api.get("/api/fix-statuses/?cve=CVE-1999-0001")
    assert response.status_code == 200
    assert response.json()["count"] == 0 and response.json()["results"] == []


def test_lookup_answers_for_every_upstream(api):
    cve = Vulnerability.objects.order_by("cve").first().cve
    body = api.get(f"/api/lookup/?q={cve}").json()
    [result] = body["results"]
    assert result["kind"] == "cve" and result["vulnerabilities"][0]["cve"] == cve
    assert {hit["fork"] for hit in result["forks"]} == {"acme", "lumen"}
    assert api.get("/api/lookup/").status_code == 400


def test_alerts_listed_and_acknowledged(api):
    body = api.get("/api/alerts/?state=open").json()
    assert body["count"] == Alert.objects.filter(state="open").count() > 0
    first = body["results"][0]
    response = api.post(f"/api/alerts/{first['id']}/acknowledge/")
    assert response.status_code == 200 and response.json()["acknowledged_by"] == "reader"
    assert Alert.objects.get(pk=first["id"]).events.filter(kind="acknowledged").count() == 1


def test_schema_lists_the_new_endpoints(api):
    schema = api.get("/api/schema/").content.decode()
    for path in ("/api/vulnerabilities/", "/api/fix-statuses/", "/api/alerts/", "/api/lookup/"):
        assert path in schema
