"""Email attachments: given in base64 with the message (or a batch), stored once, sent as MIME
parts; refused with a clear 400 where they cannot go, and never sent without their bytes."""

from __future__ import annotations

import base64

import pytest

from notify.messaging import services
from notify.messaging.attachments import MAX_ATTACHMENT_BYTES
from notify.messaging.models import AttachmentBlob, Message, MessageStatus

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8
INVOICE = {
    "filename": "invoice-2026-12.pdf",
    "content_type": "application/pdf",
    "content": base64.b64encode(PDF).decode(),
}


@pytest.fixture
def deliver_all(monkeypatch):  # noqa: ANN001, ANN201
    from notify.messaging import tasks

    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    monkeypatch.setattr(tasks.deliver_bulk, "apply_async", lambda: None)

    def run() -> None:
        for message_id in Message.all_tenants.filter(status=MessageStatus.QUEUED).values_list(
            "pk", flat=True
        ):
            services.deliver(message_id)

    return run


def parts(mail) -> list[tuple[str, str, bytes]]:  # noqa: ANN001
    return [
        (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
        for part in mail.message.iter_attachments()
    ]


def test_attachment__email__sent_as_a_mime_part_with_its_name_type_and_bytes(
    api_client, smtp_server, deliver_all
):
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "ann@example.com",
            "subject": "Your invoice",
            "body": "Attached.",
            "attachments": [INVOICE],
        },
        format="json",
    )
    assert answer.status_code == 202, answer.content
    deliver_all()
    (mail,) = smtp_server.received
    assert parts(mail) == [("invoice-2026-12.pdf", "application/pdf", PDF)]
    assert "Attached." in mail.message.get_body(("plain",)).get_content()


def test_attachment__batch__stored_once_every_recipient_gets_it(
    api_client, smtp_server, deliver_all
):
    answer = api_client.post(
        "/v2/messages/batch",
        {
            "channel": "email",
            "subject": "Price list",
            "body": "Attached.",
            "attachments": [INVOICE],
            "recipients": [{"to": f"user{n}@example.com"} for n in range(3)],
        },
        format="json",
    )
    assert answer.status_code == 202, answer.content
    deliver_all()
    assert AttachmentBlob.all_tenants.count() == 1
    assert [parts(mail) for mail in smtp_server.received] == [
        [("invoice-2026-12.pdf", "application/pdf", PDF)]
    ] * 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": "sms", "to": "+8613912345678"}, "attachments"),
        ({"attachments": [{**INVOICE, "content": "not base64!"}]}, "attachments"),
        ({"attachments": [{**INVOICE, "filename": "../../etc/passwd"}]}, "attachments"),
        ({"attachments": [{**INVOICE, "filename": "a\r\nBcc: x@y.example"}]}, "attachments"),
        ({"attachments": [{**INVOICE, "content_type": "pdf"}]}, "attachments"),
        ({"attachments": [INVOICE] * 11}, "attachments"),
        (
            {
                "attachments": [
                    {
                        **INVOICE,
                        "content": base64.b64encode(b"x" * (MAX_ATTACHMENT_BYTES + 1)).decode(),
                    }
                ]
            },
            "attachments",
        ),
    ],
)
def test_attachment__unusable__400_naming_it_nothing_stored(api_client, change, field):
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "ann@example.com",
            "subject": "s",
            "body": "b",
            "attachments": [INVOICE],
            **change,
        },
        format="json",
    )
    assert answer.status_code == 400, answer.content
    assert any(name.startswith(field) for name in answer.json()["error"]["fields"])
    assert not Message.all_tenants.exists() and not AttachmentBlob.all_tenants.exists()


def test_attachment__missing_from_storage_at_send__failed_never_sent_without_it(
    api_client, smtp_server, deliver_all
):
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "ann@example.com",
            "subject": "s",
            "body": "b",
            "attachments": [INVOICE],
        },
        format="json",
    )
    AttachmentBlob.all_tenants.all().delete()
    deliver_all()
    message = Message.all_tenants.get(pk=answer.json()["id"])
    assert message.status == MessageStatus.FAILED and "attachment" in message.error
    assert smtp_server.received == []
