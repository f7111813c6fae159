import pytest
import requests

from notify.tenants.services import create_tenant

pytestmark = pytest.mark.e2e


def test_email__sent_through_v2_api__arrives_at_smtp_and_shows_delivered(platform):
    # Given a tenant with an API key
    _, api_key = create_tenant("e2e-shop", name="E2E Shop")
    headers = {"Authorization": f"Bearer {api_key}"}
    # When a message is sent through the API
    response = requests.post(
        f"{platform.base_url}/v2/messages",
        json={
            "channel": "email",
            "to": "buyer@example.com",
            "subject": "Order 42 shipped",
            "body": "Your parcel is on its way.",
        },
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]
    # Then the mail reaches the SMTP server with the right recipient and subject
    platform.wait_for(lambda: platform.smtp.received, what="the mail at the SMTP server")
    (mail,) = platform.smtp.received
    assert mail.rcpt_tos == ["buyer@example.com"]
    assert mail.subject == "Order 42 shipped"
    assert mail.message["X-Notify-Message-Id"] == message_id

    # And the API shows it delivered, with its timeline
    def delivered():  # noqa: ANN202
        body = requests.get(
            f"{platform.base_url}/v2/messages/{message_id}", headers=headers, timeout=10
        ).json()
        return body if body["status"] == "delivered" else None

    body = platform.wait_for(delivered, what="status delivered")
    assert [event["status"] for event in body["events"]] == [
        "queued",
        "sending",
        "sent",
        "delivered",
    ]


def test_email__recipient_refused__api_shows_failed_with_reason(platform):
    _, api_key = create_tenant("e2e-bank", name="E2E Bank")
    headers = {"Authorization": f"Bearer {api_key}"}
    response = requests.post(
        f"{platform.base_url}/v2/messages",
        json={"channel": "email", "to": "reject@example.com", "subject": "S", "body": "B"},
        headers=headers,
        timeout=10,
    )
    message_id = response.json()["id"]

    def failed():  # noqa: ANN202
        body = requests.get(
            f"{platform.base_url}/v2/messages/{message_id}", headers=headers, timeout=10
        ).json()
        return body if body["status"] == "failed" else None

    body = platform.wait_for(failed, what="status failed")
    assert "550" in body["error"]
    assert platform.smtp.received == []


def test_healthz__worker_running__200_listing_it(platform):
    body = requests.get(f"{platform.base_url}/healthz", timeout=10).json()
    assert body["status"] == "ok"
    assert any(name.startswith("e2e-") for name in body["worker"]["workers"])
