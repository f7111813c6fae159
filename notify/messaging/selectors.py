"""Selectors read, always within a tenant."""

from datetime import datetime

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


def list_messages(
    tenant: Tenant,
    *,
    status: str = "",
    channel: str = "",
    batch: str = "",
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Message]:
    """The tenant's messages, newest first, narrowed by the filters given."""
    messages = Message.objects.for_tenant(tenant)
    if status:
        messages = messages.filter(status=status)
    if channel:
        messages = messages.filter(channel=channel)
    if batch:
        messages = messages.filter(batch_id=batch)
    if created_after is not None:
        messages = messages.filter(created_at__gte=created_after)
    if created_before is not None:
        messages = messages.filter(created_at__lt=created_before)
    return messages.order_by("-created_at", "-id")
