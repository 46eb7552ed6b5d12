"""Chrome Releases ingestion: posts by post id, edits reconciled, unparsed lines kept, and
vulnerabilities derived per upstream."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.upstream.recorded import read_recorded, recorded_session
from tracker.ingest.bulletins import ingest_blog_posts, reparse_bulletins, sync_chrome_releases
from tracker.models import (
    Bulletin,
    BulletinLine,
    Source,
    SourceState,
    Upstream,
    Vulnerability,
    VulnerabilityBug,
)
from tracker.upstream.blog import BlogPost, parse_feed
from tracker.upstream.http import SourceError

FEED = "https://chromereleases.test/feeds/posts/default"
NOW = datetime(2025, 7, 2, 12, 0, tzinfo=UTC)
LINE_5497 = (
    "[$3000][339061099] High CVE-2024-5497: Out of bounds memory access in Keyboard Inputs. "
    "Reported by zh1x1an1221 of Ant Group Tianqiong Security Lab on 2024-05-07"
)


def _posts(name):
    return parse_feed(json.loads(read_recorded(name)[2])).items


def _recorded_posts():
    return _posts("blog/feed.stable-updates.start1.http") + _posts(
        "blog/feed.stable-updates.start4.http"
    )


def _post(number, lines, *, updated, published=None, notes=()):
    published = published or datetime(2024, 5, 30, 21, 7, tzinfo=UTC)
    body = (
        "<p>The Stable channel has been updated to 125.0.6422.141/.142 for Windows, Mac and "
        "125.0.6422.141 for Linux which will roll out over the coming days/weeks.</p>"
        f"<p>This update includes {len(lines)} security fixes.</p>"
        + "".join(f"<div>{line}</div>" for line in lines)
        + "".join(f"<p>{note}</p>" for note in notes)
    )
    return BlogPost(
        post_id=f"tag:blogger.com,1999:blog-8982037438137564684.post-{number}",
        url=f"https://chromereleases.googleblog.com/2024/05/post-{number}.html",
        title="Stable Channel Update for Desktop",
        published=published,
        updated=updated,
        labels=["Desktop Update", "Stable updates"],
        content_html=body,
    )


def _snapshot():
    models = (Bulletin, BulletinLine, Vulnerability, VulnerabilityBug)
    return {model.__name__: sorted(map(repr, model.objects.values())) for model in models}


@pytest.fixture
def upstream(db):
    return Upstream.objects.create(slug="chromium", name="Chromium", git_url="/srv/chromium.git")


def test_posts_are_stored_with_their_lines_and_become_vulnerabilities(upstream):
    stats = ingest_blog_posts(_recorded_posts(), now=NOW)

    assert (stats.created, stats.lines, stats.unparsed, stats.cves) == (3, 5, 0, 5)
    post = Bulletin.objects.get(post_id__endswith="post-4400000000000000004")
    assert (
        post.url
        == "https://chromereleases.googleblog.com/2021/04/stable-channel-update-for-desktop_20.html"
    )
    assert post.labels == ["Desktop Update", "Stable updates"]
    assert post.versions == [["90.0.4430.85", "Windows, Mac and Linux"]]
    assert post.security_fix_count == 7
    assert post.in_the_wild_cves == ["CVE-2021-21224"]
    assert "CVE-2021-21225" in post.content_html  # the raw HTML is kept for re-parsing
    assert post.first_seen_at == post.changed_at == NOW
    vuln = Vulnerability.objects.get(upstream=upstream, cve="CVE-2021-21225")
    assert (vuln.severity, vuln.title, vuln.component) == (
        "high",
        "Out of bounds memory access in V8",
        "V8",
    )
    assert vuln.reward_text == "$22000 + $22000"
    assert vuln.reporter == "Brendon Tiszka (@btiszka) supporting the EFF"
    assert vuln.report_date == date(2021, 4, 5)
    assert list(vuln.bugs.values_list("bug_id", flat=True)) == [1195977]
    assert vuln.first_bulletin == post
    in_the_wild = set(Vulnerability.objects.filter(in_the_wild=True).values_list("cve", flat=True))
    assert in_the_wild == {"CVE-2025-6554", "CVE-2025-5419", "CVE-2021-21224"}


def test_ingesting_the_same_posts_twice_changes_nothing(upstream):
    ingest_blog_posts(_recorded_posts(), now=NOW)
    before = _snapshot()

    stats = ingest_blog_posts(_recorded_posts(), now=NOW + timedelta(hours=1))

    assert (stats.created, stats.updated, stats.unchanged) == (0, 0, 3)
    assert _snapshot() == before


def test_an_edited_post_is_read_again_and_its_vulnerability_reconciled(upstream):
    ingest_blog_posts(_posts("cve-2024-5497/blog.feed.http"), now=NOW)
    vuln = Vulnerability.objects.get(cve="CVE-2024-5497")
    assert vuln.component == "Keyboard Inputs"

    # After publication the CVE's component was corrected to "Browser UI".
    later = NOW + timedelta(days=6)
    stats = ingest_blog_posts(_posts("cve-2024-5497/blog.feed.updated.http"), now=later)

    assert (stats.created, stats.updated) == (0, 1)
    vuln.refresh_from_db()
    assert vuln.component == "Browser UI"
    assert vuln.title == "Out of bounds memory access in Browser UI"
    post = Bulletin.objects.get()
    assert (post.first_seen_at, post.changed_at) == (NOW, later)
    assert post.updated == datetime(2024, 6, 5, 23, 20, 12, 501000, tzinfo=UTC)
    assert [line.component for line in post.lines.all()] == ["Browser UI"]


def test_an_older_copy_of_a_post_does_not_undo_an_edit(upstream):
    ingest_blog_posts(_posts("cve-2024-5497/blog.feed.updated.http"), now=NOW)

    stats = ingest_blog_posts(_posts("cve-2024-5497/blog.feed.http"), now=NOW)

    assert stats.unchanged == 1
    assert Vulnerability.objects.get(cve="CVE-2024-5497").component == "Browser UI"


def test_lines_added_or_rewritten_after_publication_update_the_vulnerabilities(upstream):
    published = datetime(2024, 5, 30, 21, 7, tzinfo=UTC)
    first = _post(
        1,
        [
            "[$TBD][1497984] High CVE-2099-0001: Use after free in WebRTC. Reported by A on "
            "2024-05-01"
        ],
        updated=published,
    )
    # The tracker migration renumbered the issue (Monorail 1497984 is now 40075979), the CVE
    # id was corrected, and a line was added.
    edited = _post(
        1,
        [
            "[$5000][40075979] High CVE-2099-0002: Use after free in WebRTC. Reported by A on "
            "2024-05-01",
            "[TBD][339061099] Medium CVE-2099-0003: Race in Tabs. Reported by B on 2024-05-02",
        ],
        updated=published + timedelta(days=200),
    )
    other_post = _post(
        2,
        [
            "[$TBD][1497984] High CVE-2099-0002: Use after free in WebRTC. Reported by A on "
            "2024-05-01"
        ],
        updated=published + timedelta(days=1),
        published=published + timedelta(days=1),
    )
    ingest_blog_posts([first, other_post], now=NOW)

    ingest_blog_posts([edited], now=NOW + timedelta(days=1))

    cves = set(Vulnerability.objects.filter(upstream=upstream).values_list("cve", flat=True))
    assert cves == {"CVE-2099-0002", "CVE-2099-0003"}  # the mistyped CVE-2099-0001 is gone
    vuln = Vulnerability.objects.get(cve="CVE-2099-0002")
    # The most recent rewrite says what the CVE is now; the earliest post is its bulletin;
    # both issue ids are kept, so commits naming either are found.
    assert vuln.reward_text == "$5000"
    assert vuln.first_bulletin.post_id.endswith("post-1")
    assert sorted(vuln.bugs.values_list("bug_id", flat=True)) == [1497984, 40075979]
    assert Vulnerability.objects.get(cve="CVE-2099-0003").severity == "medium"


def test_a_line_that_does_not_parse_is_kept_with_its_post(upstream, caplog):
    broken = "[$5000][12] High CVE-2099-0100: Heap buffer overflow in Skia."
    post = _post(
        3,
        [broken, "[$TBD][40075979] High CVE-2099-0101: Use after free in Media."],
        updated=datetime(2024, 5, 30, 21, 7, tzinfo=UTC),
    )

    stats = ingest_blog_posts([post], now=NOW)

    assert stats.unparsed == 1
    bulletin = Bulletin.objects.get()
    assert bulletin.unparsed_lines == [broken]
    assert list(bulletin.lines.values_list("cve", flat=True)) == ["CVE-2099-0101"]
    assert Vulnerability.objects.filter(cve="CVE-2099-0101").exists()
    assert not Vulnerability.objects.filter(cve="CVE-2099-0100").exists()
    assert "did not parse and were kept for review" in caplog.text


def test_a_cve_id_too_long_to_be_real_is_kept_as_an_unparsed_line(upstream):
    garbage = "[$TBD][40075979] High CVE-2099-" + "1" * 40 + ": Use after free in Media."
    post = _post(6, [garbage], updated=datetime(2024, 5, 30, 21, 7, tzinfo=UTC))

    ingest_blog_posts([post], now=NOW)

    assert Bulletin.objects.get().unparsed_lines == [garbage]
    assert not Vulnerability.objects.exists()


def test_an_in_the_wild_note_in_any_post_sets_in_the_wild(upstream):
    when = datetime(2024, 5, 30, 21, 7, tzinfo=UTC)
    listing = _post(4, ["[N/A][340221135] High CVE-2099-0200: Type Confusion in V8."], updated=when)
    ingest_blog_posts([listing], now=NOW)
    assert not Vulnerability.objects.get(cve="CVE-2099-0200").in_the_wild

    android = _post(
        5,
        [],
        updated=when + timedelta(hours=2),
        notes=["Google is aware that an exploit for CVE-2099-0200 exists in the wild."],
    )
    ingest_blog_posts([android], now=NOW)

    assert Vulnerability.objects.get(cve="CVE-2099-0200").in_the_wild


def test_vulnerabilities_are_made_for_every_upstream(upstream):
    mirror = Upstream.objects.create(slug="mirror", name="Mirror", git_url="/srv/mirror.git")

    ingest_blog_posts(_posts("cve-2024-5497/blog.feed.http"), now=NOW)

    assert set(Vulnerability.objects.values_list("upstream__slug", "cve")) == {
        (upstream.slug, "CVE-2024-5497"),
        (mirror.slug, "CVE-2024-5497"),
    }


def test_reparsing_stored_posts_changes_nothing_when_the_parser_agrees(upstream):
    ingest_blog_posts(_recorded_posts(), now=NOW)
    before = _snapshot()

    stats = reparse_bulletins(now=NOW + timedelta(days=1))

    assert (stats.updated, stats.unchanged, stats.cves) == (0, 3, 5)
    assert _snapshot() == before


def test_sync_reads_the_feed_and_later_asks_for_posts_updated_since(upstream):
    recorded = recorded_session()
    recorded.transport.add_file(FEED, "blog/feed.stable-updates.start1.http")

    stats = sync_chrome_releases(now=NOW, session=recorded.session, feed_url=FEED)

    assert stats.written["posts"].created == 2
    assert stats.rejected == 1  # the entry without an alternate link
    assert recorded.transport.query(0) == {
        "alt": "json",
        "max-results": "50",
        "category": "Stable updates",
        "start-index": "1",
    }
    state = SourceState.objects.get(source=Source.CHROME_RELEASES)
    assert state.last_success_at == NOW and state.rejected[0]["reason"] == (
        "no rel=alternate text/html link"
    )

    recorded.transport.add_file(FEED, "blog/feed.stable-updates.start1.http")
    sync_chrome_releases(now=NOW + timedelta(hours=1), session=recorded.session, feed_url=FEED)

    query = recorded.transport.query(1)
    assert (query["updated-min"], query["orderby"]) == ("2025-06-30T12:00:00+00:00", "updated")


def test_a_failing_feed_keeps_the_last_good_posts_and_turns_stale(upstream, settings):
    recorded = recorded_session()
    recorded.transport.add_file(FEED, "blog/feed.stable-updates.start1.http")
    sync_chrome_releases(now=NOW, session=recorded.session, feed_url=FEED)
    before = _snapshot()

    later = NOW + timedelta(hours=30)
    for _ in range(4):
        recorded.transport.add_file(FEED, "errors/500.http")
    with pytest.raises(SourceError, match="HTTP 500") as caught:
        sync_chrome_releases(now=later, session=recorded.session, feed_url=FEED)

    assert caught.value.transient is True
    assert recorded.sleeps == [2.0, 4.0, 8.0]  # the HTTP layer's own bounded retries
    assert _snapshot() == before
    state = SourceState.objects.get(source=Source.CHROME_RELEASES)
    assert (state.last_success_at, state.last_error_at, state.failures) == (NOW, later, 1)
    assert "HTTP 500; gave up after 4 attempts" in state.last_error
    settings.SOURCE_STALE_HOURS = 24
    assert state.is_stale(later)
