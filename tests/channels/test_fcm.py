"""FCM HTTP v1 against a local stand-in of Google's two endpoints, each checking the request as
Google documents it: the OAuth 2.0 token endpoint (JWT bearer grant, an RS256 JWT verified
with the service account's public key) and `messages:send` (the Bearer token it issued, the
message's shape), answering in their formats, FCM's documented error bodies included."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qsl

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.utils import timezone

from notify.channels import breaker, fcm
from notify.channels.base import ConfigError
from notify.channels.models import Provider
from notify.channels.services import create_provider
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus, Suppression
from notify.messaging.services import MessageDraft, create_message
from tests.standin import JsonStandIn

PROJECT = "acme-push-1234"
CLIENT_EMAIL = f"fcm-sender@{PROJECT}.iam.gserviceaccount.com"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE = "fGx3-Xa0QkK:APA91bH-test-registration-token_0123456789"
SEND_PATH = re.compile(r"/v1/projects/(?P<project>[^/]+)/messages:send")


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class Google(JsonStandIn):
    content_type = "application/json; charset=UTF-8"

    """oauth2.googleapis.com/token and fcm.googleapis.com, as far as FCM sending goes."""

    def __init__(self) -> None:
        self.key = rsa_key()
        self.grants = 0
        self.grant_refusal: str | None = None
        self.expires_in = 3599
        self.issued: set[str] = set()
        self.sends: list[dict] = []
        self.fcm_error: tuple[int, dict, dict[str, str]] | None = None
        super().__init__()
        self.url = self.base
        self.token_uri = f"{self.url}/token"

    def respond(self, path: str, headers, raw: bytes) -> tuple[int, object, dict[str, str]]:  # noqa: ANN001
        if path == "/token":
            return self.token(headers, raw)
        return self.send(path, headers, raw)

    def service_account(self, key: rsa.RSAPrivateKey | None = None) -> dict:
        """A key file as the Google Cloud console gives it."""
        return {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "8d5a0c1e4b7f2a9d3c6e1f0b",
            "private_key": pem(key or self.key),
            "client_email": CLIENT_EMAIL,
            "client_id": "104729384756102938475",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    def token(self, headers, raw: bytes) -> tuple[int, dict, dict]:  # noqa: ANN001
        """https://developers.google.com/identity/protocols/oauth2/service-account#httprest"""
        if headers.get("Content-Type") != "application/x-www-form-urlencoded":
            return 400, {"error": "invalid_request", "error_description": "content type"}, {}
        form = dict(parse_qsl(raw.decode()))
        if set(form) != {"grant_type", "assertion"} or form["grant_type"] != GRANT_TYPE:
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid"}, {}
        try:
            claims = jwt.decode(
                form["assertion"],
                self.key.public_key(),
                algorithms=["RS256"],
                audience=self.token_uri,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.InvalidTokenError:
            return (
                400,
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                {},
            )
        if (
            claims["iss"] != CLIENT_EMAIL
            or fcm.FCM_SCOPE not in claims["scope"].split()
            or not 0 < claims["exp"] - claims["iat"] <= 3600
        ):
            return 400, {"error": "invalid_scope", "error_description": "bad claims"}, {}
        if self.grant_refusal:
            return 400, {"error": "invalid_grant", "error_description": self.grant_refusal}, {}
        self.grants += 1
        token = f"ya29.c.test-{self.grants}"
        self.issued.add(token)
        return (
            200,
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"},
            {},
        )

    def send(self, path: str, headers, raw: bytes) -> tuple[int, dict, dict]:  # noqa: ANN001
        """https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send"""
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.issued:
            return 401, error(401, "UNAUTHENTICATED", "Request had invalid credentials."), {}
        match = SEND_PATH.fullmatch(path)
        if match is None or match["project"] != PROJECT:
            return 404, error(404, "NOT_FOUND", "Requested entity was not found."), {}
        body = json.loads(raw)
        message = body.get("message", {})
        notification = message.get("notification", {})
        if not (
            set(body) == {"message"}
            and isinstance(message.get("token"), str)
            and isinstance(notification.get("title"), str)
            and isinstance(notification.get("body"), str)
            and all(isinstance(v, str) for v in message.get("data", {}).values())
        ):
            return 400, error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), {}
        self.sends.append(message)
        if self.fcm_error is not None:
            return self.fcm_error
        return 200, {"name": f"projects/{PROJECT}/messages/0:{len(self.sends)}"}, {}


def error(code: int, status: str, message: str, fcm_code: str = "") -> dict:
    """An error body as FCM gives it, with its FcmError detail when it has an errorCode."""
    details = [{"@type": fcm.FCM_ERROR_TYPE, "errorCode": fcm_code}] if fcm_code else []
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    fcm.tokens.clear()
    yield
    fcm.tokens.clear()


@pytest.fixture
def google(settings) -> Iterator[Google]:  # noqa: ANN001
    settings.ALLOW_PRIVATE_TARGETS = True
    stand_in = Google()
    yield stand_in
    stand_in.close()


@pytest.fixture
def fcm_provider(tenant, google) -> Iterator[Provider]:  # noqa: ANN001
    provider = create_provider(
        tenant,
        channel="push",
        kind="fcm",
        name="firebase",
        config={"endpoint": google.url},
        # (a key file's content, as a tenant pastes it)
        secrets={"service_account": json.dumps(google.service_account())},
    )
    breaker.reset(provider.pk)
    yield provider
    breaker.reset(provider.pk)


def push(tenant, recipient: str = DEVICE, **params) -> Message:  # noqa: ANN001, ANN003
    return create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="push",
            recipient=recipient,
            subject="Your order shipped",
            body="Order 42 is on its way",
            params=params or None,
        ),
    )


def test_fcm__two_pushes__delivered_with_one_token_grant_reused(
    tenant, google, fcm_provider, deliver
):
    # Given a tenant with an fcm provider
    # When two pushes are delivered
    first, second = push(tenant, extras={"order": 42, "kind": "shipped"}), push(tenant)
    deliver(first.id)
    deliver(second.id)
    # Then both are sent, as FCM messages to the device, with one access token between them
    for message in (first, second):
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT, message.error
    assert google.grants == 1
    assert [m["token"] for m in google.sends] == [DEVICE, DEVICE]
    assert google.sends[0]["notification"] == {
        "title": "Your order shipped",
        "body": "Order 42 is on its way",
    }
    assert google.sends[0]["data"] == {"order": "42", "kind": "shipped"}
    attempt = DeliveryAttempt.objects.get(message=first)
    assert (attempt.provider, attempt.provider_message_id) == (
        "firebase",
        f"projects/{PROJECT}/messages/0:1",
    )


def test_fcm__unregistered_token__failed_bad_recipient_and_suppressed(
    tenant, google, fcm_provider, deliver
):
    # Given FCM saying the app was uninstalled from the device
    google.fcm_error = (
        404,
        error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
        {},
    )
    # When a push to it is delivered
    message = push(tenant)
    deliver(message.id)
    # Then it failed for its recipient, and the token is on the tenant's suppression list
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "UNREGISTERED")
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.provider) == ("bad_recipient", "firebase")
    (row,) = Suppression.all_tenants.filter(tenant=tenant, channel="push")
    assert row.recipient == DEVICE and "UNREGISTERED" in row.reason
    # and the next push to it is not sent
    google.fcm_error = None
    following = push(tenant)
    deliver(following.id)
    following.refresh_from_db()
    assert following.status == MessageStatus.SUPPRESSED and len(google.sends) == 1


def test_fcm__quota_exceeded_with_retry_after__retried_later_not_failed(
    tenant, google, fcm_provider, deliver
):
    # Given FCM over the project's quota, asking for two minutes
    google.fcm_error = (
        429,
        error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED"),
        {"Retry-After": "120"},
    )
    # When a push is delivered
    message = push(tenant)
    deliver(message.id)
    # Then it waits for its next try, not before FCM's Retry-After
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at >= timezone.now() + timedelta(seconds=110)
    assert "retried later" in message.error
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.error_code) == ("throttled", "QUOTA_EXCEEDED")
    assert not Suppression.all_tenants.exists()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"},
            "private_key",
        ),
        ({"private_key": pem(ec.generate_private_key(ec.SECP256R1()))}, "RSA"),
        ({"type": "authorized_user"}, "service_account"),
        ({"client_email": None}, "client_email"),
    ],
)
def test_fcm__invalid_service_account__refused_at_create_naming_the_field(
    tenant, google, change, said
):
    # Given a service account key that cannot sign Google's grant
    account = {**google.service_account(), **change}
    # When the tenant adds the provider with it
    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="push",
            kind="fcm",
            name="firebase",
            config={"endpoint": google.url},
            secrets={"service_account": account},
        )
    # Then it is refused, saying which field is wrong, and nothing is stored
    assert said in refused.value.errors["secrets.service_account"]
    assert not any(line in str(refused.value) for line in account["private_key"].splitlines()[1:-1])
    assert not Provider.all_tenants.exists()


@pytest.mark.parametrize(
    "refusal",
    ["a key Google does not know", "Invalid grant: account not found"],
)
def test_fcm__token_endpoint_refuses_grant__failed_saying_fix_the_service_account(
    tenant, google, deliver, refusal
):
    # Given a provider whose service account Google refuses: a key of another account, or
    # an account deleted since
    if refusal == "a key Google does not know":
        account = google.service_account(key=rsa_key())
    else:
        account, google.grant_refusal = google.service_account(), refusal
    create_provider(
        tenant,
        channel="push",
        kind="fcm",
        name="firebase",
        config={"endpoint": google.url},
        secrets={"service_account": account},
    )
    # When a push is delivered
    message = push(tenant)
    deliver(message.id)
    # Then it failed for good, saying to fix the service account, and was never sent
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "invalid_grant")
    assert "fix the service account" in message.error
    assert not any(line in message.error for line in account["private_key"].splitlines()[1:-1])
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.error_kind == "permanent"
    assert google.sends == [] and google.grants == 0


def test_fcm__web_push_subscription_recipient__not_attempted_by_fcm(
    tenant, google, fcm_provider, deliver
):
    # Given a tenant whose only push provider is fcm
    subscription = json.dumps(
        {
            "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk",
            "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA", "auth": "tBHItJI5svbpez"},
        },
        separators=(",", ":"),
    )
    # When a push to a Web Push subscription is delivered
    message = push(tenant, recipient=subscription)
    deliver(message.id)
    # Then fcm does not try it: the message failed, saying which provider it needs
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "webpush provider" in message.error
    assert google.grants == 0 and google.sends == []


def test_fcm__token_expiring_within_minutes__not_reused(tenant, google, fcm_provider, deliver):
    # Given a token endpoint granting tokens that expire in four minutes
    google.expires_in = 240
    # When two pushes are delivered
    first, second = push(tenant), push(tenant)
    deliver(first.id)
    deliver(second.id)
    # Then each went with a token of its own: one that may expire on the way is not used
    second.refresh_from_db()
    assert second.status == MessageStatus.SENT and google.grants == 2


def test_fcm__cached_token_revoked__granted_anew_and_sent(tenant, google, fcm_provider, deliver):
    # Given a push sent, then its access token revoked at Google before its time
    deliver(push(tenant).id)
    google.issued.clear()
    # When the next push is delivered
    message = push(tenant)
    deliver(message.id)
    # Then it is sent with a new token
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT, message.error
    assert google.grants == 2 and len(google.sends) == 2


TOKEN_VIOLATION = {
    "@type": fcm.BAD_REQUEST_TYPE,
    "fieldViolations": [
        {
            "field": "message.token",
            "description": "The registration token is not a valid FCM registration token",
        }
    ],
}


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "message_status"),
    [
        (
            403,
            error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"),
            "bad_recipient",
            "SENDER_ID_MISMATCH",
            MessageStatus.FAILED,
        ),
        (
            400,
            {
                "error": {
                    **error(400, "INVALID_ARGUMENT", "Invalid token", "INVALID_ARGUMENT")["error"],
                    "details": [
                        {"@type": fcm.FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"},
                        TOKEN_VIOLATION,
                    ],
                }
            },
            "bad_recipient",
            "INVALID_ARGUMENT",
            MessageStatus.FAILED,
        ),
        (
            400,
            error(400, "INVALID_ARGUMENT", "Invalid data key: from", "INVALID_ARGUMENT"),
            "permanent",
            "INVALID_ARGUMENT",
            MessageStatus.FAILED,
        ),
        (
            503,
            error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"),
            "provider_down",
            "UNAVAILABLE",
            MessageStatus.QUEUED,
        ),
        (
            500,
            error(500, "INTERNAL", "Internal error encountered.", "INTERNAL"),
            "provider_down",
            "INTERNAL",
            MessageStatus.QUEUED,
        ),
        (
            401,
            error(401, "UNAUTHENTICATED", "Auth error from APNS", "THIRD_PARTY_AUTH_ERROR"),
            "permanent",
            "THIRD_PARTY_AUTH_ERROR",
            MessageStatus.FAILED,
        ),
    ],
)
def test_fcm__documented_error__that_failure_kind(
    tenant, google, fcm_provider, deliver, status, body, kind, code, message_status
):
    # Given FCM answering one of its documented errors
    google.fcm_error = (status, body, {})
    # When a push is delivered
    message = push(tenant)
    deliver(message.id)
    # Then the attempt failed as that kind, with FCM's code, and the message fails or waits
    message.refresh_from_db()
    assert message.status == message_status
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.error_code) == (kind, code)
    assert Suppression.all_tenants.exists() == (kind == "bad_recipient")
