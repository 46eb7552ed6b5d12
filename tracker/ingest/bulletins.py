"""Chrome Releases bulletins into vulnerabilities, and vulnerabilities linked to their fixes.

- `ingest_blog_posts` stores posts by Blogger post id with their raw HTML. A post seen again
  with the same ``updated`` time and body is left alone; one whose ``updated`` time changed is
  re-parsed and its security lines replaced (posts are edited after publication: CVE lines
  added, ids renumbered, components renamed). Lines that look like security lines but do not
  parse stay on the post (`Bulletin.unparsed_lines`) for review.
- `reconcile_vulnerabilities` derives each upstream's `Vulnerability` rows from the stored
  lines: facts from the most recently updated post listing the CVE, the first bulletin, the
  union of the bug ids every post gave (old Monorail ids and migrated ones both match
  commits), and `in_the_wild` from any post's in-the-wild note.
- `link_fixes` finds each vulnerability's fix commits in the ingested upstream history and the
  first releases containing them (see `tracker.fixes` for the rules), and stores the upstream
  gap. A vulnerability no commit names (a dependency roll) is placed by bulletin version.
- `sync_chrome_releases` fetches the feed and runs the ingestion, recording the run in
  `SourceState`.

Every function here can run twice with the same input and change nothing the second time.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import transaction

from tracker import fixes
from tracker.bulletins import Bulletin as ParsedBulletin
from tracker.bulletins import parse_bulletin
from tracker.footers import MAIN_REFS, is_main_ref
from tracker.git import GitError, check_sha, run_git
from tracker.gitrepo import open_repo
from tracker.ingest.releases import SyncStats, WriteStats, source_run
from tracker.models import (
    Bulletin,
    BulletinLine,
    Channel,
    CommitBug,
    Evidence,
    FixCommit,
    Milestone,
    Placement,
    Source,
    Upstream,
    UpstreamCommit,
    UpstreamRelease,
    Vulnerability,
    VulnerabilityBug,
    VulnerabilityFixedVersion,
    VulnerabilityRelease,
)
from tracker.upstream import blog
from tracker.upstream import http as upstream_http
from tracker.upstream.blog import BlogPost
from tracker.upstream.http import UpstreamSession
from tracker.versions import ChromiumVersion, version_columns

__all__ = [
    "BLOG_LABEL",
    "BulletinStats",
    "LinkStats",
    "ingest_blog_posts",
    "link_fixes",
    "reconcile_vulnerabilities",
    "reparse_bulletins",
    "sync_chrome_releases",
]

logger = logging.getLogger(__name__)

# Security fixes are announced in "Stable updates" posts (Extended Stable ones carry the label
# too); Beta and Dev posts have no security lines.
BLOG_LABEL = "Stable updates"
# Later syncs re-read posts updated since the last success minus this much, so an edit made
# while a sync was running is not missed.
BLOG_OVERLAP = timedelta(days=2)
# A release made before the earliest fix commit cannot contain it; the slack absorbs clock
# differences between the release tooling and the commit queue.
RELEASE_TIME_SLACK = timedelta(days=1)
_CHUNK = 1000
_POST_ID_MAX = Bulletin._meta.get_field("post_id").max_length
_CVE_MAX = BulletinLine._meta.get_field("cve").max_length


@dataclass
class BulletinStats:
    """What `ingest_blog_posts` did: posts created, re-read (their ``updated`` changed),
    unchanged, and skipped (an id too long to be Blogger's); security lines stored; unparsed
    lines kept; CVEs whose vulnerabilities were reconciled."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    lines: int = 0
    unparsed: int = 0
    cves: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def _chunks(items: Sequence[Any], size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- bulletins -------------------------------------------------------------------------------


def _parsed_fields(parsed: ParsedBulletin) -> dict[str, Any]:
    return {
        "versions": [[m.version, m.platforms] for m in parsed.versions],
        "security_fix_count": parsed.security_fix_count,
        "unparsed_lines": list(parsed.unparsed_lines),
        "in_the_wild_cves": list(parsed.in_the_wild_cves),
    }


def _line_values(line) -> dict[str, Any]:
    return {
        "raw_line": line.raw_line,
        "severity": line.severity.lower(),
        "title": line.title,
        "component": line.component[:200],
        "reporter": line.reporter,
        "reward_text": line.reward_text[:200],
        "report_date": line.report_date,
        "bug_ids": list(line.bug_ids),
        "trailing_text": line.trailing_text,
    }


def _drop_oversized(parsed: ParsedBulletin) -> None:
    """Move lines whose CVE id is too long to store (garbage digits) to the unparsed ones."""
    kept = []
    for line in parsed.security_lines:
        if len(line.cve) > _CVE_MAX:
            parsed.unparsed_lines.append(line.raw_line)
        else:
            kept.append(line)
    parsed.security_lines = kept


def _store_lines(bulletin: Bulletin, parsed: ParsedBulletin) -> tuple[set[str], int]:
    """Make `bulletin`'s lines those of `parsed`; returns (CVEs before and after, lines)."""
    existing = {line.cve: line for line in bulletin.lines.all()}
    wanted: dict[str, dict[str, Any]] = {}
    for line in parsed.security_lines:
        # A post listing one CVE twice keeps its first line.
        wanted.setdefault(line.cve, _line_values(line))
    stale = [line.pk for cve, line in existing.items() if cve not in wanted]
    if stale:
        BulletinLine.objects.filter(pk__in=stale).delete()
    for cve, values in wanted.items():
        line = existing.get(cve)
        if line is None:
            BulletinLine.objects.create(bulletin=bulletin, cve=cve, **values)
            continue
        changed = [name for name, value in values.items() if getattr(line, name) != value]
        if changed:
            for name in changed:
                setattr(line, name, values[name])
            line.save(update_fields=changed)
    return set(existing) | set(wanted), len(wanted)


def ingest_blog_posts(posts: Iterable[BlogPost], *, now: datetime) -> BulletinStats:
    """Store Chrome Releases posts and reconcile the vulnerabilities their lines name.

    Keyed by `BlogPost.post_id`. A post whose ``updated`` time and body are unchanged is
    skipped; otherwise it is (re-)parsed, its security lines replaced, and every CVE it
    names or named (lines and in-the-wild notes) is reconciled for every upstream.
    """
    stats = BulletinStats()
    touched: set[str] = set()
    with transaction.atomic():
        for post in posts:
            if len(post.post_id) > _POST_ID_MAX:
                logger.warning("bulletin %s: post id too long, skipped", post.url)
                stats.skipped += 1
                continue
            bulletin = Bulletin.objects.filter(post_id=post.post_id).first()
            if bulletin is not None and (
                bulletin.updated > post.updated
                or (bulletin.updated == post.updated and bulletin.content_html == post.content_html)
            ):
                # Same version, or an older copy from a lagging feed replica: keep ours.
                stats.unchanged += 1
                continue
            parsed = parse_bulletin(post.content_html)
            _drop_oversized(parsed)
            values = {
                "url": post.url[:500],
                "title": post.title[:300],
                "published": post.published,
                "updated": post.updated,
                "labels": list(post.labels),
                "content_html": post.content_html,
                "changed_at": now,
                **_parsed_fields(parsed),
            }
            if bulletin is None:
                bulletin = Bulletin.objects.create(
                    post_id=post.post_id, first_seen_at=now, **values
                )
                stats.created += 1
            else:
                touched.update(bulletin.in_the_wild_cves)
                for name, value in values.items():
                    setattr(bulletin, name, value)
                bulletin.save()
                stats.updated += 1
                logger.info("bulletin %s was edited (updated %s); re-read", post.url, post.updated)
            cves, lines = _store_lines(bulletin, parsed)
            touched.update(cves)
            touched.update(parsed.in_the_wild_cves)
            stats.lines += lines
            stats.unparsed += len(parsed.unparsed_lines)
            if parsed.unparsed_lines:
                logger.warning(
                    "bulletin %s: %d lines did not parse and were kept for review",
                    post.url,
                    len(parsed.unparsed_lines),
                )
        if touched:
            reconcile_vulnerabilities(touched)
    stats.cves = len(touched)
    return stats


def reparse_bulletins(*, now: datetime) -> BulletinStats:
    """Parse every stored post again (after a parser change) and reconcile all vulnerabilities.

    Posts whose parsed results do not change are not written.
    """
    stats = BulletinStats()
    with transaction.atomic():
        for bulletin in Bulletin.objects.all():
            parsed = parse_bulletin(bulletin.content_html)
            _drop_oversized(parsed)
            fields = _parsed_fields(parsed)
            before = {line.cve: _line_key(line) for line in bulletin.lines.all()}
            changed = [name for name, value in fields.items() if getattr(bulletin, name) != value]
            _cves, lines = _store_lines(bulletin, parsed)
            after = {line.cve: _line_key(line) for line in bulletin.lines.all()}
            if changed or before != after:
                for name in changed:
                    setattr(bulletin, name, fields[name])
                bulletin.changed_at = now
                bulletin.save(update_fields=[*changed, "changed_at"])
                stats.updated += 1
            else:
                stats.unchanged += 1
            stats.lines += lines
            stats.unparsed += len(parsed.unparsed_lines)
        reconcile_vulnerabilities()
    stats.cves = BulletinLine.objects.values("cve").distinct().count()
    return stats


def _line_key(line: BulletinLine) -> tuple:
    return tuple(getattr(line, name) for name in _LINE_FIELDS)


_LINE_FIELDS = (
    "raw_line",
    "severity",
    "title",
    "component",
    "reporter",
    "reward_text",
    "report_date",
    "bug_ids",
    "trailing_text",
)


# --- vulnerabilities from bulletins ------------------------------------------------------------


def _facts(lines: list[BulletinLine], in_the_wild: set[str]) -> tuple[dict[str, Any], list[int]]:
    """Vulnerability values and bug ids from every stored line of one CVE."""
    first = min(lines, key=lambda line: (line.bulletin.published, line.bulletin.pk))
    # The last rewrite wins: the post updated most recently says what the CVE is now.
    latest = max(
        lines, key=lambda line: (line.bulletin.updated, line.bulletin.published, line.bulletin.pk)
    )
    bug_ids: list[int] = []
    for line in sorted(lines, key=lambda line: (line.bulletin.published, line.bulletin.pk)):
        for bug_id in line.bug_ids:
            if bug_id not in bug_ids:
                bug_ids.append(bug_id)
    values = {
        "severity": latest.severity,
        "title": latest.title,
        "component": latest.component,
        "reporter": latest.reporter,
        "reward_text": latest.reward_text,
        "report_date": latest.report_date,
        "raw_line": latest.raw_line,
        "in_the_wild": latest.cve in in_the_wild,
        "first_bulletin_id": first.bulletin_id,
    }
    return values, bug_ids


def reconcile_vulnerabilities(
    cves: Iterable[str] | None = None, *, upstreams: Iterable[Upstream] | None = None
) -> WriteStats:
    """Make each upstream's vulnerabilities agree with the stored bulletin lines.

    `cves` limits the work to those CVEs (all listed ones when None). A CVE that no stored
    post lists any more (its line was rewritten to another CVE) loses its vulnerability.
    """
    targets = list(Upstream.objects.all()) if upstreams is None else list(upstreams)
    stats = WriteStats()
    lines_query = BulletinLine.objects.select_related("bulletin")
    wanted_cves: list[str] | None = None
    if cves is not None:
        wanted_cves = sorted(set(cves))
        lines = [
            line for chunk in _chunks(wanted_cves) for line in lines_query.filter(cve__in=chunk)
        ]
    else:
        lines = list(lines_query)
    by_cve: dict[str, list[BulletinLine]] = defaultdict(list)
    for line in lines:
        by_cve[line.cve].append(line)
    in_the_wild: set[str] = set()
    for noted in Bulletin.objects.exclude(in_the_wild_cves=[]).values_list(
        "in_the_wild_cves", flat=True
    ):
        in_the_wild.update(noted)
    facts = {cve: _facts(cve_lines, in_the_wild) for cve, cve_lines in by_cve.items()}

    with transaction.atomic():
        for upstream in targets:
            existing_query = Vulnerability.objects.filter(upstream=upstream)
            if wanted_cves is not None:
                existing = {
                    v.cve: v
                    for chunk in _chunks(wanted_cves)
                    for v in existing_query.filter(cve__in=chunk)
                }
            else:
                existing = {v.cve: v for v in existing_query}
            gone = [v.pk for cve, v in existing.items() if cve not in facts]
            if gone:
                Vulnerability.objects.filter(pk__in=gone).delete()
                stats.updated += len(gone)
            bugs: dict[int, set[int]] = defaultdict(set)
            for chunk in _chunks([v.pk for v in existing.values()]):
                for vuln_id, bug_id in VulnerabilityBug.objects.filter(
                    vulnerability_id__in=chunk
                ).values_list("vulnerability_id", "bug_id"):
                    bugs[vuln_id].add(bug_id)
            for cve, (values, bug_ids) in sorted(facts.items()):
                vuln = existing.get(cve)
                if vuln is None:
                    vuln = Vulnerability.objects.create(upstream=upstream, cve=cve, **values)
                    stats.created += 1
                else:
                    changed = [
                        name for name, value in values.items() if getattr(vuln, name) != value
                    ]
                    if changed:
                        for name in changed:
                            setattr(vuln, name, values[name])
                        vuln.save(update_fields=changed)
                        stats.updated += 1
                    else:
                        stats.unchanged += 1
                have = bugs.get(vuln.pk, set())
                if have != set(bug_ids):
                    VulnerabilityBug.objects.filter(vulnerability=vuln).exclude(
                        bug_id__in=bug_ids
                    ).delete()
                    VulnerabilityBug.objects.bulk_create(
                        [
                            VulnerabilityBug(vulnerability=vuln, bug_id=bug_id)
                            for bug_id in bug_ids
                            if bug_id not in have
                        ]
                    )
    return stats


def sync_chrome_releases(
    *,
    now: datetime,
    session: UpstreamSession | None = None,
    feed_url: str | None = None,
    label: str | None = BLOG_LABEL,
    updated_min: datetime | None = None,
    max_pages: int = blog.DEFAULT_MAX_PAGES,
) -> SyncStats:
    """Fetch Chrome Releases posts updated since `updated_min` (by default the last success
    minus `BLOG_OVERLAP`; every post on the first sync), store them and reconcile
    vulnerabilities; record the run in `SourceState`.

    Each feed page is stored as it arrives (every post is complete in itself), so a failure
    on a later page keeps the earlier pages; the run is then recorded as failed and raises
    `SourceError`.
    """
    session = session or upstream_http.default_session()
    feed_url = feed_url or blog.default_feed_url()
    stats = SyncStats()
    with source_run(Source.CHROME_RELEASES, now) as run:
        if updated_min is None and run.state.last_success_at is not None:
            updated_min = run.state.last_success_at - BLOG_OVERLAP
        for page in blog.iter_posts(
            session, feed_url, label=label, updated_min=updated_min, max_pages=max_pages
        ):
            run.reject(f"feed start-index {page.start_index}", page.rejected)
            written = ingest_blog_posts(page.items, now=now)
            stats.record(
                "posts",
                WriteStats(
                    created=written.created, updated=written.updated, unchanged=written.unchanged
                ),
            )
        stats.rejected = run.rejected_count
    return stats


# --- linking fixes --------------------------------------------------------------------------


@dataclass
class LinkStats:
    """What `link_fixes` found: vulnerabilities placed by commits, by version, or not at all;
    fix commits linked; rows created, changed or deleted."""

    vulnerabilities: int = 0
    by_commits: int = 0
    by_version: int = 0
    unplaced: int = 0
    fix_commits: int = 0
    rows_changed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.vulnerabilities} vulnerabilities: {self.by_commits} by commits, "
            f"{self.by_version} by version, {self.unplaced} unplaced; "
            f"{self.fix_commits} fix commits; {self.rows_changed} rows changed"
        )


_COMMIT_COLUMNS = (
    "sha",
    "position_ref",
    "position",
    "commit_time",
    "subject",
    "change_id",
    "cherry_picked_from",
    "original_position",
)


def _commit_facts(row: dict[str, Any], names_bug: bool) -> fixes.CommitFacts:
    return fixes.CommitFacts(
        sha=row["sha"],
        ref=row["position_ref"],
        position=row["position"],
        commit_time=row["commit_time"],
        subject=row["subject"],
        change_id=row["change_id"],
        cherry_picked_from=tuple(row["cherry_picked_from"].split()),
        original_position=row["original_position"],
        names_bug=names_bug,
    )


def _candidates(
    upstream: Upstream, bug_ids_by_vuln: dict[int, set[int]]
) -> dict[int, list[fixes.CommitFacts]]:
    """Per vulnerability: commits naming its bug ids, and branch commits tied to those on
    main by Change-Id or Cr-Original-Commit-Position (a cherry-pick that dropped the footer)."""
    all_ids = sorted({bug for ids in bug_ids_by_vuln.values() for bug in ids})
    shas_by_bug: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(all_ids):
        for sha, bug_id in CommitBug.objects.filter(
            upstream=upstream, project="chromium", bug_id__in=chunk
        ).values_list("sha", "bug_id"):
            shas_by_bug[bug_id].add(sha)
    all_shas = sorted({sha for shas in shas_by_bug.values() for sha in shas})
    rows: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(all_shas):
        for row in UpstreamCommit.objects.filter(upstream=upstream, sha__in=chunk).values(
            *_COMMIT_COLUMNS
        ):
            rows[row["sha"]] = row
    main_rows = [row for row in rows.values() if row["position_ref"] in MAIN_REFS]
    change_ids = sorted({row["change_id"] for row in main_rows if row["change_id"]})
    positions = sorted({row["position"] for row in main_rows if row["position"] is not None})
    branch_rows: dict[str, dict[str, Any]] = {}
    branch_query = UpstreamCommit.objects.filter(upstream=upstream).exclude(
        position_ref__in=MAIN_REFS
    )
    for chunk in _chunks(change_ids):
        for row in branch_query.filter(change_id__in=chunk).values(*_COMMIT_COLUMNS):
            branch_rows[row["sha"]] = row
    for chunk in _chunks(positions):
        for row in branch_query.filter(original_position__in=chunk).values(*_COMMIT_COLUMNS):
            branch_rows[row["sha"]] = row

    by_change_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_original: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in branch_rows.values():
        if row["change_id"]:
            by_change_id[row["change_id"]].append(row)
        if row["original_position"] is not None:
            by_original[row["original_position"]].append(row)

    result: dict[int, list[fixes.CommitFacts]] = {}
    for vuln_id, ids in bug_ids_by_vuln.items():
        named = {sha for bug in ids for sha in shas_by_bug.get(bug, ())}
        facts = [_commit_facts(rows[sha], True) for sha in sorted(named) if sha in rows]
        tied: dict[str, dict[str, Any]] = {}
        for main in (f for f in facts if f.ref in MAIN_REFS):
            for row in [*by_change_id.get(main.change_id, ()), *by_original.get(main.position, ())]:
                if row["sha"] not in named:
                    tied[row["sha"]] = row
        facts.extend(_commit_facts(row, False) for _sha, row in sorted(tied.items()))
        result[vuln_id] = facts
    return result


class _Ancestry:
    """``git merge-base --is-ancestor`` in `git_dir`, each question asked once."""

    def __init__(self, git_dir: Path | str) -> None:
        self.git_dir = git_dir
        self.answers: dict[tuple[str, str], bool] = {}
        self.present: dict[str, bool] = {}

    def has(self, sha: str) -> bool:
        if sha not in self.present:
            with open_repo(self.git_dir) as repo:
                self.present[sha] = repo.has_commit(sha)
        return self.present[sha]

    def __call__(self, ancestor: str, descendant: str) -> bool:
        key = (ancestor, descendant)
        if key not in self.answers:
            if not self.has(ancestor):
                self.answers[key] = False
            else:
                result = run_git(
                    [
                        "merge-base",
                        "--is-ancestor",
                        "--end-of-options",
                        check_sha(ancestor),
                        check_sha(descendant),
                    ],
                    git_dir=self.git_dir,
                    check=False,
                )
                if result.returncode not in (0, 1):
                    raise GitError(
                        f"merge-base --is-ancestor failed (exit {result.returncode})",
                        returncode=result.returncode,
                        stderr=result.stderr,
                    )
                self.answers[key] = result.returncode == 0
        return self.answers[key]


def _release_facts(upstream: Upstream) -> list[fixes.ReleaseFacts]:
    """Every release of `upstream`, by time, with where its commit sits when it is known."""
    releases = list(
        UpstreamRelease.objects.filter(upstream=upstream).order_by(
            "time", "major", "minor", "build", "patch", "channel", "platform"
        )
    )
    commits = sorted({r.chromium_commit for r in releases if r.chromium_commit})
    points: dict[str, fixes.ReleasePoint] = {}
    for chunk in _chunks(commits):
        for sha, ref, position, branched in UpstreamCommit.objects.filter(
            upstream=upstream, sha__in=chunk
        ).values_list("sha", "position_ref", "position", "branched_from_position"):
            if ref:
                points[sha] = fixes.ReleasePoint(ref, position, branched)
    branch_points = dict(
        Milestone.objects.filter(upstream=upstream, branch__isnull=False).values_list(
            "branch", "branch_position"
        )
    )
    facts = []
    for r in releases:
        branch_point = r.branch_position
        if branch_point is None:
            branch_point = branch_points.get(r.build)
        point = points.get(r.chromium_commit)
        if point is not None and point.branch_point is None and not is_main_ref(point.ref):
            # A release commit without Cr-Branched-From: Dash or the milestone table knows.
            point = fixes.ReleasePoint(point.ref, point.position, branch_point)
        facts.append(
            fixes.ReleaseFacts(
                key=r.pk,
                version=ChromiumVersion(r.major, r.minor, r.build, r.patch),
                channel=r.channel,
                platform=r.platform,
                time=r.time,
                commit=r.chromium_commit,
                point=point,
                branch_point=branch_point,
            )
        )
    return facts


def _bulletin_versions(cves: Sequence[str]) -> dict[str, list[str]]:
    versions: dict[str, list[str]] = defaultdict(list)
    for chunk in _chunks(list(cves)):
        for cve, listed in BulletinLine.objects.filter(cve__in=chunk).values_list(
            "cve", "bulletin__versions"
        ):
            versions[cve].extend(pair[0] for pair in listed or [] if pair)
    return versions


def link_fixes(
    upstream: Upstream, *, git_dir: Path | str | None = None, cves: Iterable[str] | None = None
) -> LinkStats:
    """Link `upstream`'s vulnerabilities to fix commits and to the first releases with them.

    First reconciles the upstream's vulnerabilities with the stored bulletins. Then, per
    vulnerability (all of them, or those in `cves`): the fix commits (`tracker.fixes`), the
    landing time on main, the first release per channel and platform containing the fix, the
    first fixed version per milestone, the first Stable release and the upstream gap. Releases
    whose commit is not in the ingested history are placed by the branch-point rule when it
    suffices, else by git ancestry in `git_dir` (a mirror or clone of the upstream) when
    given, else left undecided. A vulnerability without fix commits is placed by the versions
    of the bulletins that list it, and its placement says so.
    """
    reconcile_vulnerabilities(upstreams=[upstream])
    stats = LinkStats()
    query = Vulnerability.objects.filter(upstream=upstream).order_by("cve")
    if cves is not None:
        query = query.filter(cve__in=sorted(set(cves)))
    vulns = list(query)
    if not vulns:
        return stats
    bug_ids: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks([v.pk for v in vulns]):
        for vuln_id, bug_id in VulnerabilityBug.objects.filter(
            vulnerability_id__in=chunk
        ).values_list("vulnerability_id", "bug_id"):
            bug_ids[vuln_id].add(bug_id)
    candidates = _candidates(upstream, {v.pk: bug_ids.get(v.pk, set()) for v in vulns})
    releases = fixes.ReleaseIndex(_release_facts(upstream))
    versions = _bulletin_versions([v.cve for v in vulns])
    ancestry = _Ancestry(git_dir) if git_dir is not None else None

    existing_fixes = _by_vulnerability(FixCommit, vulns, lambda row: row.sha)
    existing_firsts = _by_vulnerability(
        VulnerabilityRelease, vulns, lambda row: (row.channel, row.platform)
    )
    existing_fixed = _by_vulnerability(VulnerabilityFixedVersion, vulns, lambda row: row.milestone)

    # One object reader for all the ancestry questions (tracker.gitrepo).
    session = open_repo(git_dir) if git_dir is not None else contextlib.nullcontext()
    with session, transaction.atomic():
        for vuln in vulns:
            fix = fixes.group_fix_commits(candidates.get(vuln.pk, []))
            by_version = fixes.fixed_versions(versions.get(vuln.cve, [])) if not fix else {}
            decide = _decider(fix, by_version, ancestry)
            not_before = fix.earliest - RELEASE_TIME_SLACK if fix.earliest else None
            firsts = fixes.first_releases(releases, decide, not_before=not_before)
            per_milestone = fixes.first_fixed_per_milestone(releases, decide, not_before=not_before)
            stats.vulnerabilities += 1
            if fix:
                placement = Placement.COMMITS
                stats.by_commits += 1
            elif by_version:
                placement = Placement.VERSION
                stats.by_version += 1
            else:
                placement = Placement.UNPLACED
                stats.unplaced += 1
            stats.fix_commits += len(fix.commits())
            stats.rows_changed += _store_fix_commits(vuln, fix, existing_fixes[vuln.pk])
            stats.rows_changed += _store_first_releases(vuln, firsts, existing_firsts[vuln.pk])
            stats.rows_changed += _store_fixed_versions(
                vuln, per_milestone, existing_fixed[vuln.pk]
            )
            stable = [
                release
                for (channel, _platform), (release, _how) in firsts.items()
                if channel == Channel.STABLE
            ]
            # Platforms usually ship a version together; the lowest key breaks the tie.
            first = min(stable, key=lambda r: (r.time, r.version, r.key)) if stable else None
            landed_at = fix.landed_at
            values = {
                "placement": placement,
                "landed_at": landed_at,
                "first_stable_release_id": first.key if first else None,
                "first_stable_version": str(first.version) if first else "",
                "first_stable_at": first.time if first else None,
                "upstream_gap_days": fixes.upstream_gap_days(
                    landed_at, first.time if first else None
                ),
            }
            changed = [name for name, value in values.items() if getattr(vuln, name) != value]
            if changed:
                for name in changed:
                    setattr(vuln, name, values[name])
                vuln.save(update_fields=changed)
                stats.rows_changed += 1
    logger.info("link fixes %s: %s", upstream.slug, stats)
    return stats


def _decider(
    fix: fixes.FixSet,
    by_version: dict[tuple[int, int], ChromiumVersion],
    ancestry: _Ancestry | None,
):
    """`fixes.place_release` for one fix, asked once per release commit and version."""
    cache: dict[tuple, tuple[bool, str] | None] = {}

    def decide(release: fixes.ReleaseFacts):
        key = (release.commit, release.version, release.point, release.branch_point)
        if key not in cache:
            is_ancestor = None
            if ancestry is not None and release.commit and ancestry.has(release.commit):
                is_ancestor = ancestry
            cache[key] = fixes.place_release(
                fix, release, fixed_by_version=by_version, is_ancestor=is_ancestor
            )
        return cache[key]

    return decide


def _by_vulnerability(model: Any, vulns: Sequence[Vulnerability], key) -> dict[int, dict]:
    """Existing rows of `model` per vulnerability id, keyed by `key(row)` (one query per
    chunk of vulnerabilities, not one per vulnerability)."""
    rows: dict[int, dict] = {vuln.pk: {} for vuln in vulns}
    for chunk in _chunks([vuln.pk for vuln in vulns]):
        for row in model.objects.filter(vulnerability_id__in=chunk):
            rows[row.vulnerability_id][key(row)] = row
    return rows


def _store_fix_commits(
    vuln: Vulnerability, fix: fixes.FixSet, existing: dict[str, FixCommit]
) -> int:
    """Make `vuln`'s FixCommit rows those of `fix`; returns rows created, changed or deleted."""
    wanted = {commit.sha: commit for commit in fix.commits()}
    changes = 0
    stale = [row.pk for sha, row in existing.items() if sha not in wanted]
    if stale:
        FixCommit.objects.filter(pk__in=stale).delete()
        changes += len(stale)
    ids: dict[str, int] = {}
    # Main commits first: cherry-picks point at them.
    for commit in [*fix.parts, *fix.picks]:
        values = {
            "change_id": commit.change_id,
            "subject": commit.subject,
            "ref": commit.ref,
            "branch": commit.branch,
            "position": commit.position,
            "role": commit.role,
            "original_id": ids.get(commit.original_sha) if commit.original_sha else None,
            "found_by": commit.found_by,
            "landed_at": commit.commit_time,
        }
        row = existing.get(commit.sha)
        if row is None:
            row = FixCommit.objects.create(vulnerability=vuln, sha=commit.sha, **values)
            changes += 1
        else:
            changed = [name for name, value in values.items() if getattr(row, name) != value]
            if changed:
                for name in changed:
                    setattr(row, name, values[name])
                row.save(update_fields=changed)
                changes += 1
        ids[commit.sha] = row.pk
    return changes


def _store_first_releases(
    vuln: Vulnerability,
    firsts: dict[tuple[str, str], tuple[fixes.ReleaseFacts, str]],
    existing: dict[tuple[str, str], VulnerabilityRelease],
) -> int:
    changes = 0
    stale = [row.pk for key, row in existing.items() if key not in firsts]
    if stale:
        VulnerabilityRelease.objects.filter(pk__in=stale).delete()
        changes += len(stale)
    for (channel, platform), (release, how) in firsts.items():
        row = existing.get((channel, platform))
        if row is None:
            VulnerabilityRelease.objects.create(
                vulnerability=vuln,
                channel=channel,
                platform=platform,
                release_id=release.key,
                how=Evidence(how),
            )
            changes += 1
        elif row.release_id != release.key or row.how != how:
            row.release_id = release.key
            row.how = how
            row.save(update_fields=["release", "how"])
            changes += 1
    return changes


def _store_fixed_versions(
    vuln: Vulnerability,
    per_milestone: dict[int, tuple[ChromiumVersion, str]],
    existing: dict[int, VulnerabilityFixedVersion],
) -> int:
    changes = 0
    stale = [row.pk for milestone, row in existing.items() if milestone not in per_milestone]
    if stale:
        VulnerabilityFixedVersion.objects.filter(pk__in=stale).delete()
        changes += len(stale)
    for milestone, (version, how) in per_milestone.items():
        values = {**version_columns(version), "how": how}
        row = existing.get(milestone)
        if row is None:
            VulnerabilityFixedVersion.objects.create(
                vulnerability=vuln, milestone=milestone, **values
            )
            changes += 1
        else:
            changed = [name for name, value in values.items() if getattr(row, name) != value]
            if changed:
                for name in changed:
                    setattr(row, name, values[name])
                row.save(update_fields=changed)
                changes += 1
    return changes
