"""The outbox: claims, retries with backoff, stale claims, digests, subscribers' delivery modes,
webhooks, safe headers."""

from __future__ import annotations

import email
import json
import threading
from datetime import UTC, datetime, timedelta
from email import policy
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend

from tracker.alerts import rules
from tracker.alerts.lifecycle import reconcile
from tracker.alerts.messages import header_text
from tracker.alerts.outbox import _claim, deliver_due, recipient_modes, retry_delay
from tracker.models import (
    AlertSubscription,
    Delivery,
    DeliveryAttempt,
    DeliveryMode,
    DeliveryState,
    Fork,
    Upstream,
)

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


class FlakyBackend(LocmemBackend):
    """Refuses the first `failures` messages, like an SMTP server that is down."""

    failures = 0

    def send_messages(self, messages):
        if FlakyBackend.failures > 0:
            FlakyBackend.failures -= 1
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        return super().send_messages(messages)


@pytest.fixture
def fork(settings):
    settings.ALERT_RETRY_SECONDS = 60
    settings.ALERT_RETRY_MAX_SECONDS = 600
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    return Fork.objects.create(
        upstream=upstream,
        slug="acme",
        name="Acme",
        git_url="/y",
        owner_emails="rel@acme.example, sec@acme.example",
    )


def _high(key="base-age:acme", summary="acme v1 ships an old base"):
    return rules.Condition(key, "base_too_old", rules.Priority.HIGH, "acme", summary, {"n": 1})


def test_a_high_priority_alert_is_mailed_once_to_each_owner(fork):
    reconcile([_high()], NOW)
    stats = deliver_due(NOW)
    assert stats.sent == 2 and stats.messages == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["rel@acme.example", "sec@acme.example"]
    assert deliver_due(NOW + timedelta(hours=1)).sent == 0  # nothing twice
    assert len(mail.outbox) == 2
    assert DeliveryAttempt.objects.filter(ok=True).count() == 2


def test_failures_are_retried_with_backoff_recorded_and_sent_once(fork, settings):
    settings.EMAIL_BACKEND = "tests.alerts.test_outbox.FlakyBackend"
    FlakyBackend.failures = 3
    reconcile([_high()], NOW)
    row = lambda: Delivery.objects.get(recipient="rel@acme.example")  # noqa: E731

    deliver_due(NOW)  # both fail (2 of the 3 failures)
    first = row()
    assert first.state == DeliveryState.PENDING and first.attempts == 1
    assert "Connection refused" in first.last_error
    assert first.due_at == NOW + retry_delay(1) == NOW + timedelta(seconds=60)
    assert deliver_due(NOW + timedelta(seconds=30)).sent == 0  # not due yet: no attempt
    assert DeliveryAttempt.objects.count() == 2

    deliver_due(NOW + timedelta(seconds=60))  # one more failure, one success
    deliver_due(NOW + timedelta(seconds=60 + 120))  # the second backoff is twice as long
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 2
    assert len(mail.outbox) == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["rel@acme.example", "sec@acme.example"]
    failed = DeliveryAttempt.objects.filter(ok=False).count()
    assert failed == 3 and DeliveryAttempt.objects.filter(ok=True).count() == 2


def test_backoff_doubles_up_to_the_cap(settings):
    settings.ALERT_RETRY_SECONDS, settings.ALERT_RETRY_MAX_SECONDS = 60, 600
    assert [retry_delay(n).total_seconds() for n in range(1, 7)] == [60, 120, 240, 480, 600, 600]


def test_a_row_is_claimed_by_one_sender_only(fork):
    reconcile([_high()], NOW)
    pk = Delivery.objects.first().pk
    assert _claim([pk], NOW) is not None
    assert _claim([pk], NOW) is None  # the second sender finds it taken


def test_a_claim_left_by_a_dead_worker_is_sent_after_the_claim_timeout(fork, settings):
    settings.ALERT_CLAIM_SECONDS = 600
    reconcile([_high()], NOW)
    ids = list(Delivery.objects.values_list("pk", flat=True))
    assert _claim(ids, NOW)  # a worker took them and died before sending
    assert deliver_due(NOW + timedelta(seconds=599)).sent == 0
    assert deliver_due(NOW + timedelta(seconds=601)).sent == 2
    assert len(mail.outbox) == 2


def test_normal_alerts_wait_for_one_digest_per_recipient(fork, settings):
    settings.ALERT_DIGEST_HOUR = 7
    found = [
        rules.Condition(f"lag:acme:b{i}", "rebase_lag", "normal", "acme", f"acme:b{i} behind")
        for i in range(3)
    ]
    reconcile(found, NOW)
    assert deliver_due(NOW).sent == 0
    digest_at = datetime(2026, 6, 2, 7, tzinfo=UTC)
    assert set(Delivery.objects.values_list("due_at", flat=True)) == {digest_at}
    stats = deliver_due(digest_at)
    assert stats.sent == 6 and stats.messages == 2  # three alerts, two recipients
    [rel] = [m for m in mail.outbox if m.to == ["rel@acme.example"]]
    assert "3 new" in rel.subject and all(f"acme:b{i} behind" in rel.body for i in range(3))


def _subscribe(django_user_model, name, *rows):
    """A user <name>@corp.example with subscription rows (fork or None, mode)."""
    user = django_user_model.objects.create_user(name, email=f"{name}@corp.example")
    for fork, mode in rows:
        AlertSubscription.objects.create(user=user, fork=fork, mode=mode)
    return f"{name}@corp.example"


def test_subscribers_get_mail_now_in_the_digest_only_or_not_at_all(
    fork, settings, django_user_model
):
    settings.ALERT_DIGEST_HOUR = 7
    now_ = _subscribe(django_user_model, "now", (fork, DeliveryMode.IMMEDIATE))
    digest = _subscribe(django_user_model, "digest", (fork, DeliveryMode.DIGEST))
    every = _subscribe(django_user_model, "every", (None, DeliveryMode.DIGEST))
    muted = _subscribe(
        django_user_model, "muted", (None, DeliveryMode.IMMEDIATE), (fork, DeliveryMode.NONE)
    )
    lag = rules.Condition("lag:acme:main", "rebase_lag", "normal", "acme", "acme:main behind")
    reconcile([_high(), lag], NOW)

    deliver_due(NOW)  # the high-priority alert: at once to the owners and "mail now" only
    assert sorted(m.to[0] for m in mail.outbox) == [now_, "rel@acme.example", "sec@acme.example"]
    mail.outbox.clear()

    digest_at = datetime(2026, 6, 2, 7, tzinfo=UTC)
    deliver_due(digest_at)
    by_address = {m.to[0]: m for m in mail.outbox}
    assert sorted(by_address) == sorted(
        [now_, digest, every, "rel@acme.example", "sec@acme.example"]
    )
    assert "acme:main behind" in by_address[now_].body
    assert "acme v1 ships an old base" not in by_address[now_].body  # had it at once
    for address in (digest, every):  # everything, the high-priority alert included
        assert "acme:main behind" in by_address[address].body
        assert "acme v1 ships an old base" in by_address[address].body
    assert not Delivery.objects.filter(recipient=muted).exists()
    mail.outbox.clear()

    later = NOW + timedelta(days=2)
    reconcile([lag], later)  # the high-priority alert resolves: at once for "mail now" only
    deliver_due(later)
    assert sorted(m.to[0] for m in mail.outbox) == [now_, "rel@acme.example", "sec@acme.example"]
    resolved = Delivery.objects.filter(event__kind="resolved", recipient__in=[digest, every])
    assert resolved.count() == 2 and all(row.digest for row in resolved)


def test_a_forks_own_row_wins_and_upstream_alerts_take_the_most_eager(fork, django_user_model):
    other = Fork.objects.create(upstream=fork.upstream, slug="lumen", name="Lumen", git_url="/z")
    eager = _subscribe(
        django_user_model, "eager", (None, DeliveryMode.DIGEST), (fork, DeliveryMode.IMMEDIATE)
    )
    muted = _subscribe(
        django_user_model, "muted", (None, DeliveryMode.IMMEDIATE), (fork, DeliveryMode.NONE)
    )
    _subscribe(django_user_model, "off", (fork, DeliveryMode.NONE))
    # An owner who mutes the fork as a subscriber still gets it as its owner.
    user = django_user_model.objects.create_user("owner", email="Rel@Acme.example")
    AlertSubscription.objects.create(user=user, fork=fork, mode=DeliveryMode.NONE)

    acme, _ = recipient_modes(fork.pk)
    assert {a.lower(): m for a, m in acme.items()} == {
        eager: DeliveryMode.IMMEDIATE,
        "rel@acme.example": DeliveryMode.IMMEDIATE,
        "sec@acme.example": DeliveryMode.IMMEDIATE,
    }
    assert recipient_modes(other.pk)[0] == {eager: "digest", muted: "immediate"}
    upstream_wide, _ = recipient_modes(None)
    assert upstream_wide[eager] == upstream_wide[muted] == DeliveryMode.IMMEDIATE
    assert "off@corp.example" not in upstream_wide


def _parsed(message) -> email.message.EmailMessage:
    return email.message_from_bytes(message.message().as_bytes(), policy=policy.default)


def test_newlines_from_git_and_upstream_text_cannot_inject_headers(fork):
    evil_subject = "Fix build\r\nBcc: evil@example.com\r\n\r\nbody"
    evil_title = "Use after free in V8\nX-Injected: 1"
    found = rules.lag_conditions(
        [
            rules.BranchFacts(
                fork="acme",
                branch="main\r\nBcc: evil@example.com",
                days_behind=1,
                milestones_behind_stable=0,
                conflicting_patches=0,
                previous_conflicting_patches=None,
                patches_upstreamed=1,
                upstreamed_subjects=(evil_subject,),
            )
        ],
        rules.Thresholds(),
    )
    found += rules.fix_conditions(
        [
            rules.OpenFix(
                "acme", "CVE-2026-0001", "critical", True, NOW - timedelta(days=30), evil_title
            )
        ],
        rules.Thresholds(),
        NOW,
    )
    reconcile(found, NOW)
    deliver_due(NOW)  # the critical fix: at once
    deliver_due(NOW + timedelta(days=1))  # the informational one: in the digest
    assert len(mail.outbox) == 4
    for message in mail.outbox:
        parsed = _parsed(message)
        assert parsed["Bcc"] is None and parsed["X-Injected"] is None
        assert "\n" not in parsed["Subject"] and "\r" not in parsed["Subject"]
        assert parsed["To"] in ("rel@acme.example", "sec@acme.example")
        assert message.recipients() == [parsed["To"]]
        assert "\n" not in (parsed["X-Fork-Health-Alert"] or "")
    fix_mail = next(m for m in mail.outbox if "CVE-2026-0001" in m.subject)
    assert "Use after free in V8 X-Injected: 1" in fix_mail.subject
    html = fix_mail.alternatives[0][0]
    assert "<script" not in html


def test_header_text_folds_control_characters_and_cuts_long_text():
    assert header_text("a\r\nb\tc\x00d\u2028e") == "a b c d e"
    cut = header_text("x" * 500, limit=50)
    assert len(cut) == 50 and cut.endswith("…")


class _Hook(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict, dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = _Hook.answers.pop(0) if _Hook.answers else 200
        _Hook.received.append((dict(self.headers), json.loads(body)))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.answers, _Hook.received = [], []
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_gets_each_transition_once_and_failures_are_retried(fork, webhook):
    Fork.objects.filter(pk=fork.pk).update(alert_webhook_url=webhook)
    _Hook.answers = [500]
    reconcile([_high()], NOW)
    deliver_due(NOW)
    hook = Delivery.objects.get(channel="webhook")
    assert hook.state == DeliveryState.PENDING and "HTTP 500" in hook.last_error
    deliver_due(hook.due_at)
    reconcile([], NOW + timedelta(hours=1))  # the condition cleared
    deliver_due(NOW + timedelta(hours=1))
    kinds = [(payload["event"], headers["Idempotency-Key"]) for headers, payload in _Hook.received]
    assert [k for k, _ in kinds] == ["opened", "opened", "resolved"]  # one failed, then once each
    assert kinds[0][1] == kinds[1][1] != kinds[2][1]  # the retry carries the same key
    payload = _Hook.received[-1][1]
    assert payload["alert"]["key"] == "base-age:acme" and payload["alert"]["fork"] == "acme"
    assert payload["alert"]["url"].endswith(f"/alerts/{payload['alert']['id']}/")
    assert Delivery.objects.filter(channel="webhook", state=DeliveryState.SENT).count() == 2
