from django import forms
from django.conf import settings
from django.contrib import admin
from django.utils import timezone

from tracker.forksecurity import apply_triage
from tracker.git import UnsafeGitInput, check_remote_url
from tracker.models import FixTriage, Fork, ForkRelease, ReleaseSource, TrackedBranch, Upstream
from tracker.secrets import encrypt_credentials


class RemoteForm(forms.ModelForm):
    """Checks the git URL like the add_fork command does and keeps credentials out of it:
    a user:password@ part is split off and stored encrypted."""

    def clean_git_url(self):
        try:
            remote = check_remote_url(self.cleaned_data["git_url"], settings.GIT_LOCAL_ROOTS)
        except UnsafeGitInput as exc:
            raise forms.ValidationError(str(exc)) from None
        if remote.has_credentials:
            self.instance.git_credentials = encrypt_credentials(remote.username, remote.password)
        return remote.url


class TrackedBranchInline(admin.TabularInline):
    model = TrackedBranch
    extra = 1


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    form = RemoteForm
    list_display = ["name", "slug", "git_url", "main_ref", "last_synced_at"]
    prepopulated_fields = {"slug": ["name"]}
    exclude = ["git_credentials"]
    readonly_fields = ["last_synced_at", "last_error"]


@admin.register(Fork)
class ForkAdmin(admin.ModelAdmin):
    form = RemoteForm
    list_display = ["name", "kind", "upstream", "git_url", "last_synced_at"]
    list_filter = ["kind", "upstream"]
    prepopulated_fields = {"slug": ["name"]}
    exclude = ["git_credentials"]
    readonly_fields = ["last_synced_at", "last_error"]
    inlines = [TrackedBranchInline]


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
