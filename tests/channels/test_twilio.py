"""Twilio SMS through the official SDK, against a local stand-in of the Messages API that
checks the request as Twilio documents it (Basic auth with the account SID and auth token, the
account's Messages.json resource, form-encoded To/From/Body) and answers in its format, error
bodies included; and Twilio's status callbacks, signed with X-Twilio-Signature as Twilio
documents it (computed here independently of the SDK)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode

import pytest
from django.test import Client

from notify.channels import breaker
from notify.channels.models import Provider
from notify.channels.services import create_provider
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus, Suppression
from notify.messaging.services import MessageDraft, create_message
from notify.tenants.services import create_tenant
from tests.standin import JsonStandIn

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-auth-token-0123456789abcd"
SENDER = "+15005550006"


class MessagesApi(JsonStandIn):
    """Twilio's `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`."""

    def __init__(self) -> None:
        self.accepted: list[dict] = []
        self.refusal: tuple[int, dict, dict] | None = None
        super().__init__()
        self.url = self.base

    def respond(self, path: str, headers, raw: bytes) -> tuple[int, dict, dict]:  # noqa: ANN001
        return self.check(path, dict(headers), raw.decode())

    @staticmethod
    def error(status: int, code: int, message: str) -> tuple[int, dict, dict]:
        return (
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            {},
        )

    def check(self, path: str, headers: dict, raw: str) -> tuple[int, dict, dict]:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if headers.get("Authorization") != expected:
            return self.error(401, 20003, "Authenticate")
        if path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
            return self.error(404, 20404, "The requested resource was not found")
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self.error(400, 21609, "bad content type")
        params = dict(parse_qsl(raw, keep_blank_values=True))
        if not params.get("To") or not params.get("Body"):
            return self.error(400, 21604, "A 'To' phone number and a 'Body' are required.")
        if not (params.get("From") or params.get("MessagingServiceSid")):
            return self.error(400, 21603, "A 'From' phone number is required.")
        if self.refusal is not None:
            return self.refusal
        self.accepted.append(params)
        sid = f"SM{len(self.accepted):032x}"
        return (
            201,
            {"sid": sid, "status": "queued", "to": params["To"], "account_sid": ACCOUNT_SID},
            {},
        )


def receipts_url(provider: Provider) -> str:
    return f"http://testserver/v2/receipts/providers/{provider.pk}"


@pytest.fixture
def twilio_api(settings) -> Iterator[MessagesApi]:  # noqa: ANN001
    settings.ALLOW_PRIVATE_TARGETS = True
    api = MessagesApi()
    yield api
    api.close()


def make_provider(tenant, api: MessagesApi, **config: str) -> Provider:  # noqa: ANN001
    provider = create_provider(
        tenant,
        channel="sms",
        kind="twilio",
        name="twilio",
        config={"account_sid": ACCOUNT_SID, "from": SENDER, "base_url": api.url, **config},
        secrets={"auth_token": AUTH_TOKEN},
    )
    provider.config["status_callback"] = receipts_url(provider)
    provider.save()
    breaker.reset(provider.pk)
    return provider


@pytest.fixture
def twilio(tenant, twilio_api) -> Provider:  # noqa: ANN001
    return make_provider(tenant, twilio_api)


def code_sms(tenant, recipient: str = "+8613912345678") -> Message:  # noqa: ANN001
    return create_message(
        tenant=tenant,
        draft=MessageDraft(channel="sms", recipient=recipient, body="Your code is 482913"),
    )


def twilio_signature(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """As Twilio documents it: the URL, then each parameter name and value sorted by name,
    HMAC-SHA1 with the auth token, base64."""
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def status_callback(provider: Provider, params: dict[str, str], signature: str | None = None):  # noqa: ANN201
    url = receipts_url(provider)
    return Client().post(
        f"/v2/receipts/providers/{provider.pk}",
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature or twilio_signature(url, params),
    )


def callback_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "From": SENDER,
        "To": "+8613912345678",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def sent_sid(message: Message) -> str:
    return DeliveryAttempt.objects.get(message=message).provider_message_id


def test_twilio__message__sent_through_the_sdk_as_documented_with_its_status_callback(
    tenant, twilio, twilio_api, deliver
):
    # Given a tenant whose SMS go through its Twilio account
    message = code_sms(tenant)
    # When the worker delivers it
    deliver(message.id)
    # Then Twilio got To, From, Body and the status callback, and the attempt keeps Twilio's sid
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT, message.error
    (params,) = twilio_api.accepted
    assert (params["To"], params["From"], params["Body"]) == (
        "+8613912345678",
        SENDER,
        "Your code is 482913",
    )
    assert params["StatusCallback"] == receipts_url(twilio)
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.provider, attempt.provider_message_id) == ("twilio", f"SM{1:032x}")


@pytest.mark.parametrize(
    ("status", "code", "kind", "message_status"),
    [
        (400, 21211, "bad_recipient", MessageStatus.FAILED),
        (429, 20429, "throttled", MessageStatus.QUEUED),
        (503, 20500, "provider_down", MessageStatus.QUEUED),
        (400, 21606, "permanent", MessageStatus.FAILED),
    ],
)
def test_twilio__refusal__recorded_as_its_kind_with_twilios_code(
    tenant, twilio, twilio_api, deliver, status, code, kind, message_status
):
    # Given Twilio refusing with one of its documented errors
    twilio_api.refusal = MessagesApi.error(status, code, "refused")
    message = code_sms(tenant)
    # When the worker delivers
    deliver(message.id)
    # Then the message ends, or waits, as that kind of refusal says
    message.refresh_from_db()
    assert message.status == message_status
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.error_code, attempt.provider) == (kind, str(code), "twilio")


def test_twilio__invalid_number__suppressed_so_the_next_message_is_not_sent(
    tenant, twilio, twilio_api, deliver
):
    twilio_api.refusal = MessagesApi.error(400, 21211, "The 'To' number is not valid.")
    deliver(code_sms(tenant).id)
    (row,) = Suppression.all_tenants.filter(tenant=tenant)
    assert row.recipient == "+8613912345678" and "21211" in row.reason


def test_twilio__wrong_auth_token__failed_saying_to_check_the_credentials(
    tenant, twilio_api, deliver
):
    provider = create_provider(
        tenant,
        channel="sms",
        kind="twilio",
        name="twilio",
        config={"account_sid": ACCOUNT_SID, "from": SENDER, "base_url": twilio_api.url},
        secrets={"auth_token": "not-the-token-0123456789"},
    )
    breaker.reset(provider.pk)
    message = code_sms(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "20003" in message.error and "auth token" in message.error
    assert twilio_api.accepted == []


def test_twilio_status_callback__delivered_signed_by_twilio__message_delivered(
    tenant, twilio, deliver
):
    # Given a message Twilio took
    message = code_sms(tenant)
    deliver(message.id)
    # When Twilio reports it delivered, signed with the account's auth token
    answer = status_callback(twilio, callback_params(sent_sid(message), "delivered"))
    # Then the message is delivered
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


def test_twilio_status_callback__intermediate_status__200_and_nothing_changes(
    tenant, twilio, deliver
):
    message = code_sms(tenant)
    deliver(message.id)
    answer = status_callback(twilio, callback_params(sent_sid(message), "sent"))
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_twilio_status_callback__undelivered_unknown_handset__failed_and_suppressed(
    tenant, twilio, deliver
):
    message = code_sms(tenant)
    deliver(message.id)
    params = callback_params(sent_sid(message), "undelivered", ErrorCode="30005")
    assert status_callback(twilio, params).status_code == 200
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "30005")
    assert Suppression.all_tenants.filter(tenant=tenant, recipient=message.recipient).exists()


@pytest.mark.parametrize(
    "signature",
    [
        "bm90IHR3aWxpbydzIHNpZ25hdHVyZQ==",
        twilio_signature("http://testserver/elsewhere", callback_params("x", "delivered")),
    ],
)
def test_twilio_status_callback__bad_signature__401_and_nothing_changes(
    tenant, twilio, deliver, signature
):
    message = code_sms(tenant)
    deliver(message.id)
    params = callback_params(sent_sid(message), "delivered")
    answer = status_callback(twilio, params, signature=signature)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "authentication_failed"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_twilio_status_callback__signed_with_another_token__401_and_nothing_changes(
    tenant, twilio, deliver
):
    message = code_sms(tenant)
    deliver(message.id)
    params = callback_params(sent_sid(message), "delivered")
    signature = twilio_signature(receipts_url(twilio), params, token="another-token-0123456789")
    assert status_callback(twilio, params, signature=signature).status_code == 401
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_twilio_status_callback__another_tenants_message_sid__changes_nothing(
    tenant, twilio, twilio_api, deliver
):
    # Given our message sent through our Twilio provider
    message = code_sms(tenant)
    deliver(message.id)
    # And another tenant with its own Twilio provider (same account, even)
    other, _ = create_tenant("globex", name="Globex")
    theirs = make_provider(other, twilio_api)
    # When a validly signed report for our message's sid arrives at their provider's URL
    answer = status_callback(theirs, callback_params(sent_sid(message), "failed"))
    # Then it is accepted as a request, but moves nothing of ours
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_twilio_provider__config_checked__errors_name_each_field(tenant):
    from notify.channels.base import ConfigError

    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="sms",
            kind="twilio",
            name="twilio",
            config={"account_sid": "XX1", "status_callback": "ftp://x", "region": "us1"},
            secrets={"auth_token": "short"},
        )
    assert set(refused.value.errors) == {
        "config",
        "config.account_sid",
        "config.from",
        "config.status_callback",
        "secrets.auth_token",
    }


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"account_sid": "AC/../x#é ?q"}, "config.account_sid"),
        ({"from": "+1 (500) 555-0006\r\n"}, "config.from"),
        ({"from": "", "messaging_service_sid": "MG/x"}, "config.messaging_service_sid"),
    ],
)
def test_twilio_provider__unsafe_sid_or_sender__refused_naming_it(tenant, config, field):
    from notify.channels.base import ConfigError

    base = {"account_sid": ACCOUNT_SID, "from": SENDER}
    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="sms",
            kind="twilio",
            name="twilio",
            config={**base, **config},
            secrets={"auth_token": AUTH_TOKEN},
        )
    assert field in refused.value.errors
