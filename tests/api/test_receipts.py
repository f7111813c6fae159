"""`POST /v2/receipts/http/<channel>`: the HTTP providers' delivery reports, signed with the
channel's shared secret (docs/http-providers.md). Bad input is a 4xx in JSON, never a 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from django.test import Client

from notify.api.receipts import MAX_REPORT_BYTES
from notify.messaging import services
from notify.messaging.models import Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message
from notify.tenants.services import create_tenant
from tests.channels.test_http_transports import PUSH_SECRET, SMS_SECRET, StandInProvider


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The protocol's signature headers, computed here from the document."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_NOTIFY_TIMESTAMP": stamp, "HTTP_X_NOTIFY_SIGNATURE": f"v1={digest}"}


def report(
    channel: str = "sms",
    body: dict | bytes | None = None,
    secret: str = SMS_SECRET,
    timestamp: int | None = None,
    **headers: str,
):  # noqa: ANN201
    if body is None:
        body = {"message_id": "carrier-1", "status": "delivered"}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Client().post(
        f"/v2/receipts/http/{channel}",
        data=raw,
        content_type="application/json",
        **{**signed_headers(secret, raw, timestamp), **headers},
    )


@pytest.fixture
def secrets(settings) -> None:  # noqa: ANN001
    settings.SMS_HTTP_SECRET = SMS_SECRET
    settings.PUSH_HTTP_SECRET = PUSH_SECRET


@pytest.fixture
def sent_sms(tenant, settings, secrets, django_capture_on_commit_callbacks, monkeypatch):  # noqa: ANN001, ANN201
    """An SMS the stand-in provider accepted as `carrier-1`: sent, its report to come."""
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    with StandInProvider(SMS_SECRET) as provider:
        settings.SMS_HTTP_URL = provider.url
        provider.answer(body={"status": "accepted", "message_id": "carrier-1"})
        message = create_message(
            tenant=tenant,
            draft=MessageDraft(channel="sms", recipient="+8613800138000", body="Code 1234"),
        )
        with django_capture_on_commit_callbacks(execute=True):
            services.deliver(message.id)
        assert provider.violations == []
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
        list(message.events.values_list("status", "detail")),
    )


def test_receipt__valid_delivered_report__200_ok_and_message_delivered(sent_sms):
    response = report()
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    sent_sms.refresh_from_db()
    assert sent_sms.status == MessageStatus.DELIVERED
    assert sent_sms.delivered_at is not None


def test_receipt__same_report_twice__200_both_times_and_the_second_changes_nothing(sent_sms):
    assert report().status_code == 200
    before = state(sent_sms)
    again = report()
    assert (again.status_code, again.json()) == (200, {"ok": True})
    assert state(sent_sms) == before
    assert [s for s, _ in before[-1]].count("delivered") == 1


def test_receipt__failed_report_with_a_code__message_failed_with_the_code(sent_sms):
    response = report(
        body={
            "message_id": "carrier-1",
            "status": "failed",
            "error_code": "UNDELIV",
            "error": "handset off",
        }
    )
    assert response.status_code == 200
    sent_sms.refresh_from_db()
    assert (sent_sms.status, sent_sms.error_code) == (MessageStatus.FAILED, "UNDELIV")
    assert "handset off" in sent_sms.error


def test_receipt__unknown_provider_id__200_and_nothing_changes(sent_sms):
    before = state(sent_sms)
    response = report(body={"message_id": "never-heard-of-it", "status": "delivered"})
    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert state(sent_sms) == before


@pytest.mark.parametrize(
    "tamper",
    [
        {"HTTP_X_NOTIFY_SIGNATURE": "v1=" + "0" * 64},
        {"HTTP_X_NOTIFY_SIGNATURE": ""},
        {"HTTP_X_NOTIFY_SIGNATURE": "garbage"},
        {"HTTP_X_NOTIFY_TIMESTAMP": ""},
        {"HTTP_X_NOTIFY_TIMESTAMP": "not-a-number"},
    ],
)
def test_receipt__bad_signature__401_and_nothing_changes(sent_sms, tamper):
    before = state(sent_sms)
    response = report(**tamper)
    assert response.status_code == 401
    assert "error" in response.json()
    assert state(sent_sms) == before


def test_receipt__signed_with_another_secret__401_and_nothing_changes(sent_sms):
    before = state(sent_sms)
    assert report(secret="not-the-secret").status_code == 401
    # (the push provider's secret does not open the SMS channel)
    assert report(secret=PUSH_SECRET).status_code == 401
    assert state(sent_sms) == before


def test_receipt__body_changed_after_signing__401(sent_sms):
    raw = json.dumps({"message_id": "carrier-1", "status": "delivered"}).encode()
    headers = signed_headers(SMS_SECRET, raw)
    tampered = raw.replace(b"carrier-1", b"carrier-2")
    response = Client().post(
        "/v2/receipts/http/sms", data=tampered, content_type="application/json", **headers
    )
    assert response.status_code == 401


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_receipt__timestamp_more_than_300s_off__401_and_nothing_changes(sent_sms, skew):
    before = state(sent_sms)
    assert report(timestamp=int(time.time()) + skew).status_code == 401
    assert state(sent_sms) == before


def test_receipt__timestamp_within_300s__accepted(sent_sms):
    assert report(timestamp=int(time.time()) - 250).status_code == 200


def test_receipt__channel_without_a_secret__every_report_401(sent_sms, settings):
    settings.SMS_HTTP_SECRET = ""
    before = state(sent_sms)
    # even one "signed" with the empty secret
    assert report(secret="").status_code == 401
    assert state(sent_sms) == before


def test_receipt__push_channel__verified_with_the_push_secret(secrets, db):
    assert report("push", secret=PUSH_SECRET).status_code == 200
    assert report("push", secret=SMS_SECRET).status_code == 401


def test_receipt__unknown_channel__404_json(secrets, db):
    response = report("email")
    assert response.status_code == 404
    assert "error" in response.json()
    assert report("fax").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'"delivered"',
        b"{}",
        b'{"message_id": "carrier-1"}',
        b'{"message_id": "carrier-1", "status": "sent"}',
        b'{"message_id": "carrier-1", "status": ["delivered"]}',
        b'{"message_id": "carrier-1", "status": {"a": 1}}',
        b'{"message_id": 17, "status": "delivered"}',
        b'{"message_id": "", "status": "delivered"}',
        b'{"message_id": "carrier-1", "status": "failed", "error_code": 5}',
        b'{"message_id": "carrier-1", "status": "failed", "error": {"x": 1}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_receipt__unreadable_body__400_json_and_nothing_changes(sent_sms, body):
    before = state(sent_sms)
    response = report(body=body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert state(sent_sms) == before


def test_receipt__oversized_body__400_json(secrets, db):
    body = json.dumps(
        {"message_id": "x", "status": "delivered", "pad": "p" * (MAX_REPORT_BYTES + 1)}
    ).encode()
    response = report(body=body)
    assert response.status_code == 400
    assert "error" in response.json()


def test_receipt__null_error_fields__read_as_none_given(sent_sms):
    response = report(
        body={"message_id": "carrier-1", "status": "failed", "error_code": None, "error": None}
    )
    assert response.status_code == 200
    sent_sms.refresh_from_db()
    assert (sent_sms.status, sent_sms.error_code) == (MessageStatus.FAILED, "")


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_receipt__not_a_post__405_json(secrets, db, method):
    response = getattr(Client(), method)("/v2/receipts/http/sms")
    assert response.status_code == 405
    assert "error" in response.json()


def test_receipt__tenant_api_key__no_substitute_for_the_signature(sent_sms, api_client):
    before = state(sent_sms)
    response = api_client.post(
        "/v2/receipts/http/sms", {"message_id": "carrier-1", "status": "delivered"}, format="json"
    )
    assert response.status_code == 401
    assert state(sent_sms) == before


# ---- early reports: faster than the worker's commit ----------------------------------------


def test_receipt__arrives_before_the_send_is_recorded__kept_then_applied_by_the_beat(
    tenant, settings, secrets, django_capture_on_commit_callbacks, monkeypatch
):
    from notify.messaging.models import EarlyReceipt
    from notify.messaging.receipts import apply_early_receipts

    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    # Given the provider's delivered report for `carrier-1`, before any send was recorded
    answer = report(body={"message_id": "carrier-1", "status": "delivered"})
    assert answer.status_code == 200
    assert EarlyReceipt.all_tenants.count() == 1
    # When the worker then records the send the provider calls `carrier-1`
    with StandInProvider(SMS_SECRET) as provider:
        settings.SMS_HTTP_URL = provider.url
        provider.answer(body={"status": "accepted", "message_id": "carrier-1"})
        message = create_message(
            tenant=tenant,
            draft=MessageDraft(channel="sms", recipient="+8613800138000", body="Code 1234"),
        )
        with django_capture_on_commit_callbacks(execute=True):
            services.deliver(message.id)
    # And the beat applies the kept reports
    assert apply_early_receipts() == 1
    # Then the message is delivered, and the report is let go
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert not EarlyReceipt.all_tenants.exists()


def test_receipt__of_a_send_already_recorded_and_ended__not_kept(sent_sms):
    from notify.messaging.models import EarlyReceipt

    assert report(body={"message_id": "carrier-1", "status": "delivered"}).status_code == 200
    assert report(body={"message_id": "carrier-1", "status": "failed"}).status_code == 200
    assert state(sent_sms)[0] == MessageStatus.DELIVERED
    assert not EarlyReceipt.all_tenants.exists()


def test_early_receipt__matching_nothing_past_its_ttl__dropped(secrets, db, settings):
    from datetime import timedelta

    from django.utils import timezone

    from notify.messaging.models import EarlyReceipt
    from notify.messaging.receipts import apply_early_receipts

    report(body={"message_id": "nobody-sent-this", "status": "delivered"})
    assert apply_early_receipts() == 0 and EarlyReceipt.all_tenants.count() == 1
    later = timezone.now() + timedelta(seconds=settings.NOTIFY_EARLY_RECEIPT_TTL + 1)
    assert apply_early_receipts(now=later) == 0
    assert not EarlyReceipt.all_tenants.exists()


def test_early_receipts__applied_by_the_beat(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "messaging.apply_early_receipts" in tasks


@pytest.mark.parametrize("field", ["message_id", "error_code", "error"])
def test_receipt__lone_surrogate_in_a_signed_report__400_not_500(sent_sms, field):
    report_body = {"message_id": "carrier-1", "status": "failed", field: "\ud800"}
    raw = json.dumps(report_body).encode()  # (\\ud800 escaped: valid JSON, not valid text)
    response = report(body=raw)
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"
    assert state(sent_sms)[0] == MessageStatus.SENT


def test_early_receipts__one_providers_flood__capped_and_cannot_keep_anothers_waiting(
    tenant, settings, secrets, django_capture_on_commit_callbacks, monkeypatch
):
    from notify.channels.base import Receipt
    from notify.messaging.models import EarlyReceipt
    from notify.messaging.receipts import (
        MAX_EARLY_PER_PROVIDER,
        apply_early_receipts,
        record_reports,
    )

    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    # Given another tenant's provider reporting on a flood of sends no one made
    other, _ = create_tenant("evil", name="Evil")
    junk = [Receipt(f"junk-{n}", "delivered") for n in range(MAX_EARLY_PER_PROVIDER + 50)]
    record_reports("sms", junk, tenant_id=other.pk, provider="theirs")
    # Then it keeps at most its quota
    assert EarlyReceipt.all_tenants.filter(tenant=other).count() == MAX_EARLY_PER_PROVIDER
    # And the beat shares each run between providers: a genuine early report is not starved
    apply_early_receipts(limit=MAX_EARLY_PER_PROVIDER)
    assert report(body={"message_id": "carrier-1", "status": "delivered"}).status_code == 200
    with StandInProvider(SMS_SECRET) as provider:
        settings.SMS_HTTP_URL = provider.url
        provider.answer(body={"status": "accepted", "message_id": "carrier-1"})
        message = create_message(
            tenant=tenant,
            draft=MessageDraft(channel="sms", recipient="+8613800138000", body="Code 1234"),
        )
        with django_capture_on_commit_callbacks(execute=True):
            services.deliver(message.id)
    assert apply_early_receipts(limit=10) == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
