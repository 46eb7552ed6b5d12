"""Chromium Dash and VersionHistory ingestion: natural keys, idempotence, and how a failing
source keeps its last good data."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.upstream.recorded import read_recorded, recorded_session
from tracker.ingest.releases import (
    ingest_dash_milestones,
    ingest_dash_releases,
    ingest_milestone_schedules,
    ingest_versionhistory_releases,
    normalise_channel,
    normalise_platform,
    sync_chromiumdash,
    sync_versionhistory,
)
from tracker.models import Milestone, Source, SourceState, Upstream, UpstreamRelease
from tracker.upstream.dash import parse_milestone_schedule, parse_milestones, parse_releases
from tracker.upstream.http import SourceError
from tracker.upstream.versionhistory import parse_releases_page

DASH = "https://chromiumdash.test"
VH = "https://versionhistory.test/v1"
NOW = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)


def _body(name):
    return json.loads(read_recorded(name)[2])


def _dash_releases():
    items = []
    for name in ("offset0", "offset3"):
        items += parse_releases(_body(f"dash/fetch_releases.Stable-Windows.{name}.http")).items
    return items


def _vh_releases():
    seen: set[str] = set()
    items = []
    for page in ("page1", "page2"):
        data = _body(f"versionhistory/releases.win-stable.{page}.http")
        items += parse_releases_page(data, seen=seen).items
    return items


def _rows(model=UpstreamRelease):
    return sorted(map(repr, model.objects.values()))


@pytest.fixture
def upstream(db):
    return Upstream.objects.create(slug="chromium", name="Chromium", git_url="/srv/chromium.git")


def test_names_of_both_sources_map_to_one_vocabulary():
    assert normalise_channel("Stable") == normalise_channel("stable") == "stable"
    assert normalise_channel("Canary_asan") == "canary_asan"
    assert normalise_channel("Nightly") is None
    assert {normalise_platform(n) for n in ("Windows", "win", "win64", "win_arm64")} == {"windows"}
    assert normalise_platform("mac_arm64") == normalise_platform("Mac") == "mac"
    assert normalise_platform("iOS") == "ios"
    assert normalise_platform("Symbian") is None


def test_dash_releases_are_written_by_natural_key(upstream):
    stats = ingest_dash_releases(upstream, _dash_releases())

    assert (stats.created, stats.updated, stats.skipped) == (3, 0, 0)
    release = UpstreamRelease.objects.get(version="113.0.5672.127")
    assert (release.major, release.minor, release.build, release.patch) == (113, 0, 5672, 127)
    assert (release.channel, release.platform, release.milestone) == ("stable", "windows", 113)
    assert release.time == datetime(2023, 5, 16, 17, 50, tzinfo=UTC)
    assert release.chromium_commit == "c360dcf587f4828a1ce798e1b61f238cb6d69640"
    assert release.branch_position == 1121455
    assert release.hashes["v8"] == "62a6b2a10ad6157613544eb9e4be0f4ef821159b"
    assert release.previous_version == "113.0.5672.126"
    assert release.seen_in_dash and not release.seen_in_versionhistory
    assert UpstreamRelease.objects.get(version="113.0.5672.93").branch_position is None


def test_ingesting_dash_releases_twice_changes_nothing(upstream):
    ingest_dash_releases(upstream, _dash_releases())
    before = _rows()

    stats = ingest_dash_releases(upstream, _dash_releases())

    assert (stats.created, stats.updated, stats.unchanged) == (0, 0, 3)
    assert _rows() == before


def test_a_new_dash_answer_replaces_the_old_one_and_unknown_platforms_are_skipped(upstream):
    ingest_dash_releases(upstream, _dash_releases())
    element = _body("dash/fetch_releases.Stable-Windows.offset0.http")[0]
    moved = {**element, "time": element["time"] + 60_000}
    elsewhere = {**element, "platform": "Symbian"}

    stats = ingest_dash_releases(upstream, parse_releases([moved, elsewhere]).items)

    assert (stats.updated, stats.skipped) == (1, 1)
    release = UpstreamRelease.objects.get(version="113.0.5672.127")
    assert release.time == datetime(2023, 5, 16, 17, 51, tzinfo=UTC)
    assert UpstreamRelease.objects.count() == 3


def test_versionhistory_serving_periods_fill_the_serving_columns(upstream):
    stats = ingest_versionhistory_releases(upstream, _vh_releases())

    assert stats.created == 2
    current = UpstreamRelease.objects.get(version="131.0.6778.205")
    assert (current.channel, current.platform) == ("stable", "windows")
    assert current.served_from == datetime(2025, 1, 8, 19, 27, 31, 216008, tzinfo=UTC)
    assert current.fully_served_at == datetime(2025, 1, 9, 21, 1, 31, 167025, tzinfo=UTC)
    assert current.served_until is None  # the fraction-1 period is still being served
    # Dash has not listed it: its release time is when it first reached users.
    assert current.time == current.served_from
    assert current.seen_in_versionhistory and not current.seen_in_dash
    previous = UpstreamRelease.objects.get(version="131.0.6778.204")
    assert previous.fully_served_at == previous.served_from  # no fraction means 1
    assert previous.served_until == datetime(2025, 1, 8, 19, 27, 31, 216008, tzinfo=UTC)


def test_dash_time_wins_over_versionhistory_and_both_are_idempotent(upstream):
    ingest_versionhistory_releases(upstream, _vh_releases())
    element = {
        **_body("dash/fetch_releases.Stable-Windows.offset0.http")[0],
        "version": "131.0.6778.205",
        "milestone": 131,
        "time": int(datetime(2025, 1, 8, 19, 0, tzinfo=UTC).timestamp() * 1000),
    }
    ingest_dash_releases(upstream, parse_releases([element]).items)
    ingest_versionhistory_releases(upstream, _vh_releases())
    before = _rows()

    again = [
        ingest_dash_releases(upstream, parse_releases([element]).items),
        ingest_versionhistory_releases(upstream, _vh_releases()),
    ]

    release = UpstreamRelease.objects.get(version="131.0.6778.205")
    assert release.time == datetime(2025, 1, 8, 19, 0, tzinfo=UTC)
    assert release.seen_in_dash and release.seen_in_versionhistory
    assert release.served_from == datetime(2025, 1, 8, 19, 27, 31, 216008, tzinfo=UTC)
    assert [stats.changed for stats in again] == [False, False]
    assert _rows() == before


def test_milestones_and_schedules_are_written_by_milestone(upstream):
    milestones = parse_milestones(_body("dash/fetch_milestones.http")).items
    schedules = parse_milestone_schedule(
        _body("dash/fetch_milestone_schedule.mstone-142.http")
    ).items

    created = [
        ingest_dash_milestones(upstream, milestones),
        ingest_milestone_schedules(upstream, schedules),
    ]
    before = _rows(Milestone)
    again = [
        ingest_dash_milestones(upstream, milestones),
        ingest_milestone_schedules(upstream, schedules),
    ]

    assert [s.created for s in created] == [5, 1]
    m125 = Milestone.objects.get(milestone=125)
    assert (m125.branch, m125.branch_position, m125.branch_sha) == (
        6422,
        1287751,
        "9012208d0ce02e0cf0adb9b62558627c356f3278",
    )
    assert (m125.v8_branch, m125.schedule_active, m125.schedule_phase) == ("12.5", True, "beta")
    m142 = Milestone.objects.get(milestone=142)
    assert m142.branch is None  # fetch_milestones has not named its branch yet
    assert (m142.branch_date, m142.stable_date) == (date(2025, 9, 29), date(2025, 10, 28))
    assert m142.schedule["stable_refresh_third"] == "2025-12-16"
    assert [s.changed for s in again] == [False, False]
    assert _rows(Milestone) == before


def _queue_dash_sync(
    transport, *, milestones="cve-2024-5497/dash.fetch_milestones.http", releases=None
):
    # Only M125 is schedule_active in this answer, so one schedule is asked for.
    transport.add_file(f"{DASH}/fetch_milestones", milestones)
    transport.add_file(
        f"{DASH}/fetch_milestone_schedule",
        "cve-2024-5497/dash.fetch_milestone_schedule.mstone-125.http",
        params={"mstone": 125},
    )
    transport.add_file(
        f"{DASH}/fetch_releases", releases or "dash/fetch_releases.Stable-Windows.offset0.http"
    )


def _sync_dash(recorded, now):
    return sync_chromiumdash(
        now=now,
        session=recorded.session,
        base_url=DASH,
        upstreams=list(Upstream.objects.all()),
        channels=("Stable",),
        platforms=("Windows",),
    )


def test_sync_chromiumdash_records_the_run_and_asks_conditionally_next_time(upstream):
    recorded = recorded_session()
    _queue_dash_sync(recorded.transport)

    stats = _sync_dash(recorded, NOW)

    assert stats.written["releases"].created == 2
    assert stats.rejected == 1  # the three-part version on the recorded page
    state = SourceState.objects.get(source=Source.CHROMIUMDASH)
    assert (state.last_attempt_at, state.last_success_at, state.last_error) == (NOW, NOW, "")
    assert state.validators == {
        f"{DASH}/fetch_milestones": {"etag": '"m125-m120"', "last_modified": ""}
    }
    assert state.rejected == [
        {
            "what": "fetch_releases Stable/Windows",
            "index": 2,
            "reason": "version '113.0.5672' is not MAJOR.MINOR.BUILD.PATCH",
        }
    ]
    # The first sync reads many pages per channel and platform, later ones one.
    assert recorded.transport.query(2)["num"] == "100"

    _queue_dash_sync(recorded.transport, milestones="errors/304.http")
    later = _sync_dash(recorded, NOW + timedelta(hours=1))

    assert recorded.transport.requests[3].headers["If-None-Match"] == '"m125-m120"'
    assert later.not_modified == ["fetch_milestones"]
    assert not later.changed
    assert recorded.transport.pending == []


def test_a_failing_source_keeps_its_last_good_data_and_turns_stale(upstream, settings):
    recorded = recorded_session()
    _queue_dash_sync(recorded.transport)
    _sync_dash(recorded, NOW)
    before = (_rows(), _rows(Milestone))

    later = NOW + timedelta(hours=3)
    _queue_dash_sync(
        recorded.transport, milestones="errors/304.http", releases="errors/malformed.json.http"
    )
    with pytest.raises(SourceError, match="malformed JSON") as caught:
        _sync_dash(recorded, later)

    assert caught.value.transient is False
    assert (_rows(), _rows(Milestone)) == before
    state = SourceState.objects.get(source=Source.CHROMIUMDASH)
    assert state.last_attempt_at == later
    assert state.last_success_at == NOW
    assert "malformed JSON" in state.last_error
    assert (state.last_error_at, state.failures) == (later, 1)
    settings.SOURCE_STALE_HOURS = 24
    assert not state.is_stale(later)
    assert state.is_stale(NOW + timedelta(hours=24, seconds=1))
    settings.SOURCE_STALE_HOURS = 2
    assert state.is_stale(later)
    assert state.is_stale(later, hours=1) and not state.is_stale(later, hours=4)


def test_an_html_error_page_served_with_200_writes_nothing(upstream):
    recorded = recorded_session()
    _queue_dash_sync(recorded.transport, releases="errors/html-error-page.200.http")

    with pytest.raises(SourceError, match="HTML page") as caught:
        _sync_dash(recorded, NOW)

    # Transient: the task retries it. Milestones had been fetched, but nothing is written
    # until every answer is in.
    assert caught.value.transient is True
    assert not UpstreamRelease.objects.exists() and not Milestone.objects.exists()
    state = SourceState.objects.get(source=Source.CHROMIUMDASH)
    assert state.last_success_at is None and state.is_stale(NOW)
    assert state.validators == {}  # nothing stored, so nothing may be answered with a 304


def test_a_source_that_never_succeeded_is_stale():
    assert SourceState(source=Source.VERSIONHISTORY).is_stale(NOW)


def test_sync_versionhistory_reads_every_platform_per_channel(upstream):
    recorded = recorded_session()
    url = f"{VH}/chrome/platforms/all/channels/stable/versions/all/releases"
    recorded.transport.add_file(url, "versionhistory/releases.win-stable.page1.http")
    recorded.transport.add_file(
        url,
        "versionhistory/releases.win-stable.page2.http",
        params={"pageToken": "ClIKUGNocm9tZS9wbGF0Zm9ybXMvd2luL2NoYW5uZWxzL3N0YWJsZQ"},
    )

    stats = sync_versionhistory(
        now=NOW, session=recorded.session, base_url=VH, channels=("stable",)
    )

    assert stats.written["releases"].created == 2
    assert stats.rejected == 1  # unknown_version
    assert recorded.transport.query(0)["filter"] == "starttime>=2024-01-11T12:00:00Z"
    assert SourceState.objects.get(source=Source.VERSIONHISTORY).last_success_at == NOW
    assert recorded.transport.pending == []
