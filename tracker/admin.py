from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils import timezone

from tracker import registry
from tracker.forksecurity import apply_triage
from tracker.git import GitError, UnsafeGitInput, check_remote_url
from tracker.models import (
    Alert,
    AlertSettings,
    AlertSubscription,
    Delivery,
    DeliveryAttempt,
    FixTriage,
    Fork,
    ForkRelease,
    ReleaseSource,
    TrackedBranch,
    Upstream,
)
from tracker.models.repos import new_feed_token
from tracker.remoterefs import ls_remote
from tracker.secrets import encrypt_credentials


class RemoteForm(forms.ModelForm):
    """Checks the git URL like the add_fork command does and keeps credentials out of it:
    a user:password@ part is split off and stored encrypted. Unless told to skip it, what
    the remote holds is then checked as the commands check it (tracker.registry)."""

    skip_remote_check = forms.BooleanField(
        required=False,
        help_text="Do not ask the remote (git ls-remote) whether the refs exist, e.g. to "
        "register offline; the first sync finds what is missing.",
    )

    def clean_git_url(self):
        try:
            remote = check_remote_url(self.cleaned_data["git_url"], settings.GIT_LOCAL_ROOTS)
        except UnsafeGitInput as exc:
            raise forms.ValidationError(str(exc)) from None
        if remote.has_credentials:
            self.instance.git_credentials = encrypt_credentials(remote.username, remote.password)
        return remote.url

    def _post_clean(self):
        super()._post_clean()
        # Read by the branches' formset, which the admin builds with this form's instance.
        self.instance.remote_check = None
        self.instance.check_remote = not self.errors and not self.cleaned_data.get(
            "skip_remote_check"
        )


class UpstreamForm(RemoteForm):
    def _post_clean(self):
        super()._post_clean()
        upstream = self.instance
        if not upstream.check_remote:
            return
        try:
            check = registry.check_upstream(
                upstream, ls_remote(upstream.remote(settings.GIT_LOCAL_ROOTS))
            )
        except GitError as exc:
            self.add_error("git_url", str(exc))
            return
        for field, problems in check.problems.items():
            self.add_error(field, problems)
        upstream.remote_check = check


class TrackedBranchFormSet(BaseInlineFormSet):
    """The fork's branches, checked against the fork's and the upstream's remotes (branch
    names given twice are refused by the formset itself: one branch per name and fork)."""

    def clean(self):
        super().clean()
        fork = self.instance
        if any(self.errors) or not getattr(fork, "check_remote", False):
            return
        branches = [
            form.instance
            for form in self.forms
            if form.cleaned_data.get("name") and not self._should_delete_form(form)
        ]
        try:
            check = registry.check_fork(
                fork,
                branches,
                ls_remote(fork.remote(settings.GIT_LOCAL_ROOTS)),
                ls_remote(fork.upstream.remote(settings.GIT_LOCAL_ROOTS)),
            )
        except GitError as exc:
            raise forms.ValidationError(str(exc)) from None
        if check.problems:
            raise forms.ValidationError([m for ms in check.problems.values() for m in ms])
        fork.remote_check = check


class TrackedBranchInline(admin.TabularInline):
    """Branches are added and edited here; removing one (its lag history goes with it) is on
    its own page, which lists what would be deleted before asking."""

    model = TrackedBranch
    formset = TrackedBranchFormSet
    extra = 1
    can_delete = False
    show_change_link = True


def _report(request, obj) -> None:
    check = getattr(obj, "remote_check", None)
    if check is None:
        messages.warning(request, f"{obj}: the remote was not checked.")
        return
    for line in check.lines():
        messages.info(request, line)


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    form = UpstreamForm
    list_display = ["name", "slug", "version_scheme", "git_url", "main_ref", "last_synced_at"]
    prepopulated_fields = {"slug": ["name"]}
    exclude = ["git_credentials"]
    readonly_fields = ["last_synced_at", "last_error"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        _report(request, obj)


@admin.register(Fork)
class ForkAdmin(admin.ModelAdmin):
    form = RemoteForm
    list_display = ["name", "kind", "upstream", "git_url", "last_synced_at"]
    list_filter = ["kind", "upstream"]
    prepopulated_fields = {"slug": ["name"]}
    exclude = ["git_credentials", "alert_feed_token"]
    readonly_fields = ["last_synced_at", "last_error", "alert_feed"]
    inlines = [TrackedBranchInline]

    actions = ["rotate_feed_token"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "alert_webhook_url":
            kwargs["assume_scheme"] = "https"  # a webhook URL typed without a scheme
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        _report(request, form.instance)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        transaction.on_commit(lambda: registry.drop_fork_refs(obj))

    def delete_queryset(self, request, queryset):
        forks = list(queryset.select_related("upstream"))
        super().delete_queryset(request, queryset)
        for fork in forks:
            transaction.on_commit(lambda fork=fork: registry.drop_fork_refs(fork))

    @admin.action(description="Give the selected forks new alert feed URLs (old ones stop)")
    def rotate_feed_token(self, request, queryset):
        for fork in queryset:
            fork.alert_feed_token = new_feed_token()
            fork.save(update_fields=["alert_feed_token"])

    @admin.display(description="Atom feed of alerts")
    def alert_feed(self, obj):
        if not obj.pk:
            return "—"
        return settings.SITE_URL.rstrip("/") + reverse(
            "alert-feed", args=[obj.slug, obj.alert_feed_token]
        )


@admin.register(TrackedBranch)
class TrackedBranchAdmin(admin.ModelAdmin):
    """A tracked branch, to read and to remove: removing it deletes its snapshots (the lag
    history) and fix statuses, which the confirmation page lists, and its mirror refs.
    Branches are added and edited on their fork's page, where the remotes are checked."""

    list_display = ["fork", "name", "upstream_ref", "also_follows", "created_at"]
    list_filter = ["fork"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        registry.remove_branch(obj.fork, obj.name)

    def delete_queryset(self, request, queryset):
        for branch in queryset.select_related("fork__upstream"):
            registry.remove_branch(branch.fork, branch.name)


@admin.register(ForkRelease)
class ForkReleaseAdmin(admin.ModelAdmin):
    """Releases come from release tags; one registered here names its tag (or commit) and
    ship time, and the next sync computes its base and statuses."""

    list_display = ["fork", "tag", "shipped_at", "base_version", "patch_level_version", "source"]
    list_filter = ["fork"]
    fields = ["fork", "tag", "sha", "shipped_at_override", "tagged_at", "source"]
    readonly_fields = ["tagged_at", "source"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.source = ReleaseSource.MANUAL
        super().save_model(request, obj, form, change)


@admin.register(FixTriage)
class FixTriageAdmin(admin.ModelAdmin):
    """Triage decisions are an audit trail: added, never edited or deleted."""

    list_display = ["vulnerability", "fork", "decision", "decided_by_name", "decided_at"]
    list_filter = ["fork", "decision"]
    fields = ["fork", "vulnerability", "decision", "reason"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.decided_by = request.user
        obj.decided_by_name = request.user.get_username()
        obj.decided_at = timezone.now()
        super().save_model(request, obj, form, change)
        apply_triage(obj.fork, obj.vulnerability)


@admin.register(AlertSettings)
class AlertSettingsAdmin(admin.ModelAdmin):
    """Thresholds per fork, or per branch for the branch rules; empty fields inherit."""

    list_display = ["fork", "branch", "enabled", "lag_days", "lag_milestones", "critical_days"]
    list_filter = ["fork", "enabled"]


@admin.register(AlertSubscription)
class AlertSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "fork", "mode"]
    list_filter = ["fork", "mode"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Alerts and deliveries are written by the workers; people read them here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["key", "priority", "state", "fork", "opened_at", "acknowledged_by"]
    list_filter = ["state", "priority", "kind", "fork"]
    search_fields = ["key", "summary"]


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["event", "channel", "recipient", "state", "attempts", "due_at", "sent_at"]
    list_filter = ["state", "channel", "digest"]
    search_fields = ["recipient", "last_error"]
    inlines = [DeliveryAttemptInline]
