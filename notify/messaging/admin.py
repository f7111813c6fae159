from django.contrib import admin
from django.http import HttpRequest

from notify.messaging.masking import mask_recipient
from notify.messaging.models import Message, MessageEvent


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "status", "detail")
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
    inlines = [MessageEventInline]
    show_full_result_count = False

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
