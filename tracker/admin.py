from django import forms
from django.conf import settings
from django.contrib import admin

from tracker.git import UnsafeGitInput, check_remote_url
from tracker.models import Fork, TrackedBranch, Upstream
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
