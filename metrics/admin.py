from django.contrib import admin

from .models import RunUsage


@admin.register(RunUsage)
class RunUsageAdmin(admin.ModelAdmin):
    list_display = ("run_id", "user", "team_id", "status", "error_type", "total_tokens", "duration_ms", "ttft_ms",
                    "retries", "started_at")
    list_filter = ("status", "team_id", "error_type", "deep_research")
    search_fields = ("run_id", "session_id", "user__username")
    date_hierarchy = "started_at"
    ordering = ("-started_at",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
