"""The rollout in Django admin: batches and tenants are moved only by actions that ask for a
reason (and, where a gate says no, an explicit override), so that every change is audited;
the dashboard shows each batch's and tenant's stage, traffic split, shadow match rate and both
paths' error rates and latency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from notify.rollout import metrics, selectors, services
from notify.rollout.models import (
    IgnoreRule,
    PathMetric,
    RolloutBatch,
    RolloutEvent,
    ShadowComparison,
)
from notify.tenants.models import Tenant

Stage = Tenant.Stage


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: written to the audit log with your name.",
    )
    override = forms.BooleanField(
        required=False,
        label="Override the health gates",
        help_text="Go ahead even where a gate says no (audited as an override).",
    )


class PercentForm(ReasonForm):
    percent = forms.IntegerField(min_value=1, max_value=100, label="Canary %")


def _actor(request: HttpRequest) -> str:
    return request.user.get_username() or "admin"


class RolloutActions:
    """The four rollout actions, for a model admin whose rows are tenants or batches."""

    action_titles = {
        "advance": "Advance to the next stage",
        "set_canary": "Set the canary percentage",
        "pause": "Pause",
        "roll_back": "Roll back to legacy",
    }

    def tenants_of(self, queryset: QuerySet) -> list[tuple[RolloutBatch | None, list[Tenant]]]:
        raise NotImplementedError

    def has_rollout_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rollout.change_stage")

    def _run(self, request: HttpRequest, queryset: QuerySet, name: str) -> HttpResponse | None:
        if not self.has_rollout_permission(request):
            raise PermissionDenied
        form_class = PercentForm if name == "set_canary" else ReasonForm
        form = form_class(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            data = form.cleaned_data
            if data["override"] and not request.user.has_perm("rollout.override_gates"):
                self.message_user(
                    request,
                    "You may not override the health gates (permission "
                    "“Can override the rollout health gates”): nothing was changed.",
                    messages.ERROR,
                )
                return None
            for batch, tenants in self.tenants_of(queryset):
                label = batch.name if batch else ", ".join(t.slug for t in tenants)
                kwargs = {"actor": _actor(request), "reason": data["reason"], "batch": batch}
                try:
                    if name == "advance":
                        events = services.advance(tenants, override=data["override"], **kwargs)
                    elif name == "set_canary":
                        events = services.set_canary(
                            tenants, data["percent"], override=data["override"], **kwargs
                        )
                    elif name == "pause":
                        events = services.pause(tenants, **kwargs)
                    else:
                        events = services.roll_back(tenants, override=data["override"], **kwargs)
                except services.RolloutError as exc:
                    self.message_user(request, f"{label}: {exc}", messages.ERROR)
                    continue
                moves = ", ".join(
                    f"{e.tenant_slug} {e.from_stage}→{e.to_stage}"
                    + (f" {e.to_percent}%" if e.to_stage == Stage.CANARY else "")
                    for e in events
                )
                self.message_user(request, f"{label}: {moves or 'nothing to change'}")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": self.action_titles[name],
            "form": form,
            "queryset": queryset,
            "action": name,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "groups": self.tenants_of(queryset),
        }
        return TemplateResponse(request, "admin/rollout/action.html", context)

    @admin.action(description="Advance to the next stage", permissions=["rollout"])
    def advance(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._run(request, queryset, "advance")

    @admin.action(description="Set the canary percentage", permissions=["rollout"])
    def set_canary(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._run(request, queryset, "set_canary")

    @admin.action(description="Pause", permissions=["rollout"])
    def pause(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._run(request, queryset, "pause")

    @admin.action(description="Roll back to legacy", permissions=["rollout"])
    def roll_back(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._run(request, queryset, "roll_back")


class BatchTenantInline(admin.TabularInline):
    model = Tenant
    fk_name = "rollout_batch"
    fields = ("slug", "app_key", "rollout_position", "stage", "canary_percent", "stage_changed_at")
    readonly_fields = ("slug", "app_key", "stage", "canary_percent", "stage_changed_at")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RolloutBatch)
class RolloutBatchAdmin(RolloutActions, admin.ModelAdmin):
    list_display = (
        "name",
        "position",
        "stage",
        "tenant_count",
        "state",
        "new_since",
        "completed_at",
    )
    list_display_links = ("name",)
    readonly_fields = ("state", "new_since", "completed_at", "created_at")
    fields = ("name", "position", "stability_hours", "retention_days", "notes", *readonly_fields)
    inlines = [BatchTenantInline]
    actions = ["advance", "set_canary", "pause", "roll_back"]

    def tenants_of(self, queryset: QuerySet) -> list[tuple[RolloutBatch | None, list[Tenant]]]:
        return [(batch, selectors.batch_tenants(batch)) for batch in queryset]

    @admin.display(description="stage")
    def stage(self, batch: RolloutBatch) -> str:
        tenants = selectors.batch_tenants(batch)
        stage = selectors.batch_stage(tenants)
        if stage == Stage.CANARY:
            percents = sorted({t.canary_percent for t in tenants})
            return f"canary {'/'.join(str(p) for p in percents)}%"
        return stage

    @admin.display(description="tenants")
    def tenant_count(self, batch: RolloutBatch) -> int:
        return batch.tenants.count()

    def get_urls(self):  # noqa: ANN201
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="rollout_dashboard",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):  # noqa: ANN201
        extra_context = {
            **(extra_context or {}),
            "dashboard_url": reverse("admin:rollout_dashboard"),
        }
        return super().changelist_view(request, extra_context)

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        hours = 6
        since = timezone.now() - timedelta(hours=hours)
        step = timedelta(minutes=10)
        groups = [(b, selectors.batch_tenants(b)) for b in RolloutBatch.objects.all()]
        loose = list(
            Tenant.objects.filter(rollout_batch__isnull=True, app_key__isnull=False).exclude(
                stage=Stage.NEW
            )
        )
        if loose:
            groups.append((None, loose))
        batches = []
        for batch, tenants in groups:
            rows = []
            for tenant in tenants:
                h = selectors.health(tenant, timedelta(hours=hours))
                rows.append(
                    {
                        "tenant": tenant,
                        "health": h,
                        "old": h.path("legacy"),
                        "new": h.path("new"),
                        "verdict": selectors.gate(tenant, Stage.NEW, h),
                        "templates": selectors.template_breakdown(tenant, timedelta(hours=hours)),
                    }
                )
            ids = [t.pk for t in tenants]
            batches.append(
                {
                    "batch": batch,
                    "stage": selectors.batch_stage(tenants) if tenants else "-",
                    "rows": rows,
                    "chart": _chart(
                        metrics.series(ids, since, step),
                        selectors.consistency_series(ids, since, step),
                    ),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Rollout dashboard",
            "batches": batches,
            "hours": hours,
            "events": RolloutEvent.objects.select_related("tenant")[:20],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/rollout/dashboard.html", context)


def _chart(series: dict[str, dict[str, list[int]]], shadow: dict[str, list[int]]) -> dict[str, Any]:
    """Bars of calls per step for both paths, errors marked, and of the shadow comparisons'
    match rate per step, mismatches marked, as SVG coordinates."""
    legacy, new = series[PathMetric.Path.LEGACY], series[PathMetric.Path.NEW]
    count = len(legacy["calls"])
    peak = max([1, *legacy["calls"], *new["calls"]])
    width, height = 6, 60
    bars = []
    for index in range(count):
        x = index * (width * 2 + 2)
        for offset, data, kind in ((0, legacy, "legacy"), (width, new, "new")):
            calls, errors = data["calls"][index], data["errors"][index]
            h = round(height * calls / peak)
            eh = round(height * errors / peak)
            bars.append(
                {
                    "x": x + offset,
                    "y": height - h,
                    "h": h,
                    "w": width,
                    "kind": kind,
                    "calls": calls,
                    "errors": errors,
                    "ey": height - eh,
                    "eh": eh,
                }
            )
    consistency = []
    for index, (compared, mismatched) in enumerate(
        zip(shadow["compared"], shadow["mismatches"], strict=True)
    ):
        if not compared:
            continue
        matched_h = round(height * (compared - mismatched) / compared)
        consistency.append(
            {
                "x": index * (width * 2 + 2),
                "w": width * 2,
                "y": height - matched_h,
                "h": matched_h,
                "my": 0,
                "mh": height - matched_h,
                "compared": compared,
                "mismatches": mismatched,
            }
        )
    return {
        "consistency": consistency,
        "bars": bars,
        "width": count * (width * 2 + 2),
        "height": height,
        "legacy_total": sum(legacy["calls"]),
        "new_total": sum(new["calls"]),
    }


class TenantRolloutActions(RolloutActions):
    """The rollout actions on the tenant list (one tenant or a hand-picked set)."""

    def tenants_of(self, queryset: QuerySet) -> list[tuple[RolloutBatch | None, list[Tenant]]]:
        return [(None, list(queryset))]


@admin.register(RolloutEvent)
class RolloutEventAdmin(admin.ModelAdmin):
    list_display = (
        "at",
        "actor",
        "action",
        "tenant_slug",
        "batch_name",
        "from_to",
        "override",
        "short_reason",
    )
    list_filter = ("action", "override", "actor")
    search_fields = ("tenant_slug", "batch_name", "actor", "reason")
    date_hierarchy = "at"

    @admin.display(description="change")
    def from_to(self, event: RolloutEvent) -> str:
        def label(stage: str, percent: int) -> str:
            return f"{stage} {percent}%" if stage == Stage.CANARY else stage

        before = label(event.from_stage, event.from_percent)
        return f"{before} → {label(event.to_stage, event.to_percent)}"

    @admin.display(description="reason")
    def short_reason(self, event: RolloutEvent) -> str:
        return event.reason if len(event.reason) < 120 else event.reason[:117] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ShadowComparison)
class ShadowComparisonAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "tenant",
        "endpoint",
        "tpl_id",
        "state",
        "legacy_code",
        "new_code",
        "first_difference",
    )
    list_filter = ("state", "endpoint", "tenant")
    search_fields = ("tpl_id", "tenant__slug")
    date_hierarchy = "created_at"

    @admin.display(description="difference")
    def first_difference(self, comparison: ShadowComparison) -> str:
        for kind in ("differences", "noise", "ignored"):
            entries = getattr(comparison, kind)
            if entries:
                entry = entries[0]
                return format_html(
                    "{} {}: <del>{}</del> <ins>{}</ins>",
                    kind,
                    entry.get("field"),
                    str(entry.get("legacy", ""))[:80],
                    str(entry.get("new", ""))[:80],
                )
        return ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IgnoreRule)
class IgnoreRuleAdmin(admin.ModelAdmin):
    list_display = ("field", "tenant", "tpl_id", "pattern", "reason", "created_by", "created_at")
    list_filter = ("field", "tenant")
    readonly_fields = ("created_by", "created_at")

    def save_model(self, request: HttpRequest, obj: IgnoreRule, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = _actor(request)
        super().save_model(request, obj, form, change)
