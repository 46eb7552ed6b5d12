"""Upstream history in the database: one row per commit, keyed by (upstream, sha).

Only what the dashboard queries is kept (subject and parsed footers, not whole messages), so a
Chromium-sized history fits: about 1,000,000 rows on main plus the release branches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import models
from django.db.models.functions import RowNumber

from tracker.models.repos import Upstream


class UpstreamCommit(models.Model):
    """An upstream commit and the facts parsed from its message.

    `ref` is refs/heads/main (the upstream's main ref) for main commits; for a commit only on
    release branches, the first of them by name when it was ingested (refs/branch-heads/N).
    Every release branch holding it is in `ReleaseBranchCommit`. Whether a release branch
    contains a main commit follows from positions (the branch-point rule: a main commit at
    position P is in a branch cut at position B when P <= B).
    """

    # No database constraint and no index of its own: the unique (upstream, sha) index leads
    # with it, and a per-row foreign-key check is a fifth of bulk-load time on a million rows.
    # Deleting an upstream still deletes its commits (Django cascades).
    upstream = models.ForeignKey(
        Upstream,
        on_delete=models.CASCADE,
        related_name="commits",
        db_constraint=False,
        db_index=False,
    )
    sha = models.CharField(max_length=40)
    parents = models.TextField(blank=True, default="", help_text="Parent ids, space-separated.")
    author_name = models.CharField(max_length=200, blank=True, default="")
    author_email = models.CharField(max_length=200, blank=True, default="")
    author_time = models.DateTimeField()
    commit_time = models.DateTimeField()
    subject = models.TextField(blank=True, default="")
    ref = models.CharField(max_length=200)
    # Cr-Commit-Position: the ref and number the commit got when it landed.
    position_ref = models.CharField(max_length=200, blank=True, default="")
    position = models.IntegerField(null=True, blank=True)
    # Cr-Branched-From (the last one, i.e. the branch point on main).
    branched_from_sha = models.CharField(max_length=40, blank=True, default="")
    branched_from_position = models.IntegerField(null=True, blank=True)
    change_id = models.CharField(max_length=41, blank=True, default="")
    reviewed_on = models.TextField(
        blank=True, default="", help_text="Review URLs, space-separated."
    )
    cherry_picked_from = models.TextField(
        blank=True, default="", help_text="Ids from (cherry picked from commit …), space-separated."
    )
    # Cr-Original-Commit-Position on refs/heads/main (or master), for cherry-picks.
    original_position = models.IntegerField(null=True, blank=True)
    message_lossy = models.BooleanField(
        default=False, help_text="The message was not valid UTF-8 and was decoded with a fallback."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["upstream", "sha"], name="uniq_upstream_commit_sha"),
        ]
        indexes = [
            # Commit by position ("main@{#N}"), lag and branch-point arithmetic.
            models.Index(fields=["upstream", "position_ref", "position"], name="commit_position"),
            # Cherry-picks grouped with their original by Change-Id; fork backport matching.
            models.Index(fields=["upstream", "change_id"], name="commit_change_id"),
            # Cherry-picks of a main commit by original position.
            models.Index(fields=["upstream", "original_position"], name="commit_orig_position"),
        ]

    def __str__(self) -> str:
        return f"{self.sha[:12]} {self.subject[:60]}"


class CommitBug(models.Model):
    """A bug id named by a commit's Bug:/Fixed:/BUG= footers.

    Keyed by commit sha rather than by row id, so it can be bulk-loaded beside the commits
    without knowing their primary keys.
    """

    # Bulk-loaded like UpstreamCommit: see there why no constraint and no index of its own.
    upstream = models.ForeignKey(
        Upstream,
        on_delete=models.CASCADE,
        related_name="commit_bugs",
        db_constraint=False,
        db_index=False,
    )
    sha = models.CharField(max_length=40)
    project = models.CharField(max_length=40, default="chromium")
    bug_id = models.BigIntegerField()
    fixed = models.BooleanField(default=False, help_text="Named by a Fixed: footer.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["upstream", "sha", "project", "bug_id"], name="uniq_commit_bug"
            ),
        ]
        indexes = [
            # Fix commits of a vulnerability: its bug ids -> commits.
            models.Index(fields=["upstream", "project", "bug_id"], name="commit_bug_lookup"),
        ]

    def __str__(self) -> str:
        return f"{self.project}:{self.bug_id} in {self.sha[:12]}"


class ReleaseBranchCommit(models.Model):
    """A commit of a release branch that main lacks: one of the branch's own commits, as
    ``git log main..<branch>`` lists them. A bare branch point (a branch whose tip is a main
    commit) has none; a commit on several release branches (one cut from another) has a row
    for each.

    Written by the ingestion whenever the branch moves (tracker.ingest.history), so a branch
    holds main..tip as of its last move.
    """

    # Bulk-loaded like UpstreamCommit: see there why no constraint and no index of its own.
    upstream = models.ForeignKey(
        Upstream,
        on_delete=models.CASCADE,
        related_name="release_branch_commits",
        db_constraint=False,
        db_index=False,
    )
    ref = models.CharField(max_length=200)
    sha = models.CharField(max_length=40)

    class Meta:
        constraints = [
            # Also the index of a branch's own commits (the ingestion's rewrites of a branch).
            models.UniqueConstraint(
                fields=["upstream", "ref", "sha"], name="uniq_release_branch_commit"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sha[:12]} on {self.ref}"


@dataclass
class RefSummary:
    """One upstream's ingested refs on the sync page: how many refs have a cursor, the
    commits counted over them, when one last moved, main's cursor and the most recently moved
    release branches' (newest first)."""

    refs: int
    commits: int
    last_moved: datetime
    main: IngestCursor | None = None
    recent: list[IngestCursor] = field(default_factory=list)


class IngestCursorQuerySet(models.QuerySet):
    def sync_summaries(self, recent: int) -> dict[str, RefSummary]:
        """Each upstream's `RefSummary` by slug, with its `recent` most recently moved refs
        besides main: one query, however many refs (6,000 on a Chromium dependency)."""
        by_upstream = {"partition_by": [models.F("upstream")]}
        rows = (
            self.select_related("upstream")
            .annotate(
                recency=models.Window(
                    RowNumber(),
                    order_by=[models.F("updated_at").desc(), models.F("ref")],
                    **by_upstream,
                ),
                ref_count=models.Window(models.Count("pk"), **by_upstream),
                commit_count=models.Window(models.Sum("commits"), **by_upstream),
                last_moved=models.Window(models.Max("updated_at"), **by_upstream),
            )
            .filter(
                models.Q(recency__lte=recent + 1) | models.Q(ref=models.F("upstream__main_ref"))
            )
            .order_by("upstream", "recency")
        )
        summaries: dict[str, RefSummary] = {}
        for cursor in rows:
            summary = summaries.get(cursor.upstream.slug)
            if summary is None:
                summary = summaries[cursor.upstream.slug] = RefSummary(
                    cursor.ref_count, cursor.commit_count, cursor.last_moved
                )
            if cursor.ref == cursor.upstream.main_ref:
                summary.main = cursor
            elif len(summary.recent) < recent:
                summary.recent.append(cursor)
        return summaries


class IngestCursor(models.Model):
    """How far ingestion of one upstream ref has got: the tip it last finished with.

    Written only after every commit up to `sha` is in the database, so a crash half-way means
    the next run re-reads from the previous cursor (rows already written are skipped).
    """

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="cursors")
    ref = models.CharField(max_length=200)
    sha = models.CharField(max_length=40)
    commits = models.IntegerField(default=0, help_text="Commits ingested for this ref so far.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the ref last moved.")

    objects = IngestCursorQuerySet.as_manager()

    class Meta:
        constraints = [
            # Also the index of the sync page's list of one upstream's refs, by name.
            models.UniqueConstraint(fields=["upstream", "ref"], name="uniq_ingest_cursor"),
        ]

    def __str__(self) -> str:
        return f"{self.ref} at {self.sha[:12]}"
