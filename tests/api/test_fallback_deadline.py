"""Fallback channels and deadlines: a message refused for good (or past its deadline) goes on to
the next channel of its `fallback`, once; a message not sent by its deadline fails saying so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging import services
from notify.messaging.models import Message, MessageEvent, MessageStatus


@pytest.fixture
def run(django_capture_on_commit_callbacks, monkeypatch):  # noqa: ANN001, ANN201
    """Delivers every queued message as a worker would, until none is left."""
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)

    def deliver_all() -> None:
        for _ in range(5):
            queued = list(
                Message.all_tenants.filter(status=MessageStatus.QUEUED).values_list("pk", flat=True)
            )
            if not queued:
                return
            for message_id in queued:
                with django_capture_on_commit_callbacks(execute=True):
                    services.deliver(message_id)

    return deliver_all


@pytest.fixture
def sms_outbox(settings, tmp_path):  # noqa: ANN001, ANN201
    settings.NOTIFY_DEV_TRANSPORT = "file"
    settings.NOTIFY_DEV_OUTBOX = str(tmp_path / "outbox.jsonl")
    settings.SMS_HTTP_URL = ""
    return tmp_path / "outbox.jsonl"


def test_fallback__email_refused_for_good__sms_sent_once_with_the_text(
    api_client, smtp_server, sms_outbox, run
):
    # Given an email to an address the server refuses, with an SMS fallback
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "reject-me@example.com",
            "subject": "Your code",
            "html": "<p>Code <b>4821</b></p>",
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        },
        format="json",
    )
    assert answer.status_code == 202, answer.content
    email_id = answer.json()["id"]
    # When it is delivered
    run()
    # Then the email failed, and an SMS with its text went out, once
    email = Message.all_tenants.get(pk=email_id)
    assert email.status == MessageStatus.FAILED
    (sms,) = Message.all_tenants.filter(channel="sms")
    assert sms.status == MessageStatus.DELIVERED and sms.params["fallback_of"] == email_id
    assert (sms.recipient, sms.subject, sms.body) == ("+8613912345678", "Your code", "Code 4821")
    assert len(sms_outbox.read_text().splitlines()) == 1
    assert MessageEvent.objects.filter(
        message_id=email_id, detail=f"falling back to sms: message {sms.id}"
    ).exists()


def test_deadline__passed_before_sending__failed_saying_so_and_falls_back(
    api_client, sms_outbox, run, smtp_server
):
    deadline = timezone.now() + timedelta(seconds=1)
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "ann@example.com",
            "subject": "Flash sale",
            "body": "Ends soon",
            "deadline": deadline.isoformat(),
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        },
        format="json",
    )
    assert answer.status_code == 202, answer.content
    Message.all_tenants.filter(pk=answer.json()["id"]).update(
        params={
            "deadline": (timezone.now() - timedelta(seconds=1)).isoformat(),
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        }
    )
    run()
    email = Message.all_tenants.get(pk=answer.json()["id"])
    assert email.status == MessageStatus.FAILED and "deadline" in email.error
    assert smtp_server.received == []
    assert Message.all_tenants.get(channel="sms").status == MessageStatus.DELIVERED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fallback", [{"channel": "sms", "to": "not a number"}]),
        ("fallback", [{"channel": "fax", "to": "1"}]),
        ("fallback", [{"channel": "sms", "to": "+8613912345678"}] * 4),
        ("deadline", "2000-01-01T00:00:00Z"),
    ],
)
def test_fallback_or_deadline__invalid__400_naming_it(api_client, field, value):
    answer = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "ann@example.com", "subject": "s", "body": "b", field: value},
        format="json",
    )
    assert answer.status_code == 400 and field in answer.json()["error"]["fields"]
    assert not Message.all_tenants.exists()


def test_deadline__before_send_at__400(api_client):
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "ann@example.com",
            "subject": "s",
            "body": "b",
            "send_at": (timezone.now() + timedelta(hours=2)).isoformat(),
            "deadline": (timezone.now() + timedelta(hours=1)).isoformat(),
        },
        format="json",
    )
    assert answer.status_code == 400 and "deadline" in answer.json()["error"]["fields"]


def test_fallback__failure_announced_twice__falls_back_once(
    api_client, smtp_server, sms_outbox, run
):
    from notify.messaging.fallback import on_message_finished

    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "reject-me@example.com",
            "subject": "s",
            "body": "b",
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        },
        format="json",
    )
    run()
    on_message_finished(sender=None, message_id=answer.json()["id"], status="failed")
    assert Message.all_tenants.filter(channel="sms").count() == 1
