import contextlib
import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import SAMPLES
from tests.upstream.recorded import json_like, mutations_of, recorded_session
from tracker.upstream import UpstreamFormatError
from tracker.upstream.http import SourceError
from tracker.upstream.versionhistory import (
    default_base_url,
    iter_releases,
    iter_versions,
    next_page_token,
    parse_releases_page,
    parse_versions_page,
)

BASE = "https://vh.test/v1"
RELEASES_URL = f"{BASE}/chrome/platforms/win/channels/stable/versions/all/releases"
VERSIONS_URL = f"{BASE}/chrome/platforms/win/channels/stable/versions"


def _sample(name):
    return json.loads((SAMPLES / name).read_text())


RELEASES_SAMPLE = _sample(
    "versionhistory-releases.win-stable-131.0.6778.205.chromium-unittest.json"
)
RELEASE_ELEMENT = _sample("versionhistory-release.element.linux-stable-120.0.6099.71.json")
VERSIONS_SAMPLE = _sample("versionhistory-versions.win-stable.pageSize1.json")


def test_parse_releases_page_reads_the_real_release():
    page = parse_releases_page(RELEASES_SAMPLE)

    assert page.rejected == []
    assert page.has_more is False
    [release] = page.items
    assert release.name == (
        "chrome/platforms/win/channels/stable/versions/131.0.6778.205/releases/1736364451"
    )
    assert (release.product, release.platform, release.channel) == ("chrome", "win", "stable")
    assert release.release_id == "1736364451"
    assert release.version == "131.0.6778.205"
    assert (release.major, release.minor, release.build, release.patch) == (131, 0, 6778, 205)
    assert release.start_time == datetime(2025, 1, 8, 19, 27, 31, 216008, tzinfo=UTC)
    assert release.end_time == datetime(2025, 1, 9, 21, 1, 31, 167025, tzinfo=UTC)
    assert release.fraction == 0.4975
    assert release.fraction_group == 144
    assert release.pinnable is False


def test_a_release_still_served_has_no_end_time_and_unknown_pinnability():
    [release] = parse_releases_page({"releases": [RELEASE_ELEMENT]}).items

    assert release.platform == "linux"
    assert release.start_time == datetime(2023, 12, 6, 21, 1, tzinfo=UTC)
    assert release.end_time is None
    assert release.fraction == 1.0
    assert release.fraction_group == 1
    assert release.pinnable is None


def test_missing_fraction_defaults_to_one():
    element = {key: value for key, value in RELEASE_ELEMENT.items() if key != "fraction"}

    [release] = parse_releases_page({"releases": [element]}).items

    assert release.fraction == 1.0


def test_nanosecond_timestamps_are_truncated_to_microseconds():
    element = {**RELEASE_ELEMENT, "serving": {"startTime": "2023-12-06T21:01:00.123456789Z"}}

    [release] = parse_releases_page({"releases": [element]}).items

    assert release.start_time.microsecond == 123456


def test_bad_releases_are_rejected_with_a_reason():
    page = parse_releases_page(
        {
            "releases": [
                {**RELEASE_ELEMENT, "version": "unknown_version"},
                {**RELEASE_ELEMENT, "serving": {"startTime": "2023-12-06 21:01"}},
                {**RELEASE_ELEMENT, "fraction": 1.5},
                {**RELEASE_ELEMENT, "fraction": 10**400},
                {**RELEASE_ELEMENT, "name": "chrome/platforms/linux"},
                RELEASE_ELEMENT,
            ]
        }
    )

    assert len(page.items) == 1
    assert [r.index for r in page.rejected] == [0, 1, 2, 3, 4]
    assert "differs from the one in name" in page.rejected[0].reason
    assert "RFC 3339" in page.rejected[1].reason
    assert "between 0 and 1" in page.rejected[2].reason
    assert "between 0 and 1" in page.rejected[3].reason


def test_parse_versions_page_ignores_unknown_versions_and_duplicates():
    base = "chrome/platforms/win/channels/stable/versions/"
    data = {
        "versions": [
            {"name": base + "119.0.6045.160", "version": "119.0.6045.160"},
            {"name": base + "unknown_version", "version": "unknown_version"},
            {"name": base + "119.0.6045.160", "version": "119.0.6045.160"},
        ]
    }

    page = parse_versions_page(data)

    assert [v.version for v in page.items] == ["119.0.6045.160"]
    assert len(page.rejected) == 1
    assert "MAJOR.MINOR.BUILD.PATCH" in page.rejected[0].reason


def test_next_page_token_is_none_when_absent_or_empty():
    assert next_page_token(VERSIONS_SAMPLE) == "652474890"
    assert next_page_token({"versions": [], "nextPageToken": ""}) is None
    assert next_page_token(RELEASES_SAMPLE) is None


def test_an_empty_page_leaves_the_list_out():
    page = parse_releases_page({})

    assert page.items == []
    assert page.has_more is False


def test_iter_releases_follows_page_tokens():
    rec = recorded_session()
    rec.transport.add_file(RELEASES_URL, "versionhistory/releases.win-stable.page1.http")
    rec.transport.add_file(RELEASES_URL, "versionhistory/releases.win-stable.page2.http")

    pages = list(iter_releases(rec.session, BASE, "win", "stable", page_size=2))

    assert [page.has_more for page in pages] == [True, False]
    releases = [release for page in pages for release in page.items]
    assert [(r.version, r.fraction, r.end_time is None) for r in releases] == [
        ("131.0.6778.205", 1.0, True),
        ("131.0.6778.205", 0.4975, False),
        # the second page repeats the last release of the first; it is yielded once
        ("131.0.6778.204", 1.0, False),
    ]
    assert [r.reason for r in pages[1].rejected] == [
        "version 'unknown_version' is not MAJOR.MINOR.BUILD.PATCH"
    ]
    assert rec.transport.query(0) == {"pageSize": "2", "order_by": "starttime desc"}
    assert "order_by=starttime%20desc" in rec.transport.requests[0].url
    assert rec.transport.query(1)["pageToken"] == (
        "ClIKUGNocm9tZS9wbGF0Zm9ybXMvd2luL2NoYW5uZWxzL3N0YWJsZQ"
    )
    assert rec.transport.pending == []


def test_iter_releases_passes_the_filter_through():
    rec = recorded_session()
    rec.transport.add_file(RELEASES_URL, "versionhistory/releases.win-stable.page2.http")

    list(iter_releases(rec.session, BASE, "win", "stable", filter="endtime=none"))

    assert rec.transport.query(0)["filter"] == "endtime=none"


def test_iter_releases_stops_at_the_page_cap_and_says_there_is_more(caplog):
    rec = recorded_session()
    rec.transport.add_file(RELEASES_URL, "versionhistory/releases.win-stable.page1.http")

    with caplog.at_level(logging.WARNING):
        pages = list(iter_releases(rec.session, BASE, "win", "stable", max_pages=1))

    assert len(pages) == 1
    assert pages[0].has_more is True
    assert "1-page cap" in caplog.text


def test_iter_releases_refuses_a_token_that_comes_back():
    rec = recorded_session()
    rec.transport.add_file(RELEASES_URL, "versionhistory/releases.win-stable.page1.http")
    rec.transport.add_file(RELEASES_URL, "versionhistory/releases.win-stable.page1.http")

    with pytest.raises(SourceError, match="came back twice"):
        list(iter_releases(rec.session, BASE, "win", "stable"))


def test_iter_releases_refuses_path_segments_that_are_not_names():
    rec = recorded_session()

    with pytest.raises(ValueError, match="platform"):
        list(iter_releases(rec.session, BASE, "../win", "stable"))

    assert rec.transport.requests == []


def test_iter_versions_follows_page_tokens_and_deduplicates_across_pages():
    rec = recorded_session()
    rec.transport.add_file(VERSIONS_URL, "versionhistory/versions.win-stable.page1.http")
    rec.transport.add_file(VERSIONS_URL, "versionhistory/versions.win-stable.page2.http")

    pages = list(iter_versions(rec.session, BASE, "win", "stable", page_size=1))

    versions = [v.version for page in pages for v in page.items]
    assert versions == ["119.0.6045.160", "119.0.6045.124"]
    assert len(pages[1].rejected) == 1
    assert rec.transport.query(1)["pageToken"] == "652474890"
    assert rec.transport.query(0)["order_by"] == "version desc"


def test_a_page_that_is_not_an_object_is_a_source_error():
    rec = recorded_session()
    rec.transport.add(RELEASES_URL, headers={"Content-Type": "application/json"}, body="[]")

    with pytest.raises(SourceError, match="expected an object") as caught:
        list(iter_releases(rec.session, BASE, "win", "stable"))

    assert caught.value.transient is False


def test_default_base_url_comes_from_settings(settings):
    settings.VERSIONHISTORY_URL = "https://vh.internal.example/v1"

    assert default_base_url() == "https://vh.internal.example/v1"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        json_like
        | mutations_of(RELEASE_ELEMENT)
        | mutations_of(RELEASES_SAMPLE["releases"][0])
        | st.builds(
            lambda serving: {**RELEASE_ELEMENT, "serving": serving},
            json_like | mutations_of(RELEASES_SAMPLE["releases"][0]["serving"]),
        ),
        max_size=5,
    ),
    st.none() | st.text(max_size=10),
)
def test_parse_releases_page_never_raises_on_arbitrary_elements(elements, token):
    page = parse_releases_page({"releases": elements, "nextPageToken": token})

    assert page.has_more is bool(token)
    assert len(page.items) + len(page.rejected) <= len(elements)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_like | mutations_of(VERSIONS_SAMPLE["versions"][0]), max_size=5))
def test_parse_versions_page_never_raises_on_arbitrary_elements(elements):
    page = parse_versions_page({"versions": elements})

    assert len(page.items) + len(page.rejected) <= len(elements)


@settings(max_examples=200, deadline=None)
@given(json_like)
def test_parse_pages_raise_only_the_format_error_on_arbitrary_payloads(data):
    for parse in (parse_releases_page, parse_versions_page):
        with contextlib.suppress(UpstreamFormatError):
            parse(data)
