"""The delivery path's set-based writes (one statement each on PostgreSQL, a short transaction
elsewhere): a chunk claimed once, an outcome recorded all or nothing and only by the worker that
still holds the message, a new message stored with its first event or not at all."""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from notify.messaging import delivery_sql, services
from notify.messaging.models import (
    DeliveryAttempt,
    Message,
    MessageEvent,
    MessageStatus,
)
from notify.messaging.services import MessageDraft, create_batch


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    monkeypatch.setattr(services, "publish_bulk_wakeups", lambda messages: 0)


def queued(tenant, count: int) -> list[str]:  # noqa: ANN001
    drafts = [
        MessageDraft(channel="email", recipient=f"r{n}@example.com", subject="S", body="B")
        for n in range(count)
    ]
    return create_batch(tenant=tenant, drafts=drafts).message_ids


def delivered_outcome() -> delivery_sql.Outcome:
    now = timezone.now()
    return delivery_sql.Outcome(
        status=MessageStatus.DELIVERED,
        events=((MessageStatus.SENT, "250 OK"), (MessageStatus.DELIVERED, "250 OK")),
        attempt_outcome="delivered",
        latency_ms=4,
        provider_message_id="p-1",
        fields=(("sent_at", now), ("delivered_at", now)),
    )


def test_claim__same_chunk_claimed_twice__each_message_claimed_once(tenant):
    # Given a chunk of queued messages
    ids = queued(tenant, 5)
    now = timezone.now()
    # When two workers claim it
    first = delivery_sql.claim(ids, now)
    second = delivery_sql.claim(ids, now)
    # Then the first gets all five, with one open attempt and one "sending" event each
    assert sorted(m.id for m in first) == sorted(ids) and second == []
    assert {m.attempts for m in first} == {1}
    assert DeliveryAttempt.objects.filter(message_id__in=ids, outcome="sending").count() == 5
    assert MessageEvent.objects.filter(message_id__in=ids, status="sending").count() == 5
    assert set(Message.all_tenants.filter(pk__in=ids).values_list("status", flat=True)) == {
        MessageStatus.SENDING
    }


def test_claim__messages_not_due_or_finished__left_alone(tenant):
    # Given a chunk where one message waits for a retry and one was cancelled
    ids = queued(tenant, 3)
    later = timezone.now() + timedelta(minutes=5)
    Message.all_tenants.filter(pk=ids[0]).update(next_attempt_at=later)
    Message.all_tenants.filter(pk=ids[1]).update(status=MessageStatus.CANCELLED)
    # When the chunk is claimed
    claimed = delivery_sql.claim(ids, timezone.now())
    # Then only the due queued one is
    assert [m.id for m in claimed] == [ids[2]]
    assert Message.all_tenants.get(pk=ids[0]).status == MessageStatus.QUEUED
    assert Message.all_tenants.get(pk=ids[1]).status == MessageStatus.CANCELLED


def test_record__worker_still_holds_message__message_attempt_and_events_change_together(tenant):
    # Given a claimed message
    (message,) = delivery_sql.claim(queued(tenant, 1), timezone.now())
    # When its outcome is recorded
    assert delivery_sql.record(message, delivered_outcome(), timezone.now())
    # Then the message, its attempt and its timeline all say so, in order
    row = Message.all_tenants.get(pk=message.id)
    assert row.status == MessageStatus.DELIVERED and row.lease_expires_at is None
    assert row.sent_at is not None and row.delivered_at is not None
    attempt = DeliveryAttempt.objects.get(message_id=message.id)
    assert (attempt.outcome, attempt.provider_message_id, attempt.latency_ms) == (
        "delivered",
        "p-1",
        4,
    )
    assert list(row.events.values_list("status", flat=True)) == [
        "queued",
        "sending",
        "sent",
        "delivered",
    ]


def test_record__lease_expired_and_message_queued_again__nothing_recorded(tenant, settings):
    # Given a claimed message whose worker was too slow: the sweep queued it again
    settings.NOTIFY_SENDING_LEASE = 1
    ids = queued(tenant, 1)
    claimed_at = timezone.now()
    (message,) = delivery_sql.claim(ids, claimed_at)
    services.sweep(now=claimed_at + timedelta(seconds=5))
    events_before = MessageEvent.objects.filter(message_id=message.id).count()
    # When the slow worker records its outcome at last
    recorded = delivery_sql.record(message, delivered_outcome(), timezone.now())
    # Then nothing changes: the message is the next worker's, its old attempt stays abandoned
    assert recorded is False
    row = Message.all_tenants.get(pk=message.id)
    assert row.status == MessageStatus.QUEUED and row.delivered_at is None
    assert DeliveryAttempt.objects.get(message_id=message.id).outcome == "abandoned"
    assert MessageEvent.objects.filter(message_id=message.id).count() == events_before


def test_record__an_earlier_attempt_of_a_message_claimed_again__nothing_recorded(tenant):
    # Given a message claimed, queued again by the sweep, and claimed by a second worker
    ids = queued(tenant, 1)
    (first,) = delivery_sql.claim(ids, timezone.now())
    Message.all_tenants.filter(pk=first.id).update(status=MessageStatus.QUEUED)
    (second,) = delivery_sql.claim(ids, timezone.now())
    # When the first worker records its outcome
    recorded = delivery_sql.record(first, delivered_outcome(), timezone.now())
    # Then it changes nothing: the message belongs to the second attempt
    assert recorded is False and second.attempts == 2
    assert Message.all_tenants.get(pk=first.id).status == MessageStatus.SENDING
    assert delivery_sql.record(second, delivered_outcome(), timezone.now())


def test_insert_queued__id_already_taken__neither_message_nor_event_written(tenant):
    # Given a stored message
    (taken,) = queued(tenant, 1)
    events_before = MessageEvent.objects.count()
    clash = Message(
        id=taken,
        tenant=tenant,
        channel="email",
        recipient="x@example.com",
        subject="S",
        body="B",
    )
    event = MessageEvent(status=MessageStatus.QUEUED, created_at=timezone.now())
    # When a new message is stored under the same id
    with pytest.raises(IntegrityError), transaction.atomic():
        delivery_sql.insert_queued(clash, event)
    # Then no event was written for it
    assert MessageEvent.objects.count() == events_before
    assert Message.all_tenants.get(pk=taken).recipient == "r0@example.com"


def test_insert_queued__event_cannot_be_stored__message_not_stored_either(tenant):
    # Given a new message whose first event is broken (no time)
    message = Message(
        id="261203999999999999",
        tenant=tenant,
        channel="email",
        recipient="x@example.com",
        subject="S",
        body="B",
    )
    event = MessageEvent(status=MessageStatus.QUEUED, created_at=None)
    # When it is stored
    with pytest.raises(IntegrityError), transaction.atomic():
        delivery_sql.insert_queued(message, event)
    # Then the message is not there either: both or neither
    assert not Message.all_tenants.filter(pk="261203999999999999").exists()


def _prepared_statements() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("prepared", [True, False])
def test_record__prepared_statements_on_or_off__same_outcome_recorded(tenant, settings, prepared):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL connection's")
    # Given the setting an operator behind PgBouncer (transaction pooling) turns off
    settings.NOTIFY_DB_PREPARED_STATEMENTS = prepared
    # When two messages are claimed and their outcomes recorded
    claimed = delivery_sql.claim(queued(tenant, 2), timezone.now())
    recorded = [delivery_sql.record(m, delivered_outcome(), timezone.now()) for m in claimed]
    # Then both are recorded either way, with their attempts and events
    assert recorded == [True, True]
    ids = [m.id for m in claimed]
    assert set(Message.all_tenants.filter(pk__in=ids).values_list("status", flat=True)) == {
        MessageStatus.DELIVERED
    }
    assert DeliveryAttempt.objects.filter(message_id__in=ids, outcome="delivered").count() == 2
    assert MessageEvent.objects.filter(message_id__in=ids, status="delivered").count() == 2
    # And the connection keeps the outcome's statement prepared only when allowed to
    kept = [s for s in _prepared_statements() if "messaging_deliveryattempt" in s]
    assert bool(kept) is prepared


def test_prepared_statements__django_statements_after_ours__their_text_not_kept(tenant):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL connection's")
    # Given an outcome recorded through a prepared statement
    (message,) = delivery_sql.claim(queued(tenant, 1), timezone.now())
    assert delivery_sql.record(message, delivered_outcome(), timezone.now())
    # When Django's ORM then writes a large body (its values inlined in the statement text)
    queued(tenant, 3)
    Message.all_tenants.filter(pk=message.id).update(body="x" * 200_000)
    # Then the driver kept none of those statements' text (a batch of 1 MB bodies would
    # otherwise stay in the connection's memory)
    kept = connection.connection._prepared._counts
    assert not any(len(key[0]) > 10_000 for key in kept)
    assert connection.connection.prepare_threshold is None


@pytest.mark.django_db(transaction=True)
def test_prepared_cursor__kept_connection_died_between_requests__replaced_not_an_error():
    import psycopg
    from django.db import close_old_connections, connection

    from notify.messaging.ids import allocate_ids

    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL connection's")
    # Given a kept connection whose server process was ended between two requests
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    close_old_connections()  # (what Django does at the end of a request)
    params = connection.get_connection_params()
    params.pop("context", None)
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # When the next request's first statement is a prepared one
    ids = allocate_ids(2)
    # Then it ran on a new connection
    assert len(ids) == 2


def test_due_transactional__higher_priority__taken_before_older_messages(tenant):
    from notify.messaging.models import Priority
    from notify.messaging.services import create_message

    def queued(priority: int) -> str:
        draft = MessageDraft(channel="email", recipient="a@example.com", subject="S", body="B")
        return create_message(tenant=tenant, draft=replace(draft, priority=priority)).id

    older_normal, low, high = queued(Priority.NORMAL), queued(Priority.LOW), queued(Priority.HIGH)
    later = timezone.now() + timedelta(seconds=1)
    assert delivery_sql.due_transactional(later, 3) == [high, older_normal, low]
