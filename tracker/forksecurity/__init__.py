"""Fork security: which upstream security fixes each fork release and branch carries, how
(base or backport, and by which method), and since when. `rules` is the pure core, `gitread`
the git reads, `upstream` the upstream's fixes as computation needs them, `store` the
releases, statuses and triage in the database."""

from tracker.forksecurity.store import (
    SecurityStats,
    apply_triage,
    fork_gap_report,
    record_security_snapshot,
    refresh_patch_levels,
    triage,
    update_fork_security,
    update_upstream_security,
)
from tracker.forksecurity.upstream import UpstreamFacts

__all__ = [
    "SecurityStats",
    "UpstreamFacts",
    "apply_triage",
    "fork_gap_report",
    "record_security_snapshot",
    "refresh_patch_levels",
    "triage",
    "update_fork_security",
    "update_upstream_security",
]
