"""Email through an ESP's API with django-anymail, against a local stand-in of Mailgun's
messages API that checks the request as Mailgun documents it (Basic auth `api:<key>`, the
domain's `/messages` resource, form fields from/to/subject/text) and answers in its format; and
Mailgun's tracking webhooks, signed as Mailgun documents it (HMAC-SHA256 of timestamp + token
with the webhook signing key, computed here independently of anymail) behind basic auth."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import default as default_policy
from urllib.parse import parse_qs

import pytest
from django.test import Client

from notify.channels import breaker
from notify.channels.base import ConfigError
from notify.channels.models import Provider
from notify.channels.services import create_provider
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus, Suppression
from notify.messaging.services import MessageDraft, create_message
from notify.tenants.services import create_tenant
from tests.standin import JsonStandIn

API_KEY = "key-mailgun-test-0123456789"
SIGNING_KEY = "mailgun-webhook-signing-key-0123"
WEBHOOK_AUTH = "mailgun:hook-password-0123"
DOMAIN = "mg.example.com"


class MailgunApi(JsonStandIn):
    """Mailgun's `POST /v3/<domain>/messages`."""

    def __init__(self) -> None:
        self.accepted: list[dict] = []
        self.refusal: tuple[int, dict] | None = None
        super().__init__()
        self.url = f"{self.base}/v3"

    def respond(self, path: str, headers, raw: bytes) -> tuple[int, dict, dict]:  # noqa: ANN001
        return (*self.check(path, headers, raw), {})

    def check(self, path: str, headers, raw: bytes) -> tuple[int, dict]:  # noqa: ANN001
        expected = "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, {"message": "Forbidden"}
        if path != f"/v3/{DOMAIN}/messages":
            return 404, {"message": f"Domain not found: {path}"}
        # (Mailgun takes either encoding of the form)
        content_type = headers.get("Content-Type", "")
        fields: dict[str, list[str]] = {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields = parse_qs(raw.decode(), keep_blank_values=True)
        elif content_type.startswith("multipart/form-data"):
            form = BytesParser(policy=default_policy).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + raw
            )
            for part in form.iter_parts():
                name = part.get_param("name", header="content-disposition")
                fields.setdefault(name, []).append(part.get_content())
        else:
            return 400, {"message": "a form is expected"}
        for required in ("from", "to", "subject"):
            if required not in fields:
                return 400, {"message": f"'{required}' parameter is missing"}
        if self.refusal is not None:
            return self.refusal
        self.accepted.append(fields)
        return 200, {"id": f"<20261203.{len(self.accepted)}@{DOMAIN}>", "message": "Queued."}


@pytest.fixture
def mailgun(settings) -> Iterator[MailgunApi]:  # noqa: ANN001
    settings.ALLOW_PRIVATE_TARGETS = True
    api = MailgunApi()
    yield api
    api.close()


def esp_provider(tenant, api: MailgunApi, **secrets: str) -> Provider:  # noqa: ANN001
    provider = create_provider(
        tenant,
        channel="email",
        kind="anymail",
        name="mailgun",
        config={"esp": "mailgun", "from_email": f"shop@{DOMAIN}", "api_url": api.url},
        secrets={
            "api_key": API_KEY,
            "webhook_secret": WEBHOOK_AUTH,
            "webhook_signing_key": SIGNING_KEY,
            **secrets,
        },
    )
    breaker.reset(provider.pk)
    return provider


@pytest.fixture
def provider(tenant, mailgun) -> Provider:  # noqa: ANN001
    return esp_provider(tenant, mailgun)


def mail(tenant, to: str = "ann@example.com") -> Message:  # noqa: ANN001
    return create_message(
        tenant=tenant,
        draft=MessageDraft(channel="email", recipient=to, subject="Your order", body="Shipped"),
    )


def tracking_event(event: str, message_id: str, signing_key: str = SIGNING_KEY, **data) -> dict:  # noqa: ANN003
    timestamp, token = str(int(time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": event,
            "timestamp": float(timestamp),
            "id": "evt-1",
            "recipient": "ann@example.com",
            "message": {"headers": {"message-id": message_id.strip("<>")}},
            **data,
        },
    }


def post_event(url: str, event: dict, auth: str | None = WEBHOOK_AUTH):  # noqa: ANN201
    headers = {}
    if auth:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return Client().post(url, data=json.dumps(event), content_type="application/json", **headers)


def receipts_url(provider: Provider) -> str:
    return f"/v2/receipts/providers/{provider.pk}"


def sent(message: Message, deliver) -> str:  # noqa: ANN001
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT, message.error
    return DeliveryAttempt.objects.get(message=message).provider_message_id


def test_anymail__tenant_mailgun_account__sent_through_its_api_and_waits_for_tracking(
    tenant, provider, mailgun, deliver
):
    # Given a tenant whose email goes through its own Mailgun account
    message = mail(tenant)
    # When the worker delivers it
    provider_id = sent(message, deliver)
    # Then Mailgun got it from the tenant's sender, and the message waits for Mailgun's word
    (fields,) = mailgun.accepted
    assert fields["from"] == [f"shop@{DOMAIN}"] and fields["to"] == ["ann@example.com"]
    assert fields["subject"] == ["Your order"] and fields["text"][0].strip() == "Shipped"
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.provider, provider_id) == ("mailgun", f"<20261203.1@{DOMAIN}>")


@pytest.mark.parametrize(
    ("status", "answer", "kind", "message_status"),
    [
        (401, {"message": "Forbidden"}, "permanent", MessageStatus.FAILED),
        (429, {"message": "Too many requests"}, "throttled", MessageStatus.QUEUED),
        (503, {"message": "Service unavailable"}, "provider_down", MessageStatus.QUEUED),
    ],
)
def test_anymail__esp_refuses__that_failure_kind(
    tenant, provider, mailgun, deliver, status, answer, kind, message_status
):
    mailgun.refusal = (status, answer)
    message = mail(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == message_status
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.provider) == (kind, "mailgun")


def test_anymail_tracking__delivered_signed_and_authenticated__message_delivered(
    tenant, provider, deliver
):
    message = mail(tenant)
    provider_id = sent(message, deliver)
    answer = post_event(receipts_url(provider), tracking_event("delivered", provider_id))
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


@pytest.mark.parametrize(
    ("auth", "signing_key"),
    [(None, SIGNING_KEY), ("mailgun:wrong", SIGNING_KEY), (WEBHOOK_AUTH, "another-key-0123")],
)
def test_anymail_tracking__bad_auth_or_signature__401_and_nothing_changes(
    tenant, provider, deliver, auth, signing_key
):
    message = mail(tenant)
    provider_id = sent(message, deliver)
    event = tracking_event("delivered", provider_id, signing_key=signing_key)
    answer = post_event(receipts_url(provider), event, auth=auth)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "authentication_failed"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_anymail_tracking__permanent_failure__failed_and_recipient_suppressed(
    tenant, provider, deliver
):
    message = mail(tenant)
    provider_id = sent(message, deliver)
    event = tracking_event(
        "failed",
        provider_id,
        severity="permanent",
        reason="bounce",
        **{"delivery-status": {"code": 550, "message": "No such user", "description": ""}},
    )
    assert post_event(receipts_url(provider), event).status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert Suppression.all_tenants.filter(tenant=tenant, recipient="ann@example.com").exists()


def test_anymail_tracking__complaint_after_delivery__recipient_suppressed_message_unchanged(
    tenant, provider, deliver
):
    message = mail(tenant)
    provider_id = sent(message, deliver)
    post_event(receipts_url(provider), tracking_event("delivered", provider_id))
    answer = post_event(receipts_url(provider), tracking_event("complained", provider_id))
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    (row,) = Suppression.all_tenants.filter(tenant=tenant)
    assert row.recipient == "ann@example.com" and "complained" in row.reason


def test_anymail_tracking__another_tenants_message__changes_nothing(
    tenant, provider, mailgun, deliver
):
    # Given our mail sent, and another tenant with its own Mailgun provider
    message = mail(tenant)
    provider_id = sent(message, deliver)
    other, _ = create_tenant("globex", name="Globex")
    theirs = esp_provider(other, mailgun)
    # When a valid event for our message arrives at their provider's receipts URL
    answer = post_event(receipts_url(theirs), tracking_event("complained", provider_id))
    # Then nothing of ours changes
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert not Suppression.all_tenants.exists()


def test_anymail_provider__api_url_off_the_esps_hosts__refused(tenant, settings):
    settings.ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="email",
            kind="anymail",
            name="mailgun",
            config={
                "esp": "mailgun",
                "from_email": f"shop@{DOMAIN}",
                "api_url": "https://169.254.169.254/v3",
            },
            secrets={"api_key": API_KEY},
        )
    assert "config.api_url" in refused.value.errors
    # (the ESP's own EU host is fine)
    create_provider(
        tenant,
        channel="email",
        kind="anymail",
        name="mailgun",
        config={
            "esp": "mailgun",
            "from_email": f"shop@{DOMAIN}",
            "api_url": "https://api.eu.mailgun.net/v3",
        },
        secrets={"api_key": API_KEY},
    )


def test_anymail_provider__another_esps_secret__refused_naming_it(tenant):
    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="email",
            kind="anymail",
            name="postmark",
            config={"esp": "postmark", "from_email": f"shop@{DOMAIN}"},
            secrets={"server_token": "pm-token-0123456789", "api_key": API_KEY},
        )
    assert "secrets.api_key" in refused.value.errors


def test_platform_esp__email_backend_anymail__tracked_through_anymails_webhook(
    tenant, mailgun, settings, deliver
):
    # Given the platform's own email through Mailgun (settings, no tenant provider)
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = f"notify@{DOMAIN}"
    settings.ANYMAIL = {
        "MAILGUN_API_KEY": API_KEY,
        "MAILGUN_API_URL": mailgun.url,
        "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
        "WEBHOOK_SECRET": WEBHOOK_AUTH,
    }
    settings.NOTIFY_DEV_TRANSPORT = ""
    message = mail(tenant)
    provider_id = sent(message, deliver)
    # When Mailgun reports it delivered on anymail's tracking webhook
    answer = post_event("/anymail/mailgun/tracking/", tracking_event("delivered", provider_id))
    # Then the message is delivered
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


@pytest.mark.parametrize("body", [[], 1, [" "], {"signature": "x"}, {"signature": {"token": 1}}])
def test_anymail_tracking__not_an_event_body__4xx_not_500_nothing_changes(
    tenant, provider, deliver, body
):
    message = mail(tenant)
    sent(message, deliver)
    answer = post_event(receipts_url(provider), body)
    assert answer.status_code in (400, 401) and "error" in answer.json()
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


@pytest.mark.parametrize("esp", [["mailgun"], {}, None, 7])
def test_anymail_provider__esp_not_a_name__refused_naming_it(tenant, esp):
    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="email",
            kind="anymail",
            name="x",
            config={"esp": esp, "from_email": f"shop@{DOMAIN}"},
            secrets={"api_key": API_KEY},
        )
    assert "config.esp" in refused.value.errors


def test_anymail_provider__sender_with_a_header_injection__refused(tenant):
    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="email",
            kind="anymail",
            name="mailgun",
            config={"esp": "mailgun", "from_email": "a@b.example\r\nBcc: x@y.example"},
            secrets={"api_key": API_KEY},
        )
    assert "config.from_email" in refused.value.errors


def test_anymail_provider__patched_to_another_esp__its_old_secret_removed_with_null(
    api_client, tenant
):
    created = api_client.post(
        "/v2/providers",
        {
            "channel": "email",
            "kind": "anymail",
            "name": "esp",
            "config": {"esp": "mailgun", "from_email": f"shop@{DOMAIN}"},
            "secrets": {"api_key": API_KEY},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    changed = api_client.patch(
        f"/v2/providers/{created.json()['id']}",
        {
            "config": {"esp": "postmark", "from_email": f"shop@{DOMAIN}"},
            "secrets": {"api_key": None, "server_token": "pm-token-0123456789"},
        },
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["secrets_set"] == ["server_token"]


def test_platform_esp__no_webhook_secret__tracking_webhook_answers_404(
    tenant, mailgun, settings, deliver
):
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    answer = post_event("/anymail/mailgun/tracking/", tracking_event("delivered", "<x@y>"))
    assert answer.status_code == 404


def test_platform_esp__inbound_webhooks__not_served(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_AUTH, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    answer = Client().post("/anymail/mailgun/inbound/", data={}, content_type="application/json")
    assert answer.status_code == 404
