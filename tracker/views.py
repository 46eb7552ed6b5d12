"""Pages. Views load, call the domain, and render; they compute nothing themselves."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from tracker.models import Fork, TrackedBranch


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    forks = Fork.objects.select_related("upstream").prefetch_related(
        Prefetch("branches", queryset=TrackedBranch.objects.order_by("name"))
    )
    return render(request, "tracker/overview.html", {"forks": forks})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness without log-in: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        ok = True
    except Exception:  # any database failure means unhealthy
        ok = False
    return JsonResponse({"database": "ok" if ok else "down"}, status=200 if ok else 503)
