import pytest
import requests

from notify.tenants.services import create_tenant
from tests.e2e.conftest import readiness

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


def test_readyz__worker_running__operator_sees_its_heartbeat(platform):
    # Given the running web server and worker
    # When an operator asks (the heartbeat may be between two beats after the last test's flush)
    def worker_listed():  # noqa: ANN202
        body = readiness(platform.base_url).json()
        hostnames = [worker["hostname"] for worker in body["checks"]["workers"]["workers"]]
        return body if any(name.startswith("e2e-") for name in hostnames) else None

    body = platform.wait_for(worker_listed, timeout=15, what="the worker in /readyz")
    # Then everything is up, and the worker is named with its heartbeat's age
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "up",
        "broker": "up",
        "workers": "up",
    }


def test_livez_and_healthz__anonymous__status_only(platform):
    assert requests.get(f"{platform.base_url}/livez", timeout=10).json() == {"status": "ok"}
    healthz = requests.get(f"{platform.base_url}/healthz", timeout=10)
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
