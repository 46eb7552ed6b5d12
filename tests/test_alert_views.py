"""Alert pages: list, detail with history, acknowledge, snooze, and the Atom feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from django.urls import reverse
from django.utils import timezone

from tracker.alerts import rules
from tracker.alerts.lifecycle import reconcile
from tracker.models import Alert, AlertEvent, AlertSubscription, Fork, Upstream

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


def _forks(n: int, start: int = 0) -> list[Fork]:
    """Forks f<start>..f<start+n-1>, each with a normal and a high alert, plus an
    upstream-wide informational one; every alert found before stays open."""
    upstream, _ = Upstream.objects.get_or_create(slug="chromium", name="Chromium", git_url="/x")
    forks = [
        Fork.objects.create(upstream=upstream, slug=f"f{i}", name=f"Fork <b>{i}</b>", git_url="/y")
        for i in range(start, start + n)
    ]
    found = [
        rules.Condition(a.key, a.kind, a.priority, a.fork and a.fork.slug, a.summary)
        for a in Alert.objects.filter(state="open").select_related("fork")
    ]
    for fork in forks:
        s = fork.slug
        found.append(
            rules.Condition(f"lag:{s}:main", "rebase_lag", "normal", s, f"{s}:main <script>x")
        )
        found.append(rules.Condition(f"base-age:{s}", "base_too_old", "high", s, f"{s} old"))
    found.append(rules.Condition("stable:126.0.1.2", "upstream_stable", "info", None, "Stable 126"))
    reconcile(found, timezone.now())
    return forks


def test_list_shows_open_alerts_escaped_with_constant_queries(
    staff_client, django_assert_max_num_queries
):
    _forks(2)
    with django_assert_max_num_queries(10) as small:
        small_body = staff_client.get(reverse("alerts")).content.decode()
    _forks(18, start=2)
    assert Alert.objects.filter(state="open").count() == 41
    with django_assert_max_num_queries(10) as big:
        big_body = staff_client.get(reverse("alerts")).content.decode()
    assert len(big.captured_queries) == len(small.captured_queries)
    assert "&lt;script&gt;x" in small_body and "<script>x" not in small_body
    assert "Fork &lt;b&gt;0&lt;/b&gt;" in small_body
    # Not acknowledged first, then high, normal, informational.
    last_high = big_body.rindex(">high<")
    assert (
        last_high
        < big_body.index(">normal<")
        < big_body.rindex(">normal<")
        < big_body.index(">info<")
    )


def test_detail_acknowledge_and_snooze(client, django_user_model):
    user = django_user_model.objects.create_user("oncall", password="pw-oncall-123")
    client.force_login(user)
    _forks(1)
    alert = Alert.objects.get(key="lag:f0:main")
    page = client.get(reverse("alert", args=[alert.pk])).content.decode()
    assert "Acknowledge" in page and "opened" in page and "&lt;script&gt;" in page

    response = client.post(reverse("alert-snooze", args=[alert.pk]), {"for": "3d"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.snoozed_until > timezone.now() + timedelta(days=2)
    assert client.post(reverse("alert-snooze", args=[alert.pk]), {"for": "1y"}).status_code == 400

    response = client.post(
        reverse("alert-ack", args=[alert.pk]), {"next": reverse("alerts"), "note": "on it"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("alerts")
    alert.refresh_from_db()
    assert alert.acknowledged_by == "oncall"
    kinds = list(alert.events.order_by("at", "pk").values_list("kind", flat=True))
    assert kinds == ["opened", "snoozed", "acknowledged"]
    page = client.get(reverse("alert", args=[alert.pk])).content.decode()
    assert "acknowledged by oncall" in page and "on it" in page
    # An open redirect is not followed.
    response = client.post(reverse("alert-ack", args=[alert.pk]), {"next": "//evil.example/"})
    assert response["Location"] == reverse("alert", args=[alert.pk])


def test_the_same_snooze_or_acknowledgement_posted_again_adds_no_event(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("oncall", password="pw-oncall-1"))
    fork = _forks(1)[0]
    alert = Alert.objects.get(key="lag:f0:main")
    feed = reverse("alert-feed", args=[fork.slug, fork.alert_feed_token])
    entries = lambda: client.get(feed).content.count(b"<entry>")  # noqa: E731
    before = entries()
    for _ in range(12):
        response = client.post(reverse("alert-snooze", args=[alert.pk]), {"for": "1d"})
        assert response.status_code == 302
    for _ in range(3):
        client.post(reverse("alert-ack", args=[alert.pk]))
    assert entries() == before + 2
    kinds = list(alert.events.order_by("at", "pk").values_list("kind", flat=True))
    assert kinds == ["opened", "snoozed", "acknowledged"]


def test_acknowledge_needs_post_and_a_login(client):
    _forks(1)
    alert = Alert.objects.get(key="lag:f0:main")
    assert client.post(reverse("alert-ack", args=[alert.pk])).status_code == 302  # to log-in
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_feed_needs_the_fork_token_and_lists_its_events(client):
    fork = _forks(2)[0]
    url = reverse("alert-feed", args=[fork.slug, fork.alert_feed_token])
    response = client.get(url)
    assert response.status_code == 200 and "atom" in response["Content-Type"]
    feed = ElementTree.fromstring(response.content)  # noqa: S314 - our own output
    titles = [e.find(f"{ATOM}title").text for e in feed.findall(f"{ATOM}entry")]
    assert "opened: f0:main <script>x" in titles  # XML-escaped on the wire
    assert "opened: Stable 126" in titles  # upstream-wide alerts too
    assert not any("f1:main" in t for t in titles)  # not another fork's
    assert AlertEvent.objects.count() == 5
    token = fork.alert_feed_token
    wrong = reverse("alert-feed", args=[fork.slug, ("y" if token[0] == "x" else "x") + token[1:]])
    assert client.get(wrong).status_code == 403
    other = Fork.objects.get(slug="f1")
    assert (
        client.get(reverse("alert-feed", args=[other.slug, fork.alert_feed_token])).status_code
        == 403
    )
    assert Fork.objects.get(slug="f1").alert_feed_token != fork.alert_feed_token


def test_feed_summaries_are_text_and_ids_are_tag_uris_stable_across_requests(client, settings):
    settings.SITE_URL = "https://fh.example.com:8443"
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    fork = Fork.objects.create(upstream=upstream, slug="f0", name="Fork 0", git_url="/y")
    summary = "f0:<b>x</b> is 9 days behind & more"  # a branch may be named so
    reconcile([rules.Condition("lag:f0:<b>x</b>", "rebase_lag", "normal", "f0", summary)], T0)
    reconcile([], T0 + timedelta(days=1))  # resolved: a second entry
    url = reverse("alert-feed", args=[fork.slug, fork.alert_feed_token])
    first, second = client.get(url).content, client.get(url, HTTP_HOST="localhost").content
    assert b"f0:&lt;b&gt;x&lt;/b&gt; is 9 days behind &amp; more" in first  # escaped once
    feed = ElementTree.fromstring(first)  # noqa: S314 - our own output
    opened = AlertEvent.objects.get(alert__key="lag:f0:<b>x</b>", kind="opened")
    tag = f"tag:fh.example.com,2026-03-01:alert/{opened.alert_id}/event/{opened.pk}"
    entry = next(e for e in feed.findall(f"{ATOM}entry") if e.find(f"{ATOM}id").text == tag)
    shown = entry.find(f"{ATOM}summary")
    assert shown.get("type") == "text" and shown.text == summary and len(shown) == 0
    ids = [e.text for e in feed.iter(f"{ATOM}id")]
    assert all(i.startswith("tag:fh.example.com,") for i in ids) and len(set(ids)) == len(ids)
    assert ids == [e.text for e in ElementTree.fromstring(second).iter(f"{ATOM}id")]  # noqa: S314


def test_subscribe_and_unsubscribe(client, django_user_model):
    from tracker.alerts.outbox import recipients

    fork = _forks(1)[0]
    user = django_user_model.objects.create_user("eng", email="eng@corp.example", password="p")
    client.force_login(user)
    assert client.post(reverse("alert-subscribe"), {"fork": fork.slug}).status_code == 302
    assert client.post(reverse("alert-subscribe"), {"fork": fork.slug}).status_code == 302
    assert recipients(fork.pk)[0] == ["eng@corp.example"]
    assert "Unsubscribe" in client.get(reverse("alerts")).content.decode()
    client.post(reverse("alert-subscribe"), {"fork": fork.slug, "action": "unsubscribe"})
    assert recipients(fork.pk)[0] == []
    nomail = django_user_model.objects.create_user("nomail", password="p")
    client.force_login(nomail)
    assert client.post(reverse("alert-subscribe"), {"fork": ""}).status_code == 400


def test_unsubscribing_from_a_fork_mutes_it_under_an_every_fork_subscription(
    client, django_user_model
):
    from tracker.alerts.outbox import recipients

    acme, other = _forks(2)
    user = django_user_model.objects.create_user("eng", email="eng@corp.example", password="p")
    AlertSubscription.objects.create(user=user, fork=None)
    client.force_login(user)
    client.post(reverse("alert-subscribe"), {"fork": acme.slug, "action": "unsubscribe"})
    assert recipients(acme.pk)[0] == []
    assert recipients(other.pk)[0] == ["eng@corp.example"]
    client.post(reverse("alert-subscribe"), {"fork": "", "action": "unsubscribe"})
    assert recipients(other.pk)[0] == []


def test_subscribing_turns_a_fork_set_to_none_back_on(client, django_user_model):
    from tracker.alerts.outbox import recipient_modes

    fork = _forks(1)[0]
    user = django_user_model.objects.create_user("eng", email="eng@corp.example", password="p")
    AlertSubscription.objects.create(user=user, fork=fork, mode="none")
    client.force_login(user)
    page = client.get(reverse("alerts")).content.decode()
    assert "nothing yet." in page  # a fork set to none is not listed as subscribed
    client.post(reverse("alert-subscribe"), {"fork": fork.slug})
    assert recipient_modes(fork.pk)[0] == {"eng@corp.example": "immediate"}
    AlertSubscription.objects.filter(user=user).update(mode="digest")
    client.post(reverse("alert-subscribe"), {"fork": fork.slug})  # a digest stays a digest
    assert recipient_modes(fork.pk)[0] == {"eng@corp.example": "digest"}
    assert "(daily digest)" in client.get(reverse("alerts")).content.decode()


def test_admin_rotates_a_feed_url(client, admin_user):
    fork = _forks(1)[0]
    old = reverse("alert-feed", args=[fork.slug, fork.alert_feed_token])
    client.force_login(admin_user)
    page = client.get(reverse("admin:tracker_fork_change", args=[fork.pk])).content.decode()
    assert old in page  # the fork's admin page shows its feed URL
    response = client.post(
        reverse("admin:tracker_fork_changelist"),
        {"action": "rotate_feed_token", "_selected_action": [fork.pk]},
    )
    assert response.status_code == 302
    fork.refresh_from_db()
    client.logout()
    assert client.get(old).status_code == 403
    assert (
        client.get(reverse("alert-feed", args=[fork.slug, fork.alert_feed_token])).status_code
        == 200
    )
