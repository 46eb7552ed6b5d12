"""The alert outbox: who gets each delivered event, and sending it exactly once.

- `enqueue` writes one `Delivery` row per (event, channel, recipient) in the event's
  transaction, so an event and its deliveries exist together or not at all.
- `deliver_due` claims due rows with a conditional update (``pending`` → ``sending``,
  stamped with a claim token), so two workers never send the same row; on success the row
  is ``sent``, on failure it goes back to ``pending`` with a later `due_at` (exponential
  backoff, capped), and each try is a `DeliveryAttempt`. A row stuck in ``sending`` longer
  than ``ALERT_CLAIM_SECONDS`` (its worker died mid-send) is due again: the one case that
  can send twice, for which each mail carries a Message-ID fixed per row so mail clients
  drop the copy.
- Recipients are the fork's owners and its subscribers, each by a `DeliveryMode`: owners
  and "mail now" subscribers get high-priority alerts at once and the others, and
  reminders, in their daily digest (``ALERT_DIGEST_HOUR`` UTC), which carries all of that
  recipient's due digest rows in one message; "daily digest" subscribers get everything
  in the digest; "none" gets nothing. Webhooks are always sent at once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from tracker.alerts import messages
from tracker.models import (
    DELIVERED_EVENTS,
    AlertEvent,
    AlertEventKind,
    AlertPriority,
    AlertState,
    AlertSubscription,
    Delivery,
    DeliveryAttempt,
    DeliveryChannel,
    DeliveryMode,
    DeliveryState,
    Fork,
)
from tracker.models.repos import split_emails

logger = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    messages: int = 0  # emails and webhook posts made (a digest is one message)

    def __str__(self) -> str:
        return (
            f"{self.sent} sent in {self.messages} messages, {self.failed} failed, "
            f"{self.skipped} skipped"
        )


def next_digest_time(now: datetime) -> datetime:
    """The next daily digest: today at ALERT_DIGEST_HOUR UTC, or tomorrow if that passed."""
    today = now.replace(hour=settings.ALERT_DIGEST_HOUR, minute=0, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the `attempts`-th failure: base * 2^(attempts-1), capped."""
    base = settings.ALERT_RETRY_SECONDS
    return timedelta(
        seconds=min(base * 2 ** max(attempts - 1, 0), settings.ALERT_RETRY_MAX_SECONDS)
    )


# When one address gets an alert more than one way (owner and subscriber, several rows),
# the most eager way wins: lowest rank.
_RANK = {DeliveryMode.IMMEDIATE: 0, DeliveryMode.DIGEST: 1, DeliveryMode.NONE: 2}


def recipient_modes(fork_id: int | None) -> tuple[dict[str, DeliveryMode], list[str]]:
    """({email address: delivery mode}, webhook URLs) for alerts of a fork; for
    upstream-wide alerts (`fork_id` None), those of every fork.

    Owners get theirs as `DeliveryMode.IMMEDIATE`. A subscriber's mode is their row for the
    fork if they have one, else their every-fork row; for upstream-wide alerts, the most
    eager of all their rows. Addresses whose mode is none are left out; an address listed
    more than once (in any case) appears once, with the most eager of its modes.
    """
    forks = Fork.objects.all() if fork_id is None else Fork.objects.filter(pk=fork_id)
    found: dict[str, tuple[str, DeliveryMode]] = {}  # lower-cased → (address, mode)

    def add(address: str, mode: DeliveryMode) -> None:
        seen = found.get(address.lower())
        if seen is None or _RANK[mode] < _RANK[seen[1]]:
            found[address.lower()] = (address, mode)

    hooks: list[str] = []
    for owners, hook in forks.values_list("owner_emails", "alert_webhook_url"):
        for address in split_emails(owners):
            add(address, DeliveryMode.IMMEDIATE)
        if hook:
            hooks.append(hook)
    subs = AlertSubscription.objects.filter(user__is_active=True).exclude(user__email="")
    if fork_id is not None:
        subs = subs.filter(Q(fork__isnull=True) | Q(fork_id=fork_id))
    users: dict[int, tuple[str, dict[int | None, DeliveryMode]]] = {}  # → (address, fork → mode)
    for user_id, address, sub_fork_id, mode in subs.values_list(
        "user_id", "user__email", "fork_id", "mode"
    ):
        users.setdefault(user_id, (address, {}))[1][sub_fork_id] = DeliveryMode(mode)
    for address, modes in users.values():
        if fork_id is None:
            mode = min(modes.values(), key=_RANK.__getitem__)
        else:
            mode = modes.get(fork_id, modes.get(None))
        if mode != DeliveryMode.NONE:
            add(address, mode)
    return dict(sorted(found.values())), sorted(set(hooks))


def recipients(fork_id: int | None) -> tuple[list[str], list[str]]:
    """(email addresses, webhook URLs) for alerts of a fork: `recipient_modes` without
    the modes."""
    modes, hooks = recipient_modes(fork_id)
    return list(modes), hooks


def enqueue(event: AlertEvent, now: datetime) -> int:
    """Outbox rows for `event` if it is a delivered kind; returns how many were written.
    Idempotent: a row that exists already is left alone.

    A mail goes at once only for the opening or resolution of a high-priority alert, and
    only to addresses whose mode is `DeliveryMode.IMMEDIATE`; every other mail waits for
    the recipient's daily digest."""
    if event.kind not in DELIVERED_EVENTS:
        return 0
    modes, hooks = recipient_modes(event.alert.fork_id)
    urgent = event.kind != AlertEventKind.REMINDED and event.alert.priority == AlertPriority.HIGH
    # (channel, recipient, digest?): webhooks get every transition at once, never reminders.
    targets = [
        (DeliveryChannel.EMAIL, address, not (urgent and mode == DeliveryMode.IMMEDIATE))
        for address, mode in modes.items()
    ]
    if event.kind != AlertEventKind.REMINDED:
        targets += [(DeliveryChannel.WEBHOOK, url, False) for url in hooks]
    rows = [
        Delivery(
            event=event,
            channel=channel,
            recipient=recipient,
            digest=batched,
            due_at=next_digest_time(now) if batched else now,
            created_at=now,
        )
        for channel, recipient, batched in targets
    ]
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(ids: list[int], now: datetime, claimed_at: datetime | None = None) -> str | None:
    """Claim the rows among `ids` still pending and due at `now`; returns the claim token,
    or None when another worker took them all (or failed them and they wait for a retry).
    `claimed_at` is when the claim is really made (`now` unless the run has been going a
    while): it decides when the claim counts as abandoned."""
    token = uuid.uuid4().hex
    claimed = Delivery.objects.filter(
        pk__in=ids, state=DeliveryState.PENDING, due_at__lte=now
    ).update(state=DeliveryState.SENDING, claim=token, claimed_at=claimed_at or now)
    return token if claimed else None


def _record(rows: list[Delivery], token: str, now: datetime, error: str | None, stats) -> None:
    worker = worker_name()
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(delivery=row, at=now, ok=error is None, error=error or "", worker=worker)
        for row in rows
    )
    mine = Delivery.objects.filter(claim=token, state=DeliveryState.SENDING)
    if error is None:
        for row in rows:
            # Row by row: attempts differ; conditional on the claim, so a row another
            # worker reclaimed meanwhile is not touched.
            mine.filter(pk=row.pk).update(
                state=DeliveryState.SENT, sent_at=now, attempts=row.attempts + 1, last_error=""
            )
        stats.sent += len(rows)
    else:
        for row in rows:
            mine.filter(pk=row.pk).update(
                state=DeliveryState.PENDING,
                attempts=row.attempts + 1,
                last_error=error[:2000],
                due_at=now + retry_delay(row.attempts + 1),
                claim="",
            )
        stats.failed += len(rows)
        logger.warning("alert delivery to %s failed: %s", rows[0].recipient, error)


def _skip_stale_reminders(rows: list[Delivery], token: str, now: datetime, stats) -> list:
    """Reminders of alerts acknowledged, snoozed or resolved since they were queued are
    not sent (marked skipped); returns the rows still to send."""
    keep = []
    for row in rows:
        alert = row.event.alert
        stale = row.event.kind == AlertEventKind.REMINDED and (
            alert.state != AlertState.OPEN
            or alert.acknowledged_at is not None
            or (alert.snoozed_until is not None and alert.snoozed_until > now)
        )
        if stale:
            Delivery.objects.filter(pk=row.pk, claim=token).update(
                state=DeliveryState.SKIPPED, sent_at=now
            )
            stats.skipped += 1
        else:
            keep.append(row)
    return keep


def _claimed_rows(token: str) -> list[Delivery]:
    return list(
        Delivery.objects.filter(claim=token, state=DeliveryState.SENDING)
        .select_related("event__alert__fork")
        .order_by("event__at", "pk")
    )


def _send(rows: list[Delivery], token: str, now: datetime, connection, stats) -> None:
    rows = _skip_stale_reminders(rows, token, now, stats)
    if not rows:
        return
    first = rows[0]
    try:
        if first.channel == DeliveryChannel.WEBHOOK:
            messages.post_webhook(first)
        elif first.digest:
            messages.digest_email(rows, now, connection).send()
        else:
            messages.alert_email(first, connection).send()
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    stats.messages += error is None
    _record(rows, token, now, error, stats)


def deliver_due(now: datetime, *, limit: int = 200) -> DeliveryStats:
    """Send the deliveries due at `now` (see the module docstring); returns the counts.

    A claim must never look abandoned while its sender is still at work, so claims are
    stamped with `now` plus the time this run has taken, and a run stops claiming once it
    has used half of ``ALERT_CLAIM_SECONDS`` (one send takes at most ``EMAIL_TIMEOUT`` or
    ``ALERT_WEBHOOK_TIMEOUT`` per step, far less than the other half); the next run takes
    the rest. Attempts and the next `due_at` are counted from `now`.
    """
    from django.core.mail import get_connection

    started = time.monotonic()

    def clock() -> datetime:
        return now + timedelta(seconds=time.monotonic() - started)

    stats = DeliveryStats()
    stale = now - timedelta(seconds=settings.ALERT_CLAIM_SECONDS)
    Delivery.objects.filter(state=DeliveryState.SENDING, claimed_at__lt=stale).update(
        state=DeliveryState.PENDING, claim=""
    )
    due = list(
        Delivery.objects.filter(state=DeliveryState.PENDING, due_at__lte=now)
        .order_by("due_at", "pk")
        .values_list("pk", "recipient", "digest")[:limit]
    )
    batches = [[pk] for pk, _, digest in due if not digest]
    digests: dict[str, list[int]] = defaultdict(list)
    for pk, recipient, digest in due:
        if digest:
            digests[recipient].append(pk)
    batches += list(digests.values())
    if not batches:
        return stats
    budget = settings.ALERT_CLAIM_SECONDS / 2
    connection = get_connection(fail_silently=False)
    try:
        for ids in batches:
            if time.monotonic() - started > budget:
                logger.warning("alert delivery run out of time; the next run sends the rest")
                break
            token = _claim(ids, now, claimed_at=clock())
            if token:
                _send(_claimed_rows(token), token, now, connection, stats)
    finally:
        connection.close()
    return stats
