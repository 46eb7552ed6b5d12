"""The JSON API: the dashboard's data for scripts and other tools (OpenAPI at /api/schema/,
browsable in Swagger UI at /api/docs/).

Reads need a logged-in session or a token (``Authorization: Token <key>``); changes need a
staff user. Registering a fork goes through tracker.registry, so URLs and refs are checked
(against the remotes too, unless ``"check": false``), credentials split off and branches
removed exactly as in the add_fork and remove_branch commands.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tracker.git import GitError, UnsafeGitInput, check_ref_name, check_sha
from tracker.models import (
    Alert,
    AlertState,
    BranchSnapshot,
    FixStatus,
    Fork,
    ForkKind,
    ForkRelease,
    ReleaseSource,
    TrackedBranch,
    Upstream,
    Vulnerability,
)
from tracker.refpatterns import split_list
from tracker.registry import register_fork, remove_branch
from tracker.secrets import CredentialsError


class StaffWrites(permissions.BasePermission):
    """Any authenticated user reads; only staff change anything."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or user.is_staff


class UpstreamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upstream
        fields = [
            "slug",
            "name",
            "git_url",
            "main_ref",
            "release_branch_pattern",
            "tag_pattern",
            "version_scheme",
            "version_file",
            "last_synced_at",
            "last_error",
        ]


class BranchSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrackedBranch
        fields = ["name", "upstream_ref", "also_follows"]
        extra_kwargs = {"also_follows": {"required": False}}


class ForkSerializer(serializers.ModelSerializer):
    upstream = serializers.SlugRelatedField(slug_field="slug", queryset=Upstream.objects.all())
    branches = BranchSerializer(many=True)
    git_url = serializers.CharField(
        max_length=500,
        help_text="https://, ssh:// or a local path under GIT_LOCAL_ROOTS; a user:token@ part "
        "is stored encrypted, apart from the URL, and never shown again.",
    )
    check = serializers.BooleanField(
        write_only=True,
        default=True,
        help_text="Ask the fork's and the upstream's remotes (git ls-remote) whether the "
        "branches and refs exist before registering; false to register offline.",
    )
    remote_check = serializers.SerializerMethodField(
        help_text="After a registration: what each branch and pattern selects on the remotes "
        "(absent when not checked)."
    )

    class Meta:
        model = Fork
        fields = [
            "slug",
            "name",
            "kind",
            "upstream",
            "git_url",
            "branches",
            "release_tag_pattern",
            "pinned_version_file",
            "patches_dir",
            "owner_emails",
            "last_synced_at",
            "last_error",
            "check",
            "remote_check",
            "last_warning",
        ]
        read_only_fields = ["last_synced_at", "last_error", "last_warning"]

    def get_remote_check(self, obj) -> list[str] | None:
        check = getattr(obj, "remote_check", None)
        return None if check is None else check.lines()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("remote_check") is None:
            data.pop("remote_check", None)
        return data

    def create(self, validated):
        branches = [
            (b["name"], [b["upstream_ref"], *split_list(b.get("also_follows", ""))])
            for b in validated.pop("branches")
        ]
        upstream = validated.pop("upstream")
        try:
            return register_fork(
                upstream,
                validated.pop("slug"),
                validated.pop("name"),
                validated.pop("git_url"),
                branches=branches,
                kind=validated.pop("kind", ForkKind.GIT),
                check=validated.pop("check", True),
                **validated,
            )
        except (GitError, CredentialsError) as exc:  # a refused URL, a remote out of reach
            raise serializers.ValidationError({"git_url": [str(exc)]}) from None
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                getattr(exc, "message_dict", {"detail": exc.messages})
            ) from None


class ForkReleaseSerializer(serializers.ModelSerializer):
    """A fork release. Registering one names its tag (or commit) and ship time; the next sync
    computes its upstream base, security patch level and fix statuses."""

    fork = serializers.SlugRelatedField(slug_field="slug", queryset=Fork.objects.all())
    shipped_at = serializers.DateTimeField(read_only=True)

    class Meta:
        model = ForkRelease
        fields = [
            "fork",
            "tag",
            "sha",
            "shipped_at_override",
            "shipped_at",
            "tagged_at",
            "source",
            "upstream_ref",
            "base_sha",
            "base_version",
            "patch_level_version",
            "last_error",
        ]
        read_only_fields = [
            "tagged_at",
            "source",
            "upstream_ref",
            "base_sha",
            "base_version",
            "patch_level_version",
            "last_error",
        ]

    def validate_tag(self, value: str) -> str:
        try:
            check_ref_name(value)  # the name alone: it may be used as a revision
            check_ref_name(f"refs/tags/{value}")
        except UnsafeGitInput as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_sha(self, value: str) -> str:
        if not value:
            return value
        try:
            return check_sha(value)
        except UnsafeGitInput as exc:
            raise serializers.ValidationError(str(exc)) from None

    def create(self, validated):
        return ForkRelease.objects.create(source=ReleaseSource.MANUAL, **validated)


class SnapshotSerializer(serializers.ModelSerializer):
    fork = serializers.CharField(source="branch.fork.slug", read_only=True)
    branch = serializers.CharField(source="branch.name", read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = BranchSnapshot
        exclude = ["id"]


class UpstreamViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Upstream.objects.order_by("slug")
    serializer_class = UpstreamSerializer
    lookup_field = "slug"
    permission_classes = [StaffWrites]


class ForkViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Fork.objects.select_related("upstream").prefetch_related("branches").order_by("slug")
    serializer_class = ForkSerializer
    lookup_field = "slug"
    permission_classes = [StaffWrites]

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"branches/(?P<branch>.+)")
    def branch(self, request, slug=None, branch=None):
        """Stop tracking a fork branch (DELETE /api/forks/<slug>/branches/<name>/): its
        snapshots (the lag history) and fix statuses are deleted with it and its refs leave
        the mirror, as with the remove_branch command."""
        fork = self.get_object()
        if not fork.branches.filter(name=branch).exists():
            return Response(
                {"detail": f"fork {fork.slug} tracks no branch {branch!r}"},
                status=status.HTTP_404_NOT_FOUND,
            )
        remove_branch(fork, branch)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def sync(self, request, slug=None):
        """Queue a sync of this fork now (fetch, ingest, snapshots)."""
        from tracker.tasks import sync_fork_task

        fork = self.get_object()
        transaction.on_commit(lambda: sync_fork_task.delay(fork.pk))
        return Response({"queued": fork.slug}, status=status.HTTP_202_ACCEPTED)


class ForkReleaseViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Fork releases, newest first; filter with ?fork=<slug>. Staff may register one."""

    serializer_class = ForkReleaseSerializer
    permission_classes = [StaffWrites]

    def get_queryset(self):
        rows = ForkRelease.objects.select_related("fork").order_by("-tagged_at", "-id")
        if fork := self.request.query_params.get("fork"):
            rows = rows.filter(fork__slug=fork)
        return rows


class SnapshotViewSet(viewsets.ReadOnlyModelViewSet):
    """Branch snapshots, newest first; filter with ?fork=<slug>&branch=<name>."""

    serializer_class = SnapshotSerializer
    permission_classes = [StaffWrites]

    def get_queryset(self):
        rows = BranchSnapshot.objects.select_related("branch__fork").order_by("-taken_at", "id")
        if fork := self.request.query_params.get("fork"):
            rows = rows.filter(branch__fork__slug=fork)
        if branch := self.request.query_params.get("branch"):
            rows = rows.filter(branch__name=branch)
        return rows


class VulnerabilitySerializer(serializers.ModelSerializer):
    upstream = serializers.CharField(source="upstream.slug", read_only=True)
    bugs = serializers.SerializerMethodField()

    class Meta:
        model = Vulnerability
        fields = [
            "upstream",
            "cve",
            "severity",
            "title",
            "component",
            "in_the_wild",
            "bugs",
            "landed_at",
            "first_stable_version",
            "first_stable_at",
            "upstream_gap_days",
        ]

    def get_bugs(self, obj) -> list[int]:
        return [b.bug_id for b in obj.bugs.all()]


class VulnerabilityViewSet(viewsets.ReadOnlyModelViewSet):
    """Upstream security fixes, newest first; filter with ?severity=, ?in_the_wild=true."""

    serializer_class = VulnerabilitySerializer
    permission_classes = [StaffWrites]
    lookup_field = "cve"
    lookup_value_regex = r"CVE-\d{4}-\d{4,7}"

    def get_queryset(self):
        rows = (
            Vulnerability.objects.select_related("upstream")
            .prefetch_related("bugs")
            .order_by("-first_stable_at", "-cve")
        )
        if severity := self.request.query_params.get("severity"):
            rows = rows.filter(severity=severity)
        if self.request.query_params.get("in_the_wild") in ("1", "true"):
            rows = rows.filter(in_the_wild=True)
        return rows


class FixStatusSerializer(serializers.ModelSerializer):
    """One cell of the security matrix: a CVE in a fork release or branch tip."""

    fork = serializers.CharField(source="fork.slug", read_only=True)
    cve = serializers.CharField(source="vulnerability.cve", read_only=True)
    severity = serializers.CharField(source="vulnerability.severity", read_only=True)
    release = serializers.CharField(source="release.tag", default=None, read_only=True)
    branch = serializers.CharField(source="branch.name", default=None, read_only=True)

    class Meta:
        model = FixStatus
        fields = [
            "fork",
            "cve",
            "severity",
            "release",
            "branch",
            "status",
            "computed",
            "evidence",
            "target_sha",
            "computed_at",
        ]


class FixStatusViewSet(viewsets.ReadOnlyModelViewSet):
    """The security matrix as rows; filter with ?fork=, ?cve=, ?status=, ?release=,
    ?branch=. Statuses: base, backport, open, not_affected, will_not_fix."""

    serializer_class = FixStatusSerializer
    permission_classes = [StaffWrites]

    def get_queryset(self):
        rows = FixStatus.objects.select_related(
            "fork", "vulnerability", "release", "branch"
        ).order_by("fork_id", "vulnerability__cve", "release_id", "branch_id")
        params = self.request.query_params
        if cve := params.get("cve"):
            # The CVE's vulnerabilities (one per upstream) first, then their statuses by the
            # partial unique indexes that lead with the vulnerability (`of_vulnerabilities`):
            # filtering through the join instead counts by scanning the whole (fork,
            # vulnerability) index. Any case, as the CVE page; an unknown CVE is an empty page.
            vulns = Vulnerability.objects.filter(cve=cve.upper())  # stored upper case
            vuln_ids = list(vulns.values_list("pk", flat=True))
            rows = rows.of_vulnerabilities(vuln_ids)
        filters = {
            "fork": "fork__slug",
            "status": "status",
            "release": "release__tag",
            "branch": "branch__name",
        }
        for param, field in filters.items():
            if value := params.get(param):
                rows = rows.filter(**{field: value})
        return rows


class AlertSerializer(serializers.ModelSerializer):
    fork = serializers.CharField(source="fork.slug", default=None, read_only=True)

    class Meta:
        model = Alert
        exclude = []


class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    """Alerts, newest first; ?state=open|resolved, ?fork=<slug>. Any logged-in user may
    acknowledge one (POST .../acknowledge/), as on the alerts page."""

    serializer_class = AlertSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        rows = Alert.objects.select_related("fork").order_by("-opened_at", "-pk")
        if (state := self.request.query_params.get("state")) in AlertState.values:
            rows = rows.filter(state=state)
        if fork := self.request.query_params.get("fork"):
            rows = rows.filter(fork__slug=fork)
        return rows

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        from django.utils import timezone

        from tracker.alerts.lifecycle import acknowledge

        alert = self.get_object()
        acknowledge(alert, by=request.user.get_username(), now=timezone.now())
        alert.refresh_from_db()
        return Response(AlertSerializer(alert).data)


class LookupViewSet(viewsets.ViewSet):
    """GET /api/lookup/?q=<CVE, bug id, commit id or version>: what contains it, for every
    upstream (see tracker.lookup)."""

    permission_classes = [StaffWrites]

    @extend_schema(responses={200: dict})
    def list(self, request, format=None):  # DRF passes the suffix of /api/lookup.json/
        from dataclasses import asdict

        from tracker.lookup import lookup

        query = request.query_params.get("q", "")[:200]
        if not query.strip():
            return Response({"detail": "give ?q=<CVE, bug id, commit id or version>"}, 400)
        results = [
            {"upstream": upstream.slug, **asdict(lookup(upstream, query))}
            for upstream in Upstream.objects.order_by("slug")
        ]
        return Response({"query": query, "results": results})
