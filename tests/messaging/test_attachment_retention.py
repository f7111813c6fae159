"""Attachment bytes are not kept forever: the sweep deletes each blob
NOTIFY_ATTACHMENT_RETENTION_DAYS after the latest message naming it was due, and a message
sent after that fails for good, saying why, never without its attachment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging import services
from notify.messaging.models import AttachmentBlob, Message, MessageStatus
from tests.api.test_attachments import INVOICE

WITH_INVOICE = {"channel": "email", "to": "ann@example.com", "subject": "S", "body": "B"}


@pytest.fixture
def now(time_machine, settings):  # noqa: ANN001, ANN201
    settings.NOTIFY_ATTACHMENT_RETENTION_DAYS = 7
    moment = timezone.now()
    time_machine.move_to(moment, tick=False)
    return moment


@pytest.fixture(autouse=True)
def no_wake_ups(monkeypatch):  # noqa: ANN001
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)


def send(api_client, **fields):  # noqa: ANN001, ANN003, ANN201
    body = {**WITH_INVOICE, "attachments": [INVOICE], **fields}
    answer = api_client.post("/v2/messages", body, format="json")
    assert answer.status_code == 202, answer.content
    return answer.json()["id"]


def test_sweep__attachment_past_its_retention__deleted_and_a_later_send_fails_saying_why(
    api_client, now, time_machine, smtp_server
):
    # Given a message with an attachment, not sent yet (its worker was down)
    message_id = send(api_client)
    # When the sweep runs within the retention, then after it
    time_machine.shift(timedelta(days=6))
    assert services.sweep().expired_attachments == 0
    assert AttachmentBlob.all_tenants.count() == 1
    time_machine.shift(timedelta(days=2))
    assert services.sweep().expired_attachments == 1
    # Then the bytes are gone, and the message fails for good instead of going out without them
    assert AttachmentBlob.all_tenants.count() == 0
    services.deliver(message_id)
    message = Message.all_tenants.get(pk=message_id)
    assert message.status == MessageStatus.FAILED
    assert "no longer stored" in message.error
    assert "NOTIFY_ATTACHMENT_RETENTION_DAYS" in message.error
    assert smtp_server.received == []


def test_store__same_attachment_sent_again_later__kept_for_the_later_message(
    api_client, now, time_machine
):
    send(api_client)
    time_machine.shift(timedelta(days=5))
    send(api_client)  # the same bytes: one blob, kept longer
    time_machine.shift(timedelta(days=5))
    assert services.sweep().expired_attachments == 0
    assert AttachmentBlob.all_tenants.get().keep_until == now + timedelta(days=12)


def test_store__scheduled_message__attachment_kept_until_after_it_is_due(api_client, now):
    send_at = now + timedelta(days=30)
    send(api_client, send_at=send_at.isoformat())
    assert AttachmentBlob.all_tenants.get().keep_until == send_at + timedelta(days=7)
