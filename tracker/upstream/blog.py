"""The Chrome Releases blog feed (Blogger, ``alt=json``), where security fixes are disclosed.

Each post's `content_html` holds the bulletin (version sentence, CVE lines); parse it with
`tracker.bulletins.parse_bulletin()`. Posts are edited after publication (CVE lines added,
issue ids renumbered), so store the raw HTML with `updated` and re-parse when it changes.

Feed shape (SOURCES.md section 3.1): ``feed.entry[]`` with ``id.$t``, ``title.$t``,
``published.$t``, ``updated.$t`` (RFC 3339 with offsets such as ``-07:00``), ``content.$t``,
``link[]`` and ``category[].term``. Paging is ``start-index`` (1-based) and ``max-results``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tracker.upstream import (
    ElementError,
    Page,
    UpstreamFormatError,
    parse_elements,
    parse_rfc3339,
)
from tracker.upstream.http import SourceError, UpstreamSession, fetch_json

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESULTS = 50
DEFAULT_MAX_PAGES = 40
# "tag:blogger.com,1999:blog-8982037438137564684.post-<digits>"
_POST_ID_RE = re.compile(r"tag:blogger\.com,1999:blog-\d+\.post-\d+", re.ASCII)
_URL_RE = re.compile(r"https?://[^\s\"'<>]+", re.ASCII)


@dataclass(frozen=True)
class BlogPost:
    """One post of the feed.

    `post_id` is Blogger's stable id (``tag:blogger.com,1999:blog-<blog>.post-<post>``) and the
    key to store posts by; `url` is the post's page. `published` and `updated` are aware
    datetimes with the feed's offset. `labels` are the Blogger categories (``Stable updates``,
    ``Desktop Update``, ``Extended Stable updates``, ...). `content_html` is the body as HTML.
    """

    post_id: str
    url: str
    title: str
    published: datetime
    updated: datetime
    labels: list[str] = field(default_factory=list)
    content_html: str = ""


@dataclass
class FeedPage(Page[BlogPost]):
    """One feed page. `start_index` is the 1-based index of its first entry; `entry_count`
    counts every entry received, rejected ones included (a short page ends the paging)."""

    start_index: int = 1
    entry_count: int = 0
    total_results: int | None = None


def _text(value: Any, what: str) -> str:
    """The ``$t`` of a Blogger ``{"$t": ...}`` node."""
    if not isinstance(value, dict) or not isinstance(value.get("$t"), str):
        raise ElementError(f"{what} is missing or has no text")
    return value["$t"]


def _alternate_url(links: Any) -> str:
    if not isinstance(links, list):
        raise ElementError("link is missing or not an array")
    for link in links:
        if (
            isinstance(link, dict)
            and link.get("rel") == "alternate"
            and link.get("type") == "text/html"
            and isinstance(link.get("href"), str)
            and _URL_RE.fullmatch(link["href"])
        ):
            return link["href"]
    raise ElementError("no rel=alternate text/html link")


def _labels(categories: Any) -> list[str]:
    if categories is None:
        return []
    if not isinstance(categories, list):
        raise ElementError("category is not an array")
    labels = []
    for category in categories:
        term = category.get("term") if isinstance(category, dict) else None
        if isinstance(term, str) and term and term not in labels:
            labels.append(term)
    return labels


def _parse_entry(entry: Any) -> BlogPost:
    if not isinstance(entry, dict):
        raise ElementError("entry is not an object")
    post_id = _text(entry.get("id"), "id")
    if not _POST_ID_RE.fullmatch(post_id):
        raise ElementError(f"id {post_id[:100]!r} is not a Blogger post id")
    # Summary-only feeds carry "summary" instead of "content".
    body = entry.get("content") if "content" in entry else entry.get("summary")
    return BlogPost(
        post_id=post_id,
        url=_alternate_url(entry.get("link")),
        title=_text(entry.get("title"), "title") if "title" in entry else "",
        published=parse_rfc3339(_text(entry.get("published"), "published")),
        updated=parse_rfc3339(_text(entry.get("updated"), "updated")),
        labels=_labels(entry.get("category")),
        content_html=_text(body, "content"),
    )


def _feed_int(feed: dict[str, Any], key: str) -> int | None:
    node = feed.get(key)
    text = node.get("$t") if isinstance(node, dict) else None
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return None


def parse_feed(data: Any) -> FeedPage:
    """Parse one ``alt=json`` feed page into posts; a broken entry is rejected with a reason.

    Raises `UpstreamFormatError` when there is no ``feed`` object at all.
    """
    feed = data.get("feed") if isinstance(data, dict) else None
    if not isinstance(feed, dict):
        raise UpstreamFormatError("Blogger feed: no 'feed' object")
    entries = feed.get("entry", [])  # Blogger leaves "entry" out of an empty page
    if not isinstance(entries, list):
        raise UpstreamFormatError("Blogger feed: 'entry' is not an array")
    parsed = parse_elements(entries, _parse_entry)
    return FeedPage(
        items=parsed.items,
        rejected=parsed.rejected,
        start_index=_feed_int(feed, "openSearch$startIndex") or 1,
        entry_count=len(entries),
        total_results=_feed_int(feed, "openSearch$totalResults"),
    )


def default_feed_url() -> str:
    """The feed URL from settings (``CHROME_RELEASES_FEED_URL``)."""
    from django.conf import settings

    return settings.CHROME_RELEASES_FEED_URL


def iter_posts(
    session: UpstreamSession,
    feed_url: str,
    label: str | None = None,
    max_results: int = DEFAULT_MAX_RESULTS,
    updated_min: datetime | None = None,
    *,
    start_index: int = 1,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> Iterator[FeedPage]:
    """Yield feed pages, newest first, of posts with `label` (all posts when None).

    `updated_min` (aware) keeps posts updated at or after it, newest update first, which is
    how edits to old posts are picked up. Paging stops on a page with fewer than
    `max_results` entries or after `max_pages` pages; in the latter case the last page has
    ``has_more=True`` and a warning is logged. Raises `SourceError`.
    """
    if max_results < 1 or max_pages < 1 or start_index < 1:
        raise ValueError("max_results, max_pages and start_index must be positive")
    params: dict[str, Any] = {"alt": "json", "max-results": max_results}
    if label:
        params["category"] = label
    if updated_min is not None:
        if updated_min.tzinfo is None:
            raise ValueError("updated_min must be an aware datetime")
        params["updated-min"] = updated_min.isoformat(timespec="seconds")
        params["orderby"] = "updated"
    for page_number in range(1, max_pages + 1):
        data = fetch_json(session, feed_url, {**params, "start-index": start_index})
        try:
            page = parse_feed(data)
        except UpstreamFormatError as exc:
            raise SourceError(str(exc), transient=False, url=feed_url) from exc
        page.has_more = page.entry_count >= max_results
        yield page
        if not page.has_more:
            return
        start_index += page.entry_count
        if page_number == max_pages:
            logger.warning("blog feed %s: stopped at the %d-page cap", feed_url, max_pages)
