"""Selectors read, always within a tenant."""

from datetime import datetime

from django.db import connection
from django.db.models import Count, QuerySet

from notify.messaging.ids import is_message_id
from notify.messaging.models import FINAL_STATUSES, Message
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
    tag: str = "",
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
    if tag:
        messages = _tagged(messages, tag)
    if created_after is not None:
        messages = messages.filter(created_at__gte=created_after)
    if created_before is not None:
        messages = messages.filter(created_at__lt=created_before)
    return messages.order_by("-created_at", "-id")


def _tagged(messages: QuerySet[Message], tag: str) -> QuerySet[Message]:
    if connection.vendor == "postgresql":
        # (jsonb containment, through the GIN index of tagged messages: migration 0025)
        return messages.filter(tags__contains=[tag]).exclude(tags=[])
    # SQLite has no JSON containment lookup: the same test, item by item
    table = Message._meta.db_table
    return messages.extra(
        where=[f"EXISTS (SELECT 1 FROM json_each({table}.tags) WHERE json_each.value = %s)"],
        params=[tag],
    )


def batch_summary(tenant: Tenant, batch_id: str) -> dict | None:
    """A batch's messages counted by status, or None when the tenant has no such batch."""
    if not is_message_id(batch_id):
        return None
    rows = (
        Message.objects.for_tenant(tenant)
        .filter(batch_id=batch_id)
        .values("status")
        .annotate(count=Count("id"))
    )
    counts = {row["status"]: row["count"] for row in rows}
    if not counts:
        return None
    total = sum(counts.values())
    finished = sum(counts.get(status, 0) for status in FINAL_STATUSES)
    return {
        "id": batch_id,
        "count": total,
        "counts": counts,
        "finished": finished,
        "progress": round(finished / total, 4),
    }
