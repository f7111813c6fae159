"""Services write: creating messages and moving them through their states."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from notify.channels.base import TransportError, get_transport
from notify.messaging.ids import allocate_ids
from notify.messaging.masking import mask_recipient
from notify.messaging.models import Message, MessageEvent, MessageStatus, Origin
from notify.tenants.models import Tenant

logger = logging.getLogger(__name__)


class IdempotencyConflict(Exception):
    """The idempotency key was used before for a different request."""


@dataclass(frozen=True)
class MessageDraft:
    channel: str
    recipient: str
    subject: str = ""
    body: str = ""
    html: str = ""
    params: dict | None = None

    def fingerprint(self) -> str:
        payload = json.dumps(self.__dict__, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


def enqueue_delivery(message_id: str, countdown: float | None = None) -> None:
    from notify.messaging.tasks import deliver_message

    deliver_message.apply_async(args=[message_id], countdown=countdown)


def create_message(
    *,
    tenant: Tenant,
    draft: MessageDraft,
    idempotency_key: str = "",
    fingerprint: str = "",
    origin: str = Origin.V2,
) -> tuple[Message, bool]:
    """Stores a queued message and queues its delivery once the row is committed.

    Returns (message, created). With an idempotency key already used for the same request,
    returns the first message and created=False; for a different request, raises
    IdempotencyConflict. `fingerprint` identifies the request (default: the draft itself)."""
    fingerprint = fingerprint or draft.fingerprint()
    if idempotency_key:
        existing = find_by_idempotency_key(tenant, idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            (message_id,) = allocate_ids(1)
            message = Message.objects.create(
                id=message_id,
                tenant=tenant,
                channel=draft.channel,
                recipient=draft.recipient,
                subject=draft.subject,
                body=draft.body,
                html=draft.html,
                params=draft.params or {},
                idempotency_key=idempotency_key,
                request_hash=fingerprint,
                origin=origin,
            )
            MessageEvent.objects.create(message=message, status=MessageStatus.QUEUED)
            # robust: a broker outage must not turn an accepted (committed) message into a 500;
            # the message stays queued and is logged.
            transaction.on_commit(lambda: enqueue_delivery(message_id), robust=True)
    except IntegrityError:
        # Two requests with the same key raced; the other one won.
        existing = (
            find_by_idempotency_key(tenant, idempotency_key, fingerprint)
            if idempotency_key
            else None
        )
        if existing is None:
            raise
        return existing, False
    logger.info(
        "message queued id=%s tenant=%s channel=%s to=%s",
        message.id,
        tenant.slug,
        message.channel,
        mask_recipient(message.channel, message.recipient),
    )
    return message, True


def find_by_idempotency_key(tenant: Tenant, key: str, fingerprint: str) -> Message | None:
    """The message created earlier with this key, or None; IdempotencyConflict if that
    message came from a different request."""
    existing = Message.objects.for_tenant(tenant).filter(idempotency_key=key).first()
    if existing is not None and existing.request_hash != fingerprint:
        raise IdempotencyConflict(key)
    return existing


def _transition(
    message_id: str, from_status: str, to_status: str, detail: str = "", **fields
) -> bool:
    """Moves a message from one status to another only if it is still in the first; records the
    event in the same transaction. Returns whether this caller made the change."""
    now = timezone.now()
    with transaction.atomic():
        changed = Message.objects.filter(pk=message_id, status=from_status).update(
            status=to_status, updated_at=now, **fields
        )
        if changed == 1:
            MessageEvent.objects.create(
                message_id=message_id, status=to_status, detail=detail, created_at=now
            )
    return changed == 1


def _claim(message_id: str, now) -> bool:  # noqa: ANN001
    """queued → sending, only if it is due; exactly one caller wins."""
    with transaction.atomic():
        changed = (
            Message.objects.filter(pk=message_id, status=MessageStatus.QUEUED)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .update(status=MessageStatus.SENDING, attempts=F("attempts") + 1, updated_at=now)
        )
        if changed == 1:
            MessageEvent.objects.create(
                message_id=message_id, status=MessageStatus.SENDING, created_at=now
            )
    return changed == 1


def retry_delay(attempt: int) -> int | None:
    """Seconds to wait before the next try after `attempt` failed tries, or None: give up."""
    delays = settings.NOTIFY_RETRY_DELAYS
    return delays[attempt - 1] if attempt <= len(delays) else None


def deliver(message_id: str) -> None:
    """Claims a queued message, sends it through its channel and records the outcome.

    Safe to call twice for the same message: only the caller whose conditional UPDATE moved the
    message from queued to sending sends it."""
    now = timezone.now()
    if not _claim(message_id, now):
        early = (
            Message.objects.filter(
                pk=message_id, status=MessageStatus.QUEUED, next_attempt_at__gt=now
            )
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        if early is not None:
            # Delivered before its retry time (a duplicate, or a broker redelivery): come back
            # then instead of dropping the only task that would send it.
            enqueue_delivery(message_id, countdown=(early - now).total_seconds())
        logger.info("message %s not claimable now; skipping", message_id)
        return
    message = Message.objects.get(pk=message_id)
    try:
        result = get_transport(message.channel).send(message)
    except TransportError as exc:
        _record_failure(message, exc)
        return
    except Exception as exc:  # a bug in a transport must not leave the message in `sending`
        logger.exception("transport crashed for message %s", message_id)
        _record_failure(message, TransportError(f"internal error: {exc!r}", permanent=False))
        return
    now = timezone.now()
    _transition(message_id, MessageStatus.SENDING, MessageStatus.SENT, result.detail, sent_at=now)
    if result.delivered:
        _transition(
            message_id, MessageStatus.SENT, MessageStatus.DELIVERED, result.detail, delivered_at=now
        )
    logger.info(
        "message sent id=%s to=%s: %s",
        message_id,
        mask_recipient(message.channel, message.recipient),
        result.detail,
    )


def _record_failure(message: Message, error: TransportError) -> None:
    # Providers quote the address in their refusals; it must not reach logs or admin lists.
    masked = mask_recipient(message.channel, message.recipient)
    error = TransportError(
        error.reason.replace(message.recipient, masked), permanent=error.permanent
    )
    delay = None if error.permanent else retry_delay(message.attempts)
    if delay is None:
        reason = (
            error.reason
            if error.permanent
            else f"gave up after {message.attempts} attempts: {error.reason}"
        )
        _transition(
            message.id,
            MessageStatus.SENDING,
            MessageStatus.FAILED,
            reason,
            error=reason,
            failed_at=timezone.now(),
        )
        logger.warning("message failed id=%s: %s", message.id, reason)
        return
    next_attempt_at = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        moved = _transition(
            message.id,
            MessageStatus.SENDING,
            MessageStatus.QUEUED,
            f"attempt {message.attempts} failed, retry in {delay}s: {error.reason}",
            error=error.reason,
            next_attempt_at=next_attempt_at,
        )
        if moved:
            transaction.on_commit(
                lambda: enqueue_delivery(message.id, countdown=delay), robust=True
            )
    logger.info("message retry id=%s in %ss: %s", message.id, delay, error.reason)
