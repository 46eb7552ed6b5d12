"""A user's subscriptions as the profile page reads and sets them."""

from __future__ import annotations

import pytest

from tracker.alerts.subscriptions import FOLLOW, set_subscriptions, subscription_choices
from tracker.models import AlertSubscription, DeliveryMode, Fork, Upstream

pytestmark = pytest.mark.django_db


def test_choices_round_trip_and_follow_or_none_leave_no_row(django_user_model):
    upstream = Upstream.objects.create(slug="chromium", name="Chromium", git_url="/x")
    acme, lumen = (
        Fork.objects.create(upstream=upstream, slug=s, name=s, git_url="/y")
        for s in ("acme", "lumen")
    )
    user = django_user_model.objects.create_user("eng", email="eng@corp.example")
    assert subscription_choices(user) == (DeliveryMode.NONE, {})

    set_subscriptions(user, DeliveryMode.DIGEST, {acme.pk: "none", lumen.pk: "immediate"})
    assert subscription_choices(user) == ("digest", {acme.pk: "none", lumen.pk: "immediate"})

    set_subscriptions(user, DeliveryMode.NONE, {acme.pk: FOLLOW, lumen.pk: "digest"})
    assert subscription_choices(user) == ("none", {lumen.pk: "digest"})
    assert list(AlertSubscription.objects.values_list("fork_id", "mode")) == [(lumen.pk, "digest")]
