"""Send requests and the Idempotency-Key header (IETF draft-ietf-httpapi-idempotency-key-header):
the same key with the same request gets the first answer again; the same key with another
request is refused (422); a key whose first request is still being answered is refused (409);
a key is kept NOTIFY_IDEMPOTENCY_TTL seconds (24 h), then may be used again.

A request's row is committed as "processing" before any work (so a concurrent retry sees
it), and completed in the transaction that stores its messages: a crash leaves either nothing
(the row is taken over once NOTIFY_IDEMPOTENCY_TAKEOVER seconds have passed) or the messages
and the answer together, never messages without the answer that would stop a second send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from notify.messaging.models import Origin, SendRequest
from notify.tenants.models import Tenant


class IdempotencyKeyReused(Exception):
    """The key was used with a different request."""


class RequestInFlight(Exception):
    """The key's first request is still being answered."""


@dataclass(frozen=True)
class Replay:
    """The first answer to a request with this key."""

    status: int
    body: Any


def begin(
    tenant: Tenant, endpoint: str, key: str, fingerprint: str, origin: str = Origin.V2
) -> SendRequest | Replay:
    """The request's row, newly "processing" (the caller answers it, then calls `complete`
    or `abandon`), or the first answer to replay. Raises IdempotencyKeyReused or
    RequestInFlight."""
    for _ in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                return SendRequest.objects.create(
                    tenant=tenant,
                    origin=origin,
                    endpoint=endpoint,
                    idempotency_key=key,
                    fingerprint=fingerprint,
                    created_at=now,
                    expires_at=now + timedelta(seconds=settings.NOTIFY_IDEMPOTENCY_TTL),
                )
        except IntegrityError:
            existing = (
                SendRequest.objects.for_tenant(tenant)
                .filter(endpoint=endpoint, idempotency_key=key)
                .first()
            )
        if existing is None:
            continue  # (deleted meanwhile)
        if existing.expires_at <= now:
            SendRequest.all_tenants.filter(pk=existing.pk, expires_at__lte=now).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused(key)
        if existing.state == SendRequest.State.COMPLETED:
            return Replay(existing.response_status, existing.response_body)
        stale = now - timedelta(seconds=settings.NOTIFY_IDEMPOTENCY_TAKEOVER)
        if existing.created_at < stale:
            # its first request died before committing anything: this one takes it over
            taken = SendRequest.all_tenants.filter(
                pk=existing.pk, state=SendRequest.State.PROCESSING, created_at=existing.created_at
            ).update(created_at=now)
            if taken == 1:
                existing.created_at = now
                return existing
        raise RequestInFlight(key)
    raise RequestInFlight(key)


def complete(send_request: SendRequest, status: int, body: Any) -> None:
    """Stores the first answer (call it in the transaction that stores the messages)."""
    SendRequest.all_tenants.filter(pk=send_request.pk).update(
        state=SendRequest.State.COMPLETED, response_status=status, response_body=body
    )


def abandon(send_request: SendRequest) -> None:
    """The request was refused before anything was stored: its key is free again."""
    SendRequest.all_tenants.filter(pk=send_request.pk, state=SendRequest.State.PROCESSING).delete()
