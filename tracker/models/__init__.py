"""Database models, one module per area; import them from here."""

from tracker.models.history import CommitBug, IngestCursor, UpstreamCommit
from tracker.models.repos import Fork, ForkKind, TrackedBranch, Upstream
from tracker.models.snapshots import BranchSnapshot, PatchChange, SnapshotPatch

__all__ = [
    "BranchSnapshot",
    "CommitBug",
    "Fork",
    "ForkKind",
    "IngestCursor",
    "PatchChange",
    "SnapshotPatch",
    "TrackedBranch",
    "Upstream",
    "UpstreamCommit",
]
