"""Real processes: a worker started with its beat (`celery -A notify worker -B`) delivers the
messages whose broker wake-up never reached it, and the ones whose worker died mid-send."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging.models import Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message
from notify.tenants.services import create_tenant

pytestmark = pytest.mark.e2e


def _status(message_id: str) -> str:
    return Message.all_tenants.filter(pk=message_id).values_list("status", flat=True).get()


def test_message_whose_wake_up_was_lost__delivered_by_the_sweep(platform, settings):
    # Given a message committed to the database whose broker wake-up went nowhere (this test
    # process publishes to a broker of its own, which no worker reads), accepted by a process
    # configured as the platform's (published again after 2 s)
    settings.NOTIFY_REPUBLISH_AFTER = 2
    tenant, _ = create_tenant("e2e-lost", name="E2E Lost")
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="email", recipient="lost@example.com", subject="Code 4711", body="4711"
        ),
    )
    # When the running worker's sweep finds it
    # Then the mail arrives once and the message is delivered
    platform.wait_for(
        lambda: _status(message.id) == MessageStatus.DELIVERED, what="the message delivered"
    )
    received = [m for m in platform.smtp.received if m.message["X-Notify-Message-Id"] == message.id]
    assert len(received) == 1


def test_message_left_sending_by_a_dead_worker__resumed_and_delivered(platform):
    # Given a message a worker claimed and then died with (its lease ran out a while ago)
    tenant, _ = create_tenant("e2e-dead", name="E2E Dead worker")
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="email", recipient="resume@example.com", subject="Code 815", body="815"
        ),
    )
    Message.all_tenants.filter(pk=message.id).update(
        status=MessageStatus.SENDING,
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    # When the running worker's sweep finds it
    # Then it is sent by a new attempt and delivered, and its timeline tells what happened
    platform.wait_for(
        lambda: _status(message.id) == MessageStatus.DELIVERED, what="the message delivered"
    )
    message.refresh_from_db()
    assert message.attempts == 2
    assert message.events.filter(detail__contains="lease expired").count() == 1


def test_batch_through_the_api__every_recipient_gets_one_mail(platform):
    # Given a tenant with an API key
    import requests

    _, api_key = create_tenant("e2e-batch", name="E2E Batch")
    recipients = [{"to": f"member{i}@example.com"} for i in range(25)]
    # When it sends a batch of 25 through the API (published in bulk chunks)
    response = requests.post(
        f"{platform.base_url}/v2/messages/batch",
        json={"channel": "email", "subject": "Newsletter", "body": "Hi", "recipients": recipients},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    # Then the worker's bulk lane delivers each once
    platform.wait_for(
        lambda: (
            Message.all_tenants.filter(batch_id=batch_id, status=MessageStatus.DELIVERED).count()
            == 25
        ),
        what="the batch delivered",
    )
    got = sorted(m.rcpt_tos[0] for m in platform.smtp.received if m.subject == "Newsletter")
    assert got == sorted(r["to"] for r in recipients)
