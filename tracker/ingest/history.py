"""Upstream git history into the database: streamed, incremental and idempotent.

Terms:

- *ref*: an upstream ref as users know it (``refs/heads/main``, ``refs/branch-heads/6422``);
  its *local ref* is where it lives in the repository read (``refs/upstream/heads/main`` in a
  mirror, or the same name in a plain clone).
- *cursor*: the `IngestCursor` of a ref, the tip its ingestion last finished with.
- *new commits* of a ref: those reachable from its current tip but not already ingested.
  Main comes first and excludes its cursor; a release branch excludes its cursor or, on its
  first read, its branch point (``git log <branch> ^<branch point>``), so it reads only its
  own commits and git never walks main's history for it.

How: one ``git log`` per ref, parsed while it streams (`tracker.gitlog`, on the gate's
subprocess: 16 times faster than GitPython's `iter_commits`), so memory is bounded by the
batch size and not by the history; single commits (a branch tip's footers, whether a branch
point is here) come from the repository's persistent reader (`tracker.gitrepo`). Rows are
written a batch at a time, each batch in its own transaction: on PostgreSQL by binary
``COPY`` into a temporary table and ``INSERT … SELECT … ON CONFLICT DO NOTHING``, on a second
thread so that the database indexes one batch while the next is parsed; elsewhere (SQLite,
the embedded mode) by ``bulk_create(ignore_conflicts=True)``.
Rows are keyed by (upstream, sha), so writing a commit twice is a no-op, and the cursor moves
only after the ref's last batch: a crash half-way means the next run re-reads from the
previous cursor and skips the rows already there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction

from tracker.footers import CommitFooters, is_main_ref, parse_footers
from tracker.git import GitError, check_ref_name, check_sha, git_output_stream, run_git
from tracker.gitlog import LogRecord, iter_log_records, log_args
from tracker.gitrepo import open_repo
from tracker.models import CommitBug, IngestCursor, Upstream, UpstreamCommit
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
COMMIT_FIELDS = tuple(name for name, _type in COMMIT_COLUMNS)
BUG_FIELDS = tuple(name for name, _type in BUG_COLUMNS)

_INT4_MAX = 2**31 - 1  # IntegerField columns; a forged footer may name a larger number
_NAME_MAX = UpstreamCommit._meta.get_field("author_name").max_length
_EMAIL_MAX = UpstreamCommit._meta.get_field("author_email").max_length
_REF_MAX = UpstreamCommit._meta.get_field("position_ref").max_length
_PROJECT_MAX = CommitBug._meta.get_field("project").max_length

CommitRow = tuple  # values in COMMIT_FIELDS order
BugRow = tuple[str, str, int, bool]  # values in BUG_FIELDS order
Progress = Callable[[str, int], None]


@dataclass
class IngestStats:
    """What one `ingest_upstream_history` call did.

    - `commits`: new commits read from git, all refs together (see the module docstring);
    - `refs`: new commits read per ref, by upstream ref name;
    - `inserted`: rows actually added to UpstreamCommit; fewer than `commits` when a run
      repeats work (after a crash or a force-push), because existing rows are skipped;
    - `seconds`: wall time of the call.
    """

    commits: int = 0
    refs: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    inserted: int = 0


def ingest_upstream_history(
    upstream: Upstream,
    git_dir: Path | str,
    refs: list[tuple[str, str]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> IngestStats:
    """Write the new commits of each ref in `refs` as UpstreamCommit and CommitBug rows.

    `refs` holds (upstream ref name, local ref name in `git_dir`) pairs, main first. Each ref
    is read with one streaming ``git log`` and written `batch_size` commits per transaction;
    its cursor is set only after its last batch. `progress(ref, commits)` is called after
    each batch is committed, with the ref's commits written so far; an exception it raises
    stops the run (the cursor stays where it was).

    A ref missing from `git_dir` is skipped and logged. A cursor whose commit is no longer in
    the repository (a force-push followed by gc) is logged and the ref is read in full,
    existing rows being skipped. Raises GitError when git fails otherwise.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    stats = IngestStats()
    for name, local in refs:
        check_ref_name(name)
        check_ref_name(local)
        if len(name) > _REF_MAX:
            raise ValueError(f"ref name longer than {_REF_MAX} characters: {name[:60]}…")
    if len({name for name, _local in refs}) != len(refs):
        raise ValueError("a ref is named twice")
    cursors = {c.ref: c for c in IngestCursor.objects.filter(upstream=upstream)}
    totals: dict[str, int] = {}  # new commits per ref, for the progress reports
    if progress is None:  # by default, report to the pages and the logs (tracker.progress)

        def progress(ref: str, commits: int) -> None:
            report_progress(upstream.slug, f"ingesting {ref}", commits, totals.get(ref))

    sink = _BatchSink(_writer_for(upstream), progress)
    # Tips (or, for refs that vanished, cursors) of the refs already handled in this call:
    # everything reachable from them is in the database by now.
    done: list[str] = []
    try:
        for name, local in refs:
            tip = _resolve(git_dir, local)
            cursor = cursors.get(name)
            if tip is None:
                logger.warning(
                    "ingest %s: %s is not in %s; skipped, cursor left as it was",
                    upstream.slug,
                    local,
                    git_dir,
                )
                stats.refs[name] = 0
                if cursor is not None and _has_commit(git_dir, cursor.sha):
                    done.append(cursor.sha)
                continue
            since = None
            if cursor is not None:
                if _has_commit(git_dir, cursor.sha):
                    since = cursor.sha
                else:
                    logger.warning(
                        "ingest %s: cursor %s of %s is no longer in the repository "
                        "(force-push?); reading the whole ref, existing rows are skipped",
                        upstream.slug,
                        cursor.sha[:12],
                        name,
                    )
            count = inserted = 0
            if since != tip:
                exclude = _exclusions(upstream, git_dir, tip, since, done, first=not done)
                totals[name] = _count_new(git_dir, tip, exclude)
                count, inserted = _ingest_ref(
                    sink, git_dir, name, tip, exclude, batch_size=batch_size
                )
            total = (cursor.commits if cursor is not None and since else 0) + count
            IngestCursor.objects.update_or_create(
                upstream=upstream, ref=name, defaults={"sha": tip, "commits": total}
            )
            logger.info(
                "ingest %s: %s: %d new commits (%d rows added), now at %s",
                upstream.slug,
                name,
                count,
                inserted,
                tip[:12],
            )
            stats.refs[name] = count
            stats.commits += count
            stats.inserted += inserted
            done.append(tip)
    finally:
        sink.close()
        finish_progress(upstream.slug)
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
        for model in (UpstreamCommit, CommitBug)
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


def _count_new(git_dir: Path | str, tip: str, exclude: list[str]) -> int:
    """How many commits a ref's read will bring (one commit-graph walk, cheap next to it)."""
    revisions = [check_sha(tip), *(f"^{check_sha(sha)}" for sha in exclude)]
    out = run_git(["rev-list", "--count", "--end-of-options", *revisions], git_dir=git_dir)
    return int(out.text.strip() or 0)


def _exclusions(
    upstream: Upstream,
    git_dir: Path | str,
    tip: str,
    since: str | None,
    done: list[str],
    *,
    first: bool,
) -> list[str]:
    """What to exclude when reading a ref: everything already ingested.

    For main (the first ref) that is its cursor. A release branch excludes its cursor or, on
    its first read, its branch point from its tip's Cr-Branched-From footer, when that commit
    is already ingested from main. Excluding main's tip instead would also be right, but makes
    git walk main's newer history back to the branch point, for every branch on every sync.
    Without either, it excludes every tip read before it in this run.
    """
    if first:
        return [since] if since else []
    if since:
        return [since]
    with open_repo(git_dir) as repo:
        commit = repo.commit(tip)
    if commit is None:
        raise GitError(f"commit {tip[:12]} is not in {git_dir}")
    branched = parse_footers(commit.message).branched_from
    if branched:
        point = branched[-1]
        known = UpstreamCommit.objects.filter(
            upstream=upstream, sha=point.sha, position_ref=point.ref, position=point.number
        ).exists()
        if known and _has_commit(git_dir, point.sha):
            return [point.sha]
    return list(done)


# --- reading git --------------------------------------------------------------------------


def _resolve(git_dir: Path | str, local_ref: str) -> str | None:
    """The commit `local_ref` points at, or None when the ref does not exist."""
    with open_repo(git_dir) as repo:
        return repo.resolve(local_ref)


def _has_commit(git_dir: Path | str, sha: str) -> bool:
    """True when commit `sha` is in the repository (never fetched from a promisor remote)."""
    with open_repo(git_dir) as repo:
        return repo.has_commit(sha)


def _ingest_ref(
    sink: _BatchSink,
    git_dir: Path | str,
    name: str,
    tip: str,
    exclude: list[str],
    *,
    batch_size: int,
) -> tuple[int, int]:
    """Read commits reachable from `tip` but not from `exclude` and write them as `name`'s.

    Returns (commits read, rows added) once every batch is committed.
    """
    revisions = [check_sha(tip), *(f"^{check_sha(sha)}" for sha in exclude)]
    sink.start(name)
    commits: list[CommitRow] = []
    bugs: list[BugRow] = []
    with git_output_stream(
        log_args(revisions), git_dir=git_dir, timeout=settings.GIT_TIMEOUT
    ) as out:
        for record in iter_log_records(out):
            footers = parse_footers(record.message)
            commits.append(_commit_row(record, footers, name))
            if footers.bug_refs:
                bugs.extend(_bug_rows(record.sha, footers))
            if len(commits) >= batch_size:
                sink.put(commits, bugs)
                commits, bugs = [], []
    if commits:
        sink.put(commits, bugs)
    return sink.finish()


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
    for ref in footers.bug_refs:
        yield sha, ref.project[:_PROJECT_MAX], ref.id, ref in fixed


# --- writing ------------------------------------------------------------------------------


class _Writer:
    """Writes one batch of rows in one transaction; returns the UpstreamCommit rows added."""

    def __init__(self, upstream: Upstream, alias: str) -> None:
        self.upstream = upstream
        self.alias = alias

    def write(self, commits: list[CommitRow], bugs: list[BugRow]) -> int:
        raise NotImplementedError


def _writer_for(upstream: Upstream) -> _Writer:
    alias = router.db_for_write(UpstreamCommit)
    if connections[alias].vendor == "postgresql":
        return _CopyWriter(upstream, alias)
    return _OrmWriter(upstream, alias)


class _BatchSink:
    """Hands batches to a `_Writer` and counts what was written, per ref.

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

    def put(self, commits: list[CommitRow], bugs: list[BugRow]) -> None:
        if self.executor is None:
            self._written(len(commits), self.writer.write(commits, bugs))
            return
        self._wait()
        self.pending = (len(commits), self.executor.submit(self.writer.write, commits, bugs))

    def finish(self) -> tuple[int, int]:
        """(commits, rows added) for the current ref, once all its batches are committed."""
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

    def write(self, commits: list[CommitRow], bugs: list[BugRow]) -> int:
        upstream, objects = self.upstream, UpstreamCommit.objects.using(self.alias)
        shas = [row[0] for row in commits]
        with transaction.atomic(using=self.alias):
            # Chunks stay under SQLite's limit on query parameters.
            existing = sum(
                objects.filter(upstream=upstream, sha__in=shas[i : i + 500]).count()
                for i in range(0, len(shas), 500)
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
        return len(commits) - existing


class _CopyWriter(_Writer):
    """Binary COPY into a temporary table, then INSERT … ON CONFLICT DO NOTHING.

    COPY cannot skip rows that already exist, so it fills a temporary table (no WAL, no
    indexes) and one INSERT moves the rows over, skipping (upstream, sha) pairs already there.
    Binary COPY, formatted by psycopg's C code, spares both sides text escaping and parsing.
    """

    def __init__(self, upstream: Upstream, alias: str) -> None:
        super().__init__(upstream, alias)
        self.commits = _load_statements(
            UpstreamCommit._meta.db_table, "ingest_commit", COMMIT_COLUMNS, "upstream_id, sha"
        )
        self.bugs = _load_statements(
            CommitBug._meta.db_table, "ingest_bug", BUG_COLUMNS, "upstream_id, sha, project, bug_id"
        )

    def write(self, commits: list[CommitRow], bugs: list[BugRow]) -> int:
        with transaction.atomic(using=self.alias), connections[self.alias].cursor() as cursor:
            inserted = self._load(cursor, self.commits, commits)
            if bugs:
                self._load(cursor, self.bugs, bugs)
        return inserted

    def _load(self, cursor: Any, sql: _LoadStatements, rows: list[tuple]) -> int:
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


def _load_statements(
    table: str, temp: str, columns: tuple[tuple[str, str], ...], key: str
) -> _LoadStatements:
    names = ", ".join(name for name, _type in columns)
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
        f"ON CONFLICT ({key}) DO NOTHING",
        drop=f"DROP TABLE {temp}",
    )
