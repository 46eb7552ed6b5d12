"""A user's alert subscriptions as the profile page shows and sets them: one choice for every
fork (the every-fork row; none means no row) and one per fork (the fork's own row, or
`FOLLOW`: no row of its own, so the every-fork choice applies). What each choice delivers is
`tracker.models.DeliveryMode`; who gets what is `tracker.alerts.outbox.recipient_modes`.
"""

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from tracker.models import AlertSubscription, DeliveryMode

FOLLOW = ""  # a fork without a row of its own: the every-fork choice applies


def subscription_choices(user: AbstractBaseUser) -> tuple[DeliveryMode, dict[int, DeliveryMode]]:
    """(the every-fork choice, {fork id: choice} for the forks with a row of their own)."""
    every = DeliveryMode.NONE
    forks: dict[int, DeliveryMode] = {}
    for fork_id, mode in user.alert_subscriptions.values_list("fork_id", "mode"):
        if fork_id is None:
            every = DeliveryMode(mode)
        else:
            forks[fork_id] = DeliveryMode(mode)
    return every, forks


@transaction.atomic
def set_subscriptions(user: AbstractBaseUser, every: DeliveryMode, forks: dict[int, str]) -> None:
    """Make the user's rows match the choices: `every` for every fork (none: no row), and
    for each fork id in `forks` a `DeliveryMode` or `FOLLOW` (no row). Forks not in `forks`
    keep their rows. A fixed number of queries, however many forks."""
    wanted: dict[int | None, str] = dict(forks)
    wanted[None] = FOLLOW if every == DeliveryMode.NONE else every
    existing = {
        fork_id: (pk, mode)
        for pk, fork_id, mode in user.alert_subscriptions.values_list("pk", "fork_id", "mode")
    }
    stale: list[int] = []
    changed: dict[str, list[int]] = defaultdict(list)  # mode → row ids
    new: list[AlertSubscription] = []
    for fork_id, mode in wanted.items():
        row = existing.get(fork_id)
        if mode == FOLLOW:
            if row:
                stale.append(row[0])
        elif row is None:
            new.append(AlertSubscription(user=user, fork_id=fork_id, mode=mode))
        elif row[1] != mode:
            changed[mode].append(row[0])
    if stale:
        AlertSubscription.objects.filter(pk__in=stale).delete()
    for mode, ids in changed.items():
        AlertSubscription.objects.filter(pk__in=ids).update(mode=mode)
    AlertSubscription.objects.bulk_create(new)
