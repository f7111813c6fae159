"""A tenant's own providers of each kind end to end, with real processes (web, a Celery worker
with its beat) and the unit tests' local stand-ins of the real services, each checking requests
as its service documents them: Twilio's Messages API (and its signed status callback, POSTed to
the web process), Google's token endpoint and FCM's messages:send, a Web Push service over HTTPS
with a test CA (decrypting each push as the browser would), and Mailgun's messages API (and its
signed tracking webhook, POSTed to the web process). The tenant adds its providers and sends
through the API, as it would in production."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from notify.channels import breaker
from notify.messaging.models import FINAL_STATUSES, DeliveryAttempt, Message, MessageStatus
from notify.tenants.services import create_tenant
from tests.channels.test_anymail import (
    API_KEY,
    DOMAIN,
    SIGNING_KEY,
    WEBHOOK_AUTH,
    MailgunApi,
    tracking_event,
)
from tests.channels.test_fcm import DEVICE, PROJECT, Google
from tests.channels.test_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SENDER,
    MessagesApi,
    callback_params,
    twilio_signature,
)
from tests.channels.test_webpush import (
    SUBJECT,
    TTL,
    VAPID_PRIVATE_B64,
    PushService,
    _certificates,
)
from tests.e2e import conftest as e2e
from tests.e2e.conftest import Platform, platform_env
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

MOBILE = "+8613912345678"
EMAIL = "ann@example.com"


class Twilio(MessagesApi):
    """Twilio's Messages API, and Twilio's side of the status callbacks: it reports on each
    message it accepted to the `StatusCallback` given with it, form-encoded and signed with
    X-Twilio-Signature as Twilio documents it."""

    def __init__(self) -> None:
        super().__init__()
        # (sid, the request's parameters) of each message accepted
        self.taken: list[tuple[str, dict]] = []

    def check(self, path: str, headers: dict, raw: str) -> tuple[int, dict, dict]:
        status, answer, extra = super().check(path, headers, raw)
        if status == 201:
            self.taken.append((answer["sid"], self.accepted[-1]))
        return status, answer, extra

    def report(self, status: str, token: str = AUTH_TOKEN) -> list[requests.Response]:
        answers = []
        for sid, params in self.taken:
            url = params["StatusCallback"]
            form = callback_params(sid, status, To=params["To"], From=params["From"])
            answers.append(
                requests.post(
                    url,
                    data=form,
                    headers={"X-Twilio-Signature": twilio_signature(url, form, token)},
                    timeout=10,
                )
            )
        return answers


@dataclass
class Running:
    platform: Platform
    twilio: Twilio
    google: Google
    push_service: PushService
    mailgun: MailgunApi


@pytest.fixture(scope="module")
def kinds_platform(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Running]:  # noqa: ANN001
    tmp_path = tmp_path_factory.mktemp("provider-kinds")
    with django_db_blocker.unblock():
        database_url = e2e.test_database_url()
    ca_file, server_pem = _certificates(tmp_path_factory.mktemp("push-tls"))
    env = platform_env(
        database_url,
        ALLOW_PRIVATE_TARGETS="true",
        # (the platform checks the push service's certificate as in production: it trusts the
        # test CA)
        SSL_CERT_FILE=str(ca_file),
    )
    twilio, google, push_service, mailgun = (
        Twilio(),
        Google(),
        PushService(server_pem),
        MailgunApi(),
    )
    try:
        with e2e.platform_processes(env, tmp_path, [free_port()]) as running:
            yield Running(running, twilio, google, push_service, mailgun)
    finally:
        for server in (twilio, google, push_service, mailgun):
            server.close()


@pytest.fixture
def kinds(transactional_db, kinds_platform) -> Iterator[Running]:  # noqa: ANN001
    yield kinds_platform
    e2e.wait_until_worker_idle()


class Tenant:
    """A tenant as it uses the API: its key, over HTTP, to the real web process."""

    def __init__(self, base: str, slug: str) -> None:
        _, key = create_tenant(slug)
        self.base = base
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {key}"

    def add_provider(self, **fields: object) -> dict:
        answer = self.api.post(f"{self.base}/v2/providers", json=fields, timeout=10)
        assert answer.status_code == 201, answer.text
        breaker.reset(answer.json()["id"])  # (a fresh test database reuses ids; Redis stays)
        return answer.json()

    def change_provider(self, provider_id: int, **fields: object) -> dict:
        answer = self.api.patch(f"{self.base}/v2/providers/{provider_id}", json=fields, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def send(self, channel: str, to: str, body: str, subject: str) -> str:
        # (a subject is required without a template, whatever the channel: an SMS drops it)
        fields = {"channel": channel, "to": to, "subject": subject, "body": body}
        answer = self.api.post(f"{self.base}/v2/messages", json=fields, timeout=10)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    def message(self, message_id: str) -> dict:
        answer = self.api.get(f"{self.base}/v2/messages/{message_id}", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


def wait_until(platform: Platform, wanted: dict[str, str], what: str) -> None:
    """Until each message has its wanted status, or has ended otherwise (then the assertion
    says how, with its error)."""

    def settled() -> bool:
        rows = Message.all_tenants.filter(pk__in=wanted)
        return all(m.status == wanted[m.pk] or m.status in FINAL_STATUSES for m in rows)

    platform.wait_for(settled, 60, what)
    got = {m.pk: (m.status, m.error) for m in Message.all_tenants.filter(pk__in=wanted)}
    assert {pk: status for pk, (status, _) in got.items()} == wanted, got


def attempt_of(message_id: str) -> DeliveryAttempt:
    (attempt,) = DeliveryAttempt.objects.filter(message_id=message_id)
    return attempt


def test_twilio_sms_and_mailgun_email__providers_report_back_signed__sent_then_delivered(kinds):
    base = kinds.platform.base_url
    tenant = Tenant(base, "acme-receipts")
    # Given a tenant whose SMS go through its Twilio account, with Twilio's status callback on
    # its provider's receipts URL (learnt once the provider exists)
    twilio_config = {"account_sid": ACCOUNT_SID, "from": SENDER, "base_url": kinds.twilio.url}
    twilio = tenant.add_provider(
        channel="sms",
        kind="twilio",
        name="twilio",
        config=twilio_config,
        secrets={"auth_token": AUTH_TOKEN},
    )
    callback = f"{base}{twilio['receipts_url']}"
    assert callback == f"{base}/v2/receipts/providers/{twilio['id']}"
    twilio = tenant.change_provider(
        twilio["id"], config={**twilio_config, "status_callback": callback}
    )
    assert twilio["config"]["status_callback"] == callback
    assert twilio["secrets_set"] == ["auth_token"]
    # and whose email goes through its Mailgun account, with Mailgun's tracking webhook set up
    mailgun = tenant.add_provider(
        channel="email",
        kind="anymail",
        name="mailgun",
        config={"esp": "mailgun", "from_email": f"shop@{DOMAIN}", "api_url": kinds.mailgun.url},
        secrets={
            "api_key": API_KEY,
            "webhook_secret": WEBHOOK_AUTH,
            "webhook_signing_key": SIGNING_KEY,
        },
    )
    # When the tenant sends an SMS and an email
    sms = tenant.send("sms", MOBILE, "Your code is 482913", subject="Login code")
    email = tenant.send("email", EMAIL, "Shipped today", subject="Your order")
    # Then the worker hands each to the tenant's provider, which takes it: both are sent,
    # waiting for the provider's word
    wait_until(
        kinds.platform, {sms: MessageStatus.SENT, email: MessageStatus.SENT}, "SMS and email sent"
    )
    ((sid, params),) = kinds.twilio.taken
    assert (params["To"], params["From"], params["Body"]) == (MOBILE, SENDER, "Your code is 482913")
    assert params["StatusCallback"] == callback
    (fields,) = kinds.mailgun.accepted
    assert (fields["from"], fields["to"], fields["subject"]) == (
        [f"shop@{DOMAIN}"],
        [EMAIL],
        ["Your order"],
    )
    assert fields["text"][0].strip() == "Shipped today"
    sms_attempt, email_attempt = attempt_of(sms), attempt_of(email)
    assert (sms_attempt.provider, sms_attempt.provider_message_id) == ("twilio", sid)
    assert (email_attempt.provider, email_attempt.provider_message_id) == (
        "mailgun",
        f"<20261203.1@{DOMAIN}>",
    )
    # (reports not signed for the tenant's providers are refused, and move nothing)
    (forged,) = kinds.twilio.report("delivered", token="not-the-auth-token-0123456789")
    assert forged.status_code == 401, forged.text
    receipts = f"{base}{mailgun['receipts_url']}"
    event = tracking_event("delivered", email_attempt.provider_message_id)
    assert requests.post(receipts, json=event, timeout=10).status_code == 401
    assert set(
        Message.all_tenants.filter(pk__in=(sms, email)).values_list("status", flat=True)
    ) == {MessageStatus.SENT}
    # When Twilio reports the SMS delivered on its status callback, signed with the auth token
    (answer,) = kinds.twilio.report("delivered")
    assert answer.status_code == 200, answer.text
    # and Mailgun reports the email delivered on the receipts URL, behind the provider's basic
    # auth and signed with the webhook signing key
    user, password = WEBHOOK_AUTH.split(":", 1)
    answer = requests.post(receipts, json=event, auth=(user, password), timeout=10)
    assert answer.status_code == 200, answer.text
    # Then both messages are delivered, as the tenant sees them
    wait_until(
        kinds.platform,
        {sms: MessageStatus.DELIVERED, email: MessageStatus.DELIVERED},
        "SMS and email delivered",
    )
    for message_id, to in ((sms, MOBILE), (email, EMAIL)):
        shown = tenant.message(message_id)
        assert (shown["status"], shown["to"], shown["error"]) == ("delivered", to, "")
        assert shown["delivered_at"] is not None
        assert [a["outcome"] for a in shown["delivery_attempts"]] == ["sent"]
    # and nothing was sent twice
    assert len(kinds.twilio.accepted) == 1 and len(kinds.mailgun.accepted) == 1


def test_fcm_and_webpush__token_and_browser_subscription__each_through_its_kind(kinds):
    base = kinds.platform.base_url
    tenant = Tenant(base, "acme-push")
    # Given a tenant with two push providers: its Firebase project (service account key file
    # pasted as is) and its VAPID key for browsers' Web Push
    tenant.add_provider(
        channel="push",
        kind="fcm",
        name="firebase",
        config={"endpoint": kinds.google.url},
        secrets={"service_account": json.dumps(kinds.google.service_account())},
    )
    tenant.add_provider(
        channel="push",
        kind="webpush",
        name="browsers",
        config={"vapid_subject": SUBJECT, "ttl": TTL},
        secrets={"vapid_private_key": VAPID_PRIVATE_B64},
    )
    # and a browser subscribed with its push service
    browser = kinds.push_service.subscribe()
    # When it pushes to an app's FCM registration token and to the browser's subscription
    to_app = tenant.send("push", DEVICE, "Order 42 is on its way", subject="Your order shipped")
    to_browser = tenant.send(
        "push", browser.subscription, "On its way", subject="Order #42 shipped"
    )
    # Then the app's push is sent through FCM (which reports nothing further) and the browser's
    # is delivered (a push service's 201 is its last word)
    wait_until(
        kinds.platform,
        {to_app: MessageStatus.SENT, to_browser: MessageStatus.DELIVERED},
        "both pushes handed over",
    )
    # FCM got the notification for the device, with an access token its token endpoint granted
    assert kinds.google.grants == 1
    (sent,) = kinds.google.sends
    assert sent["token"] == DEVICE
    assert sent["notification"] == {"title": "Your order shipped", "body": "Order 42 is on its way"}
    # the push service got one request it verified (VAPID JWT, aes128gcm), and the browser
    # decrypts the title and body
    assert kinds.push_service.refusals == []
    (received,) = kinds.push_service.received
    assert (received.payload["title"], received.payload["body"]) == (
        "Order #42 shipped",
        "On its way",
    )
    assert received.payload["message_id"] == to_browser
    assert received.headers["ttl"] == str(TTL)
    # each through its own kind of provider, not tried on the other
    app_attempt, browser_attempt = attempt_of(to_app), attempt_of(to_browser)
    assert (app_attempt.provider, app_attempt.provider_message_id) == (
        "firebase",
        f"projects/{PROJECT}/messages/0:1",
    )
    assert (browser_attempt.provider, browser_attempt.provider_message_id) == (
        "browsers",
        f"https://127.0.0.1:{kinds.push_service.port}/m/1",
    )
    assert kinds.push_service.requests == 1
    # as the tenant sees them
    assert tenant.message(to_app)["status"] == "sent"
    shown = tenant.message(to_browser)
    assert (shown["status"], shown["to"], shown["error"]) == ("delivered", browser.subscription, "")
