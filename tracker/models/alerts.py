"""Alerts: conditions that hold (from `tracker.alerts.rules`), their lifecycle and history,
and the outbox that delivers each transition exactly once.

Terms:

- *alert*: one condition for as long as it holds. Its `key` is the rule's deduplication key;
  at most one alert per key is open at a time (a database constraint). While the condition
  holds the alert is *updated* (figures refreshed); when it no longer holds it is *resolved*;
  if it comes back later a new alert is opened, so the old one stays in the history.
- *reminder*: an open alert nobody acknowledged is listed again in the daily digest, once a
  day (a ``reminded`` event). *Acknowledged*: a person has seen it; no more reminders.
  *Snoozed*: no reminders until `snoozed_until`.
- *event*: one transition (opened, updated, resolved, acknowledged, snoozed, reminded). Events
  are the history and the Atom feed; opened, resolved and reminded events are delivered.
- *delivery*: one outbox row per (event, channel, recipient). A sender claims due rows with a
  conditional update (`pending` → `sending`), so each row is sent by one worker; a failure puts
  it back to `pending` with a later `due_at` (backoff). Every attempt is recorded.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tracker.models.repos import Fork, TrackedBranch


class AlertPriority(models.TextChoices):
    HIGH = "high", "high (mailed at once)"
    NORMAL = "normal", "normal (daily digest)"
    INFO = "info", "informational (daily digest)"


class AlertState(models.TextChoices):
    OPEN = "open", "open"
    RESOLVED = "resolved", "resolved"


class AlertSettings(models.Model):
    """Threshold overrides for one fork (`branch` empty) or one of its branches.

    An empty field inherits: a branch's from its fork's row, a fork's from the defaults in
    `tracker.alerts.rules.Thresholds`. Branch rows apply to the branch rules (lag, conflicts,
    upstreamed patches, unsupported milestone). `enabled` off mutes the fork or branch.
    """

    fork = models.ForeignKey(Fork, on_delete=models.CASCADE, related_name="alert_settings")
    branch = models.ForeignKey(
        TrackedBranch,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_settings",
    )
    enabled = models.BooleanField(default=True)
    lag_days = models.PositiveIntegerField(null=True, blank=True, help_text="Default 7.")
    lag_milestones = models.PositiveIntegerField(
        null=True, blank=True, help_text="Milestones behind upstream Stable; default 2."
    )
    in_the_wild_days = models.PositiveIntegerField(null=True, blank=True, help_text="Default 3.")
    critical_days = models.PositiveIntegerField(null=True, blank=True, help_text="Default 15.")
    high_days = models.PositiveIntegerField(null=True, blank=True, help_text="Default 30.")
    medium_days = models.PositiveIntegerField(null=True, blank=True, help_text="Default 60.")
    base_age_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Default 70 (ten weeks)."
    )
    stale_hours = models.PositiveIntegerField(null=True, blank=True, help_text="Default 24.")

    class Meta:
        verbose_name_plural = "alert settings"
        constraints = [
            models.UniqueConstraint(
                fields=["fork"],
                condition=models.Q(branch__isnull=True),
                name="uniq_alert_settings_fork",
            ),
            models.UniqueConstraint(
                fields=["fork", "branch"],
                condition=models.Q(branch__isnull=False),
                name="uniq_alert_settings_branch",
            ),
        ]

    def __str__(self) -> str:
        return f"alert settings for {self.branch or self.fork}"


class DeliveryMode(models.TextChoices):
    """How a subscriber gets a fork's alert mail (owners always get it as `IMMEDIATE`).

    - *mail now*: high-priority alerts mailed when they open and when they resolve; normal
      and informational alerts, and reminders, in the daily digest.
    - *daily digest*: everything in the daily digest (``ALERT_DIGEST_HOUR`` UTC), high
      priority included; nothing at other times.
    - *none*: no mail (a fork's row set to none mutes that fork under an every-fork row).
    """

    IMMEDIATE = "immediate", "mail now"
    DIGEST = "digest", "daily digest"
    NONE = "none", "none"


class AlertSubscription(models.Model):
    """A user who receives a fork's alerts (`fork` empty: every fork's) besides its owners,
    by `mode`. For a fork's alerts the fork's own row wins over the every-fork row; an
    upstream-wide alert (no fork) comes by the most eager of the user's rows. Mail goes to
    the user's address; users without one, or inactive, get none."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_subscriptions"
    )
    fork = models.ForeignKey(
        Fork, on_delete=models.CASCADE, null=True, blank=True, related_name="subscriptions"
    )
    mode = models.CharField(
        max_length=10, choices=DeliveryMode.choices, default=DeliveryMode.IMMEDIATE
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(mode__in=DeliveryMode.values), name="sub_mode_known"
            ),
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(fork__isnull=True), name="uniq_sub_all"
            ),
            models.UniqueConstraint(
                fields=["user", "fork"],
                condition=models.Q(fork__isnull=False),
                name="uniq_sub_fork",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.fork or 'all forks'} ({self.get_mode_display()})"


class Alert(models.Model):
    """One condition while it holds (see the module docstring)."""

    key = models.CharField(max_length=300)
    kind = models.CharField(max_length=40)
    priority = models.CharField(max_length=10, choices=AlertPriority.choices)
    fork = models.ForeignKey(
        Fork, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    summary = models.TextField()
    figures = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.OPEN)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True, default="")
    snoozed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(state="open"),
                name="uniq_open_alert_key",
            ),
        ]
        indexes = [
            # Alerts page and evaluation: the open alerts (of a fork), newest first.
            models.Index(fields=["state", "fork", "-opened_at"], name="alert_state_fork"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


class AlertEventKind(models.TextChoices):
    OPENED = "opened", "opened"
    UPDATED = "updated", "updated"
    RESOLVED = "resolved", "resolved"
    ACKNOWLEDGED = "acknowledged", "acknowledged"
    SNOOZED = "snoozed", "snoozed"
    REMINDED = "reminded", "reminded (still open)"


# The events that are delivered by mail and webhook; the others are history only. Reminders
# go to the daily digest only.
DELIVERED_EVENTS = (AlertEventKind.OPENED, AlertEventKind.RESOLVED, AlertEventKind.REMINDED)


class AlertEvent(models.Model):
    """One transition of an alert, with the summary and figures at that moment."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=14, choices=AlertEventKind.choices)
    at = models.DateTimeField()
    summary = models.TextField()
    figures = models.JSONField(default=dict, blank=True)
    by = models.CharField(max_length=150, blank=True, default="", help_text="Who, if a person.")
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            # Atom feed: a fork's latest events (joined through the alert).
            models.Index(fields=["alert", "-at"], name="alert_event_time"),
        ]

    def __str__(self) -> str:
        return f"{self.alert.key} {self.kind} at {self.at:%Y-%m-%d %H:%M}"


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", "email"
    WEBHOOK = "webhook", "webhook"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "pending"
    SENDING = "sending", "sending"
    SENT = "sent", "sent"
    SKIPPED = "skipped", "skipped (no longer relevant when due)"


class Delivery(models.Model):
    """An outbox row: one event to one recipient over one channel (see the module docstring).

    `digest` rows are batched into the recipient's daily digest, due at the next digest time;
    the others are due at once. `claimed_at` is when the current sender took the row; a row
    left in `sending` longer than `ALERT_CLAIM_SECONDS` (its sender died) is due again.
    """

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=DeliveryChannel.choices)
    recipient = models.CharField(max_length=500)
    digest = models.BooleanField(default=False)
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    due_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "channel", "recipient"], name="uniq_delivery"),
        ]
        indexes = [
            # Senders: the rows due now, oldest first (partial: sent rows are most of them).
            models.Index(
                fields=["due_at"],
                condition=models.Q(state__in=["pending", "sending"]),
                name="delivery_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient}: {self.state}"


class DeliveryAttempt(models.Model):
    """One try at sending a delivery (a digest attempt is recorded on each row it carries)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField()
    ok = models.BooleanField()
    error = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.delivery} at {self.at:%Y-%m-%d %H:%M}: {'ok' if self.ok else 'failed'}"
