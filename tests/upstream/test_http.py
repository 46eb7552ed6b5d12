import pytest
import requests

from tests.helpers import SAMPLES
from tests.upstream.recorded import recorded_session
from tracker.upstream.http import (
    NOT_MODIFIED,
    MemoryValidatorCache,
    RetryPolicy,
    SourceError,
    Validators,
    build_url,
    default_session,
    fetch_json,
    fetch_text,
    user_agent,
)

URL = "https://dash.test/fetch_version"


def test_fetch_json_decodes_the_body_and_identifies_itself():
    rec = recorded_session()
    rec.transport.add_file(URL, "dash/fetch_version.113.0.5672.127.http")

    data = fetch_json(rec.session, URL, {"version": "113.0.5672.127"})

    assert data["milestone"] == 113
    request = rec.transport.requests[0]
    assert request.headers["User-Agent"] == "forkhealth/0.1 (+https://forkhealth.test)"
    assert request.headers["Accept"] == "application/json"
    assert rec.transport.query(0) == {"version": "113.0.5672.127"}
    assert rec.transport.timeouts == [7]
    assert rec.sleeps == []


def test_user_agent_names_the_product_and_the_site():
    assert user_agent("https://fh.example.org") == "forkhealth/0.1 (+https://fh.example.org)"


def test_build_url_encodes_spaces_as_percent_20_and_skips_none():
    url = build_url("https://vh.test/v1/x", {"order_by": "starttime desc", "filter": None})

    assert url == "https://vh.test/v1/x?order_by=starttime%20desc"


def test_malformed_json_is_a_permanent_source_error():
    rec = recorded_session()
    rec.transport.add_file(URL, "errors/malformed.json.http")

    with pytest.raises(SourceError, match="malformed JSON") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is False
    assert len(rec.transport.requests) == 1


def test_html_error_page_served_with_200_is_a_transient_source_error():
    rec = recorded_session()
    rec.transport.add_file(URL, "errors/html-error-page.200.http")

    with pytest.raises(SourceError, match="HTML page") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is True
    assert caught.value.status == 200


def test_html_body_labelled_as_json_is_still_an_error_page():
    rec = recorded_session()
    rec.transport.add(
        URL, headers={"Content-Type": "application/json"}, body="<html><p>Quota</p></html>"
    )

    with pytest.raises(SourceError, match="HTML page"):
        fetch_json(rec.session, URL)


def test_body_cut_short_of_its_content_length_is_retried():
    rec = recorded_session()
    rec.transport.add_file(URL, "errors/truncated.content-length.http")
    rec.transport.add_file(URL, "dash/fetch_version.113.0.5672.127.http")

    data = fetch_json(rec.session, URL)

    assert data["v8_version"] == "11.3.244.11"
    assert rec.sleeps == [2.0]


def test_body_always_cut_short_gives_up_as_transient():
    rec = recorded_session(attempts=2)
    for _ in range(2):
        rec.transport.add_file(URL, "errors/truncated.content-length.http")

    with pytest.raises(SourceError, match="truncated body") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is True
    assert len(rec.transport.requests) == 2


def test_truncated_json_without_content_length_is_transient():
    rec = recorded_session()
    rec.transport.add_file(URL, "errors/truncated.no-content-length.http")

    with pytest.raises(SourceError, match="truncated JSON") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is True


def test_429_is_retried_after_the_delay_the_server_asked_for():
    rec = recorded_session()
    rec.transport.add_file(URL, "errors/429.retry-after.http")
    rec.transport.add_file(URL, "dash/fetch_version.113.0.5672.127.http")

    data = fetch_json(rec.session, URL)

    assert data["milestone"] == 113
    assert rec.sleeps == [7.0]
    assert len(rec.transport.requests) == 2


def test_retry_after_longer_than_the_cap_gives_up_at_once():
    rec = recorded_session(retry_after_max=5)
    rec.transport.add_file(URL, "errors/429.retry-after.http")

    with pytest.raises(SourceError) as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is True
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0
    assert rec.sleeps == []


def test_500s_until_retries_are_exhausted_is_a_transient_source_error():
    rec = recorded_session(attempts=4)
    for _ in range(4):
        rec.transport.add_file(URL, "errors/500.http")

    with pytest.raises(SourceError, match="HTTP 500; gave up after 4 attempts") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is True
    assert caught.value.status == 500
    assert rec.sleeps == [2.0, 4.0, 8.0]
    assert rec.transport.pending == []


def test_read_timeout_then_success():
    rec = recorded_session()
    rec.transport.add_error(URL, requests.exceptions.ReadTimeout)
    rec.transport.add_file(URL, "dash/fetch_version.113.0.5672.127.http")

    data = fetch_json(rec.session, URL)

    assert data["milestone"] == 113
    assert rec.sleeps == [2.0]


def test_connection_errors_are_retried_and_reported_when_they_persist():
    rec = recorded_session(attempts=3)
    for _ in range(3):
        rec.transport.add_error(URL, requests.exceptions.ConnectionError)

    with pytest.raises(SourceError, match="ConnectionError") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is True
    assert rec.sleeps == [2.0, 4.0]


def test_tls_errors_are_not_retried():
    rec = recorded_session()
    rec.transport.add_error(URL, requests.exceptions.SSLError)

    with pytest.raises(SourceError, match="TLS") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is False
    assert rec.sleeps == []


def test_404_is_permanent_and_not_retried():
    rec = recorded_session()
    rec.transport.add_file(URL, "errors/404.http")

    with pytest.raises(SourceError, match="HTTP 404") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is False
    assert caught.value.status == 404
    assert len(rec.transport.requests) == 1
    assert rec.sleeps == []


def test_conditional_request_sends_validators_and_reports_304_as_not_modified():
    rec = recorded_session()
    url = "https://dash.test/fetch_milestones"
    rec.transport.add_file(url, "dash/fetch_milestones.http")
    rec.transport.add_file(url, "errors/304.http")
    cache = MemoryValidatorCache()

    first = fetch_json(rec.session, url, validators=cache)
    second = fetch_json(rec.session, url, validators=cache)

    assert isinstance(first, list)
    assert second is NOT_MODIFIED
    assert "If-None-Match" not in rec.transport.requests[0].headers
    assert rec.transport.requests[1].headers["If-None-Match"] == '"milestones-v1"'
    assert cache.get(url) == Validators(etag='"milestones-v1"')


def test_last_modified_is_sent_back_as_if_modified_since():
    rec = recorded_session()
    cache = MemoryValidatorCache({URL: Validators(last_modified="Wed, 21 Oct 2015 07:28:00 GMT")})
    rec.transport.add_file(URL, "errors/304.http")

    assert fetch_json(rec.session, URL, validators=cache) is NOT_MODIFIED
    assert rec.transport.requests[0].headers["If-Modified-Since"] == (
        "Wed, 21 Oct 2015 07:28:00 GMT"
    )


def test_validators_of_a_broken_body_are_not_remembered():
    rec = recorded_session()
    rec.transport.add(
        URL, headers={"Content-Type": "application/json", "ETag": '"bad"'}, body="{oops"
    )
    cache = MemoryValidatorCache()

    with pytest.raises(SourceError):
        fetch_json(rec.session, URL, validators=cache)

    assert cache.get(URL) is None


def test_304_to_an_unconditional_request_is_an_error():
    rec = recorded_session()
    rec.transport.add_file(URL, "errors/304.http")

    with pytest.raises(SourceError, match="304") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is False


def test_unexpected_content_type_is_a_permanent_error():
    rec = recorded_session()
    rec.transport.add(URL, headers={"Content-Type": "image/png"}, body=b"\x89PNG")

    with pytest.raises(SourceError, match="image/png") as caught:
        fetch_json(rec.session, URL)

    assert caught.value.transient is False


def test_oversized_body_is_refused():
    rec = recorded_session()
    rec.session.max_body_bytes = 100
    rec.transport.add_file(URL, "dash/fetch_version.113.0.5672.127.http")

    with pytest.raises(SourceError, match="limit"):
        fetch_json(rec.session, URL)


def test_strip_xssi_reads_gitiles_json():
    rec = recorded_session()
    body = (SAMPLES / "gitiles-log.name-status.infra-repo.2017.json.txt").read_bytes()
    rec.transport.add(URL, headers={"Content-Type": "application/json"}, body=body)

    data = fetch_json(rec.session, URL, strip_xssi=True)

    assert data["log"][0]["commit"] == "8983b2db201b133c57c9e3f57d02f0ec6a7f2871"


def test_fetch_text_decodes_with_the_declared_charset():
    rec = recorded_session()
    rec.transport.add(
        URL,
        headers={"Content-Type": "text/plain; charset=ISO-8859-1"},
        body="Beno\u00eet".encode("latin-1"),
    )

    assert fetch_text(rec.session, URL) == "Beno\u00eet"


def test_fetch_text_refuses_other_content_types():
    rec = recorded_session()
    rec.transport.add_file(URL, "dash/fetch_version.113.0.5672.127.http")

    with pytest.raises(SourceError, match="Content-Type application/json"):
        fetch_text(rec.session, URL, content_types=("text/plain",))


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter():
    policy = RetryPolicy(backoff=2, backoff_max=10, jitter=0.25)

    assert [policy.delay(n, lambda: 0.5) for n in (1, 2, 3, 4)] == [2, 4, 8, 10]
    assert policy.delay(1, lambda: 0.0) == 1.5
    assert policy.delay(1, lambda: 1.0) == 2.5


def test_default_session_is_configured_from_settings(settings):
    settings.SITE_URL = "https://fh.example.org"
    settings.UPSTREAM_HTTP_TIMEOUT = 12

    session = default_session()

    assert session.headers["User-Agent"] == "forkhealth/0.1 (+https://fh.example.org)"
    assert session.timeout == 12
