"""Read-only views of chat sessions and runs for staff (what users did is evidence, not data to edit)."""

from django.contrib import admin
from django.db.models import Q

from .models import ChatRun, ChatSession


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ChatRunInline(admin.TabularInline):
    model = ChatRun
    fields = ("run_id", "run_type", "component_id", "status", "parent_run_id", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(ReadOnlyAdmin):
    list_display = ("session_id", "session_name", "named_by", "user", "team_id", "created_at", "updated_at")
    search_fields = ("session_id", "session_name", "user__username")
    list_filter = ("team_id", "named_by")
    date_hierarchy = "created_at"
    exclude = ("data",)
    readonly_fields = ("session_id", "user", "session_type", "team_id", "session_name", "named_by", "created_at",
                       "updated_at")
    inlines = [ChatRunInline]
    list_select_related = ("user",)


class RunWithMembersFilter(admin.SimpleListFilter):
    """`?run_id=<id>`: a team run and the member runs it delegated to (the drill-down of the
    delegation-failure report, metrics.admin_reports.run_link). Both columns are indexed."""

    title = "run and its member runs"
    parameter_name = "run_id"

    def lookups(self, request, model_admin):
        # Shown (and so applied: Django skips a filter without choices) only while in use.
        value = request.GET.get(self.parameter_name)
        return [(value, value)] if value else []

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(Q(run_id=value) | Q(parent_run_id=value)) if value else queryset


@admin.register(ChatRun)
class ChatRunAdmin(ReadOnlyAdmin):
    list_display = ("run_id", "run_type", "component_id", "status", "user", "created_at")
    list_filter = (RunWithMembersFilter, "status", "run_type", "component_id")
    search_fields = ("run_id", "parent_run_id", "session__session_id", "user__username")
    date_hierarchy = "created_at"
    readonly_fields = ("run_id", "session", "user", "parent_run_id", "run_type", "component_id", "status",
                       "run_index", "payload", "created_at", "updated_at")
    list_select_related = ("user",)

    def get_queryset(self, request):
        # The list never needs the payload; only the detail page shows it.
        qs = super().get_queryset(request)
        return qs if request.resolver_match and request.resolver_match.url_name.endswith("_change") \
            else qs.defer("payload")
