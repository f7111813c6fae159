"""The sweep: the database holds the pending work, broker messages are only wake-ups. A publish
that failed, a queue the broker lost and a worker that died mid-send delay a message; none
loses it, and none sends it twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging import delivery_sql, services
from notify.messaging.models import Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message


@pytest.fixture
def broker(monkeypatch, settings) -> dict:  # noqa: ANN001
    """A broker the test can take down: `published` holds the wake-ups it accepted, one per
    message (coalescing, tested in test_wakeups.py, is off here)."""
    settings.NOTIFY_COALESCE_WAKEUPS = False
    state = {"up": True, "published": []}

    def publish(message_id: str) -> None:
        if not state["up"]:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        state["published"].append(message_id)

    monkeypatch.setattr(services, "enqueue_delivery", publish)
    return state


def accept(tenant, django_capture_on_commit_callbacks, to="ana@example.com") -> Message:  # noqa: ANN001
    """What POST /v2/messages does: the row committed, then its wake-up published."""
    with django_capture_on_commit_callbacks(execute=True):
        message = create_message(
            tenant=tenant,
            draft=MessageDraft(channel="email", recipient=to, subject="Code", body="123456"),
        )
    return message


def test_sweep__broker_down_when_accepted__published_later_and_sent_once(
    tenant, broker, deliver, smtp_server, settings, time_machine, django_capture_on_commit_callbacks
):
    # Given the broker is down when a message is accepted
    settings.NOTIFY_REPUBLISH_AFTER = 30
    time_machine.move_to(timezone.now(), tick=False)
    broker["up"] = False
    message = accept(tenant, django_capture_on_commit_callbacks)
    assert Message.all_tenants.get(pk=message.pk).status == MessageStatus.QUEUED
    # When the broker is back and the sweep runs before the message's republish time
    broker["up"] = True
    services.sweep()
    # Then it waits (a worker may still have a wake-up for it)
    assert broker["published"] == []
    # When the sweep runs once that time has passed
    time_machine.shift(timedelta(seconds=31))
    result = services.sweep()
    # Then the message is published once, and its task sends it
    assert result.published == 1 and broker["published"] == [message.id]
    deliver(message.id)
    deliver(message.id)
    assert len(smtp_server.received) == 1
    assert Message.all_tenants.get(pk=message.pk).status == MessageStatus.DELIVERED


def test_sweep__broker_lost_its_queue__every_message_published_again_once(
    tenant, broker, settings, time_machine, django_capture_on_commit_callbacks
):
    # Given 50 accepted messages whose wake-ups the broker then lost
    settings.NOTIFY_REPUBLISH_AFTER = 30
    time_machine.move_to(timezone.now(), tick=False)
    messages = [accept(tenant, django_capture_on_commit_callbacks) for _ in range(50)]
    broker["published"].clear()
    # When the sweep runs after their republish time, 20 at a time
    time_machine.shift(timedelta(seconds=31))
    counts = [services.sweep(limit=20).published for _ in range(4)]
    # Then each is published exactly once, oldest first
    assert counts == [20, 20, 10, 0]
    assert sorted(broker["published"]) == sorted(m.id for m in messages)


def test_sweep__worker_died_mid_send__queued_again_after_its_lease_and_delivered(
    tenant, broker, deliver, smtp_server, settings, time_machine, django_capture_on_commit_callbacks
):
    # Given a message a worker claimed, then died before recording anything
    settings.NOTIFY_SENDING_LEASE = 300
    time_machine.move_to(timezone.now(), tick=False)
    message = accept(tenant, django_capture_on_commit_callbacks)
    assert delivery_sql.claim([message.id], timezone.now())
    broker["published"].clear()
    # When the sweep runs within the lease
    time_machine.shift(timedelta(seconds=299))
    assert services.sweep().resumed == 0
    # Then the message is left to its worker
    assert Message.all_tenants.get(pk=message.pk).status == MessageStatus.SENDING
    # When the sweep runs after the lease
    time_machine.shift(timedelta(seconds=2))
    result = services.sweep()
    # Then it is queued again (the timeline says why), published, and delivered by a new task
    assert result.resumed == 1 and broker["published"] == [message.id]
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert "lease expired" in message.events.latest("created_at", "id").detail
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED and message.attempts == 2
    assert len(smtp_server.received) == 1


def test_sweep__finished_and_scheduled_messages__left_alone(
    tenant,
    broker,
    deliver,
    smtp_server,
    settings,
    time_machine,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    # Given a delivered message, and one waiting for its retry in an hour
    settings.NOTIFY_REPUBLISH_AFTER = 30
    settings.NOTIFY_RETRY_DELAYS = [3600]
    monkeypatch.setattr(services, "backoff_jitter", lambda: 1.0)
    time_machine.move_to(timezone.now(), tick=False)
    delivered = accept(tenant, django_capture_on_commit_callbacks)
    deliver(delivered.id)
    waiting = accept(tenant, django_capture_on_commit_callbacks, to="busy@example.com")
    deliver(waiting.id)
    broker["published"].clear()
    # When the sweep runs a few minutes later
    time_machine.shift(timedelta(minutes=5))
    result = services.sweep()
    # Then it publishes nothing
    assert (result.resumed, result.published) == (0, 0)
    assert broker["published"] == []
    # And the retry is published when it is due
    time_machine.shift(timedelta(minutes=56))
    assert services.sweep().published == 1
    assert broker["published"] == [waiting.id]


def test_scheduled_message__sent_at_its_time__not_before_and_never_once_cancelled(
    tenant, broker, deliver, smtp_server, time_machine, django_capture_on_commit_callbacks
):
    # Given two messages scheduled for an hour from now
    time_machine.move_to(timezone.now(), tick=False)
    send_at = timezone.now() + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        kept = create_message(
            tenant=tenant,
            draft=MessageDraft(channel="email", recipient="a@example.com", subject="S", body="B"),
            send_at=send_at,
        )
        cancelled = create_message(
            tenant=tenant,
            draft=MessageDraft(channel="email", recipient="b@example.com", subject="S", body="B"),
            send_at=send_at,
        )
    # Then nothing is published when they are accepted, nor by a sweep before their time
    assert broker["published"] == []
    time_machine.shift(timedelta(minutes=59))
    assert services.sweep().published == 0
    deliver(kept.id)  # (an early wake-up sends nothing)
    assert smtp_server.received == []
    # When one is cancelled, and their time comes
    services.cancel_message(cancelled, by="test")
    time_machine.shift(timedelta(minutes=1))
    services.sweep()
    # Then only the other is published and sent
    assert broker["published"] == [kept.id]
    deliver(kept.id)
    deliver(cancelled.id)
    assert [mail.rcpt_tos for mail in smtp_server.received] == [["a@example.com"]]
    assert Message.all_tenants.get(pk=cancelled.id).status == MessageStatus.CANCELLED


def test_sweep__lost_wake_ups_of_both_lanes__each_published_in_its_own_lane(
    tenant, broker, settings, time_machine, monkeypatch, django_capture_on_commit_callbacks
):
    # Given a single message and a batch of two whose wake-ups were lost
    settings.NOTIFY_REPUBLISH_AFTER = 30
    wakeups: list[int] = []
    monkeypatch.setattr(services, "publish_bulk_wakeups", lambda n: wakeups.append(n) or 1)
    time_machine.move_to(timezone.now(), tick=False)
    single = accept(tenant, django_capture_on_commit_callbacks)
    batch = services.create_batch(
        tenant=tenant,
        drafts=[
            MessageDraft(channel="email", recipient=f"{n}@example.com", subject="S", body="B")
            for n in ("a", "b")
        ],
    )
    broker["published"].clear()
    wakeups.clear()
    # When the sweep publishes them again
    time_machine.shift(timedelta(seconds=31))
    assert services.sweep().published == 3
    # Then the single message is a transactional wake-up, the batch's two a bulk lane wake-up
    assert broker["published"] == [single.id]
    assert wakeups == [len(batch.message_ids)]


def test_lanes__tasks_routed__transactional_and_bulk_queues_apart(settings):
    from notify.celery import app

    route = app.amqp.router.route
    assert route({}, "messaging.deliver_message")["queue"].name == (
        settings.NOTIFY_TRANSACTIONAL_QUEUE
    )
    assert route({}, "messaging.deliver_bulk")["queue"].name == settings.NOTIFY_BULK_QUEUE


def test_lanes__calls_to_tenants_endpoints__their_own_queue_never_the_codes_one(settings):
    from notify.celery import app

    route = app.amqp.router.route
    for task in ("messaging.deliver_webhook", "compat.deliver_callback"):
        assert route({}, task)["queue"].name == settings.NOTIFY_HOOKS_QUEUE
    assert settings.NOTIFY_HOOKS_QUEUE != settings.NOTIFY_TRANSACTIONAL_QUEUE


def test_sweep__idempotency_keys_past_their_expiry__deleted_with_their_answers(
    tenant, settings, time_machine
):
    # Given a send request from yesterday and one from now
    from notify.messaging import requests as send_requests
    from notify.messaging.models import SendRequest

    settings.NOTIFY_IDEMPOTENCY_TTL = 24 * 3600
    time_machine.move_to(timezone.now(), tick=False)
    old = send_requests.begin(tenant, "v2/messages", "yesterday", "f" * 64)
    time_machine.shift(timedelta(hours=25))
    fresh = send_requests.begin(tenant, "v2/messages", "today", "f" * 64)
    # When the sweep runs
    result = services.sweep()
    # Then the expired one is gone and the fresh one kept
    assert result.expired_requests == 1
    assert list(SendRequest.all_tenants.values_list("pk", flat=True)) == [fresh.pk]
    assert not SendRequest.all_tenants.filter(pk=old.pk).exists()
