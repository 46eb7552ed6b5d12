"""Alert tests: a generated world synced as in production, and a clock to run alerts by."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.core import mail

from tests.forksecurity_world import setup_world
from tracker.alerts.lifecycle import evaluate_alerts
from tracker.alerts.outbox import deliver_due
from tracker.generator import build_world, standard_world
from tracker.models import AlertSettings, Fork


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(standard_world(seed=7), tmp_path_factory.mktemp("alerts") / "world")


class AlertRun:
    """Evaluate and deliver at given times, as beat would; `mails` are the sent messages."""

    def __init__(self, upstream, forks, now):
        self.upstream, self.forks, self.start = upstream, forks, now

    def at(self, now: datetime):
        """Evaluate alerts and deliver what is due at `now`; returns the evaluation stats."""
        stats = evaluate_alerts(now)
        deliver_due(now)
        return stats

    def deliver(self, now: datetime):
        return deliver_due(now)

    @property
    def mails(self):
        return mail.outbox

    def mails_to(self, address: str):
        return [m for m in mail.outbox if address in m.to]


@pytest.fixture
def alerts_world(world, settings, tmp_path):
    """The world synced at its `now`; each fork owned by <slug>@example.com; fork syncs
    never count as stale (their own test sets that up) so time can pass freely."""
    settings.ALERT_DIGEST_HOUR = 7
    upstream, forks, now = setup_world(world, settings, tmp_path)
    for slug, fork in forks.items():
        Fork.objects.filter(pk=fork.pk).update(owner_emails=f"{slug}@example.com")
        AlertSettings.objects.create(fork=fork, stale_hours=100_000)
    mail.outbox.clear()
    return AlertRun(upstream, {s: Fork.objects.get(pk=f.pk) for s, f in forks.items()}, now)
