"""A second tenant walks every v2 URL that names an object of the first (every method each
view answers): each answer is a 404 in the API's format, and nothing of the first tenant's
changes. Collections list only the caller's own objects. New URLs are walked automatically."""

import re

from django.urls import URLPattern

from notify.api import urls as api_urls
from notify.channels.models import Provider
from notify.messaging.models import Message, MessageStatus, SendRequest, WebhookSubscription
from notify.messaging.services import MessageDraft, create_batch, create_message
from templates_store.models import Template, TemplateVersion

METHODS = ("get", "post", "put", "patch", "delete")
BODY = {"status": "approved", "subject": "x", "body": "x", "channel": "email", "data": {}}


def snapshot() -> tuple:
    return (
        sorted(Message.all_tenants.values_list("id", "status", "subject", "attempts")),
        sorted(Template.all_tenants.values_list("key", "status", "name")),
        sorted(TemplateVersion.objects.values_list("template__key", "number", "published_at")),
        SendRequest.all_tenants.count(),
        sorted(Provider.all_tenants.values_list("name", "config", "secrets", "enabled")),
        sorted(WebhookSubscription.all_tenants.values_list("url", "enabled", "events")),
    )


def test_second_tenant__every_object_url_every_method__404_and_nothing_changes(
    api_client, tenant, other_tenant_client, approve_as_operator, monkeypatch, settings
):
    # Given the first tenant's template (published, approved), a dead message and a batch
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    monkeypatch.setattr("notify.messaging.services.publish_bulk_wakeups", lambda n: 0)
    created = api_client.post(
        "/v2/templates",
        {"key": "welcome", "channel": "email", "subject": "Hi", "body": "<p>Hi</p>"},
        format="json",
    )
    assert created.status_code == 201, created.content
    approve_as_operator("welcome")
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(channel="email", recipient="a@example.com", subject="S", body="B"),
    )
    Message.all_tenants.filter(pk=message.pk).update(status=MessageStatus.DEAD)
    batch = create_batch(
        tenant=tenant,
        drafts=[MessageDraft(channel="email", recipient="b@example.com", subject="S", body="B")],
    )
    provider = api_client.post(
        "/v2/providers",
        {
            "channel": "sms",
            "kind": "http",
            "name": "carrier",
            "priority": 1,
            "config": {"url": "https://sms.example.com/send"},
            "secrets": {"secret": "s" * 32},
        },
        format="json",
    )
    assert provider.status_code == 201, provider.content
    settings.ALLOW_PRIVATE_TARGETS = False
    webhook = api_client.post(
        "/v2/webhooks", {"url": "https://hooks.example.com/notify"}, format="json"
    )
    assert webhook.status_code == 201, webhook.content
    values = {
        "recipient": "user-42",
        "webhook_id": str(webhook.json()["id"]),
        "message_id": message.id,
        "batch_id": batch.batch_id,
        "key": "welcome",
        "number": "1",
        "provider_id": str(provider.json()["id"]),
    }
    before = snapshot()
    # When the second tenant calls every method of every URL naming one of them
    walked = []
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        names = re.findall(r"<(?:\w+:)?(\w+)>", route)
        if not names:
            continue  # a collection: checked below
        if pattern.name in ("inbox", "inbox-read-all"):
            # a recipient's inbox is per tenant: the second tenant's own, empty one
            path = "/v2/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
            method = "get" if pattern.name == "inbox" else "post"
            response = getattr(other_tenant_client, method)(path, format="json")
            walked.append((method.upper(), path, response.status_code))
            assert response.status_code == 200, response.content
            assert response.json() in ({"marked_read": 0},) or response.json()["total"] == 0
            continue
        if pattern.name == "receipt-provider":
            # the provider's reports are signed with its secret: a tenant's key opens nothing
            path = f"/v2/receipts/providers/{values['provider_id']}"
            response = other_tenant_client.post(path, BODY, format="json")
            walked.append(("POST", path, response.status_code))
            assert response.status_code == 401, response.content
            continue
        if pattern.name == "unsubscribe":
            # the signed link is the only authority there: a key, or a made-up link, is none
            path = "/v2/unsubscribe/made-up-link"
            response = other_tenant_client.post(path, BODY, format="json")
            walked.append(("POST", path, response.status_code))
            assert response.status_code == 404, response.content
            continue
        if pattern.name == "receipt-http":
            # a provider's delivery reports: no tenant object in the URL, and a tenant's key
            # opens nothing there (only the channel's signature does: tests/api/test_receipts.py)
            response = other_tenant_client.post("/v2/receipts/http/sms", BODY, format="json")
            walked.append(("POST", "/v2/receipts/http/sms", response.status_code))
            assert response.status_code == 401, response.content
            continue
        path = "/v2/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
        view = pattern.callback.view_class
        for method in METHODS:
            if not hasattr(view, method):
                continue
            response = getattr(other_tenant_client, method)(path, BODY, format="json")
            walked.append((method.upper(), path, response.status_code))
            # Then each is a 404 in the API's error format
            assert response.status_code == 404, (method, path, response.content)
            assert response.json()["error"]["code"] == "not_found"
    # And nothing of the first tenant changed
    assert snapshot() == before
    assert len(walked) >= 12
    # And the collections show the second tenant none of the first's objects
    listed = other_tenant_client.get("/v2/messages").json()["results"]
    assert listed == []
    templates = other_tenant_client.get("/v2/templates")
    assert templates.status_code == 200
    assert "welcome" not in str(templates.json())
