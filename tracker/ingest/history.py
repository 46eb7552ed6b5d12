"""Upstream git history into the database: streamed, incremental and idempotent.

Terms:

- *ref*: an upstream ref as users know it (``refs/heads/main``, ``refs/branch-heads/6422``,
  ``refs/heads/chromium/6099``); its *local ref* is where it lives in the repository read
  (``refs/upstream/heads/main`` in a mirror, or the same name in a plain clone). The first ref
  given is main, the others release branches.
- *cursor*: the `IngestCursor` of a ref, the tip its ingestion last finished with. A ref has
  *moved* when its tip is not its cursor (a new ref has moved too).
- *new commits*: those reachable from the moved refs' tips but neither from main's cursor (or
  its tip, when main did not move) nor from the cursors of the moved refs.
- *own commits* of a release branch: those main lacks (``git log main..<branch>``), recorded
  in `ReleaseBranchCommit`; a bare branch point on main has none.

How: one ``git log --date-order`` over every moved ref at once, the known commits excluded
(``--not`` main's and the moved refs' cursors), its revisions given on stdin (thousands of
refs would overflow an argument list), parsed while it streams (`tracker.gitlog`, on the gate's
subprocess: 16 times faster than GitPython's `iter_commits`). So memory is bounded by the batch
size and the cost follows the new commits, not the number of refs: an upstream with 6,000
release branches is read in one pass, and a sync where no ref moved starts no git at all (the
caller's ref listing aside). ``--date-order`` shows no commit before its children, so the walk
itself tells which moved refs reach each commit (`tracker.ingest.branches`): main's commits
are main's, the others are the own commits of every release branch reaching them. A branch
that the walk alone cannot settle (one cut from another branch's known commits, one rewritten)
has its own commits listed again by one ``git rev-list --parents <those branches> --not
<main>`` and its rows replaced. Footers need not tell branch points (Chromium's dependency
repositories have no ``Cr-Branched-From``).

Rows are written a batch at a time, each batch in its own transaction: on PostgreSQL by binary
``COPY`` into a temporary table and ``INSERT … SELECT … ON CONFLICT DO NOTHING``, on a second
thread so that the database indexes one batch while the next is parsed; elsewhere (SQLite,
the embedded mode) by ``bulk_create(ignore_conflicts=True)``. Rows are keyed by (upstream, sha)
(own commits by (upstream, ref, sha)), so writing a commit twice is a no-op, and cursors move
only after the walk's last batch: a crash half-way means the next run reads again from the
previous cursors and skips the rows already there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from tracker.footers import CommitFooters, is_main_ref, parse_footers
from tracker.git import GitError, check_ref_name, check_sha, git_output_stream, run_git
from tracker.gitlog import LogRecord, iter_log_records, log_args
from tracker.gitrepo import open_repo
from tracker.ingest.branches import MAIN, RefSets, bit_indices
from tracker.models import (
    CommitBug,
    IngestCursor,
    ReleaseBranchCommit,
    Upstream,
    UpstreamCommit,
)
from tracker.progress import finish as finish_progress
from tracker.progress import report as report_progress

__all__ = ["DEFAULT_BATCH_SIZE", "IngestStats", "ingest_upstream_history"]

logger = logging.getLogger(__name__)

# Commits per transaction: large enough that per-batch round trips and temp-table set-up
# vanish next to the rows (20,000 measured no faster on a 1,000,000-commit history), small
# enough that a batch stays in PostgreSQL's temp_buffers (8 MB by default) and a crash loses
# little work.
DEFAULT_BATCH_SIZE = 5000

# Columns of the rows built by `_commit_row` and `_bug_rows` (upstream_id aside), in order,
# with their PostgreSQL types for binary COPY.
COMMIT_COLUMNS = (
    ("sha", "text"),
    ("parents", "text"),
    ("author_name", "text"),
    ("author_email", "text"),
    ("author_time", "timestamptz"),
    ("commit_time", "timestamptz"),
    ("subject", "text"),
    ("ref", "text"),
    ("position_ref", "text"),
    ("position", "int4"),
    ("branched_from_sha", "text"),
    ("branched_from_position", "int4"),
    ("change_id", "text"),
    ("reviewed_on", "text"),
    ("cherry_picked_from", "text"),
    ("original_position", "int4"),
    ("message_lossy", "bool"),
)
BUG_COLUMNS = (("sha", "text"), ("project", "text"), ("bug_id", "int8"), ("fixed", "bool"))
OWN_COLUMNS = (("ref", "text"), ("sha", "text"))
CURSOR_COLUMNS = (
    ("ref", "text"),
    ("sha", "text"),
    ("commits", "int4"),
    ("updated_at", "timestamptz"),
)
COMMIT_FIELDS = tuple(name for name, _type in COMMIT_COLUMNS)
BUG_FIELDS = tuple(name for name, _type in BUG_COLUMNS)
OWN_FIELDS = tuple(name for name, _type in OWN_COLUMNS)
CURSOR_FIELDS = tuple(name for name, _type in CURSOR_COLUMNS)

_INT4_MAX = 2**31 - 1  # IntegerField columns; a forged footer may name a larger number
_NAME_MAX = UpstreamCommit._meta.get_field("author_name").max_length
_EMAIL_MAX = UpstreamCommit._meta.get_field("author_email").max_length
_REF_MAX = UpstreamCommit._meta.get_field("position_ref").max_length
_PROJECT_MAX = CommitBug._meta.get_field("project").max_length
_CHUNK = 500  # values per IN (…) query: under SQLite's limit on parameters

CommitRow = tuple  # values in COMMIT_FIELDS order
BugRow = tuple[str, str, int, bool]  # values in BUG_FIELDS order
OwnRow = tuple[str, str]  # values in OWN_FIELDS order: (release branch, sha)
CursorRow = tuple[str, str, int]  # (ref, sha, commits): CURSOR_FIELDS but the time
Progress = Callable[[str, int], None]


@dataclass
class IngestStats:
    """What one `ingest_upstream_history` call did.

    - `commits`: new commits read from git, all refs together (see the module docstring);
    - `refs`: new commits per ref, by upstream ref name, each counted for the ref it is
      recorded under (`UpstreamCommit.ref`); every ref given has an entry;
    - `moved`: refs whose tip was not their cursor;
    - `inserted`: rows actually added to UpstreamCommit; fewer than `commits` when a run
      repeats work (after a crash or a force-push), because existing rows are skipped;
    - `rewalked`: release branches whose own commits were listed again (see the module
      docstring);
    - `seconds`: wall time of the call.
    """

    commits: int = 0
    refs: dict[str, int] = field(default_factory=dict)
    moved: int = 0
    seconds: float = 0.0
    inserted: int = 0
    rewalked: int = 0


@dataclass
class _Moved:
    """A ref that moved: its bit in the walk (its index in the refs given), its new tip, and,
    when it had a cursor, the commits counted there and its commit, if still in the repository
    (`previous`: None when gone)."""

    index: int
    name: str
    tip: str
    had_cursor: bool = False
    commits: int = 0
    previous: str | None = None


def ingest_upstream_history(
    upstream: Upstream,
    git_dir: Path | str,
    refs: list[tuple[str, str]],
    *,
    tips: Mapping[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> IngestStats:
    """Write the new commits of the refs in `refs` as UpstreamCommit and CommitBug rows, and
    the own commits of each release branch that moved as ReleaseBranchCommit rows.

    `refs` holds (upstream ref name, local ref name in `git_dir`) pairs, main first. `tips`
    maps local ref names to their commits as the caller listed them (a ref it lacks is
    missing); without it each ref is resolved here. The moved refs are read with one
    streaming ``git log`` and written `batch_size` commits per transaction; cursors are set
    only after the last batch. `progress(label, commits)` is called after each batch is
    committed, with the walk's label (the ref's name when one ref moved) and the commits
    written so far; an exception it raises stops the run (the cursors stay where they were).

    A ref missing from `git_dir` is skipped and logged. A cursor whose commit is no longer in
    the repository (a force-push followed by gc) is logged and the ref is read in full,
    existing rows being skipped. Raises GitError when git fails otherwise.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    for name, local in refs:
        check_ref_name(name)
        check_ref_name(local)
        if len(name) > _REF_MAX:
            raise ValueError(f"ref name longer than {_REF_MAX} characters: {name[:60]}…")
    names = [name for name, _local in refs]
    if len(set(names)) != len(names):
        raise ValueError("a ref is named twice")
    stats = IngestStats(refs=dict.fromkeys(names, 0))
    if not refs:
        return stats
    if tips is None:
        tips = _resolve_tips(git_dir, refs)
    else:
        tips = {local: check_sha(sha) for local, sha in tips.items()}
    cursors = {
        ref: (sha, commits)
        for ref, sha, commits in IngestCursor.objects.filter(upstream=upstream).values_list(
            "ref", "sha", "commits"
        )
    }
    moved, excluded = _moved_refs(upstream, git_dir, refs, tips, cursors)
    stats.moved = len(moved)
    if moved:
        try:
            sets = _read_walk(
                upstream, git_dir, names, moved, excluded, stats, batch_size, progress
            )
            unsettled = _settle(upstream, git_dir, names, moved, sets, tips.get(refs[0][1]))
        finally:
            finish_progress(upstream.slug)
        stats.rewalked = len(unsettled)
        _move_cursors(upstream, moved, stats)
        logger.info(
            "ingest %s: %d of %d refs moved, %d new commits (%d rows added); own commits of "
            "%d release branches listed again",
            upstream.slug,
            len(moved),
            len(refs),
            stats.commits,
            stats.inserted,
            stats.rewalked,
        )
    if stats.inserted >= ANALYZE_AFTER:
        _analyze(upstream)
    stats.seconds = time.perf_counter() - started
    return stats


# After a load this large PostgreSQL's table statistics are stale enough that the planner
# picks slow plans for the queries that follow (linking fixes: 2 s instead of 0.4 s measured).
ANALYZE_AFTER = 50_000


def _analyze(upstream: Upstream) -> None:
    alias = router.db_for_write(UpstreamCommit)
    if connections[alias].vendor != "postgresql":
        return
    tables = ", ".join(
        connections[alias].ops.quote_name(model._meta.db_table)
        for model in (UpstreamCommit, CommitBug, ReleaseBranchCommit)
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


# --- which refs moved ---------------------------------------------------------------------


def _resolve_tips(git_dir: Path | str, refs: list[tuple[str, str]]) -> dict[str, str]:
    """Local ref -> commit of each ref in `refs` that exists, through the repository's reader."""
    tips = {}
    with open_repo(git_dir) as repo:
        for _name, local in refs:
            sha = repo.resolve(local)
            if sha is not None:
                tips[local] = sha
    return tips


def _moved_refs(
    upstream: Upstream,
    git_dir: Path | str,
    refs: list[tuple[str, str]],
    tips: Mapping[str, str],
    cursors: Mapping[str, tuple[str, int]],
) -> tuple[list[_Moved], list[str]]:
    """The refs that moved, and the commits whose history is known: main's tip (or, when main
    moved, its cursor) and the cursors of the refs that moved, those still in the repository.

    Only the cursors of refs that moved are checked against the repository, so a sync in
    which nothing moved reads no git here.
    """
    moved: list[_Moved] = []
    excluded: list[str] = []
    with open_repo(git_dir) as repo:
        for index, (name, local) in enumerate(refs):
            tip, (cursor, commits) = tips.get(local), cursors.get(name, ("", 0))
            if tip is None:
                logger.warning(
                    "ingest %s: %s is not in %s; skipped, cursor left as it was",
                    upstream.slug,
                    local,
                    git_dir,
                )
                if index == 0 and cursor and repo.has_commit(cursor):
                    excluded.append(cursor)  # main's history is known all the same
                continue
            if cursor == tip:
                if index == 0:
                    excluded.append(tip)
                continue
            ref = _Moved(index, name, tip, had_cursor=bool(cursor), commits=commits)
            if cursor:
                if repo.has_commit(cursor):
                    ref.previous = cursor
                    excluded.append(cursor)
                else:
                    logger.warning(
                        "ingest %s: cursor %s of %s is no longer in the repository "
                        "(force-push?); reading the whole ref, existing rows are skipped",
                        upstream.slug,
                        cursor[:12],
                        name,
                    )
            moved.append(ref)
    return moved, excluded


def _revisions(tips: Mapping[str, int], excluded: list[str]) -> bytes:
    """``--stdin`` input of a walk from `tips` with the history of `excluded` left out."""
    lines = [check_sha(sha) for sha in tips]
    lines += [f"^{check_sha(sha)}" for sha in dict.fromkeys(excluded)]
    return ("\n".join(lines) + "\n").encode()


def _label(moved: list[_Moved]) -> str:
    """What the progress reports call the walk."""
    if len(moved) == 1:
        return moved[0].name
    return f"{moved[0].name} and {len(moved) - 1:,} more refs"


# --- reading git --------------------------------------------------------------------------


def _read_walk(
    upstream: Upstream,
    git_dir: Path | str,
    names: list[str],
    moved: list[_Moved],
    excluded: list[str],
    stats: IngestStats,
    batch_size: int,
    progress: Progress | None,
) -> RefSets:
    """Read the new commits of the `moved` refs in one walk and write them, with the own
    commits of the release branches reaching them; fills `stats`. Returns the walk's refs
    sets, whose entry points `_settle` needs."""
    bits: dict[str, int] = {}
    for ref in moved:
        bits[ref.tip] = bits.get(ref.tip, 0) | 1 << ref.index
    revisions = _revisions(bits, excluded)
    # The count is for the progress reports only: on a second thread (git does the work), so
    # the walk need not wait for it (0.9 s on a 1,000,000-commit history).
    counting = ThreadPoolExecutor(1, thread_name_prefix="ingest-count")
    total = counting.submit(_count, git_dir, revisions)
    label = _label(moved)
    if progress is None:  # by default, report to the pages and the logs (tracker.progress)

        def progress(label: str, commits: int) -> None:
            known = total.done() and total.exception() is None
            report_progress(
                upstream.slug, f"ingesting {label}", commits, total.result() if known else None
            )

    sets = RefSets(bits)
    main = names[0]
    counts = stats.refs
    sink = _BatchSink(_writer_for(upstream, fresh=_is_fresh(upstream)), progress)
    try:
        sink.start(label)
        commits: list[CommitRow] = []
        bugs: list[BugRow] = []
        own: list[OwnRow] = []
        with git_output_stream(
            log_args([], ["--date-order", "--stdin"]),
            git_dir=git_dir,
            timeout=settings.GIT_TIMEOUT,
            input=revisions,
        ) as out:
            for record in iter_log_records(out):
                reached = sets.take(record.sha, record.parents)
                if reached & MAIN:
                    ref = main
                elif reached:
                    indices = list(bit_indices(reached))
                    ref = names[indices[0]]
                    own.extend((names[i], record.sha) for i in indices)
                else:  # git showed a commit none of the tips reaches
                    raise GitError(f"git log showed {record.sha[:12]}, which no tip reaches")
                counts[ref] += 1
                footers = parse_footers(record.message)
                commits.append(_commit_row(record, footers, ref))
                if footers.bug_refs:
                    bugs.extend(_bug_rows(record.sha, footers))
                if len(commits) >= batch_size:
                    sink.put(commits, bugs, own)
                    commits, bugs, own = [], [], []
        if commits or own:
            sink.put(commits, bugs, own)
        stats.commits, stats.inserted = sink.finish()
    finally:
        sink.close()
        counting.shutdown(wait=True)
    return sets


def _is_fresh(upstream: Upstream) -> bool:
    """True when no history of `upstream` is stored yet (its first ingest, not a rerun of one)."""
    return not (
        UpstreamCommit.objects.filter(upstream=upstream).exists()
        or ReleaseBranchCommit.objects.filter(upstream=upstream).exists()
    )


def _count(git_dir: Path | str, revisions: bytes) -> int:
    """How many commits a walk will bring, for the progress reports (one commit-graph walk,
    cheap next to reading the commits)."""
    out = run_git(["rev-list", "--count", "--stdin"], git_dir=git_dir, input=revisions)
    return int(out.text.strip() or 0)


# --- own commits the walk alone cannot tell -----------------------------------------------


def _settle(
    upstream: Upstream,
    git_dir: Path | str,
    names: list[str],
    moved: list[_Moved],
    sets: RefSets,
    main_tip: str | None,
) -> set[int]:
    """List again, and replace, the own commits of the moved release branches the walk did not
    settle (see tracker.ingest.branches); returns their bit indices."""
    branches = [ref for ref in moved if ref.index]
    previous = {ref.index: ref.previous for ref in branches if ref.had_cursor}
    present = {index: sha for index, sha in previous.items() if sha}
    asked = sorted(sets.questions(present))
    on_main = set()
    for i in range(0, len(asked), _CHUNK):
        on_main.update(
            UpstreamCommit.objects.filter(
                upstream=upstream, ref=names[0], sha__in=asked[i : i + _CHUNK]
            ).values_list("sha", flat=True)
        )
    unsettled = sets.unsettled([ref.index for ref in branches], previous, on_main)
    if not unsettled:
        return unsettled
    tips: dict[str, int] = {}
    for ref in branches:
        if ref.index in unsettled:
            tips[ref.tip] = tips.get(ref.tip, 0) | 1 << ref.index
    own: dict[str, set[str]] = {names[index]: set() for index in unsettled}
    rewalk = RefSets(tips)
    with git_output_stream(
        ["rev-list", "--parents", "--date-order", "--stdin"],
        git_dir=git_dir,
        timeout=settings.GIT_TIMEOUT,
        input=_revisions(tips, [main_tip] if main_tip else []),
    ) as out:
        for line in out:
            sha, *parents = line.decode("ascii").split()
            for index in bit_indices(rewalk.take(sha, parents)):
                own[names[index]].add(sha)
    _replace_own_commits(upstream, own)
    return unsettled


def _replace_own_commits(upstream: Upstream, own: dict[str, set[str]]) -> None:
    """Make the ReleaseBranchCommit rows of each branch in `own` exactly its commits there."""
    writer = _writer_for(upstream)
    rows = ReleaseBranchCommit.objects.using(writer.alias).filter(upstream=upstream)
    refs = sorted(own)
    stale: list[int] = []
    have: set[tuple[str, str]] = set()
    for i in range(0, len(refs), _CHUNK):
        for pk, ref, sha in rows.filter(ref__in=refs[i : i + _CHUNK]).values_list(
            "pk", "ref", "sha"
        ):
            if sha in own[ref]:
                have.add((ref, sha))
            else:
                stale.append(pk)
    missing = [(ref, sha) for ref in refs for sha in sorted(own[ref]) if (ref, sha) not in have]
    with transaction.atomic(using=writer.alias):
        for i in range(0, len(stale), _CHUNK):
            rows.filter(pk__in=stale[i : i + _CHUNK]).delete()
        if missing:
            writer.write([], [], missing)


def _move_cursors(upstream: Upstream, moved: list[_Moved], stats: IngestStats) -> None:
    """Set the cursor of every ref that moved to its tip."""
    _writer_for(upstream).move_cursors(
        [
            (
                ref.name,
                ref.tip,
                (ref.commits if ref.previous else 0) + stats.refs[ref.name],
            )
            for ref in moved
        ]
    )


def _commit_row(record: LogRecord, footers: CommitFooters, ref: str) -> CommitRow:
    """The UpstreamCommit values of one commit, in COMMIT_FIELDS order."""
    # git log -z output cannot hold a NUL (it separates the fields), but PostgreSQL refuses
    # one in text, so make sure rather than fail a whole batch.
    if "\x00" in record.message or "\x00" in record.author_name or "\x00" in record.author_email:
        record = _without_nul(record)
    position = footers.commit_position
    if position is not None and position.number > _INT4_MAX:
        position = None
    # The last Cr-Branched-From is the outermost branch point, the one on main.
    branched = footers.branched_from[-1] if footers.branched_from else None
    if branched is not None and branched.number > _INT4_MAX:
        branched = None
    # A cherry-pick of a cherry-pick names several originals; the last main one is the root.
    original = None
    for candidate in footers.original_positions:
        if is_main_ref(candidate.ref) and candidate.number <= _INT4_MAX:
            original = candidate.number
    return (
        record.sha,
        " ".join(record.parents),
        record.author_name[:_NAME_MAX],
        record.author_email[:_EMAIL_MAX],
        record.author_time,
        record.committer_time,
        footers.subject,
        ref,
        position.ref[:_REF_MAX] if position else "",
        position.number if position else None,
        branched.sha if branched else "",
        branched.number if branched else None,
        footers.change_id or "",
        " ".join(footers.reviewed_on),
        " ".join(footers.cherry_picked_from),
        original,
        record.message_lossy,
    )


def _without_nul(record: LogRecord) -> LogRecord:
    return replace(
        record,
        message=record.message.replace("\x00", ""),
        author_name=record.author_name.replace("\x00", ""),
        author_email=record.author_email.replace("\x00", ""),
    )


def _bug_rows(sha: str, footers: CommitFooters) -> Iterator[BugRow]:
    fixed = footers.fixed_refs
    seen: set[tuple[str, int]] = set()
    for ref in footers.bug_refs:
        key = (ref.project[:_PROJECT_MAX], ref.id)
        if key not in seen:  # two projects may be one once cut to the column
            seen.add(key)
            yield sha, *key, ref in fixed


# --- writing ------------------------------------------------------------------------------


class _Writer:
    """Writes one batch of rows in one transaction; returns the UpstreamCommit rows added."""

    def __init__(self, upstream: Upstream, alias: str) -> None:
        self.upstream = upstream
        self.alias = alias

    def write(
        self, commits: list[CommitRow], bugs: list[BugRow], own: Sequence[OwnRow] = ()
    ) -> int:
        raise NotImplementedError

    def move_cursors(self, cursors: list[CursorRow]) -> None:
        """Set (or create) the cursors of refs, one statement for them all."""
        IngestCursor.objects.using(self.alias).bulk_create(
            [
                IngestCursor(upstream=self.upstream, ref=ref, sha=sha, commits=commits)
                for ref, sha, commits in cursors
            ],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["upstream", "ref"],
            update_fields=["sha", "commits", "updated_at"],
        )


def _writer_for(upstream: Upstream, *, fresh: bool = False) -> _Writer:
    """The writer for this database; `fresh`: no row of the upstream's history exists yet."""
    alias = router.db_for_write(UpstreamCommit)
    if connections[alias].vendor == "postgresql":
        return _CopyWriter(upstream, alias, fresh=fresh)
    return _OrmWriter(upstream, alias)


class _BatchSink:
    """Hands batches to a `_Writer` and counts what was written, per walk.

    On PostgreSQL outside a transaction, batches are written on a second thread with its own
    connection, so the database indexes one batch while this thread parses the next (a
    1,000,000-commit main took 49 s instead of 67 s on two cores). At most one batch is in
    flight, so memory stays at a few batches. Inside a caller's transaction (which the second
    connection could not see into), and on SQLite, batches are written here, in order, on the
    caller's connection. Either way `progress` runs on the calling thread.
    """

    def __init__(self, writer: _Writer, progress: Progress | None) -> None:
        self.writer = writer
        self.progress = progress
        threaded = isinstance(writer, _CopyWriter) and not connections[writer.alias].in_atomic_block
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="ingest") if threaded else None
        self.pending: tuple[int, Future[int]] | None = None
        self.name = ""
        self.count = self.inserted = 0

    def start(self, name: str) -> None:
        self.name, self.count, self.inserted = name, 0, 0

    def put(self, commits: list[CommitRow], bugs: list[BugRow], own: list[OwnRow]) -> None:
        write = self.writer.write
        if self.executor is None:
            self._written(len(commits), write(commits, bugs, own))
            return
        self._wait()
        self.pending = (len(commits), self.executor.submit(write, commits, bugs, own))

    def finish(self) -> tuple[int, int]:
        """(commits, rows added) for the current walk, once all its batches are committed."""
        self._wait()
        return self.count, self.inserted

    def close(self) -> None:
        """Wait for the writer thread and close its connection (also after an error)."""
        if self.executor is not None:
            # Looked up on the writer thread: Django connections belong to one thread each.
            self.executor.submit(lambda alias=self.writer.alias: connections[alias].close())
            self.executor.shutdown(wait=True)

    def _wait(self) -> None:
        if self.pending is not None:
            count, future = self.pending
            self.pending = None
            self._written(count, future.result())

    def _written(self, count: int, inserted: int) -> None:
        self.count += count
        self.inserted += inserted
        if self.progress is not None:
            self.progress(self.name, self.count)


class _OrmWriter(_Writer):
    """bulk_create with ignore_conflicts: simple, and fast enough for SQLite's embedded use."""

    def write(
        self, commits: list[CommitRow], bugs: list[BugRow], own: Sequence[OwnRow] = ()
    ) -> int:
        upstream, objects = self.upstream, UpstreamCommit.objects.using(self.alias)
        shas = [row[0] for row in commits]
        with transaction.atomic(using=self.alias):
            # Chunks stay under SQLite's limit on query parameters.
            existing = sum(
                objects.filter(upstream=upstream, sha__in=shas[i : i + _CHUNK]).count()
                for i in range(0, len(shas), _CHUNK)
            )
            objects.bulk_create(
                [
                    UpstreamCommit(upstream=upstream, **dict(zip(COMMIT_FIELDS, row, strict=True)))
                    for row in commits
                ],
                ignore_conflicts=True,
            )
            CommitBug.objects.using(self.alias).bulk_create(
                [
                    CommitBug(upstream=upstream, **dict(zip(BUG_FIELDS, row, strict=True)))
                    for row in bugs
                ],
                ignore_conflicts=True,
            )
            ReleaseBranchCommit.objects.using(self.alias).bulk_create(
                [
                    ReleaseBranchCommit(
                        upstream=upstream, **dict(zip(OWN_FIELDS, row, strict=True))
                    )
                    for row in own
                ],
                ignore_conflicts=True,
            )
        return len(commits) - existing


class _CopyWriter(_Writer):
    """Binary COPY into a temporary table, then INSERT … ON CONFLICT DO NOTHING.

    COPY cannot skip rows that already exist, so it fills a temporary table (no WAL, no
    indexes) and one INSERT moves the rows over, skipping (upstream, sha) pairs already there.
    Binary COPY, formatted by psycopg's C code, spares both sides text escaping and parsing.

    `fresh`: the upstream had no history stored when the run began (its first ingest). Then
    no row can exist already, since one walk shows each commit once and one sync at a time
    runs per upstream (tracker.locks), so batches are copied straight into the tables: a
    first ingest of 1,000,000 commits spends a third less in PostgreSQL. A rerun after a
    crash is not fresh.
    """

    def __init__(self, upstream: Upstream, alias: str, *, fresh: bool = False) -> None:
        super().__init__(upstream, alias)
        self.fresh = fresh
        self.commits = _load_statements(
            UpstreamCommit._meta.db_table, "ingest_commit", COMMIT_COLUMNS, "upstream_id, sha"
        )
        self.bugs = _load_statements(
            CommitBug._meta.db_table, "ingest_bug", BUG_COLUMNS, "upstream_id, sha, project, bug_id"
        )
        self.own = _load_statements(
            ReleaseBranchCommit._meta.db_table, "ingest_own", OWN_COLUMNS, "upstream_id, ref, sha"
        )
        self.cursors = _load_statements(
            IngestCursor._meta.db_table,
            "ingest_cursor",
            CURSOR_COLUMNS,
            "upstream_id, ref",
            update=CURSOR_FIELDS[1:],
        )

    def write(
        self, commits: list[CommitRow], bugs: list[BugRow], own: Sequence[OwnRow] = ()
    ) -> int:
        inserted = 0
        with transaction.atomic(using=self.alias), connections[self.alias].cursor() as cursor:
            if commits:
                inserted = self._load(cursor, self.commits, commits)
            if bugs:
                self._load(cursor, self.bugs, bugs)
            if own:
                self._load(cursor, self.own, own)
        return inserted

    def move_cursors(self, cursors: list[CursorRow]) -> None:
        with transaction.atomic(using=self.alias), connections[self.alias].cursor() as cursor:
            self._load(cursor, self.cursors, [(*row, timezone.now()) for row in cursors])

    def _load(self, cursor: Any, sql: _LoadStatements, rows: Sequence[tuple]) -> int:
        if self.fresh and sql.direct:
            pk = self.upstream.pk
            with cursor.cursor.copy(sql.direct) as copy:
                copy.set_types(["int8", *sql.types])
                for row in rows:
                    copy.write_row((pk, *row))
            return len(rows)
        cursor.execute(sql.create)
        # The psycopg cursor under Django's wrapper: Django has no COPY API.
        with cursor.cursor.copy(sql.copy) as copy:
            copy.set_types(sql.types)
            for row in rows:
                copy.write_row(row)
        cursor.execute(sql.insert, [self.upstream.pk])
        inserted = cursor.rowcount
        cursor.execute(sql.drop)
        return inserted


@dataclass(frozen=True)
class _LoadStatements:
    """SQL that loads rows into a table through a temporary table, skipping existing keys."""

    create: str
    copy: str
    types: list[str]
    insert: str  # one parameter: the upstream id
    drop: str
    direct: str  # COPY straight into the table, the upstream id first (empty: never)


def _load_statements(
    table: str,
    temp: str,
    columns: tuple[tuple[str, str], ...],
    key: str,
    update: tuple[str, ...] = (),
) -> _LoadStatements:
    """Statements loading `columns` into `table` through `temp`: rows whose `key` exists are
    skipped, or, with `update`, have those columns set from the new row."""
    names = ", ".join(name for name, _type in columns)
    if update:
        conflict = "DO UPDATE SET " + ", ".join(f"{name} = EXCLUDED.{name}" for name in update)
    else:
        conflict = "DO NOTHING"
    # Identifiers come from model metadata, never from data; the upstream id is a parameter.
    # CREATE TABLE AS … WITH NO DATA copies the column types and nothing else. The explicit
    # DROP (ON COMMIT DROP is only a safety net) lets the next batch create it again when the
    # caller wraps the whole run in one transaction.
    return _LoadStatements(
        create=f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS "  # noqa: S608
        f"SELECT {names} FROM {table} WITH NO DATA",
        copy=f"COPY {temp} ({names}) FROM STDIN (FORMAT BINARY)",
        types=[type_ for _name, type_ in columns],
        insert=f"INSERT INTO {table} (upstream_id, {names}) SELECT %s, {names} FROM {temp} "  # noqa: S608
        f"ON CONFLICT ({key}) {conflict}",
        drop=f"DROP TABLE {temp}",
        direct="" if update else f"COPY {table} (upstream_id, {names}) FROM STDIN (FORMAT BINARY)",
    )
