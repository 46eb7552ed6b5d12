"""Each alert rule on a generated world, across its threshold and back: one alert opened,
one mail, updates not mailed, resolution mailed once, acknowledgement stops reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.alerts import rules
from tracker.alerts.facts import newest_releases
from tracker.alerts.lifecycle import acknowledge, reconcile, snooze
from tracker.forksecurity import triage
from tracker.models import (
    Alert,
    AlertEvent,
    AlertSettings,
    AlertSubscription,
    BranchSnapshot,
    Channel,
    Delivery,
    DeliveryState,
    FixState,
    FixStatus,
    Fork,
    ForkRelease,
    Platform,
    Upstream,
    UpstreamRelease,
    Vulnerability,
)
from tracker.sync import sync_fork

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def _digest_time(now, days=1):
    return (now + timedelta(days=days)).replace(hour=7, minute=0, second=0, microsecond=0)


def _events(key, *, reminders=False):
    events = AlertEvent.objects.filter(alert__key=key)
    if not reminders:
        events = events.exclude(kind="reminded")  # their own test follows them
    return list(events.order_by("at", "pk").values_list("kind", flat=True))


def test_rebase_lag_opens_once_updates_quietly_and_resolves_once(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    acme = run.forks["acme"]
    main = acme.branches.get(name="main")
    days = BranchSnapshot.objects.filter(branch=main).latest("taken_at").days_behind
    limits = AlertSettings.objects.create(fork=acme, branch=main, lag_days=days)

    run.at(t0)  # at the limit: not over it
    assert not Alert.objects.filter(key="lag:acme:main").exists()

    limits.lag_days = days - 1
    limits.save()
    run.at(t0 + MINUTE)
    alert = Alert.objects.get(key="lag:acme:main")
    assert alert.state == "open" and alert.figures["days_behind"] == days
    assert run.mails == []  # normal priority: waits for the digest

    digest = _digest_time(t0)
    run.deliver(digest)
    [message] = run.mails_to("acme@example.com")
    assert f"acme:main is {days} days" in message.body
    assert "New alerts" in message.body and alert_url_in(message, alert)

    # A day later the fork syncs again, still behind: the alert is updated, not mailed.
    later = t0 + timedelta(days=1)
    sync_fork(acme, now=later, fetch_upstream_first=False)
    run.at(later)
    alert.refresh_from_db()
    assert alert.state == "open" and alert.figures["days_behind"] == days + 1
    assert _events("lag:acme:main") == ["opened", "updated"]
    assert not Delivery.objects.filter(event__kind="updated").exists()
    assert Alert.objects.filter(key="lag:acme:main").count() == 1

    # Back under the limit: resolved once, mailed once in the next digest.
    limits.lag_days = days + 5
    limits.save()
    run.at(later + MINUTE)
    run.at(later + 2 * MINUTE)
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert _events("lag:acme:main") == ["opened", "updated", "resolved"]
    before = len(run.mails_to("acme@example.com"))
    run.deliver(_digest_time(later))
    after = run.mails_to("acme@example.com")
    assert len(after) == before + 1
    assert "Resolved (1)" in after[-1].body and f"{days + 1} days" in after[-1].body
    run.deliver(_digest_time(later, days=2))
    assert len(run.mails_to("acme@example.com")) == before + 1  # nothing mailed twice


def alert_url_in(message, alert) -> bool:
    return f"/alerts/{alert.pk}/" in message.body


def test_base_too_old_is_high_priority_mailed_at_once_and_resolution_too(alerts_world):
    run = alerts_world
    lumen = run.forks["lumen"]
    newest = max(ForkRelease.objects.filter(fork=lumen), key=lambda r: r.shipped_at)
    base_at = UpstreamRelease.objects.filter(version=newest.base_version).earliest("time").time
    deadline = base_at + timedelta(days=70)

    run.at(deadline - timedelta(hours=1))
    assert not Alert.objects.filter(key="base-age:lumen").exists()

    run.at(deadline + timedelta(days=1))
    alert = Alert.objects.get(key="base-age:lumen")
    assert alert.priority == "high" and alert.figures["base_version"] == newest.base_version
    [message] = [m for m in run.mails_to("lumen@example.com") if "Certificate" in m.subject]
    assert message.subject.startswith("[fork health] lumen")
    assert newest.tag in message.body and "Certificate Transparency" in message.body
    assert message.alternatives and "<html>" in message.alternatives[0][0]

    run.at(deadline + timedelta(days=1, hours=1))  # still holds: nothing new
    assert len([m for m in run.mails_to("lumen@example.com") if "Certificate" in m.subject]) == 1

    AlertSettings.objects.filter(fork=lumen, branch=None).update(base_age_days=365)
    run.at(deadline + timedelta(days=1, hours=2))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    resolved = [
        m
        for m in run.mails_to("lumen@example.com")
        if m.subject.startswith("[fork health] Resolved: lumen")
    ]
    assert len(resolved) == 1


def _open_in_newest_release(fork) -> Vulnerability:
    newest = newest_releases([fork.pk])[fork.pk]
    status = (
        FixStatus.objects.filter(release=newest, status=FixState.OPEN)
        .select_related("vulnerability")
        .order_by("vulnerability__cve")
        .first()
    )
    assert status is not None, "the world should leave a fix open in lumen's newest release"
    return status.vulnerability


def test_overdue_fix_opens_past_its_deadline_and_triage_resolves_it(alerts_world):
    run = alerts_world
    lumen = run.forks["lumen"]
    vuln = _open_in_newest_release(lumen)
    days = {"critical": 15, "high": 30, "medium": 60}[vuln.severity]
    deadline = vuln.first_stable_at + timedelta(days=days)
    key = f"fix:lumen:{vuln.cve}"

    run.at(deadline - timedelta(hours=1))
    assert not Alert.objects.filter(key=key).exists()
    run.at(deadline + timedelta(hours=1))
    alert = Alert.objects.get(key=key, state="open")
    assert alert.figures["deadline_days"] == days and alert.figures["cve"] == vuln.cve

    triage(lumen, vuln, "not_affected", "the code is compiled out", now=deadline)
    run.at(deadline + timedelta(hours=2))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert _events(key) == ["opened", "resolved"]
    assert Delivery.objects.filter(event__alert=alert, channel="email").count() == 2


def test_in_the_wild_fix_has_a_three_day_deadline_and_is_mailed_at_once(alerts_world):
    run = alerts_world
    lumen = run.forks["lumen"]
    vuln = _open_in_newest_release(lumen)
    Vulnerability.objects.filter(pk=vuln.pk).update(in_the_wild=True)
    run.at(vuln.first_stable_at + timedelta(days=3, hours=1))
    alert = Alert.objects.get(key=f"fix:lumen:{vuln.cve}")
    assert alert.priority == "high" and "exploited in the wild" in alert.summary
    assert len([m for m in run.mails_to("lumen@example.com") if vuln.cve in m.subject]) == 1


def test_acknowledgement_stops_reminders_and_snooze_pauses_them(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    run.at(t0)
    alert = Alert.objects.get(key="lag:mergeco:main")
    day1, day2, day3, day4 = (_digest_time(t0, d) for d in (1, 2, 3, 4))

    run.at(day1)  # the digest with the new alert
    run.at(day1 + timedelta(hours=5))  # a day after opening: a reminder for the next digest
    run.at(day2)
    reminder = run.mails_to("mergeco@example.com")[-1]
    assert "Still open, not acknowledged (1)" in reminder.body and "mergeco:main" in reminder.body

    snooze(alert, day3 + timedelta(hours=2), by="oncall", now=day2 + MINUTE)
    count = len(run.mails_to("mergeco@example.com"))
    run.at(day2 + timedelta(hours=5))
    run.at(day3)
    assert len(run.mails_to("mergeco@example.com")) == count  # snoozed: no reminder
    run.at(day3 + timedelta(hours=3))  # the snooze is over: reminded again
    run.at(day4)
    assert "mergeco:main" in run.mails_to("mergeco@example.com")[-1].body
    count = len(run.mails_to("mergeco@example.com"))

    assert acknowledge(alert, by="oncall", now=day4 + MINUTE)
    assert not acknowledge(alert, by="oncall", now=day4 + MINUTE)  # once
    for day in range(4, 8):
        run.at(_digest_time(t0, day) + timedelta(hours=5))
        run.at(_digest_time(t0, day + 1))
    mails = run.mails_to("mergeco@example.com")
    assert all("mergeco:main" not in m.body for m in mails[count:])
    kinds = _events("lag:mergeco:main", reminders=True)
    assert kinds.count("acknowledged") == 1 and kinds.count("snoozed") == 1
    assert kinds[-1] == "acknowledged"


def test_acknowledging_or_snoozing_again_records_no_event_and_delivers_nothing():
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    Fork.objects.create(
        upstream=upstream,
        slug="acme",
        name="Acme",
        git_url="/y",
        owner_emails="rel@acme.example",
        alert_webhook_url="https://hooks.example/acme",
    )
    t0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
    reconcile([rules.Condition("base-age:acme", "base_too_old", "high", "acme", "old")], t0)
    alert = Alert.objects.get(key="base-age:acme")
    deliveries = Delivery.objects.count()
    assert deliveries == 2  # the opening: a mail and a webhook

    day = timedelta(days=1)
    assert snooze(alert, t0 + MINUTE + day, by="ann", now=t0 + MINUTE)
    for second in range(12):  # the same choice again and again, by anyone, seconds apart
        now = t0 + MINUTE + timedelta(seconds=second)
        assert not snooze(alert, now + day, by="bob", now=now)
    assert acknowledge(alert, by="ann", now=t0 + 2 * MINUTE)
    assert not acknowledge(alert, by="bob", now=t0 + 3 * MINUTE, note="me too")
    assert _events("base-age:acme") == ["opened", "snoozed", "acknowledged"]
    alert.refresh_from_db()
    assert alert.snoozed_until == t0 + MINUTE + day and alert.acknowledged_by == "ann"
    assert Delivery.objects.count() == deliveries

    # A different choice is a new snooze, and so is one after the running snooze ended.
    assert snooze(alert, t0 + 3 * day, by="bob", now=t0 + 4 * MINUTE)
    later = t0 + 3 * day + MINUTE
    assert snooze(alert, later + timedelta(minutes=30), by="bob", now=later)
    assert _events("base-age:acme")[-2:] == ["snoozed", "snoozed"]
    assert Delivery.objects.count() == deliveries


def test_a_reminder_queued_before_an_acknowledgement_is_skipped(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    run.at(t0)
    run.at(t0 + timedelta(days=1, hours=1))  # reminder queued for the day after
    alert = Alert.objects.get(key="lag:mergeco:main")
    reminder = Delivery.objects.get(event__alert=alert, event__kind="reminded")
    acknowledge(alert, by="oncall", now=t0 + timedelta(days=1, hours=2))
    run.deliver(reminder.due_at)
    reminder.refresh_from_db()
    assert reminder.state == DeliveryState.SKIPPED
    assert all("mergeco:main" not in m.body for m in run.mails_to("mergeco@example.com")[1:])


def test_predicted_conflicts_rising_since_the_last_rebase(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    main = run.forks["acme"].branches.get(name="main")
    latest = BranchSnapshot.objects.filter(branch=main).latest("taken_at")
    run.at(t0)
    assert not Alert.objects.filter(key="conflicts:acme:main").exists()

    more = latest.conflicting_patches + 2
    _resnapshot(main, t0 + timedelta(hours=1), conflicting_patches=more)
    run.at(t0 + timedelta(hours=1, minutes=1))
    alert = Alert.objects.get(key="conflicts:acme:main")
    assert alert.figures["previous"] == latest.conflicting_patches
    # The fork rebased: the forecast right after the rebase is the new baseline.
    rebased = t0 + timedelta(hours=2)
    _resnapshot(main, rebased, conflicting_patches=more, base_moved_at=rebased)
    run.at(rebased + MINUTE)
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_an_unknown_conflict_forecast_is_no_baseline_and_raises_nothing(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    main = run.forks["acme"].branches.get(name="main")
    latest = BranchSnapshot.objects.filter(branch=main).latest("taken_at")
    lost = {"conflicts": "1 object is on no remote: a.txt (blob 0123456789ab): ..."}
    rebased = t0 + timedelta(hours=1)
    _resnapshot(main, rebased, conflicting_patches=0, base_moved_at=rebased, unknown=lost)
    run.at(rebased + MINUTE)
    # Measured again: the first known forecast since the rebase is the baseline, not the 0.
    _resnapshot(
        main,
        rebased + timedelta(hours=1),
        conflicting_patches=latest.conflicting_patches + 2,
        unknown={},
    )
    run.at(rebased + timedelta(hours=1, minutes=1))
    assert not Alert.objects.filter(key="conflicts:acme:main").exists()


def _resnapshot(branch, at, **changes):
    """A later snapshot of `branch`, the latest one with `changes` (as a sync would write)."""
    copy = BranchSnapshot.objects.filter(branch=branch).latest("taken_at")
    copy.pk, copy.taken_at = None, at
    for name, value in changes.items():
        setattr(copy, name, value)
    copy.save()
    return copy


def test_patches_found_upstream_are_an_informational_alert(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    run.at(t0)
    alert = Alert.objects.get(key="upstreamed:acme:main")
    assert alert.priority == "info" and alert.figures["patches_upstreamed"] >= 1
    assert alert.figures["patches"]  # the subjects, for the mail
    run.deliver(_digest_time(t0))
    [digest] = run.mails_to("acme@example.com")
    assert "already upstream" in digest.body
    # The fork dropped the patch: resolved, and an informational resolution is not mailed.
    main = run.forks["acme"].branches.get(name="main")
    _resnapshot(main, t0 + timedelta(hours=1), patches_upstreamed=0)
    run.at(t0 + timedelta(hours=2))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert not Delivery.objects.filter(event__alert=alert, event__kind="resolved").exists()


def test_a_branch_on_an_unsupported_milestone_and_too_far_behind_stable(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    upstream = run.upstream
    run.at(t0)
    assert not Alert.objects.filter(key="unsupported:acme:release/123").exists()
    newer = UpstreamRelease.objects.create(
        upstream=upstream,
        channel=Channel.STABLE,
        platform=Platform.WINDOWS,
        milestone=126,
        version="126.0.6478.55",
        major=126,
        minor=0,
        build=6478,
        patch=55,
        time=t0 + timedelta(hours=1),
    )
    run.at(t0 + timedelta(hours=2))
    unsupported = Alert.objects.get(key="unsupported:acme:release/123")
    assert unsupported.priority == "high" and unsupported.figures["milestone"] == 123
    lag = Alert.objects.get(key="lag:acme:release/123")
    assert lag.figures["milestones_behind"] == 3
    newer.delete()
    run.at(t0 + timedelta(hours=3))
    unsupported.refresh_from_db()
    lag.refresh_from_db()
    assert unsupported.state == lag.state == "resolved"


def test_a_failing_fork_sync_goes_stale_and_recovers(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    acme = run.forks["acme"]
    AlertSettings.objects.filter(fork=acme, branch=None).update(stale_hours=24)
    Fork.objects.filter(pk=acme.pk).update(last_error="fetch failed: connection reset")
    run.at(t0 + timedelta(hours=23))
    assert not Alert.objects.filter(key="stale:fork sync acme").exists()
    run.at(t0 + timedelta(hours=25))
    alert = Alert.objects.get(key="stale:fork sync acme")
    assert "connection reset" in alert.summary
    sync_fork(
        Fork.objects.get(pk=acme.pk), now=t0 + timedelta(hours=26), fetch_upstream_first=False
    )
    run.at(t0 + timedelta(hours=26, minutes=1))
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_a_new_stable_release_with_fixes_is_announced_once(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    run.at(t0)
    run.at(t0 + MINUTE)
    [alert] = Alert.objects.filter(kind="upstream_stable")
    assert alert.fork is None and alert.figures["cves"]
    assert Delivery.objects.filter(event__alert=alert).count() == len(run.forks)  # every owner
    # A newer Stable without security fixes replaces it: resolved quietly, nothing new.
    stable = UpstreamRelease.objects.filter(channel=Channel.STABLE).order_by("-time").first()
    UpstreamRelease.objects.create(
        upstream=run.upstream,
        channel=Channel.STABLE,
        platform=stable.platform,
        milestone=stable.milestone,
        version=f"{stable.major}.0.{stable.build}.{stable.patch + 1}",
        major=stable.major,
        minor=0,
        build=stable.build,
        patch=stable.patch + 1,
        time=t0 + timedelta(hours=1),
    )
    run.at(t0 + timedelta(hours=2))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert not Alert.objects.filter(kind="upstream_stable", state="open").exists()


def test_muting_a_fork_resolves_its_alerts(alerts_world):
    run, t0 = alerts_world, alerts_world.start
    run.at(t0)
    assert Alert.objects.filter(fork=run.forks["acme"], state="open").exists()
    AlertSettings.objects.filter(fork=run.forks["acme"], branch=None).update(enabled=False)
    run.at(t0 + MINUTE)
    assert not Alert.objects.filter(fork=run.forks["acme"], state="open").exists()


def test_recipients_are_owners_and_subscribers_once_each(alerts_world, django_user_model):
    from tracker.alerts.outbox import recipients

    acme = alerts_world.forks["acme"]
    Fork.objects.filter(pk=acme.pk).update(owner_emails="Rel@Acme.example, acme@example.com")
    AlertSubscription.objects.create(
        user=django_user_model.objects.create_user("a", email="rel@acme.example"), fork=acme
    )
    AlertSubscription.objects.create(
        user=django_user_model.objects.create_user("b", email="sec@corp.example"), fork=None
    )
    AlertSubscription.objects.create(
        user=django_user_model.objects.create_user("c", email="other@corp.example"),
        fork=alerts_world.forks["lumen"],
    )
    AlertSubscription.objects.create(
        user=django_user_model.objects.create_user("d", email="gone@corp.example", is_active=False),
        fork=None,
    )
    emails, hooks = recipients(acme.pk)
    # One mail per address however it is spelled; inactive users and other forks' out.
    assert sorted(e.lower() for e in emails) == [
        "acme@example.com",
        "rel@acme.example",
        "sec@corp.example",
    ]
    assert hooks == []
