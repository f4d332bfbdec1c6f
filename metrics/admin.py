"""The staff UI for metrics: read-only usage, ledger and failures (with totals and reports),
editable prices and budgets.

Usage rows are evidence, so nobody edits them here. A price is never edited in place once it
has billed anything: saving a changed price closes the rule and opens a new one (PriceRule.replace).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import path
from django.utils import timezone

from . import admin_reports
from .models import Budget, DelegationFailure, Feedback, FeedbackStatus, ModelCall, PriceRule, RunUsage


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReportMixin:
    """A staff-only report page under this model's admin URL."""

    report_name = "report"

    def report_view(self, request, render):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return render(request, {**self.admin_site.each_context(request), "opts": self.model._meta})

    def totals_changelist(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        if cl is not None:
            response.context_data["totals"] = cl.queryset.totals()
        return response


@admin.register(RunUsage)
class RunUsageAdmin(ReportMixin, ReadOnlyAdmin):
    list_display = ("run_id", "kind", "user", "model", "status", "total_tokens", "cost", "pricing", "duration_ms",
                    "ttft_ms", "delegations", "started_at")
    list_filter = ("kind", "status", "pricing", "model", "team_id", "error_type", "deep_research", "streamed")
    search_fields = ("run_id", "session_id", "username")
    date_hierarchy = "started_at"
    ordering = ("-started_at",)
    list_select_related = ("user",)

    def get_urls(self):
        view = self.admin_site.admin_view(lambda r: self.report_view(r, admin_reports.usage_report))
        return [path("report/", view, name="metrics_runusage_report"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        return self.totals_changelist(request, extra_context)


@admin.register(ModelCall)
class ModelCallAdmin(ReportMixin, ReadOnlyAdmin):
    list_display = ("run_id", "agent", "is_leader", "provider", "model", "calls", "input_tokens", "output_tokens",
                    "cache_read_tokens", "reasoning_tokens", "estimated_tokens", "cost", "pricing",
                    "provider_reported_cost")
    list_filter = ("pricing", "estimated", "provider", "model", "is_leader", "agent")
    search_fields = ("run__run_id", "model", "agent")
    date_hierarchy = "run__started_at"
    ordering = ("-run__started_at",)

    def changelist_view(self, request, extra_context=None):
        return self.totals_changelist(request, extra_context)


@admin.register(DelegationFailure)
class DelegationFailureAdmin(ReportMixin, ReadOnlyAdmin):
    list_display = ("created_at", "kind", "member", "model", "user", "run_link", "short_excerpt")
    list_filter = ("kind", "member", "model")
    search_fields = ("run_id", "session_id", "user__username", "excerpt")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_select_related = ("user",)

    def get_urls(self):
        view = self.admin_site.admin_view(lambda r: self.report_view(r, admin_reports.delegation_report))
        return [path("report/", view, name="metrics_delegationfailure_report"), *super().get_urls()]

    @admin.display(description="run")
    def run_link(self, obj):
        from django.utils.html import format_html

        link = admin_reports.run_link(obj.run_id)
        return format_html('<a href="{}">{}</a>', link, obj.run_id) if link else obj.run_id

    @admin.display(description="excerpt")
    def short_excerpt(self, obj):
        return obj.excerpt[:120]


@admin.register(PriceRule)
class PriceRuleAdmin(admin.ModelAdmin):
    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "source_url":
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    list_display = ("provider", "model_pattern", "input_per_million", "output_per_million", "cache_read_per_million",
                    "cache_write_per_million", "reasoning_per_million", "effective_from", "effective_to",
                    "source_read")
    list_filter = ("provider", "currency")
    search_fields = ("model_pattern",)
    date_hierarchy = "effective_from"

    def get_readonly_fields(self, request, obj=None):
        # A rule that has billed runs keeps its identity and start; only its prices move on.
        if obj is not None and obj.effective_from <= timezone.now():
            return ("provider", "model_pattern", "currency", "effective_from")
        return ()

    def save_model(self, request, obj, form, change):
        changed = [name for name in form.changed_data if name in PriceRule.PRICE_FIELDS]
        if change and changed and obj.effective_from <= timezone.now():
            # The form validated the new prices on `obj`; the stored rule keeps the old ones.
            replacement = PriceRule.objects.get(pk=obj.pk).replace(
                **{name: form.cleaned_data[name] for name in changed})
            self.message_user(request, f"The old price was closed; {replacement} is the new rule.")
            return
        obj.save()

    def has_delete_permission(self, request, obj=None):
        # Deleting history would hide what past rows were billed with (they keep a snapshot anyway).
        return request.user.is_superuser and super().has_delete_permission(request, obj)


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("user", "monthly_limit", "currency", "note", "updated_at")
    search_fields = ("user__username",)
    raw_id_fields = ("user",)
    list_select_related = ("user",)


class FeedbackModelFilter(admin.SimpleListFilter):
    """The model that gave the rated answer (its usage row's), among the models with feedback."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        models = Feedback.objects.order_by("run__model").values_list("run__model", flat=True).distinct()
        return [(m, m or "(none)") for m in models]

    def queryset(self, request, queryset):
        return queryset.matching(model=self.value()) if self.value() else queryset


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    """Users' ratings of answers: read-only but for staff's status (unread, seen, done)."""

    list_display = ("updated_at", "rating", "status", "user", "model", "run_link", "short_comment")
    list_filter = ("status", "rating", FeedbackModelFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("run__run_id", "session_id", "user__username", "comment")
    date_hierarchy = "created_at"
    ordering = ("-updated_at",)
    list_select_related = ("user", "run")
    fields = ("run_link", "session_id", "user", "model", "rating", "comment", "status", "created_at", "updated_at")
    readonly_fields = ("run_link", "session_id", "user", "model", "rating", "comment", "created_at", "updated_at")
    actions = ("mark_seen", "mark_done", "mark_unread")

    def has_add_permission(self, request):
        return False  # feedback is the users' to give

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    @admin.display(description="model", ordering="run__model")
    def model(self, obj):
        return obj.run.model

    @admin.display(description="run")
    def run_link(self, obj):
        from django.utils.html import format_html

        link = admin_reports.run_link(obj.run_id)
        return format_html('<a href="{}" class="run-link">{}</a>', link, obj.run_id) if link else obj.run_id

    @admin.display(description="comment")
    def short_comment(self, obj):
        return obj.comment[:120]

    def _mark(self, request, queryset, status: str) -> None:
        changed = queryset.mark(status)
        self.message_user(request, f"{changed} marked {status}.")

    @admin.action(description="Mark as seen", permissions=["change"])
    def mark_seen(self, request, queryset):
        self._mark(request, queryset, FeedbackStatus.SEEN)

    @admin.action(description="Mark as done", permissions=["change"])
    def mark_done(self, request, queryset):
        self._mark(request, queryset, FeedbackStatus.DONE)

    @admin.action(description="Mark as unread", permissions=["change"])
    def mark_unread(self, request, queryset):
        self._mark(request, queryset, FeedbackStatus.UNREAD)
