import difflib
import functools
import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from templates_store import services
from templates_store.engines import get_engine
from templates_store.models import PublishEvent, Template, TemplateVersion
from templates_store.velocity.legacy_render import LegacyRenderer


class TemplateVersionInline(admin.TabularInline):
    model = TemplateVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "number",
        "locale",
        "published",
        "conversion_status",
        "verified_cases",
        "mismatches",
        "conversion_approved_at",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Template | None = None) -> bool:
        return False


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = (
        "key",
        "tenant",
        "channel",
        "legacy_tpl_id",
        "status",
        "autoescape",
        "updated_at",
    )
    list_filter = ("tenant", "channel", "status", "autoescape")
    search_fields = ("key", "name", "legacy_tpl_id")
    list_select_related = ("tenant",)
    inlines = [TemplateVersionInline]
    actions = ["approve", "reject"]

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Template], status: str) -> None:
        changed = 0
        for template in queryset:
            if services.set_status_by_operator(template, status):
                changed += 1
                # The admin's history records who did it.
                self.log_change(request, template, f"Status set to {status} (admin action).")
        self.message_user(request, f"{changed} template(s) {status}.")

    @admin.action(description="Approve: messages may be sent with the selected templates")
    def approve(self, request: HttpRequest, queryset: QuerySet[Template]) -> None:
        self._set_status(request, queryset, Template.Status.APPROVED)

    @admin.action(description="Reject: the tenant can no longer send with them nor undo it")
    def reject(self, request: HttpRequest, queryset: QuerySet[Template]) -> None:
        self._set_status(request, queryset, Template.Status.REJECTED)


def _render_legacy(legacy: LegacyRenderer, source: str, data: dict) -> str:
    """airspeed's text, or (like the gateway's 50000) its error or the limit it exceeded."""
    outcome = legacy.render(source, data)
    if outcome.limit is not None:
        return f"⚠ {outcome.error}"
    if outcome.output is None:
        return f"⚠ render error: {outcome.error}"
    return outcome.output


def _render_both(version: TemplateVersion, data: dict) -> dict:
    """Renders subject and body with the legacy engine and the new one, with an HTML diff."""
    with LegacyRenderer() as legacy:  # the page's airspeed renders, in a sandboxed process
        return _render_both_with(version, data, functools.partial(_render_legacy, legacy))


def _render_both_with(version: TemplateVersion, data: dict, render_legacy) -> dict:  # noqa: ANN001
    engine = get_engine(version.engine, version.template.autoescape)
    rows = []
    for field, legacy_source, new_source in (
        ("subject", version.legacy_subject, version.subject),
        ("body", version.legacy_body, version.body),
    ):
        if not (legacy_source or new_source):
            continue
        outputs = []
        for render, source in ((render_legacy, legacy_source), (engine.render, new_source)):
            try:
                outputs.append(render(source, data) if source else "")
            except Exception as exc:  # shown to the admin as the outcome, like the gateway's 50000
                outputs.append(f"⚠ render error: {type(exc).__name__}: {exc}")
        legacy_out, new_out = outputs
        diff = difflib.HtmlDiff(wrapcolumn=70).make_table(
            legacy_out.splitlines() or [""],
            new_out.splitlines() or [""],
            "legacy (airspeed)",
            "new (Jinja2)",
        )
        rows.append(
            {
                "field": field,
                "legacy": legacy_out,
                "new": new_out,
                "same": legacy_out == new_out,
                "diff": mark_safe(diff),
            }  # noqa: S308 - HtmlDiff escapes its input
        )
    return {"renderings": rows}


@admin.register(TemplateVersion)
class TemplateVersionAdmin(admin.ModelAdmin):
    change_form_template = "admin/templates_store/templateversion/change_form.html"
    list_display = (
        "template",
        "number",
        "locale",
        "published",
        "conversion_status",
        "verified_cases",
        "mismatches",
        "approved",
    )
    list_filter = ("template__tenant", "conversion_status", "published", "template__channel")
    search_fields = ("template__key", "template__legacy_tpl_id")
    list_select_related = ("template__tenant",)
    actions = ["approve_conversion", "publish"]
    readonly_fields = (
        "template",
        "number",
        "locale",
        "engine",
        "legacy_subject",
        "legacy_body",
        "subject",
        "body",
        "conversion_status",
        "conversion_issues",
        "verified_cases",
        "mismatches",
        "conversion_approved_at",
        "published",
        "published_at",
        "created_by_label",
        "created_at",
    )
    exclude = ("conversion_report", "created_by")

    @admin.display(boolean=True)
    def approved(self, version: TemplateVersion) -> bool:
        return version.conversion_approved_at is not None

    @admin.display(description="converter report")
    def conversion_issues(self, version: TemplateVersion) -> str:
        return format_html(
            "<pre>{}</pre>",
            json.dumps(version.conversion_report, indent=2, ensure_ascii=False)[:20000],
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):  # noqa: ANN001, ANN201
        version = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if version is not None and version.is_converted:
            cases = version.conversion_report.get("cases", [])
            raw = request.GET.get("data")
            chosen = request.GET.get("case", "0")
            data, data_error = {}, ""
            if raw:
                try:
                    data = json.loads(raw)
                    if not isinstance(data, dict):
                        raise ValueError("data must be a JSON object")
                except ValueError as exc:
                    data_error = str(exc)
            elif chosen.isdigit() and int(chosen) < len(cases):
                data = cases[int(chosen)]["params"]
            context.update(
                {
                    "comparison": _render_both(version, data),
                    "cases": cases,
                    "chosen_case": chosen,
                    "data_json": json.dumps(data, ensure_ascii=False),
                    "data_error": data_error,
                    "differences": version.conversion_report.get("differences", []),
                }
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _each(self, request: HttpRequest, queryset: QuerySet, action, done: str) -> None:  # noqa: ANN001
        for version in queryset.select_related("template"):
            try:
                action(version, actor=request.user.get_username())
            except services.TemplateError as exc:
                self.message_user(request, f"{version}: refused: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{version}: {done}.")

    @admin.action(description="Approve conversion (refused while differences remain) and publish")
    def approve_conversion(self, request: HttpRequest, queryset: QuerySet[TemplateVersion]) -> None:
        self._each(request, queryset, services.approve_conversion, "approved and published")

    @admin.action(description="Publish selected versions")
    def publish(self, request: HttpRequest, queryset: QuerySet[TemplateVersion]) -> None:
        self._each(request, queryset, services.publish_version, "published")


@admin.register(PublishEvent)
class PublishEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "version", "actor")
    list_filter = ("action",)
    readonly_fields = ("version", "action", "actor", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
