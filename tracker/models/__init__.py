"""Database models, one module per area; import them from here."""

from tracker.models.repos import Fork, ForkKind, TrackedBranch, Upstream

__all__ = ["Fork", "ForkKind", "TrackedBranch", "Upstream"]
