"""`make run` without provider accounts: SMS and push are written to the outbox file."""

import json

from notify.messaging.models import MessageStatus
from notify.messaging.services import MessageDraft, create_message


def test_dev_transport__file__sms_without_provider_written_and_delivered(
    tenant, settings, tmp_path, deliver
):
    settings.NOTIFY_DEV_TRANSPORT = "file"
    settings.NOTIFY_DEV_OUTBOX = str(tmp_path / "outbox.jsonl")
    settings.SMS_HTTP_URL = ""
    message = create_message(
        tenant=tenant, draft=MessageDraft(channel="sms", recipient="13912345678", body="code 42")
    )
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    (line,) = (tmp_path / "outbox.jsonl").read_text().splitlines()
    assert json.loads(line) == {
        "id": message.id,
        "channel": "sms",
        "to": "13912345678",  # (the legacy-style number, as created)
        "subject": "",
        "body": "code 42",
    }


def test_dev_transport__off__sms_without_provider_fails_saying_what_to_set(
    tenant, settings, deliver
):
    settings.NOTIFY_DEV_TRANSPORT = ""
    settings.SMS_HTTP_URL = ""
    message = create_message(
        tenant=tenant, draft=MessageDraft(channel="sms", recipient="13912345678", body="code 42")
    )
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and "SMS_HTTP_URL" in message.error


def test_deploy_check__development_transport_set__warned(settings):
    from notify.channels.checks import no_development_transport

    settings.NOTIFY_DEV_TRANSPORT = "file"
    (warning,) = no_development_transport()
    assert warning.id == "channels.W001"
    settings.NOTIFY_DEV_TRANSPORT = ""
    assert no_development_transport() == []
