from django.contrib import admin

from tracker.models import Fork, TrackedBranch, Upstream


class TrackedBranchInline(admin.TabularInline):
    model = TrackedBranch
    extra = 1


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "git_url", "main_ref"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Fork)
class ForkAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "upstream", "git_url"]
    list_filter = ["kind", "upstream"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [TrackedBranchInline]
