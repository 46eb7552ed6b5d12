"""Pages. Views load, call the domain, and render; they compute nothing themselves."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from tracker import progress as sync_progress
from tracker.forksecurity import fork_gap_report
from tracker.gap import by_release, open_fixes
from tracker.healthz import service_health, source_freshness
from tracker.lag import worst_status
from tracker.metrics import render_metrics
from tracker.models import (
    BranchSnapshot,
    Channel,
    FixState,
    FixStatus,
    Fork,
    ForkRelease,
    ForkSecuritySnapshot,
    IngestCursor,
    PatchChange,
    TrackedBranch,
    Upstream,
    UpstreamRelease,
    Vulnerability,
)
from tracker.pagecache import cached_body, cached_titled_body, cached_value

HISTORY_DAYS = 365  # how far back trend charts and lag history reach


def _vulnerability_data():
    """Subquery: whether any upstream security fix of the outer fork's upstream is loaded;
    without one, "no open fixes" would be a figure without data."""
    return Exists(Vulnerability.objects.filter(upstream=OuterRef("upstream")))


def _upstream_stable():
    """Subquery: the outer fork's upstream's highest Stable release (any platform)."""
    return UpstreamRelease.objects.filter(
        upstream=OuterRef("upstream"), channel=Channel.STABLE
    ).order_by("-major", "-minor", "-build", "-patch")


@login_required
@require_safe
def overview(request: HttpRequest) -> HttpResponse:
    """Every fork: its status, each branch's latest snapshot, its open security fixes, its
    newest release against upstream Stable, and the sources that are stale or failing. The
    same ten queries whatever the number of forks (three when its body is cached)."""
    now = timezone.now()
    running = sync_progress.current(Upstream.objects.values_list("slug", flat=True))
    body = cached_body(
        "overview",
        [sorted(running.items())],
        lambda: render_to_string(
            "tracker/overview_body.html", _overview_context(now, running), request=request
        ),
    )
    return render(request, "tracker/overview.html", {"body": body})


def _overview_context(now, running: dict) -> dict:
    stable = _upstream_stable()
    forks = list(
        Fork.objects.select_related("upstream")
        .annotate(
            stable_version=Subquery(stable.values("version")[:1]),
            stable_major=Subquery(stable.values("major")[:1]),
            vulnerability_data=_vulnerability_data(),
        )
        .prefetch_related(Prefetch("branches", queryset=TrackedBranch.objects.order_by("name")))
    )
    ids = [fork.pk for fork in forks]
    branches = [b for fork in forks for b in fork.branches.all()]
    latest = BranchSnapshot.objects.latest_by_branch([b.pk for b in branches])
    for branch in branches:
        branch.latest = latest.get(branch.pk)
    security = ForkSecuritySnapshot.objects.latest_by_fork(ids)
    releases = ForkRelease.objects.newest_by_fork(ids)
    for fork in forks:
        fork.status = worst_status(b.latest.status for b in fork.branches.all() if b.latest)
        fork.security = security.get(fork.pk)
        fork.newest_release = release = releases.get(fork.pk)
        fork.release_milestones_behind = (
            fork.stable_major - release.base_major
            if release and release.base_major is not None and fork.stable_major is not None
            else None
        )
        fork.sync_progress = running.get(fork.upstream.slug)
    return {
        "forks": forks,
        "attention": [s for s in source_freshness(now) if s.stale or s.failing],
    }


RECENT_REFS = 10  # refs besides main shown per upstream on the sync page, most recently moved
REFS_PAGE_SIZE = 100  # refs a page on an upstream's list of refs


@login_required
@require_safe
def sync_status(request: HttpRequest) -> HttpResponse:
    """Freshness of every upstream data source, mirror and fork, a summary of each upstream's
    ingested refs (main and the most recently moved), and the progress of running syncs
    (five queries, however many refs)."""
    freshness = source_freshness(timezone.now())
    summaries = IngestCursor.objects.sync_summaries(RECENT_REFS)
    mirrors = [f for f in freshness if f.kind == "mirror"]
    running = sync_progress.current(m.slug for m in mirrors)
    ctx = {
        "sources": [f for f in freshness if f.kind == "source"],
        "mirrors": [(m, summaries.get(m.slug), running.get(m.slug)) for m in mirrors],
        "forks": [f for f in freshness if f.kind == "fork"],
        "running": bool(running),
    }
    return render(request, "tracker/sync.html", ctx)


@login_required
@require_safe
def sync_refs(request: HttpRequest, slug: str) -> HttpResponse:
    """One upstream's ingested refs by name, `REFS_PAGE_SIZE` a page, those whose name holds
    ``?q=`` when given (four queries)."""
    upstream = get_object_or_404(Upstream, slug=slug)
    query = request.GET.get("q", "").strip()
    cursors = IngestCursor.objects.filter(upstream=upstream).order_by("ref")
    if query:
        cursors = cursors.filter(ref__contains=query)
    page = Paginator(cursors, REFS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "tracker/sync_refs.html", {"upstream": upstream, "page": page, "q": query}
    )


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: for a scraper with ``Authorization: Bearer <METRICS_TOKEN>``, or a
    logged-in user. Anyone else is refused, like every page but /healthz."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    bearer_ok = bool(token) and constant_time_compare(header, f"Bearer {token}")
    if not (bearer_ok or request.user.is_authenticated):
        return HttpResponse("authentication required\n", status=401, content_type="text/plain")
    return HttpResponse(render_metrics(timezone.now()), content_type=CONTENT_TYPE_LATEST)


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and freshness without log-in: see tracker.healthz."""
    status, report = service_health(timezone.now())
    return JsonResponse(report, status=status)


def _get_fork_or_404(slug: str) -> Fork:
    forks = Fork.objects.select_related("upstream").annotate(
        vulnerability_data=_vulnerability_data()
    )
    return get_object_or_404(forks, slug=slug)


RELEASES_SHOWN = 30  # newest releases on the fork page
OPEN_FIXES_SHOWN = 50  # oldest open fixes on the fork page (the matrix lists them all)


@login_required
@require_safe
def fork_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """A fork: its branches with their latest figures, its newest releases with base version,
    security patch level and open fixes, the fixes its newest release leaves open, and the
    trend charts (eight queries; two when its body is cached, which is keyed by the slug)."""

    def build() -> tuple[str, str]:
        fork = _get_fork_or_404(slug)
        ctx = _fork_context(fork, timezone.now())
        return fork.name, render_to_string("tracker/fork_body.html", ctx, request=request)

    name, body = cached_titled_body("fork", [slug], build)
    return render(request, "tracker/fork.html", {"name": name, "body": body})


def _fork_context(fork: Fork, now) -> dict:
    branches = list(fork.branches.order_by("name"))
    latest = BranchSnapshot.objects.latest_by_branch([b.pk for b in branches])
    for branch in branches:
        branch.latest = latest.get(branch.pk)
    releases = list(fork.releases.select_related("branch").newest_first()[:RELEASES_SHOWN])
    open_counts = dict(
        FixStatus.objects.filter(
            fork=fork, release__in=[r.pk for r in releases], status=FixState.OPEN
        )
        .values_list("release")
        .annotate(n=Count("id"))
        .order_by()
    )
    for release in releases:
        release.open_count = open_counts.get(release.pk, 0)
    # The fixes the security snapshots count: the newest release's, or the branch tips'.
    newest = releases[0] if releases else None
    listed = open_fixes(FixStatus.objects.counted_open(fork, newest).open_fix_facts(), now)
    return {
        "fork": fork,
        "branches": branches,
        "releases": releases,
        "security": ForkSecuritySnapshot.objects.latest_by_fork([fork.pk]).get(fork.pk),
        "open_fixes": listed[:OPEN_FIXES_SHOWN],
        "open_more": max(len(listed) - OPEN_FIXES_SHOWN, 0),
    }


@login_required
@require_safe
def fork_trends(request: HttpRequest, slug: str) -> HttpResponse:
    """Series for the fork page's charts: per branch, one point per snapshot."""
    return _json(
        cached_value("fork-trends", [slug], lambda: json.dumps(_trends(_get_fork_or_404(slug))))
    )


def _json(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="application/json")


def _trends(fork: Fork) -> dict:
    names = dict(fork.branches.values_list("pk", "name"))
    since = timezone.now() - timezone.timedelta(days=HISTORY_DAYS)
    series: dict[str, list] = {name: [] for name in names.values()}
    for row in BranchSnapshot.objects.trend_points(list(names), since=since):
        series[names[row.pop("branch_id")]].append({**row, "taken_at": row["taken_at"].isoformat()})
    return {"fork": fork.slug, "branches": series}


@login_required
@require_safe
def fork_security_trends(request: HttpRequest, slug: str) -> HttpResponse:
    """Series for the fork page's security charts: open fixes by severity, one point per
    security snapshot; and per release (in ship order) the median days from upstream
    landing to the release of the fixes it shipped first, beside upstream Chrome's median
    days from landing to Stable for the same fixes."""

    def build() -> str:
        return json.dumps(_security_trends(_get_fork_or_404(slug), timezone.now()))

    return _json(cached_value("fork-security", [slug], build))


def _security_trends(fork: Fork, now) -> dict:
    since = now - timezone.timedelta(days=HISTORY_DAYS)
    points = [
        {**row, "taken_at": row["taken_at"].isoformat()}
        for row in ForkSecuritySnapshot.objects.trend_points(fork.pk, since=since)
    ]
    gap = [
        {
            "release": tag,
            "shipped_at": shipped.isoformat(),
            "fixes": summary.count,
            "median_days_from_landing": summary.median_from_landing,
            "upstream_median_days": summary.upstream_median,
        }
        for tag, shipped, summary in by_release(fork_gap_report(fork, now))
    ]
    return {"fork": fork.slug, "open": points, "gap": gap}


@login_required
@require_safe
def branch_detail(request: HttpRequest, slug: str, branch: str) -> HttpResponse:
    """A branch: its patch set (already upstream? predicted conflicts?), the security fixes
    its tip lacks, and its lag history."""
    fork = _get_fork_or_404(slug)
    tracked = get_object_or_404(TrackedBranch, fork=fork, name=branch)
    since = timezone.now() - timezone.timedelta(days=HISTORY_DAYS)
    history = list(tracked.snapshots.filter(taken_at__gte=since).order_by("-taken_at"))
    latest = history[0] if history else None
    patches = list(latest.patches.order_by("order")) if latest else []
    facts = FixStatus.objects.filter(branch=tracked, status=FixState.OPEN).open_fix_facts()
    ctx = {
        "fork": fork,
        "branch": tracked,
        "latest": latest,
        "open_fixes": open_fixes(facts, timezone.now()),
        "patches": [p for p in patches if p.change != PatchChange.DROPPED],
        "dropped": [p for p in patches if p.change == PatchChange.DROPPED],
        "history": history,
        # The other upstream refs it follows, with the commits of each it lacks.
        "also_follows": [
            (ref, (latest.other_refs_behind if latest else {}).get(ref))
            for ref in tracked.other_refs
        ],
    }
    return render(request, "tracker/branch.html", ctx)
