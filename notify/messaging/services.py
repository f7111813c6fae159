"""Services write: creating messages and moving them through their states."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from notify.channels import send_limits
from notify.channels.base import (
    Envelope,
    Transport,
    TransportError,
    get_transport,
    take_http_status,
)
from notify.messaging import attachments, delivery_sql, retention, unsubscribe, wakeups
from notify.messaging.delivery_sql import ClaimedMessage, Outcome
from notify.messaging.ids import allocate_ids
from notify.messaging.masking import mask_recipient
from notify.messaging.models import (
    FINAL_STATUSES,
    RETRYABLE_STATUSES,
    AttemptOutcome,
    DeliveryAttempt,
    Lane,
    Message,
    MessageEvent,
    MessageStatus,
    Origin,
    Preference,
    Priority,
    SendRequest,
    Suppression,
    due_by,
)
from notify.messaging.signals import message_finished
from notify.tenants.models import Tenant

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessageDraft:
    channel: str
    recipient: str
    subject: str = ""
    body: str = ""
    html: str = ""
    params: dict | None = None
    category: str = ""
    critical: bool = False
    # the caller's own reference (the legacy API's out_id)
    reference: str = ""
    # an email's files (stored with the message, named in its params)
    attachments: tuple[attachments.Attachment, ...] = ()
    priority: int = Priority.NORMAL
    tags: tuple[str, ...] = ()
    metadata: dict | None = None


def enqueue_delivery(message_id: str) -> None:
    """A broker wake-up for a queued transactional message (never its only copy: the row is),
    unless one is pending already: the worker that takes it sends every due message of the
    lane, this one included (wakeups.py)."""
    wakeups.publish(lambda: _wake_up(message_id))


def _wake_up(message_id: str) -> None:
    from notify.messaging.tasks import deliver_message

    deliver_message.apply_async(args=[message_id])


def _publish(message_ids: list[str]) -> int:
    """Wake-ups for committed messages; a broker outage stops here, logged (the sweep publishes
    the rest once their `republish_at` is reached). Returns how many were published. Several
    messages share one wake-up where wake-ups coalesce (one Redis call for all of them)."""
    if len(message_ids) > 1:
        first = message_ids[0]
        try:
            if wakeups.publish(lambda: _wake_up(first), count=len(message_ids)):
                return len(message_ids)
        except Exception:  # noqa: BLE001 - any broker failure: the rows stay queued
            _broker_down(len(message_ids))
            return 0
    for done, message_id in enumerate(message_ids):
        try:
            enqueue_delivery(message_id)
        except Exception:  # noqa: BLE001 - any broker failure: the rows stay queued
            _broker_down(len(message_ids) - done)
            return done
    return len(message_ids)


def _broker_down(left: int) -> None:
    logger.warning(
        "broker unavailable: %d message(s) left for the sweep to publish", left, exc_info=True
    )


def create_message(
    *,
    tenant: Tenant,
    draft: MessageDraft,
    origin: str = Origin.V2,
    send_at: datetime | None = None,
    send_request: SendRequest | None = None,
    timeline: list[MessageEvent] | None = None,
) -> Message:
    """Stores a queued message and publishes its wake-up once the row is committed (a message
    scheduled for later is published by the sweep when it is due). Idempotency is the send
    request's (`requests.begin`). `timeline`, when given, receives the message's first event
    (an answer needs no re-read)."""
    now = timezone.now()
    scheduled = send_at is not None and send_at > now
    due = send_at if scheduled else now
    if draft.attachments:
        draft = _with_stored_attachments(tenant, draft, due)
    message = _message_row(
        "",  # (its ID comes with the insert: no round trip of its own)
        tenant,
        draft,
        now,
        origin=origin,
        send_request=send_request,
        send_at=send_at,
        next_attempt_at=due,
        republish_at=due if scheduled else None,
    )
    event = MessageEvent(
        status=MessageStatus.QUEUED,
        detail=f"scheduled for {due.isoformat()}" if scheduled else "",
        created_at=now,
    )
    with transaction.atomic() if draft.attachments else contextlib.nullcontext():
        # (a blob without its message is only space; a message without its blob never is)
        delivery_sql.insert_queued(message, event)
    if not scheduled:
        # after the commit (at once outside a transaction): a broker outage must not turn an
        # accepted message into a 500; the row is the work, the sweep publishes it again
        message_id = message.id
        transaction.on_commit(lambda: _publish([message_id]))
    logger.info(
        "message queued id=%s tenant=%s channel=%s to=%s",
        message.id,
        tenant.slug,
        message.channel,
        mask_recipient(message.channel, message.recipient),
        extra={"message_id": message.id, "tenant": tenant.slug},
    )
    if timeline is not None:
        timeline.append(event)
    return message


def _with_stored_attachments(tenant: Tenant, draft: MessageDraft, due: datetime) -> MessageDraft:
    """The draft with its attachments stored, described in its params."""
    described = attachments.store(tenant.pk, draft.attachments, due)
    return replace(draft, params={**(draft.params or {}), "attachments": described})


def _message_row(
    message_id: str,
    tenant: Tenant,
    draft: MessageDraft,
    now: datetime,
    *,
    republish_at: datetime | None = None,
    **fields: Any,
) -> Message:
    """A queued message of `draft`, not saved: due now unless `fields` say otherwise, published
    again by the sweep at `republish_at` (default: its lane's `republish_after` from now)."""
    fields.setdefault("next_attempt_at", now)
    if republish_at is None:
        republish_at = now + timedelta(
            seconds=republish_after(fields.get("lane", Lane.TRANSACTIONAL))
        )
    return Message(
        id=message_id,
        tenant=tenant,
        channel=draft.channel,
        recipient=draft.recipient,
        subject=draft.subject,
        body=draft.body,
        html=draft.html,
        params=draft.params or {},
        category=draft.category,
        critical=draft.critical,
        priority=draft.priority,
        tags=list(draft.tags),
        metadata=draft.metadata or {},
        reference=draft.reference,
        created_at=now,
        republish_at=republish_at,
        **fields,
    )


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    message_ids: list[str]
    # the stored rows and each one's first event, in the drafts' order (an answer needs no
    # re-read)
    messages: list[Message]
    events: list[MessageEvent]


def create_batch(
    *,
    tenant: Tenant,
    drafts: list[MessageDraft],
    send_request: SendRequest | None = None,
    origin: str = Origin.V2,
    lane: str = Lane.BULK,
    send_at: datetime | None = None,
) -> BatchResult:
    """Stores one queued message per draft under a new batch id, in one transaction with set
    inserts (messages, then their events), and publishes the wake-ups after the commit: the
    bulk lane's (`publish_bulk_wakeups`), or the transactional lane's for each message (a
    legacy send to a few recipients is a code or a receipt; one wake-up for all of them where
    wake-ups coalesce); the sweep publishes them again if that failed. A batch scheduled for
    later (`send_at`) is published by the sweep when it is due."""
    now = timezone.now()
    scheduled = send_at is not None and send_at > now
    when = (
        {"send_at": send_at, "next_attempt_at": send_at, "republish_at": send_at}
        if scheduled
        else {"send_at": send_at}
    )
    batch_id, *ids = allocate_ids(len(drafts) + 1)
    described: dict[tuple, list[dict]] = {}  # (a campaign's files: stored once)
    for files in {d.attachments for d in drafts if d.attachments}:
        described[files] = attachments.store(tenant.pk, files, send_at if scheduled else None)
    drafts = [
        replace(d, params={**(d.params or {}), "attachments": described[d.attachments]})
        if d.attachments
        else d
        for d in drafts
    ]
    rows = [
        _message_row(
            message_id,
            tenant,
            draft,
            now,
            batch_id=batch_id,
            origin=origin,
            send_request=send_request,
            lane=lane,
            **when,
        )
        for message_id, draft in zip(ids, drafts, strict=True)
    ]
    detail = f"batch {batch_id}" + (f", scheduled for {send_at.isoformat()}" if scheduled else "")
    events = [MessageEvent(status=MessageStatus.QUEUED, detail=detail, created_at=now) for _ in ids]
    # a code to one recipient: message and event in one statement (delivery_sql), atomic alone
    with transaction.atomic() if len(rows) > 1 else contextlib.nullcontext():
        if len(rows) == 1:
            delivery_sql.insert_queued(rows[0], events[0])
        else:
            Message.all_tenants.bulk_create(rows, batch_size=1000)
            for row, event in zip(rows, events, strict=True):
                event.message = row
            MessageEvent.objects.bulk_create(events, batch_size=1000)
        # (a scheduled batch is published by the sweep at `send_at`)
        if not scheduled and lane == Lane.BULK:
            transaction.on_commit(lambda: publish_bulk_wakeups(len(ids)))
        elif not scheduled:
            transaction.on_commit(lambda: _publish(ids))
    logger.info(
        "batch queued id=%s tenant=%s messages=%d",
        batch_id,
        tenant.slug,
        len(ids),
        extra={"batch_id": batch_id, "tenant": tenant.slug},
    )
    return BatchResult(batch_id, ids, rows, events)


def publish_bulk_wakeups(messages: int) -> int:
    """Wake-ups for the bulk lane, one per chunk of `messages` (at most NOTIFY_BULK_WAKEUPS:
    each wake-up that finds work publishes its successor, so that many keep the lane's workers
    busy). A wake-up names no message: the worker takes the next tenant's turn
    (`deliver_bulk`). A broker outage stops here, logged; the sweep publishes them again.
    Returns how many were published."""
    from notify.messaging.tasks import deliver_bulk

    wanted = min(-(-messages // settings.NOTIFY_CHUNK_SIZE), settings.NOTIFY_BULK_WAKEUPS)
    for done in range(wanted):
        try:
            deliver_bulk.apply_async()
        except Exception:  # noqa: BLE001 - any broker failure: the sweep publishes them later
            logger.warning(
                "broker unavailable: %d bulk wake-up(s) left for the sweep",
                wanted - done,
                exc_info=True,
            )
            return done
    return wanted


# the tenant whose bulk turn this process served last (each process takes turns in tenant
# order; with several processes, turns interleave, each still round-robin)
_last_bulk_tenant: int | None = None


def deliver_bulk() -> bool:
    """One turn of the bulk lane: the next tenant's chunk (see delivery_sql.next_bulk_chunk)
    claimed and sent. Returns whether there was work."""
    global _last_bulk_tenant
    now = timezone.now()
    tenant_id, message_ids = delivery_sql.next_bulk_chunk(
        now, settings.NOTIFY_CHUNK_SIZE, _last_bulk_tenant
    )
    if tenant_id is None:
        return False
    _last_bulk_tenant = tenant_id
    deliver_chunk(message_ids)
    return True


# messages one wake-up of the transactional lane sends before it hands over to a successor
# (a worker also serves its other queues now and then)
TRANSACTIONAL_ROUNDS = 100


def deliver_due_transactional() -> int:
    """The transactional lane's due messages, oldest first, one at a time until none is left
    (what a wake-up of the lane does after its own message). Each is taken under a row lock
    that other workers skip, so workers draining side by side never collide; while more than
    one is due a helper wake-up is published (unless one is pending), so a burst spreads over
    the lane's workers and a slow send holds up no other code. Returns how many it took out of
    the queue."""
    from notify.messaging.tasks import deliver_due_transactional as helper

    taken = 0
    for _ in range(TRANSACTIONAL_ROUNDS):
        now = timezone.now()
        with transaction.atomic():
            message_ids = delivery_sql.due_transactional(now, 2, lock=True)
            if not message_ids:
                return taken
            claimed, moved = _take(message_ids[:1], now)
        if len(message_ids) > 1:
            _publish_helper(helper)
        taken += moved
        _send_all(claimed)
    _publish_helper(helper)  # (more may wait: a successor goes on)
    return taken


def _publish_helper(task: Any) -> None:
    try:
        wakeups.publish(task.apply_async)
    except Exception:  # noqa: BLE001 - the rows stay queued: the sweep publishes them
        logger.warning("broker unavailable: no helper wake-up for the backlog", exc_info=True)


def deliver_chunk(message_ids: list[str]) -> int:
    """Sends a chunk of messages over one transport per channel (one SMTP connection for the
    chunk). The whole chunk is checked against suppressions and claimed in one statement each
    (a message another worker took, not yet due, or done is skipped); each send's outcome is
    then committed as it happens, in one statement, so a worker that dies mid-chunk leaves at
    most the one send it was making in doubt. Returns how many of the messages this call took
    out of the queue (claimed, or suppressed)."""
    claimed, moved = _take(message_ids, timezone.now())
    _send_all(claimed)
    return moved


def _take(message_ids: list[str], now: datetime) -> tuple[list[ClaimedMessage], int]:
    """The messages that may be sent, claimed (the suppressed ones end `suppressed`), and how
    many of `message_ids` left the queue."""
    wanted = _suppress_unwanted(message_ids, now)
    claimed = delivery_sql.claim(wanted, now)
    skipped = len(wanted) - len(claimed)
    if skipped:
        # taken by another worker, finished, or not due yet (a retry's wake-up that came
        # early): the row says when, and the sweep publishes it then
        logger.info("%d message(s) not claimable now; skipped", skipped)
    return claimed, len(claimed) + len(message_ids) - len(wanted)


def _send_all(claimed: list[ClaimedMessage]) -> None:
    transports: dict[tuple[int, str], Transport] = {}
    try:
        for message in claimed:
            _send_claimed(message, transports)
    finally:
        for transport in transports.values():
            transport.close()


def deliver(message_id: str) -> None:
    """Claims a queued message, sends it through its channel and records the outcome.

    Safe to call twice for the same message: only the caller whose conditional UPDATE moved the
    message from queued to sending sends it."""
    deliver_chunk([message_id])


def _send_claimed(message: ClaimedMessage, transports: dict[tuple[int, str], Transport]) -> None:
    started = time.monotonic()
    take_http_status()  # (a status left by the chunk's previous message is not this one's)
    deadline = deadline_of(message)
    if deadline is not None and deadline <= timezone.now():
        _record_failure(message, _past_deadline(deadline, "before it could be sent"), started)
        return
    try:
        key = (message.tenant_id, message.channel)
        transport = transports.get(key)
        if transport is None:
            transport = transports[key] = get_transport(message.channel, message.tenant_id)
        result = transport.send(envelope_of(message))
    except TransportError as exc:
        _record_failure(message, exc, started)
        return
    except Exception as exc:  # a bug in a transport must not leave the message in `sending`
        logger.exception("transport crashed for message %s", message.id)
        error = TransportError(f"internal error: {exc!r}", permanent=False, kind="internal")
        _record_failure(message, error, started)
        return
    now = timezone.now()
    if result.delivered:
        status = MessageStatus.DELIVERED
        events = ((MessageStatus.SENT, result.detail), (MessageStatus.DELIVERED, result.detail))
        fields: tuple[tuple[str, object], ...] = (("sent_at", now), ("delivered_at", now))
    else:
        status = MessageStatus.SENT
        events = ((MessageStatus.SENT, result.detail),)
        fields = (("sent_at", now),)
    recorded = _record_outcome(
        message,
        Outcome(
            status=status,
            events=events,
            attempt_outcome=AttemptOutcome.DELIVERED if result.delivered else AttemptOutcome.SENT,
            latency_ms=_elapsed_ms(started),
            provider_message_id=result.provider_message_id,
            provider=result.provider,
            http_status=take_http_status(),
            fields=fields,
        ),
        now,
    )
    if recorded and result.delivered:
        announce_finished(message.id, status, message.origin, message.tenant_id, message.channel)
    logger.info(
        "message sent id=%s to=%s: %s",
        message.id,
        mask_recipient(message.channel, message.recipient),
        result.detail,
        extra={"message_id": message.id, "batch_id": message.batch_id},
    )


# pauses before each new try of recording an outcome the database refused (seconds)
RECORD_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


def _record_outcome(message: ClaimedMessage, outcome: Outcome, now: datetime) -> bool:
    """delivery_sql.record, tried again while the database is unreachable: the provider has
    answered, and an outcome lost here would leave the message `sending` until its lease ends
    and then send it a second time. A try whose statement committed before its connection
    broke makes the next one find the message moved, and record nothing twice."""
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return delivery_sql.record(message, outcome, now)
        except (OperationalError, InterfaceError):
            if delay is None:
                raise
            logger.warning(
                "outcome of message %s not recorded (database unavailable); again in %ss",
                message.id,
                delay,
                exc_info=True,
                extra={"message_id": message.id},
            )
            if not connection.in_atomic_block:
                connection.close()  # the next try opens a new one
            time.sleep(delay)
    return False


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def announce_finished(
    message_id: str,
    status: str,
    origin: str | None = None,
    tenant_id: int | None = None,
    channel: str | None = None,
) -> None:
    """`message_finished` for a message that reached `status`, once that is committed (at once
    outside a transaction). A receiver that raises is logged: it cannot undo the change."""
    transaction.on_commit(lambda: send_finished(message_id, status, origin, tenant_id, channel))


def send_finished(
    message_id: str,
    status: str,
    origin: str | None = None,
    tenant_id: int | None = None,
    channel: str | None = None,
) -> None:
    """`message_finished` sent now: a receiver that raises is logged, the others run."""
    for receiver, answer in message_finished.send_robust(
        sender=Message,
        message_id=message_id,
        status=str(status),
        origin=origin,
        tenant_id=tenant_id,
        channel=channel,
    ):
        if isinstance(answer, Exception):
            logger.error(
                "message_finished receiver %r failed for message %s",
                receiver,
                message_id,
                exc_info=answer,
                extra={"message_id": message_id},
            )


def _suppress_unwanted(message_ids: list[str], now: datetime) -> list[str]:
    """The messages of `message_ids` that may be sent. A due queued message whose recipient is
    suppressed (or opted out, unless the message is critical) ends `suppressed`, with the
    reason in its timeline: never sent, never a silent drop. One query decides for the whole
    list (it runs before every send)."""
    same_recipient = {
        "tenant_id": OuterRef("tenant_id"),
        "channel": OuterRef("channel"),
        "recipient": OuterRef("recipient"),
    }
    suppressions = Suppression.all_tenants.filter(**same_recipient)
    rows = (
        Message.all_tenants.filter(pk__in=message_ids, status=MessageStatus.QUEUED)
        .annotate(
            suppressed=Exists(suppressions),
            opted_out=Exists(
                Preference.all_tenants.filter(**same_recipient, opted_out=True).filter(
                    Q(category="") | Q(category=OuterRef("category"))
                )
            ),
        )
        .filter(Q(suppressed=True) | Q(opted_out=True, critical=False))
        .annotate(suppressed_because=Subquery(suppressions.values("reason")[:1]))
        .values("pk", "category", "critical", "suppressed", "suppressed_because", "opted_out")
    )
    unwanted = set()
    for row in rows:
        reason = _suppression_reason(row)
        queued_and_due = Q(status=MessageStatus.QUEUED) & due_by(now)
        if reason is not None and _transition(
            row["pk"], queued_and_due, MessageStatus.SUPPRESSED, reason, now, error=reason
        ):
            unwanted.add(row["pk"])
    return [message_id for message_id in message_ids if message_id not in unwanted]


def _transition(
    message_id: str, from_status: Q, to_status: str, detail: str, now: datetime, **fields: Any
) -> bool:
    """The message moved to `to_status` (with `fields`) only if it still matches `from_status`,
    and the timeline event added in the same transaction. Returns whether this caller moved it
    (every transition outside delivery_sql is this conditional UPDATE)."""
    with transaction.atomic():
        changed = Message.all_tenants.filter(from_status, pk=message_id).update(
            status=to_status, updated_at=now, **fields
        )
        if changed == 1:
            MessageEvent.objects.create(
                message_id=message_id, status=to_status, detail=detail, created_at=now
            )
            if to_status in FINAL_STATUSES:
                announce_finished(message_id, to_status)
    return changed == 1


def _suppression_reason(row: dict[str, Any]) -> str | None:
    """Why the message must not go to its recipient, or None."""
    if row["suppressed"]:
        because = row["suppressed_because"]
        return "recipient suppressed" + (f": {because}" if because else "")
    if row["opted_out"] and not row["critical"]:
        category = row["category"]
        return "recipient opted out" + (f" of {category!r}" if category else "")
    return None


def envelope_of(message: ClaimedMessage | Message) -> Envelope:
    """The immutable envelope a transport gets for a message (never the row itself)."""
    headers = {}
    if message.channel == "email" and message.batch_id and not message.critical:
        # a campaign's email: one click unsubscribes (RFC 8058)
        headers = unsubscribe.list_unsubscribe_headers(
            message.tenant_id, message.channel, message.recipient, message.category
        )
    return Envelope(
        message_id=message.id,
        channel=message.channel,
        recipient=message.recipient,
        subject=message.subject,
        body=message.body,
        html=message.html,
        headers=MappingProxyType(headers),
        provider_hints=_provider_hints(message),
    )


def _provider_hints(message: ClaimedMessage | Message) -> MappingProxyType:
    """What the message's transport may use beyond the text: a push's `extras`; an email's
    `cc` addresses and sender display name (`from_alias`); the message's provider timeout."""
    params = getattr(message, "params", None) or {}
    hints = _channel_hints(message.channel, params, message.tenant_id)
    limit = params.get("provider_timeout")
    if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0:
        return MappingProxyType({**hints, "provider_timeout": float(limit)})
    return hints


def _channel_hints(channel: str, params: dict, tenant_id: int | None = None) -> MappingProxyType:
    if channel == "push":
        extras = params.get("extras", {})
        return MappingProxyType({"extras": extras if isinstance(extras, dict) else {}})
    if channel == "email":
        hints: dict[str, Any] = {}
        if isinstance(params.get("attachments"), list) and tenant_id is not None:
            hints["attachments"] = attachments.load(tenant_id, params["attachments"])
        cc = params.get("cc")
        if isinstance(cc, list) and all(isinstance(address, str) for address in cc):
            hints["cc"] = tuple(cc)
        if isinstance(params.get("from_alias"), str) and params["from_alias"]:
            hints["from_name"] = params["from_alias"]
        return MappingProxyType(hints)
    if channel == "sms" and params.get("template"):
        # (a provider that sends only registered templates maps them: Aliyun)
        data = params.get("data", {})
        return MappingProxyType(
            {
                "template": str(params.get("template", "")),
                "legacy_tpl_id": str(params.get("legacy_tpl_id", "")),
                "data": data if isinstance(data, dict) else {},
            }
        )
    return MappingProxyType({})


# a number in [0, 1) for each backoff (tests fix it)
backoff_jitter: Callable[[], float] = random.random


def retry_delay(attempt: int, retry_after: float | None = None) -> float | None:
    """Seconds to wait before the next try after `attempt` failed tries of this round, or
    None: give up. Full jitter: anywhere up to the attempt's step of NOTIFY_RETRY_DELAYS (so
    the retries of many messages failing together spread out), at least one second, and never
    sooner than the provider's Retry-After."""
    delays = settings.NOTIFY_RETRY_DELAYS
    if attempt > len(delays):
        return None
    delay = max(1.0, delays[attempt - 1] * backoff_jitter())
    if retry_after is not None:
        delay = max(delay, float(retry_after))
    return round(delay, 3)


def suppress_bad_recipient(
    tenant_id: int, channel: str, recipient: str, origin: str, why: str
) -> None:
    """A recipient a provider says cannot receive (an invalid number, an unregistered device)
    goes on the tenant's suppression list: the next message to it is `suppressed`, not sent
    and refused again. Not for the legacy API's messages: the old gateway kept no such list,
    and its callers expect each send tried."""
    if origin == Origin.LEGACY:
        return
    try:
        with transaction.atomic():
            Suppression.all_tenants.get_or_create(
                tenant_id=tenant_id,
                channel=channel,
                recipient=recipient,
                defaults={"reason": f"bad recipient, said {why}"[:200]},
            )
    except IntegrityError:
        pass  # suppressed meanwhile


def deadline_of(message: ClaimedMessage | Message) -> datetime | None:
    """When the message stops trying on its channel: the earlier of its channel deadline
    (`deadline`) and its message deadline (`final_deadline`, carried to its fallbacks)."""
    params = message.params or {}
    found = [moment_of(params.get("deadline")), moment_of(params.get("final_deadline"))]
    found = [moment for moment in found if moment is not None]
    return min(found) if found else None


def moment_of(value: object) -> datetime | None:
    """An aware datetime from its ISO text in a message's params, or None."""
    if not isinstance(value, str):
        return None
    parsed = parse_datetime(value)
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _past_deadline(
    deadline: datetime, when: str, cause: TransportError | None = None
) -> TransportError:
    return TransportError(
        f"its deadline {deadline.isoformat()} passes {when}",
        permanent=True,
        kind="deadline",
        code=cause.code if cause else "",
        provider=cause.provider if cause else "",
    )


def _record_failure(message: ClaimedMessage, error: TransportError, started: float) -> None:
    # Providers quote the address in their refusals; it must not reach logs or admin lists.
    masked = mask_recipient(message.channel, message.recipient)
    error = TransportError(
        error.reason.replace(message.recipient, masked),
        permanent=error.permanent,
        retry_after=error.retry_after,
        kind=error.kind,
        code=error.code,
        provider=error.provider,
    )
    round_attempts = message.attempts - message.attempts_before_retry
    # held back by a provider's send limit (ours): queued again when it frees, not counted
    held_back = error.kind == send_limits.KIND
    if held_back:
        delay = max(error.retry_after or 0.0, 0.05)
    else:
        delay = None if error.permanent else retry_delay(round_attempts, error.retry_after)
    deadline = deadline_of(message)
    if (
        delay is not None
        and deadline is not None
        and timezone.now() + timedelta(seconds=delay) > deadline
    ):
        error = _past_deadline(deadline, f"before its next try ({error.reason})", error)
        delay = None
    outcome = (
        AttemptOutcome.PERMANENT_FAILURE if error.permanent else AttemptOutcome.TEMPORARY_FAILURE
    )
    now = timezone.now()
    attempt = {
        "attempt_outcome": outcome,
        "latency_ms": _elapsed_ms(started),
        "error": error.reason,
        "error_kind": error.kind,
        "error_code": error.code,
        "provider": error.provider,
        "http_status": take_http_status(),
    }
    if delay is None:
        if error.permanent:
            status, reason = MessageStatus.FAILED, error.reason
        else:
            status = MessageStatus.DEAD
            reason = f"gave up after {round_attempts} attempts: {error.reason}"
        recorded = _record_outcome(
            message,
            Outcome(
                status=status,
                events=((status, reason),),
                fields=(("error", reason), ("error_code", error.code), ("failed_at", now)),
                **attempt,
            ),
            now,
        )
        if recorded:
            announce_finished(
                message.id, status, message.origin, message.tenant_id, message.channel
            )
            if error.kind == "bad_recipient":
                suppress_bad_recipient(
                    message.tenant_id,
                    message.channel,
                    message.recipient,
                    message.origin,
                    f"{error.provider or 'the provider'}: {error.code or 'bad recipient'}",
                )
        logger.warning(
            "message %s id=%s: %s", status, message.id, reason, extra={"message_id": message.id}
        )
        return
    next_attempt_at = now + timedelta(seconds=delay)
    # no broker countdown: the row holds the time, and the sweep publishes it when due
    fields: tuple[tuple[str, object], ...] = (
        ("error", error.reason),
        ("next_attempt_at", next_attempt_at),
        ("republish_at", next_attempt_at),
    )
    if held_back:
        detail = f"{error.reason}: sent in {delay:.2g}s (not counted as an attempt)"
        fields += (("attempts_before_retry", message.attempts_before_retry + 1),)
    else:
        detail = f"attempt {message.attempts} failed, retry in {delay:g}s: {error.reason}"
    _record_outcome(
        message,
        Outcome(
            status=MessageStatus.QUEUED,
            events=((MessageStatus.QUEUED, detail),),
            fields=fields,
            **attempt,
        ),
        now,
    )
    logger.info(
        "message retry id=%s in %ss: %s",
        message.id,
        delay,
        error.reason,
        extra={"message_id": message.id},
    )


class NotCancellable(Exception):
    """The message is no longer waiting: a worker has it, or it has ended."""


def cancel_message(message: Message, by: str) -> Message:
    """A queued message (scheduled, or waiting for a retry) cancelled: it is never sent.
    Raises NotCancellable for any other status."""
    cancelled = _transition(
        message.pk,
        Q(status=MessageStatus.QUEUED),
        MessageStatus.CANCELLED,
        f"cancelled by {by}",
        timezone.now(),
        next_attempt_at=None,
        republish_at=None,
    )
    if not cancelled:
        raise NotCancellable(message.pk)
    logger.info("message cancelled id=%s by %s", message.pk, by)
    return Message.all_tenants.get(pk=message.pk)


class NotRetryable(Exception):
    """The message is not dead or failed (it is on its way, or delivered)."""


def retry_message(message: Message, by: str) -> Message:
    """A dead or failed message queued again, with a new round of attempts; published once
    committed. Raises NotRetryable for any other status. `by` says who asked (the timeline)."""
    now = timezone.now()
    with transaction.atomic():
        retried = _transition(
            message.pk,
            Q(status__in=list(RETRYABLE_STATUSES)),
            MessageStatus.QUEUED,
            f"retried by {by}",
            now,
            attempts_before_retry=F("attempts"),
            next_attempt_at=now,
            republish_at=now + timedelta(seconds=republish_after(message.lane)),
            error="",
            failed_at=None,
        )
        if not retried:
            raise NotRetryable(message.pk)
        # in its own lane: an operator retrying a campaign's dead messages must not fill the
        # transactional queue
        lane = message.lane
        transaction.on_commit(lambda: _wake([(message.pk, lane)]))
    logger.info("message retried id=%s by %s", message.pk, by)
    return Message.all_tenants.get(pk=message.pk)


@dataclass(frozen=True)
class SweepResult:
    resumed: int
    published: int
    # send requests whose Idempotency-Key expired, deleted (their stored answers with them)
    expired_requests: int = 0
    # attachment blobs past their retention, deleted
    expired_attachments: int = 0


def sweep(now: datetime | None = None, limit: int | None = None) -> SweepResult:
    """The database's pending work, made sure to reach a worker: rows in `sending` whose lease
    is over (their worker died) are queued again, then due queued rows that no worker has
    claimed since they were last published are published again, oldest first, at most `limit`
    of each. Concurrent sweeps skip each other's rows (SKIP LOCKED on PostgreSQL). Last, up to
    `limit` send requests past their Idempotency-Key's expiry, and as many attachment blobs
    past their retention, are deleted."""
    now = now or timezone.now()
    limit = limit or settings.NOTIFY_SWEEP_BATCH
    return SweepResult(
        resumed=_resume_expired(now, limit),
        published=_publish_due(now, limit),
        expired_requests=_delete_expired_requests(now, limit),
        expired_attachments=attachments.purge_expired(now, limit),
    )


def _delete_expired_requests(now: datetime, limit: int) -> int:
    return retention.delete_expired(
        SendRequest.all_tenants.all(), Q(expires_at__lte=now), "expires_at", limit
    )


def _resume_expired(now: datetime, limit: int) -> int:
    lease = timedelta(seconds=settings.NOTIFY_SENDING_LEASE)
    with transaction.atomic():
        ids = list(
            Message.all_tenants.filter(status=MessageStatus.SENDING)
            # (a row from before leases were recorded: its last change stands in)
            .filter(
                Q(lease_expires_at__lt=now)
                | Q(lease_expires_at__isnull=True, updated_at__lt=now - lease)
            )
            .order_by("lease_expires_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return 0
        resumed = Message.all_tenants.filter(pk__in=ids, status=MessageStatus.SENDING).update(
            status=MessageStatus.QUEUED,
            next_attempt_at=now,
            republish_at=now,
            lease_expires_at=None,
            updated_at=now,
        )
        DeliveryAttempt.objects.filter(message_id__in=ids, outcome=AttemptOutcome.SENDING).update(
            outcome=AttemptOutcome.ABANDONED,
            finished_at=now,
            error="the worker stopped before recording an outcome (lease expired)",
            error_kind="abandoned",
        )
        MessageEvent.objects.bulk_create(
            MessageEvent(
                message_id=message_id,
                status=MessageStatus.QUEUED,
                detail="the worker sending it stopped (lease expired): queued again",
                created_at=now,
            )
            for message_id in ids
        )
    logger.warning("sweep: %d message(s) whose worker stopped queued again", resumed)
    return resumed


def _publish_due(now: datetime, limit: int) -> int:
    """Each lane's due messages that no worker took since their last publish, up to `limit`
    per lane, the transactional lane first (a long campaign's backlog never crowds a code
    out of the sweep)."""
    rows: list[tuple[str, str]] = []
    for lane in (Lane.TRANSACTIONAL, Lane.BULK):
        republish_at = now + timedelta(seconds=republish_after(lane))
        with transaction.atomic():
            found = list(
                Message.all_tenants.filter(status=MessageStatus.QUEUED, lane=lane)
                .filter(due_by(now))
                .filter(Q(republish_at__isnull=True) | Q(republish_at__lte=now))
                .order_by("next_attempt_at")
                .select_for_update(skip_locked=True)
                .values_list("pk", "lane")[:limit]
            )
            if found:
                Message.all_tenants.filter(pk__in=[pk for pk, _ in found]).update(
                    republish_at=republish_at
                )
        rows.extend(found)
    if not rows:
        return 0
    if any(lane != Lane.BULK for _, lane in rows):
        # codes no worker took since their wake-up: a pending mark now is a stale one (its
        # wake-up lost, or its worker's clearing of it failed), and must not hold these back
        wakeups.not_pending()
    return _wake(rows, now)


def republish_after(lane: str) -> float:
    """Seconds after a publish when the sweep publishes a still-queued message again."""
    if lane == Lane.BULK:
        return settings.NOTIFY_REPUBLISH_AFTER
    return min(settings.NOTIFY_REPUBLISH_AFTER, settings.NOTIFY_TRANSACTIONAL_REPUBLISH_AFTER)


def _wake(rows: list[tuple[str, str]], now: datetime | None = None) -> int:
    """Wake-ups for queued messages, given as (id, lane), each in its lane: transactional
    messages a wake-up each, or one for all where wake-ups coalesce; bulk messages get the
    lane's wake-ups, unless a bulk worker is at work (its wake-ups are circulating: more would
    only pile up during a long campaign). Returns how many messages were woken."""
    bulk = [pk for pk, lane in rows if lane == Lane.BULK]
    woken = _publish([pk for pk, lane in rows if lane != Lane.BULK])
    if bulk and not _bulk_lane_at_work(now or timezone.now()):
        woken += min(len(bulk), publish_bulk_wakeups(len(bulk)) * settings.NOTIFY_CHUNK_SIZE)
    return woken


def _bulk_lane_at_work(now: datetime) -> bool:
    return Message.all_tenants.filter(
        status=MessageStatus.SENDING, lane=Lane.BULK, lease_expires_at__gt=now
    ).exists()
