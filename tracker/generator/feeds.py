"""Recorded upstream data for a generated world, in the real sources' shapes.

Chromium Dash `fetch_releases` / `fetch_milestones` arrays and a Chrome Releases (Blogger
``alt=json``) feed whose posts carry bulletin lines like the real ones, so ingestion can be
tested and demonstrated without the network.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from tracker.generator.upstream import UpRef, UpstreamPlan

PLATFORMS = ("Windows", "Mac", "Linux")
BLOG_ID = "8982037438137564684"
BLOG_URL = "https://chromereleases.googleblog.com"


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def release_time(tag_time: int) -> int:
    """Upstream ships a version two hours after its tag."""
    return tag_time + 7200


def dash_releases(plan: UpstreamPlan, sha_of_mark) -> list[dict]:
    out, previous = [], {}
    for when, m, j, channel in plan.releases():
        version = m.version(m.commits[j].patch)
        for platform in PLATFORMS:
            key = (channel, platform)
            out.append(
                {
                    "channel": channel,
                    "platform": platform,
                    "version": version,
                    "previous_version": previous.get(key, version),
                    "milestone": m.milestone,
                    "time": release_time(when) * 1000,
                    "chromium_main_branch_position": plan.position(m.bp_index),
                    "hashes": {"chromium": sha_of_mark(m.commits[j].mark)},
                }
            )
            previous[key] = version
    out.reverse()  # newest first, like the real endpoint
    return out


def dash_milestones(plan: UpstreamPlan, main_sha) -> list[dict]:
    out = []
    for m in plan.milestones:
        phase = m.channel_at(plan.spec.now_ts)
        out.append(
            {
                "milestone": m.milestone,
                "chromium_branch": str(m.build),
                "chromium_main_branch_position": plan.position(m.bp_index),
                "chromium_main_branch_hash": main_sha(m.bp_index),
                "v8_branch": f"12.{m.milestone - 113}",
                "skia_branch": f"m{m.milestone}",
                "schedule_active": phase is not None,
                **({"schedule_phase": phase.lower()} if phase else {}),
            }
        )
    out.reverse()
    return out


def first_stable(plan: UpstreamPlan, vuln) -> tuple[int, str] | None:
    """(time, version) of the first Stable release that contains every fix commit."""
    for when, m, j, channel in plan.releases():
        if channel == "Stable" and plan.vuln_in(UpRef(m.k, j), vuln):
            return release_time(when), m.version(m.commits[j].patch)
    return None


def bulletin_line(vuln, report_date: str) -> str:
    reward = ("$TBD", "$15000", "N/A", "$7000 + $3000", "TBD")[vuln.number % 5]
    ids = ", ".join(str(i) for i in vuln.bug_ids)
    return (
        f"[{reward}][{ids}] {vuln.severity} {vuln.cve}: {vuln.title}. "
        f"Reported by {vuln.reporter} on {report_date}"
    )


def blog_feed(plan: UpstreamPlan) -> tuple[dict, dict[str, str]]:
    """A Blogger feed of Stable updates, and the post URL of each CVE."""
    shipped: dict[str, list] = {}
    for vuln in plan.vulns:
        found = first_stable(plan, vuln)
        if found:
            shipped.setdefault(found[1], []).append(vuln)
    entries, urls = [], {}
    for when, m, j, channel in plan.releases():
        if channel != "Stable":
            continue
        version = m.version(m.commits[j].patch)
        vulns = shipped.get(version, [])
        published = release_time(when)
        day = datetime.fromtimestamp(published, UTC)
        url = f"{BLOG_URL}/{day:%Y/%m}/stable-channel-update-for-desktop_{day:%d}.html"
        lines = [
            html.escape(
                bulletin_line(v, datetime.fromtimestamp(v.report_time, UTC).strftime("%Y-%m-%d"))
            )
            for v in vulns
        ]
        body = (
            f"<p>The Stable channel has been updated to {version}/.{m.commits[j].patch + 1} for "
            f"Windows, Mac and {version} for Linux which will roll out over the coming "
            "days/weeks.</p>"
            f"<p>This update includes <b>{len(vulns)}</b> security fixes. Below, we highlight "
            "fixes that were contributed by external researchers.</p>"
            + ("<p>" + "<br />".join(lines) + "</p>" if lines else "")
            + "".join(
                f"<p>Google is aware that an exploit for {v.cve} exists in the wild.</p>"
                for v in vulns
                if v.in_the_wild
            )
        )
        for v in vulns:
            urls[v.cve] = url
        entries.append(
            {
                "id": {"$t": f"tag:blogger.com,1999:blog-{BLOG_ID}.post-{published}"},
                "published": {"$t": iso(published)},
                "updated": {"$t": iso(published + 3600)},
                "title": {"type": "text", "$t": "Stable Channel Update for Desktop"},
                "content": {"type": "html", "$t": body},
                "link": [{"rel": "alternate", "type": "text/html", "href": url}],
                "category": [
                    {"scheme": "http://www.blogger.com/atom/ns#", "term": "Stable updates"},
                    {"scheme": "http://www.blogger.com/atom/ns#", "term": "Desktop Update"},
                ],
            }
        )
    entries.reverse()
    feed = {
        "version": "1.0",
        "encoding": "UTF-8",
        "feed": {
            "id": {"$t": f"tag:blogger.com,1999:blog-{BLOG_ID}"},
            "openSearch$totalResults": {"$t": str(len(entries))},
            "openSearch$startIndex": {"$t": "1"},
            "entry": entries,
        },
    }
    return feed, urls
