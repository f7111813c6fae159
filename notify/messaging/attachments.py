"""Email attachments: stored once per tenant and content (AttachmentBlob, in the same
transaction as the messages naming them), named in each message's params by digest, and loaded
into the envelope when the message is sent (a transport gets bytes, never a row)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from notify.channels.base import TransportError
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


def store(tenant_id: int, attachments: tuple[Attachment, ...]) -> list[dict]:
    """The attachments' blobs stored (those stored already kept) and their descriptions for
    a message's params."""
    described = []
    for attachment in attachments:
        digest = hashlib.sha256(attachment.content).hexdigest()
        AttachmentBlob.all_tenants.get_or_create(
            tenant_id=tenant_id,
            digest=digest,
            defaults={"content": attachment.content, "size": len(attachment.content)},
        )
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
            "an attachment of the message is missing from storage: not sent",
            permanent=True,
            kind="permanent",
        )
    return tuple(
        Attachment(d["filename"], d["content_type"], bytes(blobs[d["digest"]])) for d in described
    )
