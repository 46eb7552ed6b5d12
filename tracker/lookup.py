"""Lookup: given a CVE, a bug id, an upstream commit id (7+ hex digits) or a version, which
upstream releases and which fork releases and branches contain it, since when, and how.

Answers are plain dataclasses (pages and the API render them). Terms:

- an upstream release *contains* a fix from its first release per channel and platform on
  (`VulnerabilityRelease`), and per milestone from the first fixed version
  (`VulnerabilityFixedVersion`); a commit by positions (the branch-point rule);
- a fork release or branch *contains* a fix when its stored status is fixed by base or by
  backport (`FixStatus`, with the evidence); a commit when its upstream base does, by
  positions; *since* is the ship time of a release (None for a branch tip).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from tracker.footers import is_main_ref
from tracker.models import (
    BranchSnapshot,
    CommitBug,
    FixCommit,
    FixState,
    FixStatus,
    ForkRelease,
    TrackedBranch,
    Upstream,
    UpstreamCommit,
    UpstreamRelease,
    Vulnerability,
    VulnerabilityBug,
)
from tracker.versions import VersionParseError, parse_version

_CVE = re.compile(r"CVE-\d{4}-\d{4,7}", re.IGNORECASE)
_SHA = re.compile(r"[0-9a-fA-F]{7,40}")
_BUG = re.compile(r"(?:crbug(?:\.com)?/|b/|chromium:)?(\d{1,12})", re.IGNORECASE)
CONTAINED = (FixState.BASE, FixState.BACKPORT)


@dataclass(frozen=True)
class VulnerabilityInfo:
    cve: str
    severity: str
    title: str
    landed_at: datetime | None
    first_stable_version: str
    first_stable_at: datetime | None


@dataclass(frozen=True)
class UpstreamHit:
    """An upstream release (or first fixed version of a milestone) containing the query."""

    version: str
    channel: str
    platform: str
    since: datetime | None
    how: str
    cve: str = ""


@dataclass(frozen=True)
class ForkHit:
    """A fork release or branch tip and the query's status there.

    `status` is base, backport, open, not_affected or will_not_fix; `contains` is True for
    the first two. `evidence` is the stored evidence (one entry per fix part).
    """

    fork: str
    target: str  # "release" or "branch"
    name: str
    since: datetime | None
    status: str
    method: str
    cve: str = ""
    evidence: list = field(default_factory=list)

    @property
    def contains(self) -> bool:
        return self.status in CONTAINED


@dataclass
class LookupResult:
    query: str
    kind: str  # "cve", "bug", "commit", "version" or "unknown"
    vulnerabilities: list[VulnerabilityInfo] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    upstream: list[UpstreamHit] = field(default_factory=list)
    forks: list[ForkHit] = field(default_factory=list)


def lookup(upstream: Upstream, query: str) -> LookupResult:
    """Answer `query` (a CVE, bug id, commit id prefix of 7+ hex digits, or version)."""
    text = query.strip()
    if _CVE.fullmatch(text):
        vulns = list(Vulnerability.objects.filter(upstream=upstream, cve=text.upper()))
        return _for_vulnerabilities(LookupResult(text, "cve"), vulns)
    try:
        version = parse_version(text)
    except VersionParseError:
        version = None
    if version is not None:
        return _for_version(upstream, LookupResult(text, "version"), version)
    bug = _BUG.fullmatch(text)
    if bug and (not text.isdigit() or _is_bug(upstream, int(text))):
        return _for_bug(upstream, LookupResult(text, "bug"), int(bug.group(1)))
    if _SHA.fullmatch(text):
        return _for_commit(upstream, LookupResult(text, "commit"), text.lower())
    return LookupResult(text, "unknown")


def _is_bug(upstream: Upstream, bug_id: int) -> bool:
    """All-digit queries are bug ids when some vulnerability or commit names that bug, else
    commit id prefixes."""
    return (
        VulnerabilityBug.objects.filter(bug_id=bug_id, vulnerability__upstream=upstream).exists()
        or CommitBug.objects.filter(upstream=upstream, bug_id=bug_id).exists()
    )


def _info(v: Vulnerability) -> VulnerabilityInfo:
    return VulnerabilityInfo(
        v.cve, v.severity, v.title, v.landed_at, v.first_stable_version, v.first_stable_at
    )


def _for_vulnerabilities(result: LookupResult, vulns: list[Vulnerability]) -> LookupResult:
    result.vulnerabilities = [_info(v) for v in vulns]
    for v in vulns:
        result.commits.extend(v.fix_commits.order_by("landed_at").values_list("sha", flat=True))
        for first in v.first_releases.select_related("release").order_by("release__time"):
            result.upstream.append(
                UpstreamHit(
                    first.release.version,
                    first.channel,
                    first.platform,
                    first.release.time,
                    first.how,
                    v.cve,
                )
            )
        for fixed in v.fixed_versions.order_by("major", "minor", "build", "patch"):
            result.upstream.append(
                UpstreamHit(fixed.version, "", f"M{fixed.milestone}", None, fixed.how, v.cve)
            )
    rows = (
        FixStatus.objects.of_vulnerabilities([v.pk for v in vulns])
        .select_related("fork", "release", "branch", "vulnerability")
        .order_by("fork__slug", "release__tagged_at", "branch__name")
    )
    for row in rows:
        methods = [e.get("method") or "" for e in row.evidence if e.get("how") != "missing"]
        result.forks.append(
            ForkHit(
                fork=row.fork.slug,
                target="release" if row.release_id else "branch",
                name=row.release.tag if row.release_id else row.branch.name,
                since=row.release.shipped_at if row.release_id else None,
                status=row.status,
                method=", ".join(dict.fromkeys(m for m in methods if m)),
                cve=row.vulnerability.cve,
                evidence=row.evidence,
            )
        )
    return result


def _for_bug(upstream: Upstream, result: LookupResult, bug_id: int) -> LookupResult:
    ids = VulnerabilityBug.objects.filter(
        bug_id=bug_id, vulnerability__upstream=upstream
    ).values_list("vulnerability_id", flat=True)
    vulns = list(Vulnerability.objects.filter(pk__in=list(ids)).order_by("cve"))
    if vulns:
        return _for_vulnerabilities(result, vulns)
    # Not a security bug: the commits that name it, placed like any commit.
    shas = list(
        CommitBug.objects.filter(upstream=upstream, bug_id=bug_id).values_list("sha", flat=True)
    )
    for sha in shas:
        _for_commit(upstream, result, sha)
    return result


def _for_commit(upstream: Upstream, result: LookupResult, prefix: str) -> LookupResult:
    fixes = FixCommit.objects.filter(
        vulnerability__upstream=upstream, sha__startswith=prefix
    ).values_list("vulnerability_id", flat=True)
    vulns = list(Vulnerability.objects.filter(pk__in=list(fixes)).order_by("cve"))
    if vulns:
        return _for_vulnerabilities(result, vulns)
    commits = list(UpstreamCommit.objects.filter(upstream=upstream, sha__startswith=prefix)[:2])
    if len(commits) != 1:
        return result  # unknown, or an ambiguous prefix
    commit = commits[0]
    result.commits.append(commit.sha)
    if commit.position is None:
        return result
    release_commits = {
        c.sha: c
        for c in UpstreamCommit.objects.filter(
            upstream=upstream,
            sha__in=UpstreamRelease.objects.filter(upstream=upstream).values("chromium_commit"),
        ).only("sha", "position_ref", "position", "branched_from_position")
    }
    first: dict[tuple[str, str], UpstreamRelease] = {}
    for release in UpstreamRelease.objects.filter(upstream=upstream).order_by("time"):
        at = release_commits.get(release.chromium_commit)
        if at is None or (release.channel, release.platform) in first:
            continue
        if _contains(commit, at.position_ref, at.position, at.branched_from_position):
            first[(release.channel, release.platform)] = release
    result.upstream = [
        UpstreamHit(r.version, r.channel, r.platform, r.time, "branch_point")
        for r in first.values()
    ]
    for release in ForkRelease.objects.filter(fork__upstream=upstream).select_related("fork"):
        if release.base_position is None:
            continue
        inside = _contains(
            commit, release.base_position_ref, release.base_position, release.base_branch_point
        )
        result.forks.append(
            ForkHit(
                release.fork.slug,
                "release",
                release.tag,
                release.shipped_at,
                FixState.BASE if inside else FixState.OPEN,
                "position" if inside else "",
            )
        )
    branches = TrackedBranch.objects.filter(fork__upstream=upstream).values_list("pk", flat=True)
    latest = BranchSnapshot.objects.select_related("branch__fork").latest_by_branch(list(branches))
    bases = {
        c.sha: c
        for c in UpstreamCommit.objects.filter(
            upstream=upstream, sha__in=[s.base_sha for s in latest.values()]
        )
    }
    for snapshot in latest.values():
        base = bases.get(snapshot.base_sha)
        if base is None or base.position is None:
            continue
        inside = _contains(commit, base.position_ref, base.position, base.branched_from_position)
        result.forks.append(
            ForkHit(
                snapshot.branch.fork.slug,
                "branch",
                snapshot.branch.name,
                None,
                FixState.BASE if inside else FixState.OPEN,
                "position" if inside else "",
            )
        )
    return result


def _contains(commit: UpstreamCommit, ref: str, position: int | None, branch_point) -> bool:
    """Whether the upstream commit at (`ref`, `position`) has `commit` in its history, by
    positions: the same ref at or after it, or a branch cut after it from main."""
    if position is None:
        return False
    if commit.position_ref == ref:
        return commit.position <= position
    if is_main_ref(commit.position_ref) and branch_point is not None:
        return commit.position <= branch_point
    return False


def _for_version(upstream: Upstream, result: LookupResult, version) -> LookupResult:
    text = str(version)
    for release in UpstreamRelease.objects.filter(upstream=upstream, version=text).order_by("time"):
        result.upstream.append(
            UpstreamHit(text, release.channel, release.platform, release.time, "version")
        )
    result.vulnerabilities = [
        _info(v)
        for v in Vulnerability.objects.filter(
            upstream=upstream, fixed_versions__version=text
        ).order_by("cve")
    ]
    key = version.as_tuple()
    for release in ForkRelease.objects.filter(
        fork__upstream=upstream, base_major=version.major, base_build=version.build
    ).select_related("fork"):
        base = (release.base_major, release.base_minor, release.base_build, release.base_patch)
        inside = base >= key
        result.forks.append(
            ForkHit(
                release.fork.slug,
                "release",
                release.tag,
                release.shipped_at,
                FixState.BASE if inside else FixState.OPEN,
                "version" if inside else "",
            )
        )
    return result
