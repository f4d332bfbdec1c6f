"""Read-only views of chat sessions and runs for staff (what users did is evidence, not data to edit)."""

from django.contrib import admin

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
    list_display = ("session_id", "session_name", "user", "team_id", "created_at", "updated_at")
    search_fields = ("session_id", "session_name", "user__username")
    list_filter = ("team_id",)
    date_hierarchy = "created_at"
    exclude = ("data",)
    readonly_fields = ("session_id", "user", "session_type", "team_id", "session_name", "created_at", "updated_at")
    inlines = [ChatRunInline]
    list_select_related = ("user",)


@admin.register(ChatRun)
class ChatRunAdmin(ReadOnlyAdmin):
    list_display = ("run_id", "run_type", "component_id", "status", "user", "created_at")
    list_filter = ("status", "run_type", "component_id")
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
