"""Upstream facts for fork security: each vulnerability's fix parts (from its fix commits, or
for a dependency roll from the copies of the roll), the fix commits' patch identities, and
upstream base commits by id."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracker.footers import is_main_ref, review_number
from tracker.forksecurity import gitread
from tracker.forksecurity.rules import (
    Base,
    Fix,
    MatchIndex,
    Part,
    Pick,
)
from tracker.mirrors import Mirror, list_refs
from tracker.models import (
    FixCommit,
    FixRole,
    Milestone,
    Placement,
    RollFix,
    Upstream,
    UpstreamCommit,
    UpstreamPatchId,
    Vulnerability,
    VulnerabilityFixedVersion,
)
from tracker.versions import VersionParseError, parse_version, parse_version_file

CHUNK = 1000


def load_fixes(upstream: Upstream) -> list[Fix]:
    """Every vulnerability of `upstream` as status computation sees it (a few queries)."""
    vulns = list(
        Vulnerability.objects.filter(upstream=upstream)
        .order_by("cve")
        .values_list("pk", "cve", "placement")
    )
    rows = list(
        FixCommit.objects.filter(vulnerability__upstream=upstream).values_list(
            "pk", "vulnerability_id", "sha", "role", "ref", "position", "original_id", "change_id"
        )
    )
    reviews: dict[str, set[tuple[str, int]]] = defaultdict(set)
    shas = [r[2] for r in rows]
    for start in range(0, len(shas), CHUNK):
        for sha, reviewed in UpstreamCommit.objects.filter(
            upstream=upstream, sha__in=shas[start : start + CHUNK]
        ).values_list("sha", "reviewed_on"):
            for url in reviewed.split():
                found = review_number(url)
                if found:
                    reviews[sha].add(found)
    fixed: dict[int, dict[int, tuple]] = defaultdict(dict)
    for vuln_id, milestone, *version in VulnerabilityFixedVersion.objects.filter(
        vulnerability__upstream=upstream
    ).values_list("vulnerability_id", "milestone", "major", "minor", "build", "patch"):
        fixed[vuln_id][milestone] = tuple(version)
    by_vuln: dict[int, list] = defaultdict(list)
    for row in rows:
        by_vuln[row[1]].append(row)
    fixes = []
    for vuln_id, cve, placement in vulns:
        fix = Fix(vuln_id, cve, fixed_versions=fixed.get(vuln_id, {}))
        fix.by_version = placement == Placement.VERSION
        commits = by_vuln.get(vuln_id, [])
        sha_of = {r[0]: r[2] for r in commits}
        mains = sorted((r for r in commits if r[3] == FixRole.MAIN), key=lambda r: r[5] or 0)
        parts = {r[2]: Part(r[2], r[5], shas=[r[2]], change_ids={r[7]} - {""}) for r in mains}
        branch_only = [r for r in commits if r[3] == FixRole.BRANCH or r[6] not in sha_of]
        branch_only = [r for r in branch_only if r[3] != FixRole.MAIN]
        for r in commits:
            if r[3] == FixRole.CHERRY_PICK and r[6] in sha_of and sha_of[r[6]] in parts:
                part = parts[sha_of[r[6]]]
                part.picks.append(Pick(r[2], r[4], r[5]))
                part.shas.append(r[2])
                if r[7]:
                    part.change_ids.add(r[7])
        if parts:
            # A branch-only fix stands in for any part on its branch (as tracker.fixes has it).
            for part in parts.values():
                part.picks.extend(Pick(r[2], r[4], r[5]) for r in branch_only)
        else:
            for r in branch_only:
                parts[r[2]] = Part(r[2], None, [Pick(r[2], r[4], r[5])], [r[2]], {r[7]} - {""})
        for part in parts.values():
            for sha in part.shas:
                part.reviews |= reviews.get(sha, set())
        fix.parts = list(parts.values())
        fixes.append(fix)
    return fixes


DEPENDENCY_FILES = ("DEPS",)  # a dependency roll changes the pinned revisions here
ROLL_WINDOW_DAYS = 180  # how far before the first fixed version to look for copies of a roll


def resolve_rolls(upstream: Upstream, mirror: Mirror, fixes: Iterable[Fix]) -> int:
    """Give dependency-roll fixes (placed by version) parts, so positions can place them on
    milestones no bulletin names. Worked out once per set of first fixed versions and kept
    in `RollFix`; returns how many were worked out this time.

    The roll is the change of a dependency file (`DEPENDENCY_FILES`) between the first fixed
    version and the previous version of that milestone; its copies on main and on other
    release branches are the upstream commits with the same patch identity. All pending
    rolls are worked out together: one ``git log`` per fixed version (a few commits each),
    then one ``git log`` of every line's dependency-file changes and one patch-id pass.
    """
    pending = [f for f in fixes if f.by_version and f.fixed_versions]
    if not pending:
        return 0
    stored = {
        r.vulnerability_id: r
        for r in RollFix.objects.filter(vulnerability_id__in=[f.vuln_id for f in pending])
    }
    keys = {f.vuln_id: json.dumps(sorted(f.fixed_versions.items())) for f in pending}
    todo = [
        f
        for f in pending
        if f.vuln_id not in stored or stored[f.vuln_id].versions_key != keys[f.vuln_id]
    ]
    found = _find_rolls(upstream, mirror, todo) if todo else {}
    redo = {f.vuln_id for f in todo}
    for fix in todo:
        RollFix.objects.update_or_create(
            vulnerability_id=fix.vuln_id,
            defaults={"versions_key": keys[fix.vuln_id], "commits": found.get(fix.vuln_id, [])},
        )
    for fix in pending:
        commits = found.get(fix.vuln_id, []) if fix.vuln_id in redo else stored[fix.vuln_id].commits
        fix.parts = _roll_parts(commits)
    return len(todo)


def _roll_parts(commits: list[dict]) -> list[Part]:
    parts: dict[str, Part] = {}
    for c in commits:
        part = parts.setdefault(c["part"], Part(c["part"]))
        part.shas.append(c["sha"])
        if c["sha"] == c["part"] and is_main_ref(c["ref"]):
            part.position = c["position"]
        else:
            part.picks.append(Pick(c["sha"], c["ref"], c["position"]))
    return list(parts.values())


def _find_rolls(upstream: Upstream, mirror: Mirror, fixes: list[Fix]) -> dict[int, list[dict]]:
    """vulnerability id -> the upstream commits carrying its roll (see `resolve_rolls`)."""
    refs = list_refs(mirror, "refs/upstream/")
    tags = {r.removeprefix("refs/upstream/tags/"): sha for r, sha in refs.items() if "/tags/" in r}
    versions = sorted(v for v in (_tag_version(name) for name in tags) if v is not None)
    seeds: dict[int, list[str]] = defaultdict(list)
    for fix in fixes:
        for first in fix.fixed_versions.values():
            here = tags.get(".".join(map(str, first)))
            if not here:
                continue
            lower = [v for v in versions if v[2] == first[2] and v < first]
            revs = [here]
            if lower:
                revs.append("^" + tags[".".join(map(str, lower[-1]))])
            seeds[fix.vuln_id].extend(gitread.commits_touching(mirror, revs, DEPENDENCY_FILES))
    all_seeds = sorted({sha for shas in seeds.values() for sha in shas})
    if not all_seeds:
        return {}
    seed_ids = {sha: pid for sha, (pid, _f) in gitread.upstream_diffs(mirror, all_seeds).items()}
    times = gitread.commit_times(mirror, all_seeds)
    since = min(times.values()) - timedelta(days=ROLL_WINDOW_DAYS)
    lines = [sha for ref, sha in refs.items() if "/tags/" not in ref]
    candidates = gitread.commits_touching(mirror, lines, DEPENDENCY_FILES, since=since)
    ids = {sha: pid for sha, (pid, _f) in gitread.upstream_diffs(mirror, candidates).items()}
    ids.update(seed_ids)
    by_id: dict[str, list[str]] = defaultdict(list)
    for sha, pid in ids.items():
        if pid:
            by_id[pid].append(sha)
    facts = base_commits(upstream, ids)
    result: dict[int, list[dict]] = {}
    for vuln_id, shas in seeds.items():
        entries: dict[str, dict] = {}
        for seed in shas:
            copies = [facts[s] for s in by_id.get(seed_ids.get(seed, ""), [seed]) if s in facts]
            copies = [c for c in copies if c.position is not None]
            main = sorted(
                (c for c in copies if is_main_ref(c.position_ref)), key=lambda c: c.position
            )
            part = main[0].sha if main else seed
            for c in copies:
                entries[c.sha] = {
                    "sha": c.sha,
                    "ref": c.position_ref,
                    "position": c.position,
                    "part": part,
                }
        result[vuln_id] = sorted(entries.values(), key=lambda e: (e["part"], e["sha"]))
    return result


def _tag_version(ref: str):
    try:
        return parse_version(ref.removeprefix("refs/upstream/tags/")).as_tuple()
    except VersionParseError:
        return None


def ensure_patch_ids(upstream: Upstream, mirror: Mirror, fixes: Iterable[Fix]) -> dict:
    """sha -> (patch id, per-file lines) of every fix commit, computing the missing ones."""
    shas = {sha for fix in fixes for part in fix.parts for sha in part.shas}
    known = {
        sha: (pid, files)
        for sha, pid, files in UpstreamPatchId.objects.filter(upstream=upstream).values_list(
            "sha", "patch_id", "files"
        )
        if sha in shas
    }
    missing = sorted(shas - known.keys())
    if missing:
        computed = gitread.upstream_diffs(mirror, missing)
        UpstreamPatchId.objects.bulk_create(
            [
                UpstreamPatchId(upstream=upstream, sha=sha, patch_id=pid, files=files)
                for sha, (pid, files) in computed.items()
            ],
            ignore_conflicts=True,
        )
        known.update(computed)
    return known


def base_commits(upstream: Upstream, shas: Iterable[str]) -> dict[str, UpstreamCommit]:
    wanted = sorted({s for s in shas if s})
    found = {}
    for start in range(0, len(wanted), CHUNK):
        for commit in UpstreamCommit.objects.filter(
            upstream=upstream, sha__in=wanted[start : start + CHUNK]
        ).only("sha", "position_ref", "position", "branched_from_position"):
            found[commit.sha] = commit
    return found


def branch_points(upstream: Upstream) -> dict[int, int]:
    return dict(
        Milestone.objects.filter(upstream=upstream, branch__isnull=False)
        .exclude(branch_position=None)
        .values_list("branch", "branch_position")
    )


def _branch_number(ref: str) -> int | None:
    tail = ref.rsplit("/", 1)[-1]
    return int(tail) if ref.startswith("refs/branch-heads/") and tail.isdigit() else None


def make_base(sha: str, commit: UpstreamCommit | None, version, points: dict) -> Base:
    if commit is None:
        return Base(sha, version=version)
    branch_point = commit.branched_from_position
    number = _branch_number(commit.position_ref)
    if branch_point is None and number is not None:
        branch_point = points.get(number)
    return Base(sha, commit.position_ref, commit.position, branch_point, version)


def version_from_text(text: str | None):
    if not text:
        return None
    try:
        return parse_version_file(text)
    except VersionParseError:
        try:
            return parse_version(text.strip())
        except VersionParseError:
            return None


@dataclass
class UpstreamFacts:
    """An upstream's fixes as status computation needs them, loaded once and shared by every
    fork of the upstream in one run (`update_upstream_security`)."""

    fixes: list[Fix]
    digests: dict[int, str]
    _diffs: dict | None = None
    _index: MatchIndex | None = None

    @classmethod
    def load(cls, upstream: Upstream, mirror: Mirror) -> UpstreamFacts:
        fixes = load_fixes(upstream)
        resolve_rolls(upstream, mirror, fixes)
        return cls(fixes, {fix.vuln_id: fix.digest for fix in fixes})

    def matching(self, upstream: Upstream, mirror: Mirror) -> tuple[dict, MatchIndex]:
        """(fix commit id -> (patch id, per-file lines), the backport match index)."""
        if self._index is None:
            self._diffs = ensure_patch_ids(upstream, mirror, self.fixes)
            patch_ids = {sha: pid for sha, (pid, _files) in self._diffs.items()}
            self._index = MatchIndex(self.fixes, patch_ids)
        return self._diffs, self._index


def roll_landing_times(upstream: Upstream, vuln_ids: list[int]) -> dict[int, datetime]:
    """vulnerability id -> commit time of the latest main copy of its dependency roll."""
    mains = {}
    for vuln_id, commits in RollFix.objects.filter(vulnerability_id__in=vuln_ids).values_list(
        "vulnerability_id", "commits"
    ):
        shas = [c["sha"] for c in commits if c["sha"] == c["part"] and is_main_ref(c["ref"])]
        if shas:
            mains[vuln_id] = shas
    times = dict(
        UpstreamCommit.objects.filter(
            upstream=upstream, sha__in=[s for shas in mains.values() for s in shas]
        ).values_list("sha", "commit_time")
    )
    return {
        vuln_id: max(times[s] for s in shas)
        for vuln_id, shas in mains.items()
        if all(s in times for s in shas)
    }
