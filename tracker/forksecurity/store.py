"""Fork security in the database: fork releases, fix statuses with evidence, triage.

`update_fork_security` is incremental. Each status row keeps a fingerprint of its inputs (the
vulnerability's fix facts, the target commit and its upstream base), and only pairs whose
fingerprint changed are evaluated: a newly linked fix commit re-evaluates that vulnerability
only, a new vulnerability adds its row per target, a new release computes that release only,
and a rerun with nothing new reads no fork history and writes nothing (it still lists the
release tags and branch tips, a few cheap git calls).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import connections, router, transaction
from django.db.models import Exists, OuterRef

from tracker.forksecurity import gitread
from tracker.forksecurity.rules import (
    Base,
    Fix,
    ForkCommit,
    MatchIndex,
    diff_lines,
    evaluate,
    fingerprint,
    lowest_listing,
    patch_level_from_missing,
    reachable,
    strongest,
)
from tracker.forksecurity.upstream import (
    CHUNK,
    UpstreamFacts,
    base_commits,
    branch_points,
    make_base,
    roll_landing_times,
    version_from_text,
)
from tracker.gap import FixFacts as GapFix
from tracker.gap import ForkGaps, ShippedRelease, count_open, days_between, fork_gaps
from tracker.git import GitError
from tracker.gitrepo import open_repo
from tracker.lag import merge_base, rev_parse
from tracker.mirrors import Mirror, list_refs
from tracker.models import (
    BranchSnapshot,
    Bulletin,
    BulletinLine,
    Channel,
    FixState,
    FixStatus,
    FixTriage,
    Fork,
    ForkKind,
    ForkRelease,
    ForkSecuritySnapshot,
    ReleaseSource,
    TrackedBranch,
    TriageDecision,
    Upstream,
    UpstreamRelease,
    Vulnerability,
)
from tracker.versions import ChromiumVersion, TagVersion, parse_version, version_columns
from tracker.versionschemes import TagScheme, scheme_for

logger = logging.getLogger(__name__)

CARRIED = {FixState.BASE, FixState.BACKPORT, FixState.NOT_AFFECTED}
# The complement, as the partial index fix_status_not_carried lists it.
NOT_CARRIED = [FixState.OPEN, FixState.WILL_NOT_FIX]


@dataclass
class SecurityStats:
    """What one `update_fork_security` run did: releases found, pairs evaluated (a pair is a
    (vulnerability, release or branch tip)), status rows written, git reads of fork commits."""

    releases_added: int = 0
    bases_computed: int = 0
    pairs_evaluated: int = 0
    rows_written: int = 0
    fork_reads: int = 0
    # Seconds spent reading git (fork commits, patch files, fix diffs), evaluating pairs in
    # memory, and writing rows.
    seconds_git: float = 0.0
    seconds_evaluate: float = 0.0
    seconds_write: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.releases_added} new releases, {self.bases_computed} bases, "
            f"{self.pairs_evaluated} pairs evaluated, {self.rows_written} rows written"
        )


@dataclass
class Target:
    """A fork release or a tracked branch tip, with its upstream base."""

    release: ForkRelease | None
    branch: TrackedBranch | None
    sha: str
    base: Base | None

    @property
    def key(self) -> tuple[str, int]:
        return ("r", self.release.pk) if self.release else ("b", self.branch.pk)

    @property
    def digest(self) -> str:
        base = self.base
        return fingerprint(
            self.sha,
            base.sha if base else "",
            str(base.position if base else ""),
            str(base.version if base else ""),
        )


# --- releases and their bases -------------------------------------------------------------------


def discover_releases(fork: Fork, mirror: Mirror) -> int:
    """Create or update the fork's releases from its release tags in the mirror; a release
    registered by hand gets its commit and tag date once its tag appears. Returns the number
    of releases created.

    A tag on a commit upstream has (reachable from an upstream ref: upstream's own tags,
    which forks such as git for Windows carry beside theirs, or a fork tag on a pure
    upstream commit) is no fork release: the fork shipped nothing of its own there.
    Releases found from tags that are no fork releases any more (the pattern changed, the
    tag went, or it is upstream's) are deleted with their statuses; those registered by hand
    stay.
    """
    selected = gitread.release_tags(mirror, fork)
    upstreams = gitread.upstream_commits(mirror, [t.sha for t in selected])
    tags = {t.tag: t for t in selected if t.sha not in upstreams}
    existing = {r.tag: r for r in ForkRelease.objects.filter(fork=fork)}
    gone = [r for r in existing.values() if r.source == ReleaseSource.TAG and r.tag not in tags]
    if gone:
        ForkRelease.objects.filter(pk__in=[r.pk for r in gone]).delete()
        logger.info(
            "fork %s: %d releases are no fork releases any more, removed: %s",
            fork.slug,
            len(gone),
            ", ".join(r.tag for r in gone[:10]),
        )
        for release in gone:
            del existing[release.tag]
    created = 0
    for tag, info in tags.items():
        release = existing.get(tag)
        if release is None:
            ForkRelease.objects.create(
                fork=fork, tag=tag, source=ReleaseSource.TAG, sha=info.sha, tagged_at=info.tagged_at
            )
            created += 1
            continue
        changed = []
        if release.sha != info.sha and (release.source == ReleaseSource.TAG or not release.sha):
            release.sha = info.sha
            changed.append("sha")
        if release.tagged_at != info.tagged_at:
            release.tagged_at = info.tagged_at
            changed.append("tagged_at")
        if changed:
            release.save(update_fields=changed)
    return created


def compute_bases(fork: Fork, mirror: Mirror) -> int:
    """Fill the upstream base, base version and branch of every release whose commit changed
    since its base was computed. Returns how many were computed."""
    upstream = fork.upstream
    pending = [
        r
        for r in ForkRelease.objects.filter(fork=fork).exclude(sha="")
        if r.inputs_fingerprint != fingerprint(r.sha)
    ]
    if not pending:
        return 0
    branches = list(fork.branches.order_by("pk"))
    if fork.kind == ForkKind.PATCH_SERIES:
        texts = gitread.read_files(mirror, [f"{r.sha}:{fork.pinned_version_file}" for r in pending])
        tags = list_refs(mirror, "refs/upstream/tags/")
        for release, text in zip(pending, texts, strict=True):
            version = version_from_text(text)
            release.upstream_ref = ""
            release.base_sha = tags.get(f"refs/upstream/tags/{version}", "") if version else ""
            _set_version(release, "base", version)
    else:
        tips = {}
        for branch in branches:
            try:
                tips[branch.pk] = rev_parse(mirror.path, Mirror.upstream_ref(branch.upstream_ref))
            except GitError:
                tips[branch.pk] = ""
        prefix = f"refs/forks/{fork.slug}/heads/"
        for release in list(pending):
            try:
                containing = set(gitread.containing_refs(mirror, release.sha, prefix))
            except GitError as exc:
                # A commit registered by hand that the mirror does not have (yet): kept with
                # its error, tried again on the next run.
                release.last_error = str(exc)[:2000]
                release.save(update_fields=["last_error"])
                pending.remove(release)
                continue
            # A rebased branch no longer contains its old releases: then every branch is a
            # candidate, and the one whose upstream ref gives the newest merge-base wins (a
            # release of a release branch has a newer base on that branch than on main).
            candidates = [b for b in branches if Mirror.fork_ref(fork, b.name) in containing]
            candidates = candidates or branches
            found = []
            for branch in candidates:
                tip = tips.get(branch.pk, "")
                base = merge_base(mirror.path, release.sha, tip) if tip else None
                if base:
                    found.append((base, branch))
            times = gitread.commit_times(mirror, [base for base, _b in found])
            best = max(found, key=lambda f: times[f[0]], default=None)
            release.branch = best[1] if best else (candidates or [None])[0]
            release.upstream_ref = (
                release.branch.upstream_ref if release.branch else upstream.main_ref
            )
            release.base_sha = best[0] if best else ""
        scheme = scheme_for(upstream)
        if isinstance(scheme, TagScheme):
            for release in pending:
                version = (
                    scheme.version_at(mirror.path, release.base_sha) if release.base_sha else None
                )
                _set_version(release, "base", version)
        else:
            texts = gitread.read_files(
                mirror,
                [f"{r.base_sha}:{upstream.version_file}" for r in pending if r.base_sha],
            )
            versions = iter(texts)
            for release in pending:
                text = next(versions) if release.base_sha else None
                _set_version(release, "base", version_from_text(text))
    commits = base_commits(upstream, [r.base_sha for r in pending])
    points = branch_points(upstream)
    for release in pending:
        base = make_base(release.base_sha, commits.get(release.base_sha), None, points)
        release.base_position_ref = base.position_ref
        release.base_position = base.position
        release.base_branch_point = base.branch_point
        release.inputs_fingerprint = fingerprint(release.sha)
        release.last_error = ""
        release.save()
    return len(pending)


def _set_version(obj, prefix: str, version: ChromiumVersion | TagVersion | None) -> None:
    for column, value in version_columns(version, prefix=f"{prefix}_").items():
        setattr(obj, column, value)


def _release_target(release: ForkRelease) -> Target:
    version = (
        (release.base_major, release.base_minor, release.base_build, release.base_patch)
        if release.base_version
        else None
    )
    base = (
        Base(
            release.base_sha,
            release.base_position_ref,
            release.base_position,
            release.base_branch_point,
            version,
        )
        if release.base_sha or version
        else None
    )
    return Target(release, None, release.sha, base)


def branch_targets(fork: Fork, mirror: Mirror) -> list[Target]:
    """Each tracked branch's tip and its upstream base, as of the mirror now."""
    upstream = fork.upstream
    found = []
    branches = list(fork.branches.order_by("pk"))
    latest = BranchSnapshot.objects.latest_by_branch([b.pk for b in branches])
    for branch in branches:
        try:
            tip = rev_parse(mirror.path, Mirror.fork_ref(fork, branch.name))
        except GitError:
            continue  # not fetched yet
        if fork.kind == ForkKind.PATCH_SERIES:
            (text,) = gitread.read_files(mirror, [f"{tip}:{fork.pinned_version_file}"])
            version = version_from_text(text)
            tags = list_refs(mirror, "refs/upstream/tags/") if version else {}
            base_sha = tags.get(f"refs/upstream/tags/{version}", "")
        else:
            try:
                upstream_tip = rev_parse(mirror.path, Mirror.upstream_ref(branch.upstream_ref))
            except GitError:
                continue
            # The sync has just measured this branch: its snapshot's base saves a merge-base
            # walk (hundreds of milliseconds on a Chromium-sized history).
            snapshot = latest.get(branch.pk)
            if snapshot and (snapshot.tip_sha, snapshot.upstream_tip_sha) == (tip, upstream_tip):
                base_sha = snapshot.base_sha
            else:
                base_sha = merge_base(mirror.path, tip, upstream_tip) or ""
            version = None
            if base_sha:
                (text,) = gitread.read_files(mirror, [f"{base_sha}:{upstream.version_file}"])
                version = version_from_text(text)
        commit = base_commits(upstream, [base_sha]).get(base_sha)
        base = make_base(
            base_sha, commit, version.as_tuple() if version else None, branch_points(upstream)
        )
        found.append(Target(None, branch, tip, base))
    return found


# --- statuses -------------------------------------------------------------------------------------


def _latest_triage(fork: Fork) -> dict[int, str]:
    """vulnerability id -> the fork's latest triage decision (reopened ones left out)."""
    latest: dict[int, str] = {}
    for vuln_id, decision in (
        FixTriage.objects.filter(fork=fork)
        .order_by("vulnerability_id", "-decided_at", "-pk")
        .values_list("vulnerability_id", "decision")
    ):
        latest.setdefault(vuln_id, decision)
    return {v: d for v, d in latest.items() if d != TriageDecision.REOPENED}


def _shown(computed: str, decision: str | None) -> str:
    return decision if decision and computed == FixState.OPEN else computed


def _backports_git(fork_commits: dict[str, ForkCommit], index: MatchIndex) -> dict[str, list]:
    return {sha: index.match_commit(commit) for sha, commit in fork_commits.items()}


def _series_matches(
    fork: Fork, mirror: Mirror, targets: list[Target], index: MatchIndex, upstream_files: dict
) -> dict[str, list]:
    """target sha -> matches of the patch files in its patches directory."""
    trees = gitread.list_tree_files(mirror, [t.sha for t in targets], fork.patches_dir)
    names = sorted({(sha, path) for sha, paths in trees.items() for path in paths})
    contents = gitread.read_files(mirror, [f"{sha}:{path}" for sha, path in names])
    by_path: dict[str, list[str]] = defaultdict(list)
    for sha, files in upstream_files.items():
        for path in files:
            by_path[path].append(sha)
    cache: dict[tuple[str, str], list] = {}
    result: dict[str, list] = defaultdict(list)
    for (sha, path), content in zip(names, contents, strict=True):
        if content is None or path.endswith("/series"):
            continue
        key = (path, content)
        if key not in cache:
            diff = diff_lines(content)
            candidates = {s for p in diff for s in by_path.get(p, ())}
            cache[key] = index.match_patch_file(
                path.removeprefix(fork.patches_dir.rstrip("/") + "/"),
                content,
                diff,
                {s: upstream_files[s] for s in candidates},
            )
        result[sha].extend(cache[key])
    return result


def update_upstream_security(
    upstream: Upstream, mirror: Mirror, now: datetime
) -> dict[str, SecurityStats]:
    """`update_fork_security` for every fork of `upstream`, loading its fixes once."""
    with open_repo(mirror.path):  # one object reader for all the forks
        facts = UpstreamFacts.load(upstream, mirror)
        return {
            fork.slug: update_fork_security(fork, mirror, now, facts=facts)
            for fork in upstream.forks.order_by("slug")
        }


def update_fork_security(
    fork: Fork, mirror: Mirror, now: datetime, *, facts: UpstreamFacts | None = None
) -> SecurityStats:
    """Discover the fork's releases, compute their bases, and bring every (vulnerability,
    release or branch tip) status up to date, evaluating only pairs whose inputs changed.
    `facts` shares the upstream's fixes between forks (loaded here when not given)."""
    with open_repo(mirror.path):  # one object reader for all of it
        return _update_fork_security(fork, mirror, now, facts)


@transaction.atomic
def _update_fork_security(
    fork: Fork, mirror: Mirror, now: datetime, facts: UpstreamFacts | None
) -> SecurityStats:
    stats = SecurityStats()
    upstream = fork.upstream
    stats.releases_added = discover_releases(fork, mirror)
    stats.bases_computed = compute_bases(fork, mirror)
    # Only releases whose base is computed for their current commit (one registered by hand
    # with a commit the mirror lacks waits with its error).
    targets = [
        _release_target(r)
        for r in ForkRelease.objects.filter(fork=fork).exclude(sha="")
        if r.inputs_fingerprint == fingerprint(r.sha)
    ] + branch_targets(fork, mirror)
    facts = facts or UpstreamFacts.load(upstream, mirror)
    fixes, digests = facts.fixes, facts.digests
    # (target key, vulnerability id) -> (row id, fingerprint); plain tuples, not model
    # instances: a fork has (releases + branches) x vulnerabilities rows.
    existing: dict[tuple, tuple[int, str]] = {}
    for pk, vuln_id, release_id, branch_id, stored in FixStatus.objects.filter(
        fork=fork
    ).values_list("pk", "vulnerability_id", "release_id", "branch_id", "fingerprint"):
        key = ("r", release_id) if release_id else ("b", branch_id)
        existing[(key, vuln_id)] = (pk, stored)
    todo: dict[tuple, list[Fix]] = defaultdict(list)
    target_by_key = {t.key: t for t in targets}
    for target in targets:
        tdigest, tkey = target.digest, target.key
        for fix in fixes:
            row = existing.get((tkey, fix.vuln_id))
            if row is None or row[1] != pair_fingerprint(digests[fix.vuln_id], tdigest):
                todo[tkey].append(fix)
    if todo:
        chosen = [target_by_key[k] for k in todo]
        _evaluate(fork, mirror, facts, chosen, todo, existing, now, stats)
    if stats.rows_written or stats.bases_computed or stats.releases_added:
        # Every target now has a status per vulnerability (when there are any).
        computed = {t.release.pk for t in targets if t.release} if fixes else set()
        refresh_patch_levels(fork, computed=computed)
    record_security_snapshot(fork, now)
    logger.info("fork security %s: %s", fork.slug, stats)
    return stats


def pair_fingerprint(fix_digest: str, target_digest: str) -> str:
    """The fingerprint of one (vulnerability, target) status: both digests, shortened (no
    hashing per pair: a fork has hundreds of thousands of pairs)."""
    return fix_digest[:20] + target_digest[:20]


def _evaluate(fork, mirror, facts, targets, todo, existing, now, stats) -> None:
    started = time.perf_counter()
    digests = facts.digests
    diffs, index = facts.matching(fork.upstream, mirror)
    stats.fork_reads += 1
    if fork.kind == ForkKind.PATCH_SERIES:
        per_target = _series_matches(
            fork, mirror, targets, index, {s: f for s, (_p, f) in diffs.items()}
        )

        def carried(target: Target):
            return strongest(per_target.get(target.sha, []))
    else:
        bases = [t.base.sha for t in targets if t.base and t.base.sha]
        commits = gitread.read_fork_commits(mirror, [t.sha for t in targets], bases)
        matches = _backports_git(commits, index)
        parents = {sha: c.parents for sha, c in commits.items()}
        newest_first = {sha: n for n, sha in enumerate(commits)}  # git log's order

        def carried(target: Target):
            # Oldest first, so among equally strong matches the first backport is named.
            mine = sorted(reachable(target.sha, parents), key=newest_first.get, reverse=True)
            return strongest(m for sha in mine for m in matches[sha])

    decisions = _latest_triage(fork)
    rows: list[tuple] = []
    replaced: list[int] = []
    evaluating = time.perf_counter()
    stats.seconds_git += evaluating - started
    # Targets on the same base with the same backports of a fix share its outcome: memoized
    # with its evidence already serialized.
    bases: dict[Base | None, int] = {}
    memo: dict[tuple, tuple[str, str]] = {}
    for target in targets:
        backports = carried(target)
        tdigest = target.digest
        base_id = bases.setdefault(target.base, len(bases))
        release_id = target.release.pk if target.release else None
        branch_id = target.branch.pk if target.branch else None
        tkey = target.key
        for fix in todo[tkey]:
            stats.pairs_evaluated += 1
            found = (
                tuple(backports.get((fix.vuln_id, p.key)) for p in fix.parts) if backports else ()
            )
            key = (fix.vuln_id, base_id, found)
            if key not in memo:
                outcome = evaluate(fix, target.base, backports)
                memo[key] = (outcome.state, json.dumps(outcome.evidence))
            state, evidence = memo[key]
            row = existing.get((tkey, fix.vuln_id))
            if row is not None:
                replaced.append(row[0])
            rows.append(
                (
                    fork.pk,
                    fix.vuln_id,
                    release_id,
                    branch_id,
                    state,
                    _shown(state, decisions.get(fix.vuln_id)),
                    evidence,
                    target.sha,
                    pair_fingerprint(digests[fix.vuln_id], tdigest),
                    now,
                )
            )
    writing = time.perf_counter()
    stats.seconds_evaluate += writing - evaluating
    # Changed rows are replaced (deleted and inserted again): one COPY beats an UPDATE per
    # row when a new fix link or a relinked upstream changes thousands of them at once.
    for start in range(0, len(replaced), CHUNK):
        FixStatus.objects.filter(pk__in=replaced[start : start + CHUNK]).delete()
    _insert_statuses(rows)
    stats.rows_written += len(rows)
    stats.seconds_write += time.perf_counter() - writing


_STATUS_COLUMNS = (
    "fork_id",
    "vulnerability_id",
    "release_id",
    "branch_id",
    "computed",
    "status",
    "evidence",
    "target_sha",
    "fingerprint",
    "computed_at",
)


def _insert_statuses(rows: list[tuple]) -> None:
    """Insert status rows: by COPY on PostgreSQL, else by bulk_create."""
    if not rows:
        return
    connection = connections[router.db_for_write(FixStatus)]
    if connection.vendor != "postgresql":
        FixStatus.objects.bulk_create(
            [
                FixStatus(
                    **{**dict(zip(_STATUS_COLUMNS, r, strict=True)), "evidence": json.loads(r[6])}
                )
                for r in rows
            ],
            batch_size=CHUNK,
        )
        return
    statement = f"COPY {FixStatus._meta.db_table} ({', '.join(_STATUS_COLUMNS)}) FROM STDIN"
    # The psycopg cursor under Django's wrapper: Django has no COPY API.
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def refresh_patch_levels(fork: Fork, *, computed: set[int] | None = None) -> int:
    """Recompute every release's security patch level from its statuses; returns how many
    releases changed. Reads the statuses a release does not carry, not all of them.
    `computed` are the releases known to have statuses (looked up when not given)."""
    upstream = fork.upstream
    stable = sorted(
        {
            (r[1:], r[0])
            for r in UpstreamRelease.objects.filter(upstream=upstream, channel=Channel.STABLE)
            .values_list("version", "major", "minor", "build", "patch")
            .distinct()
        }
    )
    cve_of = dict(Vulnerability.objects.filter(upstream=upstream).values_list("pk", "cve"))
    listed: dict[str, set[str]] = defaultdict(set)
    cves_by_bulletin: dict[int, set[str]] = defaultdict(set)
    for bulletin_id, cve in BulletinLine.objects.filter(cve__in=set(cve_of.values())).values_list(
        "bulletin_id", "cve"
    ):
        cves_by_bulletin[bulletin_id].add(cve)
    for bulletin_id, versions in Bulletin.objects.filter(pk__in=list(cves_by_bulletin)).values_list(
        "pk", "versions"
    ):
        for pair in versions or []:
            if pair:
                listed[pair[0]] |= cves_by_bulletin[bulletin_id]
    lowest = lowest_listing(listed)
    missing: dict[int, set[str]] = defaultdict(set)
    for release_id, vuln_id in FixStatus.objects.filter(
        fork=fork, release__isnull=False, status__in=NOT_CARRIED
    ).values_list("release_id", "vulnerability_id"):
        missing[release_id].add(cve_of[vuln_id])
    if computed is None:
        computed = set(
            ForkRelease.objects.filter(fork=fork)
            .filter(Exists(FixStatus.objects.filter(release=OuterRef("pk"))))
            .values_list("pk", flat=True)
        )
    changed = 0
    for release in ForkRelease.objects.filter(fork=fork):
        level = patch_level_from_missing(stable, lowest, missing.get(release.pk, ()))
        if release.pk not in computed:
            level = ""  # not computed yet
        if level != release.patch_level_version:
            _set_version(release, "patch_level", parse_version(level) if level else None)
            release.save(
                update_fields=[
                    "patch_level_version",
                    "patch_level_major",
                    "patch_level_minor",
                    "patch_level_build",
                    "patch_level_patch",
                ]
            )
            changed += 1
    return changed


@transaction.atomic
def triage(
    fork: Fork,
    vulnerability: Vulnerability,
    decision: str,
    reason: str,
    *,
    now: datetime,
    user=None,
) -> FixTriage:
    """Record a person's decision (not affected, will not fix, or reopened) with the reason,
    and apply it to the fork's open statuses of that vulnerability."""
    if not reason.strip():
        raise ValueError("a triage decision needs a reason")
    row = FixTriage.objects.create(
        fork=fork,
        vulnerability=vulnerability,
        decision=decision,
        reason=reason.strip(),
        decided_by=user,
        decided_by_name=getattr(user, "username", "") or "",
        decided_at=now,
    )
    apply_triage(fork, vulnerability)
    # The overview and the trend chart read the latest snapshot: show the decision now, not
    # at the next sync.
    record_security_snapshot(fork, now)
    return row


def apply_triage(fork: Fork, vulnerability: Vulnerability) -> int:
    """Bring the shown status of the fork's rows for `vulnerability` in line with its latest
    triage decision; returns the rows changed."""
    decision = _latest_triage(fork).get(vulnerability.pk)
    changed = 0
    for row in FixStatus.objects.filter(fork=fork, vulnerability=vulnerability):
        shown = _shown(row.computed, decision)
        if shown != row.status:
            row.status = shown
            row.save(update_fields=["status"])
            changed += 1
    if changed:
        refresh_patch_levels(fork)
    return changed


def record_security_snapshot(fork: Fork, now: datetime) -> ForkSecuritySnapshot:
    """Store the fork's open fixes at `now` (see `ForkSecuritySnapshot`): those of its newest
    release, or of its branch tips (a fix open on any of them) when it has no release. A
    second record at the same `now` replaces the first (the demo updates a fork twice)."""
    newest = ForkRelease.objects.filter(fork=fork).newest_first().first()
    facts = FixStatus.objects.counted_open(fork, newest).open_fix_facts()
    counts = count_open(((severity, since) for _cve, severity, since in facts), now)
    snapshot, _ = ForkSecuritySnapshot.objects.update_or_create(
        fork=fork,
        taken_at=now,
        defaults={
            "release_tag": newest.tag if newest else "",
            "open_critical": counts.by_severity["critical"],
            "open_high": counts.by_severity["high"],
            "open_medium": counts.by_severity["medium"],
            "open_low": counts.by_severity["low"],
            "oldest_open_days": counts.oldest_days,
        },
    )
    return snapshot


def fork_gap_report(fork: Fork, now: datetime) -> ForkGaps:
    """The fork's patch gap figures (`tracker.gap`) from its stored releases and statuses."""
    rows = list(
        Vulnerability.objects.filter(upstream_id=fork.upstream_id)
        .order_by("cve")
        .values_list("pk", "cve", "severity", "landed_at", "first_stable_at", "upstream_gap_days")
    )
    roll_landed = roll_landing_times(fork.upstream, [r[0] for r in rows if r[3] is None])
    fixes = []
    for pk, cve, severity, landed, stable, gap in rows:
        if landed is None and pk in roll_landed:
            # A dependency roll lands when its copy lands on main (see `resolve_rolls`).
            landed = roll_landed[pk]
            gap = days_between(landed, stable)
        fixes.append(GapFix(cve, severity, landed, stable, gap))
    cve_of = {r[0]: r[1] for r in rows}
    carried: dict[int, set[str]] = defaultdict(set)
    for release_id, vuln_id in FixStatus.objects.filter(
        fork=fork, release__isnull=False, computed__in=[FixState.BASE, FixState.BACKPORT]
    ).values_list("release_id", "vulnerability_id"):
        carried[release_id].add(cve_of[vuln_id])
    releases = [
        ShippedRelease(r.tag, r.shipped_at, frozenset(carried.get(r.pk, ())))
        for r in ForkRelease.objects.filter(fork=fork)
    ]
    decided = _latest_triage(fork)
    triaged = Vulnerability.objects.filter(pk__in=list(decided)).values_list("cve", flat=True)
    return fork_gaps(fixes, releases, now=now, triaged=list(triaged))
