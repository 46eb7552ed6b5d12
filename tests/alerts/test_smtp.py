"""The outbox against a real SMTP server (aiosmtpd, started by each test): what arrives, and
that an outage or refused messages delay mail without losing or doubling any of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from tests.support.smtp import smtp_server
from tracker.alerts.lifecycle import reconcile
from tracker.alerts.outbox import deliver_due, next_digest_time
from tracker.alerts.rules import (
    BranchFacts,
    Condition,
    OpenFix,
    Priority,
    Thresholds,
    fix_conditions,
    lag_conditions,
)
from tracker.models import (
    Alert,
    AlertSubscription,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Fork,
    Upstream,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SITE = "https://forks.example.org"
SENDER = "alerts@forks.example.org"
OWNERS = ["alice@example.com", "bob@example.com"]
MESSAGE_ID = "<alert-delivery-{}@forks.example.org>"


@pytest.fixture
def smtp(settings):
    """A running SMTP server, with Django sending to it; fixed retry backoff."""
    settings.SITE_URL = SITE
    settings.DEFAULT_FROM_EMAIL = SENDER
    settings.ALERT_RETRY_SECONDS = 60
    settings.ALERT_RETRY_MAX_SECONDS = 3600
    with smtp_server() as server:
        for name, value in server.django_settings().items():
            setattr(settings, name, value)
        yield server


@pytest.fixture
def acme():
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    return Fork.objects.create(
        upstream=upstream,
        slug="acme",
        name="Acme Browser",
        git_url="/y",
        owner_emails=", ".join(OWNERS),
    )


def _high(n: int, fork: str = "acme") -> Condition:
    return Condition(
        key=f"base-age:{fork}:{n}",
        kind="base_too_old",
        priority=Priority.HIGH,
        fork=fork,
        summary=f"{fork} release {n} ships an upstream base 80 days old",
        figures={"tag": f"v{n}", "base_age_days": 80},
    )


def _expected_ids(rows=None) -> set[str]:
    rows = Delivery.objects.all() if rows is None else rows
    return {MESSAGE_ID.format(pk) for pk in rows.values_list("pk", flat=True)}


def test_a_high_priority_alert_reaches_each_recipient_once_with_text_html_and_links(
    smtp, acme, django_user_model
):
    carol = django_user_model.objects.create_user("carol", email="carol@example.com")
    AlertSubscription.objects.create(user=carol, fork=acme)
    reconcile([_high(1)], T0)
    alert = Alert.objects.get()

    stats = deliver_due(T0)

    recipients = [*OWNERS, "carol@example.com"]
    assert (stats.sent, stats.failed, stats.messages) == (3, 0, 3)
    assert len(smtp.inbox.received) == 3
    alert_link = SITE + reverse("alert", args=[alert.pk])
    fork_link = SITE + reverse("fork", args=["acme"])
    for address in recipients:
        [received] = smtp.inbox.to(address)
        assert received.rcpt_tos == (address,)
        assert received.mail_from == SENDER
        delivery = Delivery.objects.get(recipient=address)
        message = received.message
        assert (
            message["Subject"] == "[fork health] acme release 1 ships an upstream base 80 days old"
        )
        assert message["From"] == SENDER
        assert message["To"] == address
        assert message["Message-ID"] == MESSAGE_ID.format(delivery.pk)
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["X-Fork-Health-Alert"] == "base-age:acme:1"
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "ALERT (high (mailed at once)): acme release 1 ships" in text
        assert "base age days: 80" in text
        assert f"Details and history: {alert_link}" in text
        assert f"Fork dashboard: {fork_link}" in text
        assert f'<a href="{alert_link}">' in html and f'<a href="{fork_link}">' in html
        assert '<th align="left">base age days</th><td>80</td>' in html

        assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 1, "")
        assert delivery.sent_at == T0
        [attempt] = delivery.attempt_log.all()
        assert attempt.ok and attempt.error == "" and attempt.worker

    assert smtp.inbox.message_ids() == dict.fromkeys(_expected_ids(), 1)
    assert deliver_due(T0 + timedelta(minutes=5)).messages == 0  # nothing left to send
    assert len(smtp.inbox.received) == 3


def test_mail_queued_while_the_server_is_down_goes_out_once_after_it_comes_back(smtp, acme):
    reconcile([_high(1)], T0)
    assert deliver_due(T0).sent == 2
    before = _expected_ids()

    smtp.stop()
    t1 = T0 + timedelta(minutes=10)
    reconcile([_high(2)], t1)  # 1 resolved, 2 opened: four more mails
    queued = Delivery.objects.filter(state=DeliveryState.PENDING)
    assert queued.count() == 4

    stats = deliver_due(t1)

    assert (stats.sent, stats.failed, stats.messages) == (0, 4, 0)
    for row in queued.all():
        assert row.attempts == 1 and row.due_at == t1 + timedelta(seconds=60)
        assert "ConnectionRefusedError" in row.last_error
        [attempt] = row.attempt_log.all()
        assert not attempt.ok and attempt.error == row.last_error and attempt.at == t1

    # Not due yet: no retry before the backoff is over.
    assert deliver_due(t1 + timedelta(seconds=59)).failed == 0
    assert DeliveryAttempt.objects.filter(ok=False).count() == 4

    # Still down when due: the next wait doubles.
    t2 = t1 + timedelta(seconds=60)
    assert deliver_due(t2).failed == 4
    for row in queued.all():
        assert row.attempts == 2 and row.due_at == t2 + timedelta(seconds=120)

    smtp.start()  # back, on the same port
    t3 = t2 + timedelta(seconds=120)
    stats = deliver_due(t3)

    assert (stats.sent, stats.failed, stats.messages) == (4, 0, 4)
    assert not Delivery.objects.exclude(state=DeliveryState.SENT).exists()
    for row in Delivery.objects.filter(sent_at=t3):
        assert row.attempts == 3 and row.last_error == ""
        assert list(row.attempt_log.values_list("ok", flat=True)) == [False, False, True]
    assert Delivery.objects.filter(sent_at=t3).count() == 4
    # Every mail arrived, each exactly once: the two before the outage and the four after.
    assert smtp.inbox.message_ids() == dict.fromkeys(_expected_ids(), 1)
    assert len(smtp.inbox.received) == 6 and before < _expected_ids()
    resolved = [
        r
        for r in smtp.inbox.received
        if r.message["Subject"].startswith("[fork health] Resolved: acme release 1")
    ]
    assert sorted(r.rcpt_tos[0] for r in resolved) == OWNERS
    assert deliver_due(t3 + timedelta(hours=2)).messages == 0


def test_a_server_that_starts_refusing_mid_batch_gets_the_rest_later_once(smtp, acme):
    reconcile([_high(n) for n in range(1, 4)], T0)  # 3 alerts x 2 owners
    smtp.inbox.accept_limit = 4  # the fifth message of the batch on: "451 try again later"

    stats = deliver_due(T0)

    assert (stats.sent, stats.failed) == (4, 2)
    assert smtp.inbox.refused == 2 and len(smtp.inbox.received) == 4
    failed = Delivery.objects.filter(state=DeliveryState.PENDING)
    assert failed.count() == 2
    for row in failed:
        assert "451" in row.last_error and "try again later" in row.last_error
        assert row.due_at == T0 + timedelta(seconds=60)
        assert [a.ok for a in row.attempt_log.all()] == [False]
    # The refused ones are the last of the batch, which goes oldest first.
    assert set(failed.values_list("pk", flat=True)) == set(
        Delivery.objects.order_by("-pk").values_list("pk", flat=True)[:2]
    )
    assert smtp.inbox.message_ids() == dict.fromkeys(
        _expected_ids(Delivery.objects.filter(state=DeliveryState.SENT)), 1
    )

    smtp.inbox.accept_limit = None
    assert deliver_due(T0 + timedelta(seconds=30)).messages == 0  # not due yet
    stats = deliver_due(T0 + timedelta(seconds=60))

    assert (stats.sent, stats.failed) == (2, 0)
    assert smtp.inbox.message_ids() == dict.fromkeys(_expected_ids(), 1)
    assert len(smtp.inbox.received) == 6
    assert DeliveryAttempt.objects.filter(ok=True).count() == 6
    assert DeliveryAttempt.objects.filter(ok=False).count() == 2


ALLOWED_HEADERS = {
    b"content-type",
    b"mime-version",
    b"content-transfer-encoding",
    b"subject",
    b"from",
    b"to",
    b"date",
    b"message-id",
    b"auto-submitted",
    b"x-auto-response-suppress",
    b"x-fork-health-alert",
}


def _assert_no_injected_headers(received, recipient: str) -> None:
    assert received.rcpt_tos == (recipient,)
    for part in received.message.walk():
        names = {name.lower() for name in part}
        assert "bcc" not in names and "x-injected" not in names and "cc" not in names
    for line in received.header_lines:
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation of the header above
        name = line.split(b":", 1)[0].lower()
        assert name in ALLOWED_HEADERS, line
    subject = received.message["Subject"]
    assert "\r" not in subject and "\n" not in subject


def test_commit_subjects_and_cve_titles_cannot_add_headers_or_recipients(smtp, acme):
    commit = "Fix crash in tab strip\r\nBcc: evil@example.com"
    title = "Use after free in Blink\nX-Injected: 1\r\nBcc: evil@example.com"
    branch = BranchFacts(
        fork="acme",
        branch="main",
        days_behind=1,
        milestones_behind_stable=0,
        conflicting_patches=2,
        previous_conflicting_patches=1,
        patches_upstreamed=1,
        upstreamed_subjects=(commit,),
        conflicting_subjects=(commit, "Plain subject"),
    )
    fix = OpenFix(
        fork="acme",
        cve="CVE-2026-1234",
        severity="critical",
        in_the_wild=True,
        upstream_stable_at=T0 - timedelta(days=10),
        title=title,
    )
    found = lag_conditions([branch], Thresholds()) + fix_conditions([fix], Thresholds(), T0)
    upstreamed = next(c for c in found if c.kind == "patches_upstreamed")
    # The rules give that one info priority (digest, which lists summaries only); mailed at
    # once, its figures (the commit subjects) are in the alert mail.
    found.append(replace(upstreamed, key="upstreamed-now:acme:main", priority=Priority.HIGH))
    reconcile(found, T0)
    assert Alert.objects.get(kind="fix_overdue").summary.count("Bcc: evil") == 1

    assert deliver_due(T0).sent == 4  # fix and promoted upstreamed alerts, two owners each
    assert deliver_due(next_digest_time(T0)).messages == 2  # one digest per owner

    received = smtp.inbox.received
    assert len(received) == 6
    for address in OWNERS:
        mine = smtp.inbox.to(address)
        assert len(mine) == 3
        for message in mine:
            _assert_no_injected_headers(message, address)
    for message in received:
        assert "evil@example.com" not in message.rcpt_tos
    [fix_mail, *_] = [r for r in received if "CVE-2026-1234" in r.message["Subject"]]
    assert fix_mail.message["Subject"] == (
        "[fork health] acme has not shipped CVE-2026-1234 (Use after free in Blink X-Injected: "
        "1 Bcc: evil@example.com), critical, exploited in the wild, 10 days after upstream did "
        "(deadline 3 days)"
    )
    # Body text is the place for it: still there, harmlessly, in the text part.
    assert "Bcc: evil@example.com" in fix_mail.message.get_body(("plain",)).get_content()


def _during_send(monkeypatch, n: int, action) -> None:
    """Run `action` once, as the `n`-th alert mail of the run is being built: what another
    worker does while this one is mid-send."""
    from tracker.alerts import messages

    build, calls = messages.alert_email, []

    def alert_email(delivery, connection=None):
        calls.append(delivery.pk)
        if len(calls) == n:
            action()
        return build(delivery, connection)

    monkeypatch.setattr(messages, "alert_email", alert_email)


def test_a_slow_run_is_not_mistaken_for_a_dead_worker(smtp, acme, settings, monkeypatch):
    from django.utils import timezone

    settings.ALERT_CLAIM_SECONDS = 1  # each send below takes 0.6 s: well under it
    smtp.inbox.delay = 0.6
    start = timezone.now()
    reconcile([_high(1), _high(2)], start)  # four mails, about 2.4 s in one run
    # As the third mail goes out (~1.2 s in), another worker runs: nothing is abandoned.
    _during_send(monkeypatch, 3, lambda: deliver_due(timezone.now()))

    deliver_due(start)
    # A run stops claiming after half the claim window; later runs send the rest.
    for _ in range(10):
        if not Delivery.objects.exclude(state="sent").exists():
            break
        deliver_due(timezone.now())

    assert smtp.inbox.message_ids() == dict.fromkeys(_expected_ids(), 1)


def test_a_row_failed_by_another_worker_waits_for_its_backoff(smtp, acme, monkeypatch):
    reconcile([_high(1)], T0)  # rows for alice, then bob

    def other_worker_fails():
        smtp.inbox.accept_limit = 0
        assert deliver_due(T0).failed == 1  # bob's row: refused, due again in 60 s
        smtp.inbox.accept_limit = None

    _during_send(monkeypatch, 1, other_worker_fails)  # while this run sends alice's

    deliver_due(T0)

    bob = Delivery.objects.get(recipient="bob@example.com")
    assert [a.ok for a in bob.attempt_log.all()] == [False]
    assert bob.state == "pending" and bob.due_at == T0 + timedelta(seconds=60)
