from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from notify.rollout.admin import TenantRolloutActions
from notify.tenants.models import ApiKey, Tenant
from notify.tenants.selectors import forget_api_keys


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")

    def has_add_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        # Keys are created with `create_tenant` or the "new API key" action, which show the raw
        # key once; an inline form could not.
        return False


@admin.register(Tenant)
class TenantAdmin(TenantRolloutActions, admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "status",
        "app_key",
        "stage_label",
        "rollout_batch",
        "qps_limit",
        "templates_self_approve",
        "created_at",
    )
    list_filter = ("status", "stage", "rollout_batch", "templates_self_approve")
    search_fields = ("slug", "name", "app_key")
    exclude = ("app_secret",)
    # the stage moves only through the rollout actions, which ask why and audit the change
    readonly_fields = (
        "has_app_secret",
        "stage",
        "canary_percent",
        "paused_stage",
        "previous_stage",
        "previous_percent",
        "stage_changed_at",
        "created_at",
        "updated_at",
    )
    inlines = [ApiKeyInline]
    actions = ["create_api_key", "advance", "set_canary", "pause", "roll_back"]

    @admin.display(description="stage", ordering="stage")
    def stage_label(self, tenant: Tenant) -> str:
        if tenant.stage == Tenant.Stage.CANARY:
            return f"canary {tenant.canary_percent}%"
        if tenant.stage == Tenant.Stage.PAUSED:
            return f"paused ({tenant.paused_stage})"
        return tenant.stage

    # A callback URL typed without a scheme is an HTTPS one.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(boolean=True, description="legacy app secret set")
    def has_app_secret(self, tenant: Tenant) -> bool:
        return bool(tenant.app_secret)

    @admin.action(description="Create a new API key (shown once)")
    def create_api_key(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            _, raw = ApiKey.generate(tenant, name=f"admin {timezone.now():%Y-%m-%d}")
            self.message_user(
                request, f"New API key for {tenant.slug}: {raw} (copy it now)", messages.WARNING
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "tenant", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("tenant", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("prefix", "name", "tenant__slug")
    readonly_fields = ("tenant", "prefix", "created_at", "last_used_at", "revoked_at")
    fields = ("tenant", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        forget_api_keys()
        self.message_user(request, f"Revoked {count} key(s).")
