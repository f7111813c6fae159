"""Transactional wake-ups, coalesced (notify/messaging/wakeups.py): while one is published and
not taken, new messages publish none; the worker that takes it sends every due message of the
lane; a failed publish leaves the next message free to publish again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging import services, wakeups
from notify.messaging.models import Lane, Message, MessageStatus
from notify.messaging.services import MessageDraft, create_batch, create_message
from notify.messaging.tasks import deliver_due_transactional, deliver_message

REDIS = "redis://127.0.0.1:6379/4"


@pytest.fixture(params=["redis", "no-redis"])
def coalescing(request, settings):  # noqa: ANN001, ANN201
    """With Redis the wake-ups coalesce; without it (make run) each message publishes."""
    settings.REDIS_URL = REDIS if request.param == "redis" else ""
    settings.NOTIFY_TRANSACTIONAL_QUEUE = "wakeup-tests.transactional"
    wakeups.not_pending()
    yield request.param == "redis"
    wakeups.not_pending()


@pytest.fixture
def published(monkeypatch) -> list[tuple]:  # noqa: ANN001
    """The wake-ups that reached the broker: (task, args)."""
    sent: list[tuple] = []
    monkeypatch.setattr(
        deliver_message, "apply_async", lambda args=(), **kw: sent.append(("one", tuple(args)))
    )
    monkeypatch.setattr(
        deliver_due_transactional, "apply_async", lambda *a, **kw: sent.append(("helper", ()))
    )
    return sent


@pytest.fixture
def flaky_broker(monkeypatch) -> list[str]:  # noqa: ANN001
    """A broker that refuses the first wake-up and takes the rest; the ids it was given."""
    attempts: list[str] = []

    def flaky(args=(), **kwargs):  # noqa: ANN001, ANN003, ANN202
        attempts.append(args[0])
        if len(attempts) == 1:
            raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(deliver_message, "apply_async", flaky)
    return attempts


def code(tenant, to: str, send_at=None) -> Message:  # noqa: ANN001
    return create_message(
        tenant=tenant,
        draft=MessageDraft(channel="email", recipient=to, subject="Your code", body="123456"),
        send_at=send_at,
    )


def test_accept__wake_up_pending__publishes_none(
    tenant, coalescing, published, django_capture_on_commit_callbacks
):
    # Given a first code whose wake-up is published and not yet taken
    with django_capture_on_commit_callbacks(execute=True):
        first = code(tenant, "a@example.com")
    # When two more codes are accepted
    with django_capture_on_commit_callbacks(execute=True):
        code(tenant, "b@example.com")
        code(tenant, "c@example.com")
    # Then with Redis only the first published (its worker takes the others); without, each
    if coalescing:
        assert published == [("one", (first.id,))]
    else:
        assert len(published) == 3


def test_wake_up__taken__sends_every_due_transactional_message(
    tenant, coalescing, published, smtp_server, django_capture_on_commit_callbacks
):
    # Given three due codes, one scheduled for tomorrow, and a bulk batch
    with django_capture_on_commit_callbacks(execute=True):
        codes = [code(tenant, f"{n}@example.com") for n in "abc"]
        later = code(tenant, "later@example.com", send_at=timezone.now() + timedelta(days=1))
    campaign = create_batch(
        tenant=tenant,
        drafts=[MessageDraft(channel="email", recipient="x@example.com", subject="N", body="b")],
        lane=Lane.BULK,
    )
    # When a worker takes the first wake-up
    deliver_message.apply(args=[codes[0].id])
    # Then every due code went out, the scheduled one and the campaign's message wait
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert Message.all_tenants.get(pk=later.pk).status == MessageStatus.QUEUED
    bulk = Message.all_tenants.get(pk=campaign.message_ids[0])
    assert bulk.status == MessageStatus.QUEUED
    # and once the helper it offered is taken too, the next code publishes its own wake-up
    deliver_due_transactional.apply()
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        code(tenant, "d@example.com")
    assert [task for task, _ in published] == ["one"]


def test_wake_up__taken_twice__each_code_sent_once(
    tenant, coalescing, published, smtp_server, django_capture_on_commit_callbacks
):
    # Given two codes
    with django_capture_on_commit_callbacks(execute=True):
        first = code(tenant, "a@example.com")
        code(tenant, "b@example.com")
    # When the broker hands the wake-up over twice, and a helper runs too
    deliver_message.apply(args=[first.id])
    deliver_message.apply(args=[first.id])
    deliver_due_transactional.apply()
    # Then each code was sent once
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == ["a@example.com", "b@example.com"]


def test_publish__broker_down__next_message_publishes_again(
    tenant, coalescing, flaky_broker, django_capture_on_commit_callbacks
):
    # Given a broker that refuses the first publish, then takes them
    attempts = flaky_broker
    # When two codes are accepted one after the other
    with django_capture_on_commit_callbacks(execute=True):
        first = code(tenant, "a@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        second = code(tenant, "b@example.com")
    # Then the second published (the failed one left nothing pending); both rows wait queued
    assert attempts == [first.id, second.id]
    assert Message.all_tenants.get(pk=first.pk).status == MessageStatus.QUEUED


def test_burst__more_than_one_due__helper_published_to_share_it(
    tenant, coalescing, published, smtp_server, django_capture_on_commit_callbacks
):
    # Given a burst of five codes, the first wake-up taken by a worker
    with django_capture_on_commit_callbacks(execute=True):
        codes = [code(tenant, f"{n}@example.com") for n in range(5)]
    published.clear()
    wakeups.not_pending()
    # When the worker drains the lane
    taken = services.deliver_due_transactional()
    # Then it sent all five, one at a time, and offered the rest to another worker as it went
    assert taken == 5
    assert len(smtp_server.received) == 5
    assert ("helper", ()) in published
    assert all(
        m.status == MessageStatus.DELIVERED
        for m in Message.all_tenants.filter(pk__in=[c.pk for c in codes])
    )


def test_sweep__stale_pending_mark__codes_published_again(
    tenant, coalescing, published, settings, django_capture_on_commit_callbacks
):
    # Given a code whose wake-up was lost with the mark still set (no worker took it)
    if not coalescing:
        pytest.skip("without Redis there is no mark")
    with django_capture_on_commit_callbacks(execute=True):
        stranded = code(tenant, "a@example.com")
    assert wakeups.cover(1) is False  # (the mark is set: nothing to publish)
    published.clear()
    # When the sweep runs after the lane's republish delay
    later = timezone.now() + timedelta(seconds=settings.NOTIFY_TRANSACTIONAL_REPUBLISH_AFTER + 1)
    services.sweep(now=later)
    # Then the code is published again (the stale mark did not swallow it)
    assert published == [("one", (stranded.id,))]


def test_sweep__campaign_backlog_larger_than_its_limit__codes_still_published(
    tenant, coalescing, published, django_capture_on_commit_callbacks
):
    # Given a campaign's overdue backlog and one overdue code, the code accepted last
    campaign = create_batch(
        tenant=tenant,
        drafts=[
            MessageDraft(channel="email", recipient=f"{n}@example.com", subject="N", body="b")
            for n in range(5)
        ],
        lane=Lane.BULK,
    )
    with django_capture_on_commit_callbacks(execute=True):
        late = code(tenant, "code@example.com")
    published.clear()
    wakeups.not_pending()
    # When a sweep allowed 3 messages per lane runs an hour later
    later = timezone.now() + timedelta(hours=1)
    services.sweep(now=later, limit=3)
    # Then the code is among those published again, whatever the campaign's backlog, and the
    # campaign had its own 3
    assert ("one", (late.id,)) in published
    republished = Message.all_tenants.filter(pk__in=campaign.message_ids, republish_at__gt=later)
    assert republished.count() == 3


def test_wake_up__nothing_coalesced_into_it__sends_its_own_message_only(
    tenant, coalescing, published, smtp_server, monkeypatch, django_capture_on_commit_callbacks
):
    # Given a code with its own wake-up, and another due code whose wake-up is elsewhere
    if not coalescing:
        pytest.skip("without Redis it is not known what was coalesced: the lane is drained")
    with django_capture_on_commit_callbacks(execute=True):
        own = code(tenant, "a@example.com")
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    with django_capture_on_commit_callbacks(execute=True):
        other = code(tenant, "b@example.com")
    # When a worker takes the first wake-up (no message counted into it)
    deliver_message.apply(args=[own.id])
    # Then it sent its own code and looked no further (no lane query on an idle send)
    assert [m.rcpt_tos[0] for m in smtp_server.received] == ["a@example.com"]
    assert Message.all_tenants.get(pk=other.pk).status == MessageStatus.QUEUED


def codes_to(tenant, *recipients: str) -> list[str]:  # noqa: ANN001
    drafts = [
        MessageDraft(channel="email", recipient=to, subject="Your code", body="123456")
        for to in recipients
    ]
    return create_batch(tenant=tenant, drafts=drafts, lane=Lane.TRANSACTIONAL).message_ids


def test_accept__one_send_to_three__one_wake_up_sends_all_three(
    tenant, coalescing, published, smtp_server, django_capture_on_commit_callbacks
):
    # Given a transactional send to three recipients
    with django_capture_on_commit_callbacks(execute=True):
        ids = codes_to(tenant, "a@example.com", "b@example.com", "c@example.com")
    # Then with Redis it published one wake-up for the three (without, one each)
    if coalescing:
        assert published == [("one", (ids[0],))]
    else:
        assert sorted(args for _, args in published) == sorted((pk,) for pk in ids)
    # When a worker takes that first wake-up
    deliver_message.apply(args=[ids[0]])
    # Then all three were sent, once each
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]


def test_accept__send_to_three_while_wake_up_pending__publishes_none(
    tenant, coalescing, published, django_capture_on_commit_callbacks
):
    # Given a code whose wake-up is published and not yet taken
    if not coalescing:
        pytest.skip("without Redis every message publishes")
    with django_capture_on_commit_callbacks(execute=True):
        first = code(tenant, "a@example.com")
    # When a send to three more is accepted
    with django_capture_on_commit_callbacks(execute=True):
        codes_to(tenant, "b@example.com", "c@example.com", "d@example.com")
    # Then nothing more was published, and the pending wake-up counts all four
    assert published == [("one", (first.id,))]
    assert wakeups.take() is True


def test_publish__send_to_three_broker_down__next_send_publishes_again(
    tenant, coalescing, flaky_broker, django_capture_on_commit_callbacks
):
    # Given a broker that refuses the first publish, then takes them
    attempts = flaky_broker
    # When a send to two fails to publish, and a code follows
    with django_capture_on_commit_callbacks(execute=True):
        pair = codes_to(tenant, "a@example.com", "b@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        later = code(tenant, "c@example.com")
    # Then the code published its own wake-up (the failed one left nothing pending)
    assert attempts[0] == pair[0] and attempts[-1] == later.id
    # and the sweep publishes the pair again after the lane's republish delay
    attempts.clear()
    wakeups.not_pending()
    services.sweep(now=timezone.now() + timedelta(hours=1))
    assert set(pair) & set(attempts)
