"""The delivery path's writes, set-based: claiming a chunk of messages and recording one send's
outcome each take one statement on PostgreSQL (data-modifying CTEs: the message, its attempt
and its timeline change together, atomically, in one round trip, committed on their own).
Other databases (SQLite, for `make run`) get the same effects from a short transaction.

Why it matters: a worker delivering a bulk chunk makes about one round trip per message (the
commit of its own outcome) instead of thirteen; see docs/architecture.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from notify.db import prepared_cursor
from notify.messaging.ids import allocate_ids, next_id_sql
from notify.messaging.models import (
    AttemptOutcome,
    DeliveryAttempt,
    Lane,
    Message,
    MessageEvent,
    MessageStatus,
    due_by,
)

MESSAGE = Message._meta.db_table
ATTEMPT = DeliveryAttempt._meta.db_table
EVENT = MessageEvent._meta.db_table


@dataclass(frozen=True)
class ClaimedMessage:
    """What a worker needs of a message it claimed (queued → sending), and nothing more."""

    id: str
    tenant_id: int
    channel: str
    recipient: str
    subject: str
    body: str
    html: str
    attempts: int
    attempts_before_retry: int
    batch_id: str
    # where it came from (v2, legacy): who must hear of its outcome
    origin: str
    # (a bulk email's List-Unsubscribe opts out of its category, unless it is critical)
    category: str
    critical: bool
    # (the push transport's extras are among them)
    params: dict


CLAIMED_FIELDS = (
    "id",
    "tenant_id",
    "channel",
    "recipient",
    "subject",
    "body",
    "html",
    "attempts",
    "attempts_before_retry",
    "batch_id",
    "origin",
    "category",
    "critical",
    "params",
)


def claim(message_ids: list[str], now: datetime) -> list[ClaimedMessage]:
    """The due queued messages of `message_ids` moved to `sending` under a lease, each with an
    open attempt and a timeline event; a message another worker holds, not yet due, or in any
    other status is left alone. Exactly one caller claims each message."""
    if not message_ids:
        return []
    lease = now + timedelta(seconds=settings.NOTIFY_SENDING_LEASE)
    if connection.vendor == "postgresql":
        return _claim_postgresql(message_ids, now, lease)
    return _claim_portable(message_ids, now, lease)


def _claim_postgresql(
    message_ids: list[str], now: datetime, lease: datetime
) -> list[ClaimedMessage]:
    returned = ", ".join(f"m.{name}" for name in CLAIMED_FIELDS)
    sql = f"""
        WITH due AS (
            SELECT id FROM {MESSAGE}
            WHERE id = ANY(%(ids)s) AND status = %(queued)s
              AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
            ORDER BY id
            FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE {MESSAGE} AS m
            SET status = %(sending)s, attempts = m.attempts + 1, updated_at = %(now)s,
                lease_expires_at = %(lease)s
            FROM due WHERE m.id = due.id
            RETURNING {returned}
        ), events AS (
            INSERT INTO {EVENT} (message_id, status, detail, created_at)
            SELECT id, %(sending)s, '', %(now)s FROM claimed
        ), attempts AS (
            INSERT INTO {ATTEMPT} (message_id, number, provider, started_at, outcome,
                                   error_kind, error, error_code, provider_message_id)
            SELECT id, attempts, '', %(now)s, %(open)s, '', '', '', '' FROM claimed
        )
        SELECT {", ".join(CLAIMED_FIELDS)} FROM claimed ORDER BY id
    """
    params = {
        "ids": list(message_ids),
        "queued": MessageStatus.QUEUED.value,
        "sending": MessageStatus.SENDING.value,
        "open": AttemptOutcome.SENDING.value,
        "now": now,
        "lease": lease,
    }
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        # (Django has the driver hand jsonb over as text: `params`, last, is decoded here)
        return [ClaimedMessage(*row[:-1], _json(row[-1])) for row in cursor.fetchall()]


def _json(value: object) -> dict:
    return json.loads(value) if isinstance(value, (str, bytes)) else value or {}


def _claim_portable(message_ids: list[str], now: datetime, lease: datetime) -> list[ClaimedMessage]:
    due = due_by(now)
    with transaction.atomic():
        won = [
            message_id
            for message_id in message_ids
            if Message.all_tenants.filter(pk=message_id, status=MessageStatus.QUEUED)
            .filter(due)
            .update(
                status=MessageStatus.SENDING,
                attempts=F("attempts") + 1,
                updated_at=now,
                lease_expires_at=lease,
            )
            == 1
        ]
        if not won:
            return []
        rows = [
            ClaimedMessage(*row)
            for row in Message.all_tenants.filter(pk__in=won)
            .order_by("id")
            .values_list(*CLAIMED_FIELDS)
        ]
        MessageEvent.objects.bulk_create(
            MessageEvent(message_id=row.id, status=MessageStatus.SENDING, created_at=now)
            for row in rows
        )
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(message_id=row.id, number=row.attempts, started_at=now) for row in rows
        )
    return rows


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, and where that leaves its message."""

    status: str  # the message's new status
    # the timeline events to add, in order: (status, detail)
    events: tuple[tuple[str, str], ...]
    attempt_outcome: str
    latency_ms: int
    error: str = ""
    error_kind: str = ""
    error_code: str = ""
    provider_message_id: str = ""
    # the provider that took (or refused) the message, by name
    provider: str = ""
    http_status: int | None = None
    # other message columns to set (sent_at, error, next_attempt_at…)
    fields: tuple[tuple[str, object], ...] = ()


def record(message: ClaimedMessage, outcome: Outcome, now: datetime) -> bool:
    """The attempt closed, the message moved from `sending`, and the events added: all or
    nothing, and only if the message is still in `sending` (a worker whose lease expired and
    whose message was queued again records nothing). Returns whether it was recorded."""
    if connection.vendor == "postgresql":
        return _record_postgresql(message, outcome, now)
    return _record_portable(message, outcome, now)


def _record_postgresql(message: ClaimedMessage, outcome: Outcome, now: datetime) -> bool:
    columns = {name: value for name, value in outcome.fields}
    # (names come from the code, never from input: Outcome.fields is built in services)
    assignments = "".join(
        f", {Message._meta.get_field(name).column} = %(f_{name})s" for name in columns
    )
    values = ", ".join(
        f"(%(e_status_{n})s, %(e_detail_{n})s, {n})" for n in range(len(outcome.events))
    )
    sql = f"""
        WITH m AS (
            UPDATE {MESSAGE} SET status = %(status)s, updated_at = %(now)s,
                lease_expires_at = NULL{assignments}
            WHERE id = %(id)s AND status = %(sending)s AND attempts = %(number)s
            RETURNING id
        ), a AS (
            UPDATE {ATTEMPT}
            SET outcome = %(outcome)s, finished_at = %(now)s, latency_ms = %(latency)s,
                error = %(error)s, error_kind = %(error_kind)s, error_code = %(error_code)s,
                provider_message_id = %(provider_message_id)s, provider = %(provider)s,
                http_status = %(http_status)s
            WHERE message_id = %(id)s AND number = %(number)s AND outcome = %(open)s
              AND EXISTS (SELECT 1 FROM m)
        )
        INSERT INTO {EVENT} (message_id, status, detail, created_at)
        SELECT m.id, e.status, e.detail, %(now)s
        FROM m CROSS JOIN (VALUES {values}) AS e(status, detail, position)
        ORDER BY e.position
        RETURNING message_id
    """
    params: dict[str, object] = {
        "id": message.id,
        "number": message.attempts,
        "status": outcome.status,
        "sending": MessageStatus.SENDING.value,
        "open": AttemptOutcome.SENDING.value,
        "now": now,
        "outcome": outcome.attempt_outcome,
        "latency": outcome.latency_ms,
        "error": outcome.error,
        "error_kind": outcome.error_kind,
        "error_code": outcome.error_code,
        "provider_message_id": outcome.provider_message_id,
        "provider": outcome.provider[:64],
        "http_status": outcome.http_status,
    }
    params.update({f"f_{name}": value for name, value in columns.items()})
    for n, (status, detail) in enumerate(outcome.events):
        params[f"e_status_{n}"] = status
        params[f"e_detail_{n}"] = detail
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.fetchall())


def _record_portable(message: ClaimedMessage, outcome: Outcome, now: datetime) -> bool:
    with transaction.atomic():
        changed = Message.all_tenants.filter(
            pk=message.id, status=MessageStatus.SENDING, attempts=message.attempts
        ).update(
            status=outcome.status, updated_at=now, lease_expires_at=None, **dict(outcome.fields)
        )
        if changed != 1:
            return False
        DeliveryAttempt.objects.filter(
            message_id=message.id, number=message.attempts, outcome=AttemptOutcome.SENDING
        ).update(
            outcome=outcome.attempt_outcome,
            finished_at=now,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            error_kind=outcome.error_kind,
            error_code=outcome.error_code,
            provider_message_id=outcome.provider_message_id,
            provider=outcome.provider[:64],
            http_status=outcome.http_status,
        )
        MessageEvent.objects.bulk_create(
            MessageEvent(message_id=message.id, status=status, detail=detail, created_at=now)
            for status, detail in outcome.events
        )
    return True


def insert_queued(message: Message, event: MessageEvent) -> None:
    """Stores a new message and its first timeline event, all or nothing: one statement on
    PostgreSQL (so an accept outside a transaction makes one round trip for both, its ID
    allocated in the same statement when `message.id` is not set yet), a short transaction
    elsewhere. Sets `message.id` and `event.pk`."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            if not message.id:
                (message.id,) = allocate_ids(1)
            message.save(force_insert=True)
            event.message = message
            event.save(force_insert=True)
        return
    fields = [field for field in Message._meta.concrete_fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders, values = [], []
    for field in fields:
        if field.primary_key and not message.id:
            expression, params = next_id_sql()
            placeholders.append(expression)
            values.extend(params)
        else:
            placeholders.append("%s")
            values.append(field.get_db_prep_save(field.pre_save(message, True), connection))
    sql = f"""
        WITH m AS (
            INSERT INTO {MESSAGE} ({columns}) VALUES ({", ".join(placeholders)}) RETURNING id
        )
        INSERT INTO {EVENT} (message_id, status, detail, created_at)
        SELECT id, %s, %s, %s FROM m
        RETURNING id, message_id
    """
    with prepared_cursor() as cursor:
        cursor.execute(sql, [*values, event.status, event.detail, event.created_at])
        event.pk, message.id = cursor.fetchone()
    event.message = message
    message._state.adding = False
    message._state.db = connection.alias
    event._state.adding = False
    event._state.db = connection.alias


def next_bulk_chunk(
    now: datetime, size: int, after_tenant: int | None
) -> tuple[int | None, list[str]]:
    """The bulk lane's next chunk, tenants served in turn: the ids of up to `size` due queued
    bulk messages of the first tenant after `after_tenant` (by id, wrapping around) that has
    any, oldest first (to be claimed: another worker may take some first). Returns (that
    tenant, the ids); (None, []) when the lane has no due work. A tenant's million-recipient
    campaign thus takes one chunk in turn with every other tenant's batch, whatever was queued
    first."""
    due = (
        Message.all_tenants.filter(status=MessageStatus.QUEUED, lane="bulk")
        .filter(due_by(now))
        .order_by()
    )
    tenant_id = None
    if after_tenant is not None:
        tenant_id = (
            due.filter(tenant_id__gt=after_tenant)
            .order_by("tenant_id")
            .values_list("tenant_id", flat=True)
            .first()
        )
    if tenant_id is None:
        tenant_id = due.order_by("tenant_id").values_list("tenant_id", flat=True).first()
    if tenant_id is None:
        return None, []
    ids = list(
        due.filter(tenant_id=tenant_id)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:size]
    )
    return tenant_id, ids


def due_transactional(now: datetime, size: int, *, lock: bool = False) -> list[str]:
    """The ids of up to `size` due queued transactional messages, the highest priority first,
    then the longest waiting.
    `lock` (inside a transaction): locked until it ends, rows other workers hold skipped, so
    workers taking the lane's messages side by side never pick the same one."""
    due = (
        Message.all_tenants.filter(status=MessageStatus.QUEUED, lane=Lane.TRANSACTIONAL)
        .filter(due_by(now))
        .order_by("-priority", "next_attempt_at", "id")
    )
    if lock:
        due = due.select_for_update(skip_locked=True)
    return list(due.values_list("pk", flat=True)[:size])


def reported_send(
    channel: str, provider_message_id: str, provider: str, tenant_id: int | None
) -> tuple[str, int, str, int, str] | None:
    """The `channel` message still `sent` after the attempt its provider knows as
    `provider_message_id` (its latest: a message's attempt count is its latest number), as
    (message id, attempt number, recipient, tenant id, origin); None when there is none.
    One plain statement (on either database): a delivery report for each message sent makes
    this the receipt path's hottest query, and the ORM's subquery cost more to build than to
    run."""
    tenant = "" if tenant_id is None else "AND m.tenant_id = %(tenant)s"
    sql = f"""
        SELECT m.id, a.number, m.recipient, m.tenant_id, m.origin
        FROM {ATTEMPT} AS a JOIN {MESSAGE} AS m ON m.id = a.message_id
        WHERE a.provider_message_id = %(pmid)s AND a.provider = %(provider)s
          AND a.provider_message_id <> '' AND m.channel = %(channel)s
          AND m.status = %(sent)s AND a.number = m.attempts {tenant}
        LIMIT 1
    """
    params = {
        "pmid": provider_message_id,
        "provider": provider,
        "channel": channel,
        "sent": MessageStatus.SENT.value,
        "tenant": tenant_id,
    }
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else tuple(row)  # type: ignore[return-value]


def record_report(
    message_id: str, number: int, status: str, fields: dict[str, object], detail: str, now: datetime
) -> bool:
    """PostgreSQL: the message moved from `sent` (still after attempt `number`) to `status`
    with `fields`, and its timeline event, in one statement. Returns whether it moved."""
    # (names come from the code, never from input: the receipt's fields are fixed)
    assignments = "".join(
        f", {Message._meta.get_field(name).column} = %(f_{name})s" for name in fields
    )
    sql = f"""
        WITH m AS (
            UPDATE {MESSAGE} SET status = %(status)s, updated_at = %(now)s{assignments}
            WHERE id = %(id)s AND status = %(sent)s AND attempts = %(number)s
            RETURNING id
        )
        INSERT INTO {EVENT} (message_id, status, detail, created_at)
        SELECT id, %(status)s, %(detail)s, %(now)s FROM m
        RETURNING message_id
    """
    params: dict[str, object] = {
        "id": message_id,
        "number": number,
        "status": status,
        "sent": MessageStatus.SENT.value,
        "now": now,
        "detail": detail,
        **{f"f_{name}": value for name, value in fields.items()},
    }
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.fetchall())
