"""The suppression list and recipients' preferences, honoured at send time: a message that
must not go ends `suppressed`, visible with its reason; critical messages pass preferences,
never the suppression list; one tenant's lists never touch another's messages."""

import pytest

from notify.messaging import services


@pytest.fixture
def deliver_all(monkeypatch, django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """Accepts messages through the API and runs each one's delivery as its task would."""
    queued: list[str] = []
    monkeypatch.setattr(services, "enqueue_delivery", queued.append)

    def send(client, **fields):  # noqa: ANN001, ANN202
        body = {"channel": "email", "subject": "S", "body": "B", **fields}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/v2/messages", body, format="json")
        assert response.status_code == 202, response.content
        for message_id in queued:
            services.deliver(message_id)
        queued.clear()
        return client.get(f"/v2/messages/{response.json()['id']}").json()

    return send


def test_suppressed_recipient__message_suppressed_with_reason_even_if_critical(
    api_client, other_tenant_client, deliver_all, smtp_server
):
    # Given a suppressed recipient (written differently than it is then sent to)
    added = api_client.post(
        "/v2/suppressions",
        {"channel": "email", "to": "Ana@EXAMPLE.com", "reason": "hard bounce"},
        format="json",
    )
    assert added.status_code == 201, added.content
    # When a message, then a critical one, is sent to it
    plain = deliver_all(api_client, to="Ana@example.com")
    critical = deliver_all(api_client, to="Ana@example.com", critical=True)
    # Then neither is sent; both say why
    for message in (plain, critical):
        assert message["status"] == "suppressed"
        assert message["events"][-1]["detail"] == "recipient suppressed: hard bounce"
    assert smtp_server.received == []
    # And another tenant's message to the same recipient goes
    assert deliver_all(other_tenant_client, to="Ana@example.com")["status"] == "delivered"
    # When the recipient is taken off the list
    removed = api_client.delete("/v2/suppressions?channel=email&to=Ana@example.com")
    assert removed.status_code == 204
    # Then the next message goes, and a second removal is a 404
    assert deliver_all(api_client, to="Ana@example.com")["status"] == "delivered"
    assert api_client.delete("/v2/suppressions?channel=email&to=Ana@example.com").status_code == 404


def test_opted_out_recipient__category_messages_suppressed_critical_ones_sent(
    api_client, deliver_all, smtp_server
):
    # Given a recipient opted out of "marketing" email
    response = api_client.put(
        "/v2/preferences",
        {"channel": "email", "to": "bo@example.com", "category": "marketing", "opted_out": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    # When marketing, a critical marketing, and a receipt message are sent to it
    marketing = deliver_all(api_client, to="bo@example.com", category="marketing")
    critical = deliver_all(api_client, to="bo@example.com", category="marketing", critical=True)
    receipt = deliver_all(api_client, to="bo@example.com", category="receipts")
    # Then only the marketing one is suppressed (visibly), the others go
    assert marketing["status"] == "suppressed"
    assert marketing["error"] == "recipient opted out of 'marketing'"
    assert critical["status"] == "delivered" and receipt["status"] == "delivered"
    assert len(smtp_server.received) == 2
    # When the recipient opts out of the channel altogether
    api_client.put(
        "/v2/preferences",
        {"channel": "email", "to": "bo@example.com", "opted_out": True},
        format="json",
    )
    # Then every non-critical message is suppressed
    assert deliver_all(api_client, to="bo@example.com", category="receipts")["status"] == (
        "suppressed"
    )
    listed = api_client.get("/v2/preferences?channel=email&to=bo@example.com").json()
    assert [(p["category"], p["opted_out"]) for p in listed] == [("", True), ("marketing", True)]


def test_suppressions__lists__own_only_and_bad_recipient_is_400(api_client, other_tenant_client):
    api_client.post("/v2/suppressions", {"channel": "email", "to": "a@example.com"}, format="json")
    again = api_client.post(
        "/v2/suppressions", {"channel": "email", "to": "a@example.com"}, format="json"
    )
    assert again.status_code == 200
    assert [s["to"] for s in api_client.get("/v2/suppressions").json()] == ["a@example.com"]
    assert other_tenant_client.get("/v2/suppressions").json() == []
    bad = api_client.post("/v2/suppressions", {"channel": "sms", "to": "12"}, format="json")
    assert bad.status_code == 400 and "to" in bad.json()["error"]["fields"]
