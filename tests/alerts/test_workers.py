"""Two Celery worker processes draining the same outbox at once, against the suite's real
PostgreSQL and Redis and an SMTP server in the test process: each mail goes out once."""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.processes import Processes, suite_database_url, wait_for
from tests.support.smtp import smtp_server
from tracker.alerts.lifecycle import reconcile
from tracker.alerts.rules import Condition, Priority
from tracker.models import Delivery, DeliveryAttempt, DeliveryState, Fork, Upstream

pytestmark = pytest.mark.slow

ALERTS = 40
OWNERS = ["alice@example.com", "bob@example.com"]


@pytest.fixture
def smtp():
    with smtp_server() as server:
        yield server


@pytest.fixture
def workers(tmp_path, smtp, transactional_db):
    """Worker processes on the suite's database and Redis, mailing to `smtp`, consuming a
    queue of the test's own; stopped at the end."""
    env = {
        **os.environ,
        "DATABASE_URL": suite_database_url(),
        "EMAIL_URL": smtp.url,
        "DEFAULT_FROM_EMAIL": "alerts@forks.example.org",
        "SITE_URL": "https://forks.example.org",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "WARNING",
    }
    assert env.get("REDIS_URL"), "needs the suite's Redis (script/test sets REDIS_URL)"
    procs = Processes(env, tmp_path)
    procs.queue = f"alerts-{uuid.uuid4().hex[:10]}"
    yield procs
    procs.close()
    # Deliveries asked for after the outbox drained may still be queued: drop the queue.
    from dashboard.celery import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_delete(procs.queue)
        # The workers' binding sets for it too (Redis transport bookkeeping).
        channel.client.delete(
            *(f"_kombu.{k}.{procs.queue}" for k in ("binding", "binding_permanent"))
        )


def test_two_workers_racing_over_one_outbox_send_each_message_once(workers, smtp):
    from tracker.tasks.alerts import deliver_alerts_task

    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    Fork.objects.create(
        upstream=upstream, slug="acme", name="Acme", git_url="/y", owner_emails=",".join(OWNERS)
    )
    opened = timezone.now() - timedelta(seconds=1)  # due by the workers' clocks
    reconcile(
        [
            Condition(
                key=f"base-age:acme:{n}",
                kind="base_too_old",
                priority=Priority.HIGH,
                fork="acme",
                summary=f"acme release {n} ships an upstream base 80 days old",
            )
            for n in range(ALERTS)
        ],
        opened,
    )
    rows = Delivery.objects.all()
    assert rows.filter(state=DeliveryState.PENDING).count() == ALERTS * len(OWNERS)

    # Both workers must be mid-send before either finishes: the server holds every message
    # until two are waiting, then answers each a little slowly so the sends keep overlapping.
    smtp.inbox.gate.clear()
    smtp.inbox.delay = 0.01
    procs = [workers.worker(workers.queue, "--pool=solo") for _ in range(2)]
    for _ in range(8):
        deliver_alerts_task.apply_async(queue=workers.queue)
    wait_for(lambda: smtp.inbox.waiting >= 2, 60, "both workers to be sending")
    smtp.inbox.gate.set()
    wait_for(
        lambda: not rows.filter(state__in=[DeliveryState.PENDING, DeliveryState.SENDING]).exists(),
        60,
        "the outbox to drain",
    )

    total = ALERTS * len(OWNERS)
    expected = {
        f"<alert-delivery-{pk}@forks.example.org>" for pk in rows.values_list("pk", flat=True)
    }
    assert smtp.inbox.message_ids() == dict.fromkeys(expected, 1)
    assert len(smtp.inbox.received) == total
    assert rows.filter(state=DeliveryState.SENT, attempts=1).count() == total
    attempts = DeliveryAttempt.objects.all()
    assert attempts.count() == total and not attempts.filter(ok=False).exists()
    assert set(attempts.values_list("delivery", flat=True)) == set(
        rows.values_list("pk", flat=True)
    )
    # Both took part, and each row was sent by exactly one of them.
    by_worker = Counter(attempts.values_list("worker", flat=True))
    assert set(by_worker) == {f"{socket.gethostname()}:{p.pid}" for p in procs}, by_worker
    assert all(count > 0 for count in by_worker.values())
    for received in smtp.inbox.received:  # each to its one recipient
        delivery = rows.get(pk=int(received.message_id.split("-")[2].split("@")[0]))
        assert received.rcpt_tos == (delivery.recipient,)
