"""Alert pages: the list (filter by fork and state), one alert with its history and
deliveries, acknowledge and snooze (any logged-in user: release engineers on call), and the
per-fork Atom feed, which needs no log-in but a secret token in its URL."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.syndication.views import Feed
from django.core.paginator import Paginator
from django.db.models import Case, F, Q, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.feedgenerator import Atom1Feed
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from tracker.alerts.lifecycle import acknowledge, snooze
from tracker.alerts.messages import figure_rows
from tracker.models import (
    Alert,
    AlertEvent,
    AlertPriority,
    AlertState,
    AlertSubscription,
    DeliveryMode,
    Fork,
)

PAGE_SIZE = 50
SNOOZE_CHOICES = {"1d": timedelta(days=1), "3d": timedelta(days=3), "7d": timedelta(days=7)}
FEED_ENTRIES = 100


def _get_alert_or_404(pk: int) -> Alert:
    return get_object_or_404(Alert.objects.select_related("fork"), pk=pk)


@login_required
@require_safe
def alert_list(request: HttpRequest) -> HttpResponse:
    """Open alerts first (high priority first), or the resolved ones; filter by fork."""
    state = request.GET.get("state", AlertState.OPEN)
    if state not in AlertState.values:
        state = AlertState.OPEN
    alerts = Alert.objects.filter(state=state).select_related("fork")
    fork_slug = request.GET.get("fork", "")
    if fork_slug:
        alerts = alerts.filter(fork__slug=fork_slug)
    if state == AlertState.OPEN:
        rank = Case(
            *(When(priority=p, then=Value(i)) for i, p in enumerate(AlertPriority.values)),
            default=Value(9),
        )
        # Not yet acknowledged first, then by priority (high, normal, info), newest first.
        alerts = alerts.order_by(
            F("acknowledged_at").asc(nulls_first=True), rank, "-opened_at", "-pk"
        )
    else:
        alerts = alerts.order_by("-resolved_at", "-pk")
    page = Paginator(alerts, PAGE_SIZE).get_page(request.GET.get("page"))
    subscribed = list(
        request.user.alert_subscriptions.exclude(mode=DeliveryMode.NONE)
        .select_related("fork")
        .order_by("fork__name")
    )
    ctx = {
        "page": page,
        "subscriptions": subscribed,
        "fork_slug": fork_slug,
        "forks": Fork.objects.order_by("name").values_list("slug", "name"),
        "now": timezone.now(),
        "snooze_choices": SNOOZE_CHOICES,
    }
    return render(request, "tracker/alerts.html", ctx)


@login_required
@require_safe
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One alert: summary, figures, its events and every delivery with its attempts."""
    alert = _get_alert_or_404(pk)
    events = list(alert.events.prefetch_related("deliveries").order_by("-at", "-pk"))
    ctx = {
        "alert": alert,
        "events": events,
        "figures": figure_rows(alert.figures),
        "now": timezone.now(),
        "snooze_choices": SNOOZE_CHOICES,
    }
    return render(request, "tracker/alert.html", ctx)


def _back(request: HttpRequest, alert: Alert):
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("alert", pk=alert.pk)


@login_required
@require_POST
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    alert = _get_alert_or_404(pk)
    note = request.POST.get("note", "")[:1000]
    acknowledge(alert, by=request.user.get_username(), now=timezone.now(), note=note)
    return _back(request, alert)


@login_required
@require_POST
def alert_snooze(request: HttpRequest, pk: int) -> HttpResponse:
    alert = _get_alert_or_404(pk)
    period = SNOOZE_CHOICES.get(request.POST.get("for", ""))
    if period is None:
        return HttpResponse("choose how long to snooze: 1d, 3d or 7d\n", status=400)
    now = timezone.now()
    snooze(alert, now + period, by=request.user.get_username(), now=now)
    return _back(request, alert)


@login_required
@require_POST
def alert_subscribe(request: HttpRequest) -> HttpResponse:
    """Subscribe the user to a fork's alerts (``fork`` empty: every fork's), or
    unsubscribe (``action=unsubscribe``). Mail goes to the user's address; a new
    subscription, or one set to none, is mail now (the profile page chooses the mode)."""
    slug = request.POST.get("fork", "")
    fork = get_object_or_404(Fork, slug=slug) if slug else None
    if request.POST.get("action") == "unsubscribe":
        mine = request.user.alert_subscriptions
        if fork is not None and mine.filter(fork=None).exclude(mode=DeliveryMode.NONE).exists():
            # Deleting the fork's row would leave the every-fork row delivering it: mute it.
            mine.update_or_create(fork=fork, defaults={"mode": DeliveryMode.NONE})
        else:
            mine.filter(fork=fork).delete()
    elif not request.user.email:
        return HttpResponse(
            "your account has no email address to send alerts to; set one on your profile,"
            f" {reverse('profile')}\n",
            status=400,
        )
    else:
        sub, _ = AlertSubscription.objects.get_or_create(user=request.user, fork=fork)
        if sub.mode == DeliveryMode.NONE:  # asked for mail: turn it back on
            sub.mode = DeliveryMode.IMMEDIATE
            sub.save(update_fields=["mode"])
    return redirect("alerts")


class TextSummaryAtom1Feed(Atom1Feed):
    """Atom whose entry summaries are plain text. Django's say ``type="html"``: a reader
    unescapes the XML once and then renders the HTML, so a branch named ``<b>x</b>`` in a
    summary would show in bold (or run a script)."""

    def add_item_elements(self, handler, item) -> None:
        super().add_item_elements(handler, {**item, "description": None})
        if item["description"] is not None:
            handler.addQuickElement("summary", item["description"], {"type": "text"})


def tag_uri(at: datetime, specific: str) -> str:
    """An Atom id: a tag: URI (RFC 4151) minted by the site's host (``SITE_URL``) on the
    date of `at`, so the same thing keeps the same id whichever host name a reader used."""
    host = urlsplit(settings.SITE_URL).hostname
    return f"tag:{host},{at:%Y-%m-%d}:{specific}"


class ForkAlertFeed(Feed):
    """A fork's alert events (its own and upstream-wide ones), newest first."""

    feed_type = TextSummaryAtom1Feed

    def get_object(self, request, slug: str, token: str) -> Fork:
        fork = Fork.objects.filter(slug=slug).first()
        if fork is None or not constant_time_compare(token, fork.alert_feed_token):
            raise Http404
        return fork

    def title(self, fork: Fork) -> str:
        return f"Fork health alerts: {fork.name}"

    def link(self, fork: Fork) -> str:
        return reverse("alerts") + f"?fork={fork.slug}"

    def feed_guid(self, fork: Fork) -> str:
        return tag_uri(fork.created_at, f"fork/{fork.pk}/alerts")

    def subtitle(self, fork: Fork) -> str:
        return f"Alerts opened, resolved and handled for {fork.name}"

    def items(self, fork: Fork):
        return (
            AlertEvent.objects.filter(Q(alert__fork=fork) | Q(alert__fork__isnull=True))
            .select_related("alert")
            .order_by("-at", "-pk")[:FEED_ENTRIES]
        )

    def item_title(self, event: AlertEvent) -> str:
        return f"{event.get_kind_display()}: {event.summary}"

    def item_description(self, event: AlertEvent) -> str:
        return event.summary + (f" — {event.note}" if event.note else "")

    def item_link(self, event: AlertEvent) -> str:
        return reverse("alert", args=[event.alert_id])

    def item_guid(self, event: AlertEvent) -> str:
        return tag_uri(event.at, f"alert/{event.alert_id}/event/{event.pk}")

    item_guid_is_permalink = False

    def item_updateddate(self, event: AlertEvent):
        return event.at

    def item_pubdate(self, event: AlertEvent):
        return event.at


_feed = ForkAlertFeed()


@require_safe
def alert_feed(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """The Atom feed; a wrong or missing token is refused like any anonymous request."""
    try:
        return _feed(request, slug=slug, token=token)
    except Http404:
        return HttpResponseForbidden("unknown feed\n", content_type="text/plain")
