import contextlib
import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import SAMPLES
from tests.upstream.recorded import (
    json_like,
    mutations_of,
    objects_with_keys,
    read_recorded,
    recorded_session,
)
from tracker.upstream import UpstreamFormatError
from tracker.upstream.dash import (
    DashRelease,
    default_base_url,
    fetch_milestone_schedule,
    fetch_milestones,
    fetch_releases,
    fetch_version,
    parse_milestone_schedule,
    parse_milestones,
    parse_releases,
    parse_version_info,
)
from tracker.upstream.http import NOT_MODIFIED, MemoryValidatorCache, SourceError

BASE = "https://dash.test"


def _sample(name):
    return json.loads((SAMPLES / name).read_text())


def _recorded_json(name):
    return json.loads(read_recorded(name)[2])


def test_parse_releases_reads_the_real_element():
    element = _sample("chromiumdash-fetch_releases.canary-android-m110.element.json")

    result = parse_releases([element])

    assert result.rejected == []
    [release] = result.items
    assert release == DashRelease(
        channel="Canary",
        platform="Android",
        version="110.0.5437.0",
        major=110,
        minor=0,
        build=5437,
        patch=0,
        previous_version="110.0.5436.0",
        milestone=110,
        time=datetime(2022, 11, 24, 8, 55, 14, 778000, tzinfo=UTC),
        chromium_main_branch_position=1075413,
        chromium_commit="b91adbb57872336e657aed3e4997b736a312246e",
        hashes=element["hashes"],
    )


def test_parse_releases_rejects_a_bad_element_and_keeps_the_rest():
    good = _sample("chromiumdash-fetch_releases.canary-android-m110.element.json")
    bad_version = {**good, "version": "110.0.5437"}
    bad_time = {**good, "time": "yesterday"}

    result = parse_releases([bad_version, good, bad_time, "not an object"])

    assert [release.version for release in result.items] == ["110.0.5437.0"]
    assert [(r.index, r.reason) for r in result.rejected] == [
        (0, "version '110.0.5437' is not MAJOR.MINOR.BUILD.PATCH"),
        (2, "time is not epoch milliseconds: 'yesterday'"),
        (3, "release is not an object"),
    ]
    assert result.rejected[0].element == bad_version


def test_parse_releases_accepts_a_null_branch_position_and_drops_bad_hashes():
    element = _sample("chromiumdash-fetch_releases.canary-android-m110.element.json")
    element = {
        **element,
        "chromium_main_branch_position": None,
        "hashes": {"chromium": "not-a-sha", "v8": element["hashes"]["v8"]},
    }

    [release] = parse_releases([element]).items

    assert release.chromium_main_branch_position is None
    assert release.chromium_commit is None
    assert release.hashes == {"v8": "acf8224030a79d87470640caced05e2a4abae976"}


def test_parse_releases_refuses_a_payload_that_is_not_an_array():
    with pytest.raises(UpstreamFormatError):
        parse_releases({"releases": []})


def test_parse_milestones_reads_the_real_2021_and_2024_shapes():
    data = _sample("chromiumdash-fetch_milestones.m91-m94.skia-buildbot-testdata.json")
    data = [_sample("chromiumdash-fetch_milestones.element.m125.json"), *data]

    result = parse_milestones(data)

    assert result.rejected == []
    m125, m94, _, _, m91 = result.items
    assert m125.milestone == 125
    assert m125.chromium_branch == 6422
    assert m125.branch_position == 1287751
    assert m125.branch_hash == "9012208d0ce02e0cf0adb9b62558627c356f3278"
    assert m125.v8_branch == "12.5"
    assert (m125.schedule_active, m125.schedule_phase) == (True, "beta")
    assert (m94.chromium_branch, m94.v8_branch, m94.schedule_phase) == (4606, "9.4-lkgr", "branch")
    # schedule_phase is absent when the schedule is not active
    assert (m91.schedule_active, m91.schedule_phase) == (False, None)


def test_parse_milestones_rejects_a_branch_that_is_not_a_number():
    element = _sample("chromiumdash-fetch_milestones.element.m125.json")

    result = parse_milestones([{**element, "chromium_branch": "6422b"}, element])

    assert len(result.items) == 1
    assert result.rejected[0].reason == "chromium_branch is not a branch number: '6422b'"


def test_parse_milestone_schedule_reads_dates_without_a_zone():
    channels = _sample(
        "chromiumdash-fetch_milestone_schedule.mstones-entries.chromestatus-TEST_CHANNEL_DATA.json"
    )
    data = {"mstones": [channels["stable"], channels["beta"], channels["dev"]]}

    result = parse_milestone_schedule(data)

    assert result.rejected == []
    m141, m142, m143 = result.items
    assert m141.mstone == 141
    assert m141.branch_point == date(2025, 9, 1)
    assert m141.early_stable == date(2025, 9, 24)
    assert m141.stable_date == date(2025, 9, 30)
    assert m141.stable_refresh_first == date(2025, 10, 14)
    assert m141.stable_refresh_second is None
    assert m142.stable_refresh_third == date(2025, 12, 16)
    assert m143.late_stable_date is None
    assert m143.feature_freeze is None


def test_parse_milestone_schedule_rejects_an_entry_with_a_malformed_date():
    result = parse_milestone_schedule(
        {"mstones": [{"mstone": 150, "stable_date": "2026-13-01T00:00:00"}]}
    )

    assert result.items == []
    assert "stable_date" in result.rejected[0].reason


def test_parse_version_info_reads_the_real_answer():
    info = parse_version_info(_sample("chromiumdash-fetch_version.113.0.5672.127.json"))

    assert info.milestone == 113
    assert info.chromium_main_branch_position == 1121455
    assert info.chromium_commit == "c360dcf587f4828a1ce798e1b61f238cb6d69640"
    assert info.v8_version == "11.3.244.11"
    assert info.v8_main_branch_position == 86647
    assert len(info.hashes) == 8


def test_parse_version_info_refuses_an_error_served_with_200():
    with pytest.raises(UpstreamFormatError, match="error"):
        parse_version_info({"error": "Version not found."})


def test_fetch_releases_pages_by_offset_until_a_short_page():
    rec = recorded_session()
    url = f"{BASE}/fetch_releases"
    rec.transport.add_file(
        url, "dash/fetch_releases.Stable-Windows.offset0.http", params={"offset": 0}
    )
    rec.transport.add_file(
        url, "dash/fetch_releases.Stable-Windows.offset3.http", params={"offset": 3}
    )

    result = fetch_releases(rec.session, BASE, "Stable", "Windows", num=3)

    assert [release.version for release in result.items] == [
        "113.0.5672.127",
        "113.0.5672.126",
        "113.0.5672.93",
    ]
    assert result.items[0].chromium_commit == "c360dcf587f4828a1ce798e1b61f238cb6d69640"
    assert result.items[2].chromium_main_branch_position is None
    # the broken element on the first page is reported, and did not stop the batch
    assert [r.reason for r in result.rejected] == [
        "version '113.0.5672' is not MAJOR.MINOR.BUILD.PATCH"
    ]
    assert rec.transport.query(0) == {
        "channel": "Stable",
        "platform": "Windows",
        "num": "3",
        "offset": "0",
    }
    assert rec.transport.query(1)["offset"] == "3"
    assert rec.transport.pending == []


def test_fetch_releases_stops_at_the_page_cap():
    rec = recorded_session()
    url = f"{BASE}/fetch_releases"
    rec.transport.add_file(url, "dash/fetch_releases.Stable-Windows.offset0.http")

    result = fetch_releases(rec.session, BASE, "Stable", "Windows", num=3, max_pages=1)

    assert len(result.items) == 2
    assert len(rec.transport.requests) == 1


def test_fetch_releases_turns_a_wrong_shape_into_a_source_error():
    rec = recorded_session()
    rec.transport.add(
        f"{BASE}/fetch_releases", headers={"Content-Type": "application/json"}, body='{"a": 1}'
    )

    with pytest.raises(SourceError, match="expected a JSON array") as caught:
        fetch_releases(rec.session, BASE, "Stable", "Windows")

    assert caught.value.transient is False


def test_fetch_milestones_is_conditional_when_given_a_validator_cache():
    rec = recorded_session()
    url = f"{BASE}/fetch_milestones"
    rec.transport.add_file(url, "dash/fetch_milestones.http")
    rec.transport.add_file(url, "errors/304.http")
    cache = MemoryValidatorCache()

    first = fetch_milestones(rec.session, BASE, only_branched=True, validators=cache)
    second = fetch_milestones(rec.session, BASE, only_branched=True, validators=cache)

    assert [m.milestone for m in first.items] == [125, 94, 93, 92, 91]
    assert second is NOT_MODIFIED
    assert rec.transport.query(1) == {"only_branched": "true"}
    assert rec.transport.requests[1].headers["If-None-Match"] == '"milestones-v1"'


def test_fetch_milestone_schedule_asks_for_one_milestone():
    rec = recorded_session()
    url = f"{BASE}/fetch_milestone_schedule"
    rec.transport.add_file(url, "dash/fetch_milestone_schedule.mstone-142.http")

    result = fetch_milestone_schedule(rec.session, BASE, mstone=142)

    assert [s.mstone for s in result.items] == [142]
    assert result.items[0].stable_date == date(2025, 10, 28)
    assert rec.transport.query(0) == {"mstone": "142"}


def test_fetch_version_returns_none_for_an_unknown_version():
    rec = recorded_session()
    url = f"{BASE}/fetch_version"
    rec.transport.add_file(url, "dash/fetch_version.113.0.5672.127.http")
    rec.transport.add(
        url, headers={"Content-Type": "application/json"}, body='{"error": "Version not found"}'
    )
    rec.transport.add_file(url, "errors/404.http")

    assert fetch_version(rec.session, BASE, "113.0.5672.127").milestone == 113
    assert fetch_version(rec.session, BASE, "113.0.5672.999") is None
    assert fetch_version(rec.session, BASE, "113.0.5672.998") is None
    assert rec.transport.query(0) == {"version": "113.0.5672.127"}


def test_fetch_version_refuses_a_malformed_version_before_asking():
    rec = recorded_session()

    with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.BUILD\.PATCH"):
        fetch_version(rec.session, BASE, "113.0.5672")

    assert rec.transport.requests == []


def test_default_base_url_comes_from_settings(settings):
    settings.CHROMIUMDASH_URL = "https://dash.internal.example"

    assert default_base_url() == "https://dash.internal.example"


def test_the_recorded_last_page_parses_cleanly():
    page = _recorded_json("dash/fetch_releases.Stable-Windows.offset3.http")

    assert parse_releases(page).rejected == []


RELEASE = _sample("chromiumdash-fetch_releases.canary-android-m110.element.json")
MILESTONE = _sample("chromiumdash-fetch_milestones.element.m125.json")
SCHEDULE = _sample(
    "chromiumdash-fetch_milestone_schedule.mstones-entries.chromestatus-TEST_CHANNEL_DATA.json"
)["beta"]
VERSION_INFO = _sample("chromiumdash-fetch_version.113.0.5672.127.json")


@settings(max_examples=200, deadline=None)
@given(st.lists(json_like | mutations_of(RELEASE) | objects_with_keys(sorted(RELEASE)), max_size=5))
def test_parse_releases_never_raises_on_arbitrary_elements(elements):
    result = parse_releases(elements)

    assert len(result.items) + len(result.rejected) == len(elements)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_like | mutations_of(MILESTONE), max_size=5))
def test_parse_milestones_never_raises_on_arbitrary_elements(elements):
    result = parse_milestones(elements)

    assert len(result.items) + len(result.rejected) == len(elements)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_like | mutations_of(SCHEDULE), max_size=5))
def test_parse_milestone_schedule_never_raises_on_arbitrary_elements(elements):
    result = parse_milestone_schedule({"mstones": elements})

    assert len(result.items) + len(result.rejected) == len(elements)


@settings(max_examples=200, deadline=None)
@given(json_like | mutations_of(VERSION_INFO) | st.lists(json_like, max_size=3))
def test_parse_functions_raise_only_the_format_error_on_arbitrary_payloads(data):
    for parse in (parse_releases, parse_milestones, parse_milestone_schedule, parse_version_info):
        with contextlib.suppress(UpstreamFormatError):
            parse(data)
