"""Alert lifecycle: conditions found → alerts opened, updated, resolved; people acknowledge
and snooze; open alerts nobody acknowledged are reminded once a day. Every transition is an
`AlertEvent`, and the delivered ones get their outbox rows in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q

from tracker.alerts import rules
from tracker.alerts.facts import WorldFacts, gather
from tracker.alerts.outbox import enqueue
from tracker.models import Alert, AlertEvent, AlertEventKind, AlertPriority, AlertState, Fork

logger = logging.getLogger(__name__)

# Reminders: at most one a day per alert; the gap is a little under a day so a reminder
# created just after yesterday's is not pushed past the next digest.
REMINDER_GAP = timedelta(hours=23)
# A snooze ending within this of the running one's end is the same snooze again (a double
# click, a retried form, two people on call choosing the same): no new event. The shortest
# snooze offered is a day, so a choice that moves the end by less is not a new decision.
SNOOZE_REPEAT = timedelta(hours=1)
# Postgres advisory lock id for evaluation (any constant; "fork" in ASCII).
_EVALUATION_LOCK = 0x666F726B


@dataclass
class EvaluationStats:
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    reminded: int = 0

    def __str__(self) -> str:
        return (
            f"{self.opened} opened, {self.updated} updated, {self.resolved} resolved, "
            f"{self.reminded} reminded"
        )


def conditions(facts: WorldFacts, now: datetime) -> list[rules.Condition]:
    """Every condition that holds, from the gathered facts (each fork with its thresholds)."""
    found: list[rules.Condition] = []
    for fork in facts.forks:
        for branch, thresholds in fork.branches:
            found += rules.lag_conditions([branch], thresholds)
        found += rules.fix_conditions(fork.open_fixes, fork.thresholds, now)
        if fork.newest_release is not None:
            found += rules.base_age_conditions([fork.newest_release], fork.thresholds, now)
        if fork.source is not None:
            found += rules.source_conditions([fork.source], fork.thresholds, now)
    found += rules.source_conditions(facts.sources, facts.defaults, now)
    for version, cves in facts.stable:
        stable = rules.new_stable_condition(version, cves)
        if stable is not None:
            found.append(stable)
    return found


def _lock_evaluation() -> None:
    """Serialize evaluations across workers (PostgreSQL; SQLite serializes writers anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_EVALUATION_LOCK])


@transaction.atomic
def reconcile(found: Iterable[rules.Condition], now: datetime) -> EvaluationStats:
    """Bring the open alerts in line with the conditions found: open the new ones, update
    those whose summary or figures changed, resolve those no longer found."""
    _lock_evaluation()
    stats = EvaluationStats()
    fork_ids = dict(Fork.objects.values_list("slug", "pk"))
    open_alerts = {a.key: a for a in Alert.objects.filter(state=AlertState.OPEN)}
    for condition in {c.key: c for c in found}.values():
        alert = open_alerts.pop(condition.key, None)
        if alert is None:
            alert = Alert.objects.create(
                key=condition.key,
                kind=condition.kind,
                priority=condition.priority,
                fork_id=fork_ids.get(condition.fork) if condition.fork else None,
                summary=condition.summary,
                figures=condition.figures,
                opened_at=now,
                updated_at=now,
            )
            _event(alert, AlertEventKind.OPENED, now)
            stats.opened += 1
        elif alert.summary != condition.summary or alert.figures != condition.figures:
            alert.summary, alert.figures, alert.updated_at = (
                condition.summary,
                condition.figures,
                now,
            )
            alert.save(update_fields=["summary", "figures", "updated_at"])
            _event(alert, AlertEventKind.UPDATED, now)
            stats.updated += 1
    for alert in open_alerts.values():
        alert.state, alert.resolved_at, alert.updated_at = AlertState.RESOLVED, now, now
        alert.save(update_fields=["state", "resolved_at", "updated_at"])
        _event(alert, AlertEventKind.RESOLVED, now)
        stats.resolved += 1
    stats.reminded = remind(now)
    return stats


def _event(alert: Alert, kind: str, now: datetime, *, by: str = "", note: str = "") -> AlertEvent:
    event = AlertEvent.objects.create(
        alert=alert,
        kind=kind,
        at=now,
        summary=alert.summary,
        figures=alert.figures,
        by=by,
        note=note,
    )
    if not (kind == AlertEventKind.RESOLVED and alert.priority == AlertPriority.INFO):
        enqueue(event, now)  # an informational alert going away is not news
    return event


def remind(now: datetime) -> int:
    """Queue a reminder for each open alert that nobody acknowledged, is not snoozed, and
    had no opened or reminded event for `REMINDER_GAP`. Informational alerts get none."""
    recent = AlertEvent.objects.filter(
        kind__in=[AlertEventKind.OPENED, AlertEventKind.REMINDED], at__gt=now - REMINDER_GAP
    ).values("alert_id")
    due = (
        Alert.objects.filter(state=AlertState.OPEN, acknowledged_at__isnull=True)
        .exclude(priority=AlertPriority.INFO)
        .filter(Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now))
        .exclude(pk__in=recent)
    )
    count = 0
    for alert in due:
        _event(alert, AlertEventKind.REMINDED, now)
        count += 1
    return count


def evaluate_alerts(now: datetime) -> EvaluationStats:
    """Gather the facts, apply the rules, reconcile the alerts (see the module docstring)."""
    stats = reconcile(conditions(gather(now), now), now)
    logger.info("alerts evaluated: %s", stats)
    return stats


@transaction.atomic
def acknowledge(alert: Alert, *, by: str, now: datetime, note: str = "") -> bool:
    """Mark an open alert as seen by `by`: no more reminders. Idempotent: False, with no
    event and nothing delivered, if it was not open or already acknowledged (by anyone)."""
    changed = Alert.objects.filter(
        pk=alert.pk, state=AlertState.OPEN, acknowledged_at__isnull=True
    ).update(acknowledged_at=now, acknowledged_by=by[:150])
    if changed:
        alert.refresh_from_db()
        _event(alert, AlertEventKind.ACKNOWLEDGED, now, by=by, note=note)
    return bool(changed)


@transaction.atomic
def snooze(alert: Alert, until: datetime, *, by: str, now: datetime, note: str = "") -> bool:
    """Leave an open alert out of reminders until `until`. Idempotent: False, with no event
    and nothing delivered, if it is not open or its running snooze already ends within
    `SNOOZE_REPEAT` of `until` (the same snooze again, whoever asks)."""
    if until <= now:
        raise ValueError("snooze until a time in the future")
    # One conditional update: of two requests at once, the second finds the first's snooze.
    changed = (
        Alert.objects.filter(pk=alert.pk, state=AlertState.OPEN)
        .exclude(
            snoozed_until__gt=now,
            snoozed_until__range=(until - SNOOZE_REPEAT, until + SNOOZE_REPEAT),
        )
        .update(snoozed_until=until)
    )
    if changed:
        alert.refresh_from_db()
        _event(
            alert,
            AlertEventKind.SNOOZED,
            now,
            by=by,
            note=note or f"until {until:%Y-%m-%d %H:%M} UTC",
        )
    return bool(changed)
