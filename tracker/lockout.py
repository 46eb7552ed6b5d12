"""Login throttling, the project's side of django-axes: which address a request came from,
and the page a locked-out log-in gets.

Axes counts failed log-ins by (user name, client address) and, from ``AXES_FAILURE_LIMIT``
failures on, refuses that pair without checking the password until ``AXES_COOLOFF_TIME``
after its last counted failure (settings.py says why by the pair).
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime, timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def _address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the connection's (``REMOTE_ADDR``), or behind proxies the one
    in ``CLIENT_IP_HEADER`` that the ``CLIENT_IP_PROXY_COUNT``-th proxy from us saw (the
    proxies append to X-Forwarded-For, so it is that many entries from the right; what a
    client wrote further left is not believed). A header that is missing or holds no address
    means the request did not come through the proxy: the connection's address then."""
    remote = request.META.get("REMOTE_ADDR")
    if settings.CLIENT_IP_HEADER == "REMOTE_ADDR":
        return remote
    header = request.META.get(settings.CLIENT_IP_HEADER, "")
    hops = [hop.strip() for hop in header.split(",") if hop.strip()]
    if not hops:
        return remote
    return _address(hops[-min(settings.CLIENT_IP_PROXY_COUNT, len(hops))]) or remote


def lockout_ends(request: HttpRequest, credentials: dict | None) -> datetime | None:
    """When the lockout of this request's user name and address ends: when the failure that
    took its count within the cool-off to the limit is older than the cool-off. None if it
    is not locked out (or the cool-off is off: locked until an administrator unlocks it)."""
    cool_off = get_cool_off(request)
    if cool_off is None:
        return None
    limit = get_failure_limit(request, credentials)
    ends = []
    for attempts in AxesDatabaseHandler().get_user_attempts(request, credentials):
        counted = 0
        rows = attempts.order_by("-attempt_time").values_list(
            "attempt_time", "failures_since_start"
        )
        for at, failures in rows:
            counted += failures
            if counted >= limit:
                ends.append(at + cool_off)
                break
    return max(ends, default=None)


def _next_minute(at: datetime) -> datetime:
    """`at` rounded up to a whole minute: a time shown as 20:21 must not still be locked."""
    minute = at.replace(second=0, microsecond=0)
    return minute if minute == at else minute + timedelta(minutes=1)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """The page a locked-out log-in gets (429 Too Many Requests), saying for whom, why and
    for how long, with the wait in ``Retry-After``."""
    now = timezone.now()
    ends = lockout_ends(request, credentials)
    seconds = max(math.ceil((ends - now).total_seconds()), 1) if ends else None
    ctx = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": get_failure_limit(request, credentials),
        "from_minute": _next_minute(ends) if ends else None,  # shown to the minute
        "minutes": math.ceil(seconds / 60) if seconds else None,
        "permanent": get_cool_off(request) is None,
    }
    response = render(
        request, "registration/lockout.html", ctx, status=settings.AXES_HTTP_RESPONSE_CODE
    )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
