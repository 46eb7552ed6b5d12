"""Tasks that evaluate alerts and drain the alert outbox."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from tracker.alerts.lifecycle import evaluate_alerts
from tracker.alerts.outbox import deliver_due


@shared_task(name="tracker.evaluate_alerts")
def evaluate_alerts_task() -> str:
    """Apply the alert rules to the current data; then send what became due at once."""
    stats = evaluate_alerts(timezone.now())
    if stats.opened or stats.resolved:
        transaction.on_commit(deliver_alerts_task.delay)
    return str(stats)


@shared_task(name="tracker.deliver_alerts")
def deliver_alerts_task() -> str:
    """Send the outbox rows that are due (several workers may run this at once)."""
    return str(deliver_due(timezone.now()))
