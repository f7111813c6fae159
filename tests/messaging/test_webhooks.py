"""Tenant webhooks: message events POSTed to the tenant's endpoint, signed per the Standard
Webhooks spec, retried on the schedule, given up, and the subscription disabled after repeated
failure; each subscription's delivery log; the endpoint's URL through the outbound gate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from notify.messaging import webhooks
from notify.messaging.models import MessageStatus, WebhookDelivery, WebhookSubscription
from notify.messaging.services import MessageDraft, create_message


class Endpoint:
    """The tenant's webhook handler: verifies each delivery with its secret (the
    `standardwebhooks` package, as a receiver does), answers 204 or, when failing, 500."""

    def __init__(self) -> None:
        self.secret = ""
        self.failing = False
        self.verified: list[dict] = []
        self.refused: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                try:
                    payload = Webhook(endpoint.secret).verify(body, dict(self.headers))
                except Exception as exc:  # noqa: BLE001
                    endpoint.refused.append(repr(exc))
                    self.send_response(401)
                else:
                    if endpoint.failing:
                        self.send_response(500)
                    else:
                        endpoint.verified.append(
                            {"id": self.headers["webhook-id"], "payload": payload}
                        )
                        self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint(settings) -> Iterator[Endpoint]:  # noqa: ANN001
    settings.ALLOW_PRIVATE_TARGETS = True
    settings.NOTIFY_DEV_TRANSPORT = "file"
    settings.SMS_HTTP_URL = ""
    server = Endpoint()
    webhooks.forget_cached()
    yield server
    webhooks.forget_cached()
    server.close()


def subscribe(api_client, endpoint: Endpoint, **fields) -> dict:  # noqa: ANN001, ANN003
    answer = api_client.post("/v2/webhooks", {"url": endpoint.url, **fields}, format="json")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    endpoint.secret = body["secret"]
    return body


def delivered_sms(tenant, deliver, tmp_path, settings):  # noqa: ANN001, ANN201
    settings.NOTIFY_DEV_OUTBOX = str(tmp_path / "outbox.jsonl")
    message = create_message(
        tenant=tenant, draft=MessageDraft(channel="sms", recipient="13912345678", body="hi")
    )
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    return message


def test_webhook__message_delivered__signed_event_posted_and_logged(
    api_client, tenant, endpoint, deliver, tmp_path, settings
):
    # Given a subscription (its secret shown once)
    created = subscribe(api_client, endpoint)
    assert created["secret"].startswith("whsec_")
    assert "secret" not in api_client.get("/v2/webhooks").json()[0]
    # When a message is delivered
    message = delivered_sms(tenant, deliver, tmp_path, settings)
    (delivery,) = WebhookDelivery.objects.all()
    assert webhooks.deliver(delivery.pk) == WebhookDelivery.State.DELIVERED
    # Then the endpoint got the event, signed as the spec says
    (got,) = endpoint.verified
    assert got["payload"]["type"] == "message.delivered"
    assert got["payload"]["data"]["id"] == message.id
    assert got["payload"]["data"]["status"] == "delivered"
    # and the delivery log says so
    log = api_client.get(f"/v2/webhooks/{created['id']}/deliveries").json()
    assert [(d["event_type"], d["state"], d["attempts"], d["last_status"]) for d in log] == [
        ("message.delivered", "delivered", 1, 204)
    ]
    # A delivery queued twice is posted once
    assert webhooks.deliver(delivery.pk) is None
    assert len(endpoint.verified) == 1


def test_webhook__endpoint_failing__retried_then_given_up_then_disabled(
    api_client, tenant, endpoint, deliver, tmp_path, settings
):
    settings.WEBHOOK_RETRY_DELAYS = [0, 0]
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    created = subscribe(api_client, endpoint)
    endpoint.failing = True
    for _ in range(2):
        delivered_sms(tenant, deliver, tmp_path, settings)
    states = []
    for delivery in WebhookDelivery.objects.order_by("id"):
        for _ in range(3):
            states.append(webhooks.deliver(delivery.pk))
    # Three tries each (the first and two retries), then given up
    assert states == ["pending", "pending", "failed"] * 2
    subscription = WebhookSubscription.all_tenants.get()
    assert (
        not subscription.enabled and "2 deliveries in a row gave up" in subscription.disabled_reason
    )
    # A disabled subscription gets no new event
    delivered_sms(tenant, deliver, tmp_path, settings)
    assert WebhookDelivery.objects.count() == 2
    # Enabling it again clears its count
    answer = api_client.patch(f"/v2/webhooks/{created['id']}", {"enabled": True}, format="json")
    assert answer.json()["enabled"] and answer.json()["disabled_reason"] == ""


def test_webhook__events_filter__only_the_chosen_events(
    api_client, tenant, endpoint, deliver, tmp_path, settings
):
    subscribe(api_client, endpoint, events=["message.failed"])
    delivered_sms(tenant, deliver, tmp_path, settings)
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x", "http://10.0.0.5/x", "http://169.254.169.254/latest"]
)
def test_webhook__private_or_metadata_target__refused_at_subscription(api_client, url, settings):
    settings.ALLOW_PRIVATE_TARGETS = False
    answer = api_client.post("/v2/webhooks", {"url": url}, format="json")
    assert answer.status_code == 400
    assert "non-public address" in json.dumps(answer.json())
    assert not WebhookSubscription.all_tenants.exists()


def test_webhook__another_tenant__404_and_sees_none(api_client, other_tenant_client, endpoint):
    created = subscribe(api_client, endpoint)
    url = f"/v2/webhooks/{created['id']}"
    assert other_tenant_client.get(url).status_code == 404
    assert other_tenant_client.get(url + "/deliveries").status_code == 404
    assert other_tenant_client.patch(url, {"enabled": False}, format="json").status_code == 404
    assert other_tenant_client.get("/v2/webhooks").json() == []
    assert WebhookSubscription.all_tenants.get().enabled


def test_webhook__name_resolving_to_loopback__refused_at_delivery(
    api_client, tenant, endpoint, deliver, tmp_path, settings
):
    # Given a subscription whose host name resolves to a loopback address
    settings.ALLOW_PRIVATE_TARGETS = False
    created = api_client.post(
        "/v2/webhooks", {"url": endpoint.url.replace("127.0.0.1", "localhost")}, format="json"
    )
    assert created.status_code == 201
    settings.WEBHOOK_RETRY_DELAYS = []
    delivered_sms(tenant, deliver, tmp_path, settings)
    (delivery,) = WebhookDelivery.objects.all()
    # Then the delivery is refused by the gate, never posted
    assert webhooks.deliver(delivery.pk) == WebhookDelivery.State.FAILED
    delivery.refresh_from_db()
    assert "non-public address" in delivery.last_error and endpoint.verified == []


@pytest.mark.parametrize("url", ["http://8.8.8.8:99999/x", "http://[::1/x"])
def test_webhook__unusable_url__400_not_500(api_client, url):
    answer = api_client.post("/v2/webhooks", {"url": url}, format="json")
    assert answer.status_code == 400
