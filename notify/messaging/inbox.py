"""The in-app inbox: a delivered `inapp` message becomes an InboxItem of its recipient (written
by the message_finished receiver, once: one row per message), read and marked read or unread
through /v2/inbox/<recipient>, newest first, with cursor pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.dispatch import receiver
from django.utils import timezone

from notify.messaging import cursors, followups
from notify.messaging.ids import is_message_id
from notify.messaging.models import InboxItem, Message, MessageStatus
from notify.messaging.signals import message_finished
from notify.tenants.models import Tenant

PAGE_MAX = 100


@receiver(message_finished, dispatch_uid="messaging.inbox")
def on_message_finished(
    sender: object, message_id: str, status: str, channel: str | None = None, **kwargs: object
) -> None:
    if status != MessageStatus.DELIVERED or channel not in (None, "inapp"):
        return  # (most messages: no query on the delivery path)
    message = (
        Message.all_tenants.filter(pk=message_id, channel="inapp")
        .values("tenant_id", "recipient", "created_at")
        .first()
    )
    if message is None:
        return
    try:
        with transaction.atomic():
            InboxItem.all_tenants.create(
                tenant_id=message["tenant_id"],
                recipient=message["recipient"],
                message_id=message_id,
                created_at=message["created_at"],
            )
    except IntegrityError:
        return  # in the inbox already


@followups.register("messaging.inbox")
def missing_inbox_items(since: datetime, until: datetime) -> QuerySet:
    """Delivered in-app messages without their inbox item (the partial index
    `message_inapp_delivered` holds only the delivered in-app messages)."""
    return (
        followups.finished_between(since, until, [MessageStatus.DELIVERED])
        .filter(channel="inapp")
        .filter(~Exists(InboxItem.all_tenants.filter(message_id=OuterRef("id"))))
    )


@dataclass
class Page:
    items: list[InboxItem]
    next_cursor: str | None
    unread: int
    total: int


def items_of(tenant: Tenant, recipient: str) -> QuerySet[InboxItem]:
    return InboxItem.objects.for_tenant(tenant).filter(recipient=recipient)


def page(
    tenant: Tenant, recipient: str, *, cursor: str = "", limit: int = 20, unread_only: bool = False
) -> Page:
    rows = items_of(tenant, recipient).select_related("message")
    counts = items_of(tenant, recipient)
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    found = cursors.page(rows, cursors.decode(cursor, int) if cursor else None, limit)
    return Page(
        items=found.rows,
        next_cursor=cursors.encode(found.after) if found.after else None,
        unread=counts.filter(read_at__isnull=True).count(),
        total=counts.count(),
    )


def find(tenant: Tenant, recipient: str, message_id: str) -> InboxItem | None:
    if not is_message_id(message_id):
        return None  # (and never a query: a NUL in the id is a database error on PostgreSQL)
    return (
        items_of(tenant, recipient).select_related("message").filter(message_id=message_id).first()
    )


def mark(item: InboxItem, read: bool) -> InboxItem:
    if read and item.read_at is None:
        item.read_at = timezone.now()
    elif not read:
        item.read_at = None
    item.save(update_fields=["read_at"])
    return item


def mark_all_read(tenant: Tenant, recipient: str) -> int:
    return items_of(tenant, recipient).filter(read_at__isnull=True).update(read_at=timezone.now())
