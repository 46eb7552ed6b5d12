"""Security pages: the matrix of vulnerabilities by fork branch and release (and its CSV), a
page per CVE with its status and evidence in every fork and its triage, and the lookup box.

Views load, call the domain (`tracker.lookup`, `tracker.forksecurity`) and render. Every page
runs a fixed number of queries, whatever the number of forks, branches or vulnerabilities.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, TextField
from django.db.models.functions import Cast, Coalesce
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST, require_safe

from tracker.forksecurity import triage
from tracker.lookup import lookup
from tracker.models import (
    FIXED_STATES,
    BranchSnapshot,
    FixState,
    FixStatus,
    FixTriage,
    Fork,
    ForkRelease,
    Severity,
    TrackedBranch,
    TriageDecision,
    Upstream,
    Vulnerability,
)
from tracker.pagecache import (
    CSRF_SLOT,
    cached_body,
    cached_titled_body,
    cached_value,
    fill_csrf,
)
from tracker.templatetags.forkhealth import fix_label

MATRIX_PAGE_SIZE = 100  # vulnerabilities per matrix page
MATRIX_RELEASES = 6  # the fork's newest releases shown as matrix columns
CSV_BATCH = 500  # vulnerabilities per chunk of the streamed CSV
CVE_RELEASES = 5  # releases per fork with their evidence on a CVE page (older: status only)
LOOKUP_MAX_LENGTH = 200
# Spreadsheets run a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# --- the matrix --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A matrix column: a tracked branch tip or a fork release."""

    kind: str  # "branch" or "release"
    pk: int
    name: str
    detail: str  # the upstream ref a branch follows; a release's base version

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.pk)


class MatrixFilters(forms.Form):
    """The matrix's filters, from the query string; the dates apply to a vulnerability's
    first Stable release, or its landing when upstream has not shipped it."""

    STATUS_CHOICES = [("", "any status"), ("fixed", "fixed (base or backport)"), *FixState.choices]

    severity = forms.ChoiceField(choices=[("", "any severity"), *Severity.choices], required=False)
    in_the_wild = forms.ChoiceField(
        choices=[("", "in the wild or not"), ("yes", "in the wild"), ("no", "not in the wild")],
        required=False,
    )
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False, label="in any column")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


def _get_fork_or_404(slug: str | None) -> Fork | None:
    """The fork named by `slug`, or the first fork by name when no slug is given (None when
    there is no fork at all)."""
    forks = Fork.objects.select_related("upstream").order_by("name")
    if slug:
        return get_object_or_404(forks, slug=slug)
    return forks.first()


def _columns(fork: Fork) -> list[Column]:
    """The fork's tracked branches by name, then its newest releases, newest first."""
    branches = [
        Column("branch", pk, name, ref)
        for pk, name, ref in fork.branches.order_by("name").values_list(
            "pk", "name", "upstream_ref"
        )
    ]
    releases = [
        Column("release", pk, tag, version)
        for pk, tag, version in fork.releases.newest_first().values_list(
            "pk", "tag", "base_version"
        )[:MATRIX_RELEASES]
    ]
    return branches + releases


def _in_columns(columns: list[Column]) -> Q:
    return Q(branch_id__in=[c.pk for c in columns if c.kind == "branch"]) | Q(
        release_id__in=[c.pk for c in columns if c.kind == "release"]
    )


def _vulnerabilities(fork: Fork, filters: dict, columns: list[Column]) -> QuerySet:
    """The fork's upstream's vulnerabilities that pass `filters` (cleaned `MatrixFilters`),
    newest first: by first Stable release, else by landing, those with neither last."""
    shipped = Coalesce("first_stable_at", "landed_at")
    rows = Vulnerability.objects.filter(upstream_id=fork.upstream_id).annotate(shipped=shipped)
    if filters.get("severity"):
        rows = rows.filter(severity=filters["severity"])
    if filters.get("in_the_wild"):
        rows = rows.filter(in_the_wild=filters["in_the_wild"] == "yes")
    if filters.get("since"):
        rows = rows.filter(shipped__date__gte=filters["since"])
    if filters.get("until"):
        rows = rows.filter(shipped__date__lte=filters["until"])
    if status := filters.get("status"):
        wanted = FIXED_STATES if status == "fixed" else [status]
        rows = rows.filter(
            Exists(
                FixStatus.objects.filter(
                    _in_columns(columns),
                    fork=fork,
                    vulnerability=OuterRef("pk"),
                    status__in=wanted,
                )
            )
        )
    return rows.order_by(F("shipped").desc(nulls_last=True), "cve")


def _cells(fork: Fork, vuln_ids: list[int] | None, columns: list[Column]) -> dict[tuple, str]:
    """(vulnerability id, column key) -> status, in one query: for the vulnerabilities
    `vuln_ids` (a page), or for all of them (None: the CSV, where one query of the fork's
    columns costs half what batches of ids do)."""
    rows = FixStatus.objects.filter(_in_columns(columns), fork=fork)
    if vuln_ids is not None:
        rows = rows.filter(vulnerability_id__in=vuln_ids)
    found = {}
    for vuln_id, release_id, branch_id, status in rows.values_list(
        "vulnerability_id", "release_id", "branch_id", "status"
    ):
        key = ("release", release_id) if release_id else ("branch", branch_id)
        found[(vuln_id, key)] = status
    return found


# A matrix cell's markup per status: words (short; the legend above the table gives them in
# full), colour by class. Constant, with no data in it, so a page of 100 rows by 20 columns
# joins strings instead of rendering 2,000 template cells; and short, since the cells are
# most of the page's bytes.
SHORT = {FixState.BASE: "base", FixState.BACKPORT: "backport", FixState.WILL_NOT_FIX: "won't fix"}
_CELL = '<td class="fix-{}">{}</td>'
CELLS = {
    state: format_html(_CELL, state, SHORT.get(state, label)) for state, label in FixState.choices
}
NOT_COMPUTED = format_html(_CELL, "none", "not computed")

MATRIX_FIELDS = (
    "pk",
    "cve",
    "severity",
    "title",
    "component",
    "in_the_wild",
    "landed_at",
    "first_stable_version",
    "first_stable_at",
    "upstream_gap_days",
)


@login_required
@require_safe
def security_matrix(request: HttpRequest) -> HttpResponse:
    """The status of each vulnerability in each branch tip and newest release of one fork
    (``?fork=``), filtered and paginated (eight queries; two when its body is cached, which
    is keyed by the query string)."""

    def build() -> tuple[str, str]:
        fork = _get_fork_or_404(request.GET.get("fork"))
        body = render_to_string(
            "tracker/security_body.html", _matrix_context(request, fork), request=request
        )
        return (fork.name if fork else ""), body

    name, body = cached_titled_body("security", [request.GET.urlencode()], build)
    return render(request, "tracker/security.html", {"name": name, "body": body})


def _matrix_context(request: HttpRequest, fork: Fork | None) -> dict:
    filters = MatrixFilters(request.GET)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    ctx: dict = {"fork": fork, "filters": filters, "forks": Fork.objects.order_by("name")}
    if fork is not None:
        columns = _columns(fork)
        rows = _vulnerabilities(fork, cleaned, columns).values(*MATRIX_FIELDS)
        page = Paginator(rows, MATRIX_PAGE_SIZE).get_page(request.GET.get("page"))
        cells = _cells(fork, [v["pk"] for v in page], columns)
        keys = [c.key for c in columns]
        for vuln in page:
            statuses = (cells.get((vuln["pk"], key)) for key in keys)
            vuln["cells"] = format_html_join(
                "", "{}", ((CELLS.get(status, NOT_COMPUTED),) for status in statuses)
            )
        query = request.GET.copy()
        query.pop("page", None)
        ctx.update(columns=columns, page=page, query=query.urlencode())
    return ctx


def csv_safe(value) -> object:
    """A CSV cell a spreadsheet shows as text: text that would start a formula gets a
    leading apostrophe; other values are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _csv_chunks(fork: Fork, rows: QuerySet, columns: list[Column]) -> Iterator[str]:
    """The CSV, one chunk per batch of vulnerabilities. Text from upstream (CVE, title,
    component) and from git (branch and tag names) goes through `csv_safe`; the rest is the
    dashboard's own words, dates and numbers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "cve",
            "severity",
            "in_the_wild",
            "title",
            "component",
            "landed_at",
            "first_stable_version",
            "first_stable_at",
            "upstream_gap_days",
            *(csv_safe(f"{c.kind} {c.name}") for c in columns),
        ]
    )
    keys = [c.key for c in columns]
    cells = _cells(fork, None, columns)
    for batch in _batched(rows.values_list(*MATRIX_FIELDS).iterator(CSV_BATCH), CSV_BATCH):
        for pk, cve, severity, title, component, wild, landed, version, stable, gap in batch:
            writer.writerow(
                [
                    csv_safe(cve),
                    severity,
                    "yes" if wild else "no",
                    csv_safe(title),
                    csv_safe(component),
                    landed.isoformat() if landed else "",
                    version,
                    stable.isoformat() if stable else "",
                    "" if gap is None else round(gap, 2),
                    *[cells.get((pk, key), "") for key in keys],
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@login_required
@require_safe
def security_csv(request: HttpRequest) -> HttpResponse:
    """The whole matrix of one fork with the page's filters, streamed as CSV."""
    fork = _get_fork_or_404(request.GET.get("fork"))
    if fork is None:
        raise Http404("no fork")
    filters = MatrixFilters(request.GET)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    columns = _columns(fork)
    response = StreamingHttpResponse(
        _csv_chunks(fork, _vulnerabilities(fork, cleaned, columns), columns),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="security-{fork.slug}.csv"'
    return response


# --- one CVE -----------------------------------------------------------------------------------


class TriageForm(forms.Form):
    fork = forms.SlugField()
    decision = forms.ChoiceField(choices=TriageDecision.choices)
    reason = forms.CharField(max_length=2000, strip=True, widget=forms.Textarea(attrs={"rows": 2}))


# The CVE page's rows and evidence lists are built in Python with `_e` (html.escape) on every
# value that comes from data: a page shows a few hundred of them, and a template loop, or
# format_html per fragment, cost most of an uncached page's time.
def _e(value: object) -> str:
    return html.escape(str(value))


def _short(sha: object) -> str:
    return _e(str(sha)[:12])


_HOW = {"base": "in the upstream base", "backport": "backported"}
# Status badges, made once for the known statuses (a page shows a few hundred).
_BADGES = {
    s.value: f'<span class="fix fix-{s.value}">{html.escape(s.label)}</span>' for s in FixState
}


def _badge(status: str) -> str:
    """A status in words, as its badge (escaped)."""
    return _BADGES.get(status) or (
        f'<span class="fix fix-{_e(status)}">{_e(fix_label(status))}</span>'
    )


def evidence_items(evidence: list, base_version: str) -> str:
    """The evidence of one status as ``<li>`` items, one per fix part (escaped)."""
    items = []
    for e in evidence:
        how = _HOW.get(e.get("how"))
        parts = [f"<li>fix <code>{_short(e.get('part') or '')}</code>: "]
        parts.append(_e(how) if how else "<strong>missing</strong>")
        if method := e.get("method"):
            parts.append(f" by <code>{_e(method)}</code>")
        upstream = e.get("upstream")
        if upstream and upstream != e.get("part"):
            parts.append(f", upstream <code>{_short(upstream)}</code>")
        if fork_commit := e.get("fork_commit"):
            parts.append(
                f', fork commit <code title="{_e(fork_commit)}">{_short(fork_commit)}</code>'
            )
        if patch := e.get("patch"):
            parts.append(f", patch <code>{_e(patch)}</code>")
        if also := e.get("also"):
            parts.append(f" (also {_e(', '.join(map(str, also)))})")
        if method == "version":
            parts.append(f", base version {_e(base_version)}")
        parts.append("</li>")
        items.append("".join(parts))
    return mark_safe("".join(items))  # noqa: S308 - every value escaped by _e


def _get_vulnerability_or_404(cve: str, upstream: str | None = None) -> Vulnerability:
    """The vulnerability `cve` (any case) of the upstream named `upstream`, or of the first
    upstream by name that has it."""
    rows = (
        Vulnerability.objects.filter(cve=cve.upper())  # stored upper case, as bulletins write it
        .select_related("upstream", "first_bulletin")
        .defer("first_bulletin__content_html", "first_bulletin__unparsed_lines")
        .order_by("upstream__name")
    )
    if upstream:
        rows = rows.filter(upstream__slug=upstream)
    found = rows.first()
    if found is None:
        raise Http404(f"no vulnerability {cve}")
    return found


def _cve_page(
    request: HttpRequest,
    cve: str,
    upstream: str | None,
    form: TriageForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The CVE page: upstream facts, then per fork each branch tip and release with its
    status and evidence, the triage history and (for staff) a triage form (ten queries
    without the page cache; with it, eight when another CVE page of the upstream cached its
    forks, branches and releases, and two when the body is cached: the body is keyed by the
    CVE as asked, so a cached page needs no lookup, and an unknown CVE is a 404 that is
    never cached)."""
    cve = cve.upper()  # stored upper case, as bulletins write it

    def build() -> str:
        ctx = _cve_context(_get_vulnerability_or_404(cve, upstream), form)
        ctx["csrf_slot"] = CSRF_SLOT
        return render_to_string("tracker/cve_body.html", ctx, request=request)

    # A page showing a form's errors is built for this request only.
    key = [cve, upstream or "", request.user.is_staff]
    body = build() if form else cached_body("cve", key, build)
    ctx = {"cve": cve, "body": fill_csrf(body, request)}
    return render(request, "tracker/cve.html", ctx, status=status)


@dataclass(frozen=True)
class ForkTargets:
    """What every CVE page of an upstream shows of its forks, whatever the vulnerability:
    the forks, and their branch tips and releases in the order the page lists them. The same
    for all of the upstream's CVE pages, so built once per data version (`_fork_targets`)
    and not joined to, nor sorted with, every page's few hundred status rows."""

    forks: list[tuple[int, str, str]]  # (id, slug, name), by name
    # (kind, id, fork id, name, shipped, base version): the branch tips by name (base version
    # of their newest snapshot), then the releases newest first.
    targets: list[tuple[str, int, int, str, datetime | None, str]]


def _fork_targets(upstream_id: int) -> ForkTargets:
    """The forks, branch tips and releases of an upstream's CVE pages (three queries, from
    the cache while the data has not changed)."""

    def build() -> ForkTargets:
        forks = Fork.objects.filter(upstream_id=upstream_id).order_by("name")
        newest_base = (
            BranchSnapshot.objects.filter(branch=OuterRef("pk"))
            .order_by("-taken_at")
            .values("base_version")[:1]
        )
        branches = (
            TrackedBranch.objects.filter(fork__upstream_id=upstream_id)
            .annotate(base=Subquery(newest_base))
            .order_by("name", "pk")
            .values_list("pk", "fork_id", "name", "base")
        )
        releases = (
            ForkRelease.objects.filter(fork__upstream_id=upstream_id)
            .newest_first()
            .values_list("pk", "fork_id", "tag", "shipped_at_override", "tagged_at", "base_version")
        )
        return ForkTargets(
            list(forks.values_list("pk", "slug", "name")),
            [("branch", pk, fork, name, None, base or "") for pk, fork, name, base in branches]
            + [
                ("release", pk, fork, tag, override or tagged, base)
                for pk, fork, tag, override, tagged, base in releases
            ],
        )

    return cached_value("cve-fork-targets", [upstream_id], build)


@dataclass
class CveTarget:
    """One branch tip or release of a fork on a CVE page."""

    kind: str  # "branch" or "release"
    name: str
    shipped_at: datetime | None
    status: str
    computed: str
    base_version: str
    evidence_text: str | None  # the evidence as JSON text

    @property
    def evidence(self) -> list:
        return json.loads(self.evidence_text) if self.evidence_text else []


def _cve_targets(vuln: Vulnerability, known: ForkTargets) -> dict[int, list[CveTarget]]:
    """fork id -> its branch tips by name, then its releases newest first (one query).

    The evidence comes as text, parsed only for the rows that show it (about half: releases
    past the newest few show their status only). A status of a branch or release newer than
    `known` waits for the next data version, as the rest of the page does."""
    rows = (
        FixStatus.objects.of_vulnerabilities([vuln.pk])
        .annotate(evidence_text=Cast("evidence", TextField()))
        .values_list("release_id", "branch_id", "status", "computed", "evidence_text")
    )
    statuses = {
        ("release", release) if release else ("branch", branch): rest
        for release, branch, *rest in rows
    }
    targets: dict[int, list[CveTarget]] = {}
    for kind, pk, fork_id, name, shipped, base in known.targets:
        if found := statuses.get((kind, pk)):
            status, computed, evidence = found
            target = CveTarget(kind, name, shipped, status, computed, base, evidence)
            targets.setdefault(fork_id, []).append(target)
    return targets


def target_rows(targets: list[CveTarget]) -> str:
    """A fork's table rows on the CVE page: each branch tip and release with its status in
    words, its upstream base version and its evidence (escaped)."""
    rows = []
    for t in targets:
        shipped = ""
        if t.shipped_at is not None:
            when = timezone.localtime(t.shipped_at)
            shipped = (
                f' <small>shipped <time datetime="{when.isoformat()}">'
                f"{when:%Y-%m-%d}</time></small>"
            )
        computed = ""
        if t.status != t.computed:
            computed = f" <small>(computed: {_e(fix_label(t.computed))})</small>"
        evidence = evidence_items(t.evidence, t.base_version)
        rows.append(
            f"<tr><td>{t.kind} <code>{_e(t.name)}</code>{shipped}</td>"
            f"<td>{_badge(t.status)}{computed}</td>"
            f"<td>{_e(t.base_version or 'unknown')}</td>"
            f'<td><ul class="evidence">{evidence}</ul></td></tr>'
        )
    return mark_safe("".join(rows))  # noqa: S308 - every value escaped by _e


def older_releases(targets: list[CveTarget]) -> str:
    """The releases past the newest few, status only, separated by dots (escaped)."""
    return mark_safe(  # noqa: S308 - every value escaped by _e
        " · ".join(f"<code>{_e(t.name)}</code> {_badge(t.status)}" for t in targets)
    )


# The same in every fork's triage form.
DECISION_OPTIONS = format_html_join("", '<option value="{}">{}</option>', TriageDecision.choices)


@dataclass
class CveFork:
    """A fork's section on a CVE page."""

    slug: str
    name: str
    rows_html: str  # branch tips, then the newest releases, with their evidence
    older_html: str  # older releases, status only
    decision: FixTriage | None  # the latest triage decision


def _cve_context(vuln: Vulnerability, form: TriageForm | None) -> dict:
    known = _fork_targets(vuln.upstream_id)
    targets = _cve_targets(vuln, known)
    history = list(
        FixTriage.objects.filter(vulnerability=vuln)
        .annotate(fork_name=F("fork__name"))
        .order_by("-decided_at")
    )
    forks = []
    for pk, slug, name in known.forks:
        mine = targets.get(pk, [])
        # Branch tips, then the newest releases with their evidence; older releases status only.
        shown = sum(1 for t in mine if t.kind == "branch") + CVE_RELEASES
        decision = next((t for t in history if t.fork_id == pk), None)
        forks.append(
            CveFork(slug, name, target_rows(mine[:shown]), older_releases(mine[shown:]), decision)
        )
    return {
        "vuln": vuln,
        "bugs": list(vuln.bugs.order_by("bug_id").values_list("bug_id", flat=True)),
        "fix_commits": list(
            vuln.fix_commits.annotate(original_sha=F("original__sha")).order_by("landed_at", "sha")
        ),
        "fixed_versions": list(
            vuln.fixed_versions.order_by("-milestone").values_list("milestone", "version")
        ),
        "forks": forks,
        "history": history,
        "form": form,
        "upstream_slug": vuln.upstream.slug,
        "decision_options": DECISION_OPTIONS,
    }


@login_required
@require_safe
def cve_detail(request: HttpRequest, cve: str) -> HttpResponse:
    """A vulnerability: what upstream knows and where every fork stands on it."""
    return _cve_page(request, cve, request.GET.get("upstream"))


@login_required
@require_POST
def cve_triage(request: HttpRequest, cve: str) -> HttpResponse:
    """Record a staff member's decision on a vulnerability for one fork, with the reason
    (`tracker.forksecurity.triage`), then show the CVE page again."""
    if not request.user.is_staff:
        raise PermissionDenied("only staff can triage")
    vuln = _get_vulnerability_or_404(cve, request.POST.get("upstream"))
    form = TriageForm(request.POST)
    if not form.is_valid():
        return _cve_page(request, vuln.cve, vuln.upstream.slug, form, status=400)
    fork = get_object_or_404(Fork, slug=form.cleaned_data["fork"], upstream_id=vuln.upstream_id)
    decision = form.cleaned_data["decision"]
    triage(fork, vuln, decision, form.cleaned_data["reason"], now=timezone.now(), user=request.user)
    messages.success(
        request, f"{fork.name}: {vuln.cve} recorded as {TriageDecision(decision).label}."
    )
    url = reverse("cve", args=[vuln.cve])
    return redirect(f"{url}?upstream={vuln.upstream.slug}#fork-{fork.slug}")


# --- lookup ------------------------------------------------------------------------------------


@login_required
@require_safe
def lookup_page(request: HttpRequest) -> HttpResponse:
    """The header's lookup box: a CVE, bug id, commit id or version, answered for every
    upstream by `tracker.lookup`."""
    query = request.GET.get("q", "").strip()
    too_long = len(query) > LOOKUP_MAX_LENGTH
    answers = []
    if query and not too_long:
        answers = [(u, lookup(u, query)) for u in Upstream.objects.order_by("name")]
    ctx = {
        "query": query,
        "lookup_query": query,
        "too_long": too_long,
        "max_length": LOOKUP_MAX_LENGTH,
        "answers": answers,
        "found": any(a.vulnerabilities or a.commits or a.upstream or a.forks for _u, a in answers),
    }
    return render(request, "tracker/lookup.html", ctx)
