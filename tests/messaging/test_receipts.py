"""Delivery reports (notify.messaging.receipts): a provider's report moves a `sent` message to
`delivered` or `failed` once; repeated, late, unknown or misdirected ones change nothing."""

from __future__ import annotations

import pytest
from django.utils import timezone

from notify.messaging import services
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus
from notify.messaging.receipts import record_receipt
from notify.messaging.services import MessageDraft, create_message
from notify.messaging.signals import message_finished
from tests.channels.test_http_transports import SMS_SECRET, StandInProvider


@pytest.fixture
def sms_provider(settings):  # noqa: ANN001, ANN201
    with StandInProvider(SMS_SECRET) as provider:
        settings.SMS_HTTP_URL = provider.url
        settings.SMS_HTTP_SECRET = SMS_SECRET
        yield provider
        assert provider.violations == []


@pytest.fixture
def finished(db):  # noqa: ANN001, ANN201
    sent: list[tuple[str, str]] = []

    def receiver(sender, message_id, status, **kwargs):  # noqa: ANN001, ANN003, ANN202
        sent.append((message_id, status))

    message_finished.connect(receiver)
    yield sent
    message_finished.disconnect(receiver)


@pytest.fixture
def sent_sms(tenant, sms_provider, deliver, monkeypatch) -> Message:  # noqa: ANN001
    """An SMS the provider accepted as `carrier-1`: sent, its report to come."""
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    sms_provider.answer(body={"status": "accepted", "message_id": "carrier-1"})
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(channel="sms", recipient="+8613800138000", body="Code 1234"),
    )
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    return message


def state(message: Message) -> tuple:
    message.refresh_from_db()
    return (
        message.status,
        message.error,
        message.error_code,
        message.delivered_at,
        message.failed_at,
        list(message.events.values_list("status", "detail")),
        list(message.delivery_attempts.values_list("outcome", "error", "error_code")),
    )


def receipt(django_capture_on_commit_callbacks, *args: str) -> bool:  # noqa: ANN001
    with django_capture_on_commit_callbacks(execute=True):
        return record_receipt(*args)


def test_record_receipt__delivered_for_a_sent_message__delivered_once_with_its_event(
    sent_sms, finished, django_capture_on_commit_callbacks
):
    # When
    changed = receipt(django_capture_on_commit_callbacks, "sms", "carrier-1", "delivered", "", "")
    # Then
    assert changed is True
    sent_sms.refresh_from_db()
    assert sent_sms.status == MessageStatus.DELIVERED
    assert sent_sms.delivered_at is not None and sent_sms.failed_at is None
    assert list(sent_sms.events.values_list("status", flat=True)) == [
        "queued",
        "sending",
        "sent",
        "delivered",
    ]
    assert finished == [(sent_sms.id, "delivered")]
    # (the attempt keeps its own outcome: what the send itself got)
    assert DeliveryAttempt.objects.get(message=sent_sms).outcome == "sent"


def test_record_receipt__same_report_twice__second_changes_nothing(
    sent_sms, finished, django_capture_on_commit_callbacks
):
    assert receipt(django_capture_on_commit_callbacks, "sms", "carrier-1", "delivered", "", "")
    before = state(sent_sms)
    # When the provider repeats it
    again = receipt(django_capture_on_commit_callbacks, "sms", "carrier-1", "delivered", "", "")
    # Then
    assert again is False
    assert state(sent_sms) == before
    assert finished == [(sent_sms.id, "delivered")]


def test_record_receipt__failed_with_a_code__failed_with_the_code_and_masked_text(
    sent_sms, finished, django_capture_on_commit_callbacks
):
    # When
    changed = receipt(
        django_capture_on_commit_callbacks,
        "sms",
        "carrier-1",
        "failed",
        "UNDELIV",
        "handset +8613800138000 unreachable",
    )
    # Then
    assert changed is True
    sent_sms.refresh_from_db()
    assert sent_sms.status == MessageStatus.FAILED
    assert sent_sms.error_code == "UNDELIV"
    assert "UNDELIV" in sent_sms.error and "unreachable" in sent_sms.error
    assert "+8613800138000" not in sent_sms.error
    assert sent_sms.failed_at is not None and sent_sms.delivered_at is None
    assert sent_sms.events.latest("created_at", "id").status == "failed"
    attempt = DeliveryAttempt.objects.get(message=sent_sms)
    assert (attempt.outcome, attempt.error_code) == ("sent", "")
    assert finished == [(sent_sms.id, "failed")]


def test_record_receipt__late_failure_after_delivered__changes_nothing(
    sent_sms, finished, django_capture_on_commit_callbacks
):
    assert receipt(django_capture_on_commit_callbacks, "sms", "carrier-1", "delivered", "", "")
    before = state(sent_sms)
    late = receipt(django_capture_on_commit_callbacks, "sms", "carrier-1", "failed", "X", "late")
    assert late is False
    assert state(sent_sms) == before


@pytest.mark.parametrize(
    ("channel", "provider_id", "status"),
    [
        ("sms", "carrier-unknown", "delivered"),
        ("push", "carrier-1", "delivered"),  # another channel's provider
        ("sms", "", "delivered"),
        ("sms", "carrier-1", "sent"),  # not a report's status
    ],
)
def test_record_receipt__unknown_id_channel_or_status__nothing_changes(
    sent_sms, finished, django_capture_on_commit_callbacks, channel, provider_id, status
):
    before = state(sent_sms)
    assert (
        receipt(django_capture_on_commit_callbacks, channel, provider_id, status, "", "") is False
    )
    assert state(sent_sms) == before
    assert finished == []


def test_record_receipt__report_on_an_earlier_attempt__nothing_changes(
    sent_sms, finished, django_capture_on_commit_callbacks
):
    # Given a later attempt of the message, which the provider knows by another id
    now = timezone.now()
    Message.all_tenants.filter(pk=sent_sms.pk).update(attempts=2)
    DeliveryAttempt.objects.create(
        message=sent_sms,
        number=2,
        started_at=now,
        finished_at=now,
        outcome="sent",
        provider_message_id="carrier-2",
    )
    before = state(sent_sms)
    # When the first attempt's report comes late
    late = receipt(django_capture_on_commit_callbacks, "sms", "carrier-1", "delivered", "", "")
    # Then
    assert late is False
    assert state(sent_sms) == before
    # And the latest attempt's report counts
    assert receipt(django_capture_on_commit_callbacks, "sms", "carrier-2", "delivered", "", "")


def test_record_receipt__message_not_sent__nothing_changes(
    tenant, finished, django_capture_on_commit_callbacks
):
    # Given a queued message whose (earlier) attempt carries the id
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(channel="sms", recipient="+8613800138000", body="b"),
    )
    DeliveryAttempt.objects.create(
        message=message, number=0, started_at=timezone.now(), provider_message_id="carrier-9"
    )
    before = state(message)
    assert not receipt(django_capture_on_commit_callbacks, "sms", "carrier-9", "delivered", "", "")
    assert state(message) == before


def test_record_receipt__long_code_and_text__cut_to_what_the_columns_hold(
    sent_sms, django_capture_on_commit_callbacks
):
    assert receipt(
        django_capture_on_commit_callbacks, "sms", "carrier-1", "failed", "C" * 200, "e" * 5000
    )
    sent_sms.refresh_from_db()
    assert sent_sms.error_code == "C" * 64
    assert len(sent_sms.error) < 1200
