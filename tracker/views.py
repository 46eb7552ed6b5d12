"""Pages. Views load, call the domain, and render; they compute nothing themselves."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from tracker.healthz import service_health
from tracker.models import BranchSnapshot, Fork, TrackedBranch


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    """Every fork with each tracked branch's latest snapshot (three queries in all)."""
    forks = list(
        Fork.objects.select_related("upstream").prefetch_related(
            Prefetch("branches", queryset=TrackedBranch.objects.order_by("name"))
        )
    )
    branches = [b for fork in forks for b in fork.branches.all()]
    latest = BranchSnapshot.objects.latest_by_branch([b.pk for b in branches])
    for branch in branches:
        branch.latest = latest.get(branch.pk)
    return render(request, "tracker/overview.html", {"forks": forks})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and freshness without log-in: see tracker.healthz."""
    status, report = service_health(timezone.now())
    return JsonResponse(report, status=status)
