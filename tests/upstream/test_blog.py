import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.upstream.recorded import json_like, mutations_of, read_recorded, recorded_session
from tracker.bulletins import parse_bulletin
from tracker.upstream import UpstreamFormatError
from tracker.upstream.blog import default_feed_url, iter_posts, parse_feed
from tracker.upstream.http import SourceError

FEED = "https://blog.test/feeds/posts/default"
PDT = timezone(timedelta(hours=-7))


def _recorded_json(name):
    return json.loads(read_recorded(name)[2])


PAGE1 = _recorded_json("blog/feed.stable-updates.start1.http")
PAGE2 = _recorded_json("blog/feed.stable-updates.start4.http")
ENTRY = PAGE1["feed"]["entry"][0]


def test_parse_feed_reads_posts_and_rejects_the_broken_entry():
    page = parse_feed(PAGE1)

    assert page.entry_count == 3
    assert page.start_index == 1
    assert page.total_results == 4
    assert [post.url for post in page.items] == [
        "https://chromereleases.googleblog.com/2025/06/stable-channel-update-for-desktop_30.html",
        "https://chromereleases.googleblog.com/2025/06/stable-channel-update-for-desktop.html",
    ]
    [rejected] = page.rejected
    assert rejected.index == 1
    assert rejected.reason == "no rel=alternate text/html link"


def test_a_post_carries_id_times_labels_and_content():
    post = parse_feed(PAGE1).items[0]

    assert post.post_id == "tag:blogger.com,1999:blog-8982037438137564684.post-4400000000000000001"
    assert post.title == "Stable Channel Update for Desktop"
    assert post.published == datetime(2025, 6, 30, 14, 1, tzinfo=PDT)
    assert post.published == datetime(2025, 6, 30, 21, 1, tzinfo=UTC)
    assert post.updated == datetime(2025, 7, 1, 8, 12, 31, 512000, tzinfo=PDT)
    assert post.labels == ["Desktop Update", "Stable updates"]
    assert "CVE-2025-6554" in post.content_html


def test_post_content_feeds_the_bulletin_parser():
    posts = parse_feed(PAGE1).items + parse_feed(PAGE2).items

    bulletins = [parse_bulletin(post.content_html) for post in posts]

    assert [[line.cve for line in b.security_lines] for b in bulletins] == [
        ["CVE-2025-6554"],
        ["CVE-2025-5419"],
        ["CVE-2021-21222", "CVE-2021-21224", "CVE-2021-21225"],
    ]
    assert [b.in_the_wild_cves for b in bulletins] == [
        ["CVE-2025-6554"],
        ["CVE-2025-5419"],
        ["CVE-2021-21224"],
    ]
    assert [b.security_fix_count for b in bulletins] == [1, 3, 7]
    assert [sorted(b.version_set) for b in bulletins] == [
        ["138.0.7204.96", "138.0.7204.97"],
        ["137.0.7151.68", "137.0.7151.69"],
        ["90.0.4430.85"],
    ]
    assert all(b.unparsed_lines == [] for b in bulletins)
    assert bulletins[1].security_lines[0].reporter == (
        "Clement Lecigne and Beno\u00eet Sevens of Google Threat Analysis Group"
    )


def test_entries_with_bad_ids_or_times_are_rejected():
    entries = [
        {**ENTRY, "id": {"$t": "tag:blogger.com,1999:blog-1.comment-2"}},
        {**ENTRY, "published": {"$t": "30 June 2025"}},
        {**ENTRY, "content": {"type": "html"}},
        ENTRY,
    ]

    page = parse_feed({"feed": {"entry": entries}})

    assert len(page.items) == 1
    assert [r.index for r in page.rejected] == [0, 1, 2]
    assert "not a Blogger post id" in page.rejected[0].reason
    assert "RFC 3339" in page.rejected[1].reason
    assert page.rejected[2].reason == "content is missing or has no text"


def test_an_empty_feed_page_has_no_entry_key():
    page = parse_feed({"version": "1.0", "feed": {"openSearch$startIndex": {"$t": "101"}}})

    assert page.items == []
    assert page.entry_count == 0
    assert page.start_index == 101


def test_a_payload_without_a_feed_is_a_format_error():
    with pytest.raises(UpstreamFormatError):
        parse_feed({"error": {"code": 400}})


def test_iter_posts_pages_by_start_index_until_a_short_page():
    rec = recorded_session()
    rec.transport.add_file(FEED, "blog/feed.stable-updates.start1.http", params={"start-index": 1})
    rec.transport.add_file(FEED, "blog/feed.stable-updates.start4.http", params={"start-index": 4})

    pages = list(iter_posts(rec.session, FEED, label="Stable updates", max_results=3))

    assert [page.has_more for page in pages] == [True, False]
    assert [len(page.items) for page in pages] == [2, 1]
    assert rec.transport.query(0) == {
        "alt": "json",
        "max-results": "3",
        "category": "Stable updates",
        "start-index": "1",
    }
    assert "category=Stable%20updates" in rec.transport.requests[0].url
    assert rec.transport.query(1)["start-index"] == "4"
    assert rec.transport.pending == []


def test_iter_posts_asks_for_posts_updated_since():
    rec = recorded_session()
    rec.transport.add_file(FEED, "blog/feed.stable-updates.start4.http")

    list(iter_posts(rec.session, FEED, updated_min=datetime(2025, 6, 1, tzinfo=UTC)))

    query = rec.transport.query(0)
    assert query["updated-min"] == "2025-06-01T00:00:00+00:00"
    assert query["orderby"] == "updated"
    assert "category" not in query


def test_iter_posts_refuses_a_naive_updated_min():
    rec = recorded_session()

    with pytest.raises(ValueError, match="aware"):
        list(iter_posts(rec.session, FEED, updated_min=datetime(2025, 6, 1)))


def test_iter_posts_stops_at_the_page_cap(caplog):
    rec = recorded_session()
    rec.transport.add_file(FEED, "blog/feed.stable-updates.start1.http")

    with caplog.at_level(logging.WARNING):
        pages = list(iter_posts(rec.session, FEED, max_results=3, max_pages=1))

    assert len(pages) == 1
    assert pages[0].has_more is True
    assert "1-page cap" in caplog.text


def test_iter_posts_reports_an_html_page_as_a_transient_source_error():
    rec = recorded_session()
    rec.transport.add_file(FEED, "errors/html-error-page.200.http")

    with pytest.raises(SourceError) as caught:
        list(iter_posts(rec.session, FEED))

    assert caught.value.transient is True


def test_default_feed_url_comes_from_settings(settings):
    settings.CHROME_RELEASES_FEED_URL = "https://mirror.example/feeds/posts/default"

    assert default_feed_url() == "https://mirror.example/feeds/posts/default"


ENTRY_PARTS = st.sampled_from(sorted(ENTRY))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        json_like
        | mutations_of(ENTRY)
        | st.builds(
            lambda key, value: {**ENTRY, key: value},
            ENTRY_PARTS,
            json_like | st.fixed_dictionaries({"$t": json_like}),
        ),
        max_size=4,
    )
)
def test_parse_feed_never_raises_on_arbitrary_entries(entries):
    page = parse_feed({"feed": {"entry": entries}})

    assert len(page.items) + len(page.rejected) == len(entries)


@settings(max_examples=200, deadline=None)
@given(
    json_like
    | st.fixed_dictionaries({"feed": json_like})
    | st.builds(lambda feed: {"feed": feed}, mutations_of(PAGE1["feed"]))
)
def test_parse_feed_raises_only_the_format_error_on_arbitrary_payloads(data):
    with contextlib.suppress(UpstreamFormatError):
        parse_feed(data)
