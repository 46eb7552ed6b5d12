"""Alert messages: emails from template triplets (``templates/emails/<name>_subject.txt``,
``_body.txt``, ``_body.html``) and webhook JSON.

Alert text comes from git and upstream (commit subjects, CVE titles, fork names), so it is
never trusted in a header: `header_text` folds every line break and control character into
a space before anything reaches a header, and the HTML body is autoescaped.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from tracker.models import AlertEventKind, Delivery

SUBJECT_PREFIX = "[fork health] "
MAX_SUBJECT = 200
_SPACES = re.compile(r"\s+")


def header_text(value: str, limit: int = MAX_SUBJECT) -> str:
    """`value` made safe for a mail header: one line, no control characters, at most
    `limit` characters (an ellipsis marks a cut)."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in value)
    cleaned = _SPACES.sub(" ", cleaned).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def figure_rows(figures: dict) -> list[tuple[str, str]]:
    """An alert's figures as (name, text) rows for pages and mail: lists joined by "; "."""
    rows = []
    for name, value in figures.items():
        if isinstance(value, list | tuple):
            value = "; ".join(str(v) for v in value) or "none"
        rows.append((name.replace("_", " "), "—" if value is None else str(value)))
    return rows


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def alert_url(alert) -> str:
    return absolute(reverse("alert", args=[alert.pk]))


def render_email(
    name: str, ctx: dict, *, to: list[str], headers: dict[str, str], connection=None
) -> EmailMultiAlternatives:
    """The email from the `name` template triplet; subject and headers pass `header_text`."""
    subject = header_text(SUBJECT_PREFIX + render_to_string(f"emails/{name}_subject.txt", ctx))
    text = render_to_string(f"emails/{name}_body.txt", ctx)
    html = render_to_string(f"emails/{name}_body.html", ctx)
    message = EmailMultiAlternatives(
        subject,
        text,
        settings.DEFAULT_FROM_EMAIL,
        to,
        headers={k: header_text(v, 900) for k, v in headers.items()},
        connection=connection,
    )
    message.attach_alternative(html, "text/html")
    return message


def _message_id(delivery: Delivery) -> str:
    # Fixed per row: a resend after a worker died mid-send is recognisably the same mail.
    domain = header_text(settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost", 100)
    return f"<alert-delivery-{delivery.pk}@{domain}>"


def _common_headers(delivery: Delivery) -> dict[str, str]:
    return {
        "Message-ID": _message_id(delivery),
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
    }


def alert_email(delivery: Delivery, connection=None) -> EmailMultiAlternatives:
    """The immediate mail for one event of a high-priority alert."""
    event = delivery.event
    alert = event.alert
    ctx = {
        "event": event,
        "alert": alert,
        "fork": alert.fork,
        "alert_url": alert_url(alert),
        "fork_url": absolute(reverse("fork", args=[alert.fork.slug])) if alert.fork else "",
        "site_url": settings.SITE_URL,
        "resolved": event.kind == AlertEventKind.RESOLVED,
        "figures": figure_rows(event.figures),
    }
    headers = {**_common_headers(delivery), "X-Fork-Health-Alert": alert.key}
    return render_email(
        "alert", ctx, to=[delivery.recipient], headers=headers, connection=connection
    )


def digest_email(rows: list[Delivery], now: datetime, connection=None) -> EmailMultiAlternatives:
    """One recipient's daily digest: what opened and resolved since the last one, and the
    open alerts still waiting for someone (reminders)."""

    def items(kinds):
        return [
            {"event": r.event, "alert": r.event.alert, "url": alert_url(r.event.alert)}
            for r in rows
            if r.event.kind in kinds
        ]

    ctx = {
        "now": now,
        "opened": items({AlertEventKind.OPENED}),
        "resolved": items({AlertEventKind.RESOLVED}),
        "reminders": items({AlertEventKind.REMINDED}),
        "alerts_url": absolute(reverse("alerts")),
        "site_url": settings.SITE_URL,
    }
    return render_email(
        "digest",
        ctx,
        to=[rows[0].recipient],
        headers=_common_headers(rows[0]),
        connection=connection,
    )


def webhook_payload(delivery: Delivery) -> dict:
    """The JSON posted to a webhook: the event and its alert; `text` suits chat tools."""
    event = delivery.event
    alert = event.alert
    return {
        "event": event.kind,
        "at": event.at.isoformat(),
        "text": f"[{alert.priority}] {event.kind}: {event.summary}",
        "alert": {
            "id": alert.pk,
            "key": alert.key,
            "kind": alert.kind,
            "priority": alert.priority,
            "fork": alert.fork.slug if alert.fork else None,
            "summary": event.summary,
            "figures": event.figures,
            "url": alert_url(alert),
        },
        "delivery": delivery.pk,
    }


def post_webhook(delivery: Delivery) -> None:
    """POST the payload; any answer but 2xx raises (and the delivery is retried)."""
    response = requests.post(
        delivery.recipient,
        json=webhook_payload(delivery),
        timeout=settings.ALERT_WEBHOOK_TIMEOUT,
        headers={
            "User-Agent": "fork-health-alerts",
            # Receivers can drop a repeat of the same delivery by this key.
            "Idempotency-Key": f"alert-delivery-{delivery.pk}",
        },
        allow_redirects=False,
    )
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"webhook answered HTTP {response.status_code}")
