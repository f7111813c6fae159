"""Selectors read, always within a tenant."""

from django.db.models import QuerySet

from notify.messaging.ids import is_message_id
from notify.messaging.models import Message
from notify.tenants.models import Tenant


def get_message(tenant: Tenant, message_id: str) -> Message | None:
    if not is_message_id(message_id):
        return None
    return (
        Message.objects.for_tenant(tenant)
        .prefetch_related("events", "delivery_attempts")
        .filter(pk=message_id)
        .first()
    )


def list_messages(tenant: Tenant) -> QuerySet[Message]:
    return Message.objects.for_tenant(tenant).order_by("-created_at", "-id")
