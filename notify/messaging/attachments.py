"""Email attachments: stored once per tenant and content (AttachmentBlob, in the same
transaction as the messages naming them), named in each message's params by digest, and loaded
into the envelope when the message is sent (a transport gets bytes, never a row)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from notify.channels.base import TransportError
from notify.messaging import retention
from notify.messaging.models import AttachmentBlob

MAX_ATTACHMENTS = 10
# decoded, all of a message's attachments together (ESPs take 10-25 MB with the message;
# base64 in the request adds a third)
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


def store(
    tenant_id: int, attachments: tuple[Attachment, ...], due: datetime | None = None
) -> list[dict]:
    """The attachments' blobs stored (those stored already kept, and kept longer if need be)
    and their descriptions for a message's params. `due`: when the message naming them is to
    be sent (default now); each blob is kept NOTIFY_ATTACHMENT_RETENTION_DAYS after that."""
    keep_until = max(due or timezone.now(), timezone.now()) + timedelta(
        days=settings.NOTIFY_ATTACHMENT_RETENTION_DAYS
    )
    described = []
    for attachment in attachments:
        digest = hashlib.sha256(attachment.content).hexdigest()
        _, created = AttachmentBlob.all_tenants.get_or_create(
            tenant_id=tenant_id,
            digest=digest,
            defaults={
                "content": attachment.content,
                "size": len(attachment.content),
                "keep_until": keep_until,
            },
        )
        if not created:
            AttachmentBlob.all_tenants.filter(
                tenant_id=tenant_id, digest=digest, keep_until__lt=keep_until
            ).update(keep_until=keep_until)
        described.append(
            {
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "digest": digest,
                "size": len(attachment.content),
            }
        )
    return described


def load(tenant_id: int, described: list[dict]) -> tuple[Attachment, ...]:
    """The attachments a message's params describe, with their bytes (one query)."""
    digests = {d.get("digest") for d in described if isinstance(d, dict)}
    blobs = dict(
        AttachmentBlob.all_tenants.filter(tenant_id=tenant_id, digest__in=digests).values_list(
            "digest", "content"
        )
    )
    missing = [d for d in described if not isinstance(d, dict) or d.get("digest") not in blobs]
    if missing:
        # (never sent without it, as if it were complete)
        raise TransportError(
            "an attachment of the message is no longer stored (attachments are kept "
            f"{settings.NOTIFY_ATTACHMENT_RETENTION_DAYS:g} days after the message was due, "
            "NOTIFY_ATTACHMENT_RETENTION_DAYS): not sent; send it again with its attachments",
            permanent=True,
            kind="permanent",
        )
    return tuple(
        Attachment(d["filename"], d["content_type"], bytes(blobs[d["digest"]])) for d in described
    )


def purge_expired(now: datetime, limit: int) -> int:
    """Deletes up to `limit` blobs past their `keep_until`; returns how many."""
    return retention.delete_expired(
        AttachmentBlob.all_tenants.all(), Q(keep_until__lt=now), "keep_until", limit
    )
