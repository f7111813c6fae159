from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from notify.messaging.masking import mask_recipient
from notify.messaging.models import DeliveryAttempt, Message, MessageEvent
from notify.messaging.services import NotRetryable, retry_message


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "status", "detail")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "outcome",
        "provider",
        "started_at",
        "finished_at",
        "latency_ms",
        "error_kind",
        "error",
        "provider_message_id",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "tenant",
        "channel",
        "masked_recipient",
        "status",
        "attempts",
        "origin",
        "created_at",
    )
    list_filter = ("tenant", "status", "channel", "origin")
    search_fields = ("=id", "=batch_id")
    list_select_related = ("tenant",)
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline, MessageEventInline]
    show_full_result_count = False
    actions = ["retry"]

    @admin.action(description="Retry the selected dead or failed messages")
    def retry(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        retried = skipped = 0
        for message in queryset:
            try:
                retry_message(message, by=f"operator {request.user.get_username()} (admin)")
                retried += 1
            except NotRetryable:
                skipped += 1
        self.message_user(request, f"{retried} message(s) queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} message(s) skipped: only dead or failed messages can be retried.",
                messages.WARNING,
            )

    @admin.display(description="recipient")
    def masked_recipient(self, message: Message) -> str:
        return mask_recipient(message.channel, message.recipient)

    def get_readonly_fields(self, request: HttpRequest, obj: Message | None = None) -> list[str]:
        return [field.name for field in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


@admin.register(MessageEvent)
class MessageEventAdmin(admin.ModelAdmin):
    list_display = ("message", "tenant", "status", "detail", "created_at")
    list_filter = ("message__tenant", "status")
    search_fields = ("=message__id",)
    list_select_related = ("message__tenant",)
    readonly_fields = ("message", "status", "detail", "created_at")

    @admin.display(description="tenant")
    def tenant(self, event: MessageEvent) -> str:
        return event.message.tenant.slug

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: MessageEvent | None = None) -> bool:
        return False  # the timeline is an audit trail
