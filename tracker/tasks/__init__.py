"""Celery tasks, one module per area. Each task loads its object by id and calls one domain
function; Celery finds them through this package."""

from tracker.tasks.alerts import deliver_alerts_task, evaluate_alerts_task
from tracker.tasks.forks import (
    maintain_mirror_task,
    maintain_mirrors_task,
    sync_fork_task,
    sync_upstream_task,
)
from tracker.tasks.health import WORKER_HEARTBEAT_KEY, record_worker_heartbeat_task
from tracker.tasks.security import update_fork_security_task
from tracker.tasks.upstream import (
    link_all_fixes_task,
    link_fixes_task,
    sync_chrome_releases_task,
    sync_chromiumdash_task,
    sync_versionhistory_task,
)

__all__ = [
    "WORKER_HEARTBEAT_KEY",
    "deliver_alerts_task",
    "evaluate_alerts_task",
    "link_all_fixes_task",
    "link_fixes_task",
    "maintain_mirror_task",
    "maintain_mirrors_task",
    "record_worker_heartbeat_task",
    "sync_chrome_releases_task",
    "sync_chromiumdash_task",
    "sync_fork_task",
    "sync_upstream_task",
    "sync_versionhistory_task",
    "update_fork_security_task",
]
