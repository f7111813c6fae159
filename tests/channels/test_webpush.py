"""Web Push against a local stand-in of a push service (HTTPS, with a test CA the platform is
made to trust) that checks every request as RFC 8030, RFC 8291 and RFC 8292 specify,
independently of the platform's code: the VAPID JWT verified with PyJWT against the key in
`k=`, its claims; the body decrypted with the subscription's private key, as the browser would;
and answers 201 with a Location, or the error a test asks for."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import http_ece
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.utils import timezone

from notify.channels import breaker, webpush
from notify.channels.base import ConfigError, Envelope, TransportError
from notify.channels.models import Provider
from notify.channels.registry import normalise_device_token
from notify.channels.services import create_provider
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus, Suppression
from notify.messaging.services import MessageDraft, create_message

SUBJECT = "mailto:push-ops@acme.example"
TTL = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


# The tenant's VAPID key pair, as `web-push generate-vapid-keys` prints it.
VAPID_KEY = ec.generate_private_key(ec.SECP256R1())
VAPID_PRIVATE_B64 = b64url(VAPID_KEY.private_numbers().private_value.to_bytes(32, "big"))
VAPID_PUBLIC_B64 = b64url(public_point(VAPID_KEY))


def _certificates(directory: Path) -> tuple[Path, Path]:
    """A CA, and a certificate for 127.0.0.1 and localhost it signed: (CA file, server PEM)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test push service CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, server_file = directory / "ca.pem", directory / "server.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return ca_file, server_file


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> tuple[Path, Path]:  # noqa: ANN001
    return _certificates(tmp_path_factory.mktemp("push-tls"))


@dataclass
class Browser:
    """A browser's subscription: its P-256 key pair and 16-byte auth secret (RFC 8291 §2)."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    expiration_time: int | None = None

    @property
    def subscription(self) -> str:
        """As `JSON.stringify(subscription)` writes it."""
        value = {
            "endpoint": self.endpoint,
            "expirationTime": self.expiration_time,
            "keys": {"p256dh": b64url(public_point(self.key)), "auth": b64url(self.auth)},
        }
        return json.dumps(value, separators=(",", ":"))


@dataclass
class Received:
    payload: dict
    headers: dict[str, str]
    claims: dict


class PushService:
    def __init__(self, server_pem: Path) -> None:
        self.browsers: dict[str, Browser] = {}
        self.answer: tuple[int, dict[str, str]] | None = None
        self.received: list[Received] = []
        self.refusals: list[str] = []
        self.generic: list[dict] = []
        self.requests = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                service.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/generic":
                    service.generic.append(json.loads(body))
                    status, headers = 200, {}
                    data = json.dumps({"status": "accepted", "message_id": "g-1"}).encode()
                else:
                    status, headers = service.check(self.path, dict(self.headers.items()), body)
                    data = json.dumps({"code": status}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_pem)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def subscribe(self, host: str = "127.0.0.1", **fields: object) -> Browser:
        token = b64url(os.urandom(24))
        browser = Browser(f"https://{host}:{self.port}/push/{token}", **fields)
        self.browsers[token] = browser
        return browser

    def refuse(self, status: int, why: str) -> tuple[int, dict[str, str]]:
        self.refusals.append(why)
        return status, {}

    def check(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        headers = {k.lower(): v for k, v in headers.items()}
        browser = self.browsers.get(path.removeprefix("/push/"))
        if browser is None:
            return self.refuse(404, "no such subscription")
        # RFC 8292 §3: Authorization: vapid t=<JWT>, k=<public key>
        scheme, _, params = headers.get("authorization", "").partition(" ")
        try:
            auth = dict(part.strip().split("=", 1) for part in params.split(","))
            token, key = auth["t"], unb64url(auth["k"])
            vapid_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
        except (KeyError, ValueError) as exc:
            return self.refuse(401, f"unreadable Authorization: {exc!r}")
        if scheme.lower() != "vapid":
            return self.refuse(401, f"scheme {scheme!r}")
        if key != public_point(VAPID_KEY):
            return self.refuse(403, "k is not the subscription's applicationServerKey")
        origin = f"https://{browser.endpoint.split('/')[2]}"
        try:
            claims = jwt.decode(
                token,
                vapid_key,
                algorithms=["ES256"],
                audience=origin,
                options={"require": ["aud", "exp", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            return self.refuse(403, f"JWT: {exc!r}")
        if claims["exp"] > time.time() + 24 * 3600:
            return self.refuse(403, "exp more than 24 hours ahead")
        if claims["sub"] != SUBJECT:
            return self.refuse(403, f"sub {claims['sub']!r}")
        # RFC 8030 §5.2 and §5.3
        if not headers.get("ttl", "").isdigit():
            return self.refuse(400, "no TTL")
        if headers.get("urgency", "normal") not in ("very-low", "low", "normal", "high"):
            return self.refuse(400, "bad Urgency")
        # RFC 8291 §4: aes128gcm, one record, the sender's public key as keyid, 4096 bytes
        if headers.get("content-encoding") != "aes128gcm":
            return self.refuse(400, f"Content-Encoding {headers.get('content-encoding')!r}")
        if len(body) > 4096:
            return self.refuse(413, "payload over 4096 bytes")
        (record_size,) = struct.unpack("!L", body[16:20])
        key_id_length = body[20]
        if key_id_length != 65 or len(body) - 21 - key_id_length > record_size:
            return self.refuse(400, "not one record keyed by the sender's public key")
        try:
            plaintext = http_ece.decrypt(
                body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm"
            )
        except http_ece.ECEException as exc:
            return self.refuse(400, f"undecryptable: {exc.message}")
        if self.answer is not None:
            return self.answer
        self.received.append(Received(json.loads(plaintext), headers, claims))
        return 201, {"Location": f"https://127.0.0.1:{self.port}/m/{len(self.received)}"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def vapid_provider(tenant, **secrets: str) -> Provider:  # noqa: ANN001
    return create_provider(
        tenant,
        channel="push",
        kind="webpush",
        name="browsers",
        config={"vapid_subject": SUBJECT, "ttl": TTL},
        secrets=secrets or {"vapid_private_key": VAPID_PRIVATE_B64},
        priority=1,
    )


@pytest.fixture
def push_service(tenant, settings, certificates, monkeypatch) -> Iterator[PushService]:  # noqa: ANN001
    ca_file, server_pem = certificates
    settings.ALLOW_PRIVATE_TARGETS = True
    # (the platform checks certificates as it does in production: it trusts the test CA)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    service = PushService(server_pem)
    vapid_provider(tenant)
    yield service
    for provider in Provider.all_tenants.filter(tenant=tenant):
        breaker.reset(provider.pk)
    service.close()


def push(tenant, recipient: str, body: str = "Your parcel is on its way") -> Message:  # noqa: ANN001
    return create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="push",
            # (as the API stores it: the push channel's recipient check)
            recipient=normalise_device_token(recipient),
            subject="Order #42 shipped",
            body=body,
            params={"extras": {"url": "/orders/42"}},
        ),
    )


def test_webpush__push_to_a_subscription__arrives_signed_and_decryptable_delivered(
    tenant, push_service, deliver
):
    # Given a browser subscribed with the tenant's push service
    browser = push_service.subscribe()
    # When a push is sent to its subscription
    message = push(tenant, browser.subscription)
    deliver(message.id)
    # Then the browser decrypts the title, body and data; the push service saw a valid VAPID
    # request (else it would have refused it)
    assert push_service.refusals == []
    (received,) = push_service.received
    assert received.payload == {
        "title": "Order #42 shipped",
        "body": "Your parcel is on its way",
        "message_id": message.id,
        "data": {"url": "/orders/42"},
    }
    assert received.headers["ttl"] == str(TTL)
    assert received.headers["urgency"] == "normal"
    assert received.claims["exp"] <= time.time() + 12 * 3600 + 60
    # And the message is delivered (a push service's 201 is the last word it gives)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED, message.error
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.provider, attempt.provider_message_id) == (
        "browsers",
        f"https://127.0.0.1:{push_service.port}/m/1",
    )


def test_webpush__410_gone__failed_bad_recipient_and_subscription_suppressed(
    tenant, push_service, deliver
):
    # Given a subscription its push service says is gone
    browser = push_service.subscribe()
    push_service.answer = (410, {})
    # When a push is sent to it
    message = push(tenant, browser.subscription)
    deliver(message.id)
    # Then the message failed as a bad recipient, saying so without the endpoint
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "410")
    assert "subscribe again" in message.error and "/push/" not in message.error
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.provider) == ("bad_recipient", "browsers")
    # And the subscription is on the tenant's suppression list: the next push is not sent
    row = Suppression.all_tenants.get(tenant=tenant, channel="push")
    assert row.recipient == browser.subscription and "410" in row.reason
    requests = push_service.requests
    second = push(tenant, browser.subscription)
    deliver(second.id)
    second.refresh_from_db()
    assert second.status == MessageStatus.SUPPRESSED and push_service.requests == requests


def test_webpush__429_with_retry_after__queued_for_a_retry_no_sooner_than_asked(
    tenant, push_service, deliver
):
    # Given a push service throttling us for two minutes
    browser = push_service.subscribe()
    push_service.answer = (429, {"Retry-After": "120"})
    # When a push is sent
    message = push(tenant, browser.subscription)
    deliver(message.id)
    # Then it waits for another try, not before the push service asked
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and "retried in 120s" in message.error
    assert message.next_attempt_at >= timezone.now() + timedelta(seconds=115)
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.error_code) == ("throttled", "429")
    assert not Suppression.all_tenants.exists()


@pytest.mark.parametrize(
    ("status", "kind", "outcome", "says"),
    [
        (404, "bad_recipient", MessageStatus.FAILED, "not retried"),
        (413, "permanent", MessageStatus.FAILED, "too large"),
        (400, "permanent", MessageStatus.FAILED, "vapid_private_key"),
        (401, "permanent", MessageStatus.FAILED, "vapid_private_key"),
        (403, "permanent", MessageStatus.FAILED, "vapid_subject"),
        (500, "provider_down", MessageStatus.QUEUED, "retried later"),
        (503, "provider_down", MessageStatus.QUEUED, "retried later"),
    ],
)
def test_webpush__push_service_error__that_kind_and_what_to_do(
    tenant, push_service, deliver, status, kind, outcome, says
):
    # Given a push service answering with an error
    browser = push_service.subscribe()
    push_service.answer = (status, {})
    # When a push is sent
    message = push(tenant, browser.subscription)
    deliver(message.id)
    # Then the message says what happened and how it goes on
    message.refresh_from_db()
    assert message.status == outcome and says in message.error
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.error_code) == (kind, str(status))
    assert "/push/" not in attempt.error


def test_webpush__payload_over_4096_bytes_encrypted__failed_saying_so_nothing_sent(
    tenant, push_service, deliver
):
    # Given a body that cannot fit one push message
    browser = push_service.subscribe()
    # When it is sent
    message = push(tenant, browser.subscription, body="x" * 4000)
    deliver(message.id)
    # Then it failed, saying it is too large, and nothing reached the push service
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "4096" in message.error and "shorten" in message.error
    assert push_service.requests == 0


def test_webpush__endpoint_on_loopback_without_private_targets__refused_nothing_sent(
    tenant, push_service, settings, deliver
):
    # Given production's outbound gate, and a subscription whose endpoint resolves to loopback
    settings.ALLOW_PRIVATE_TARGETS = False
    browser = push_service.subscribe(host="localhost")
    # When a push is sent to it
    message = push(tenant, browser.subscription)
    deliver(message.id)
    # Then it is refused, nothing is sent, and the error does not quote the endpoint
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "non-public" in message.error and "/push/" not in message.error
    assert push_service.requests == 0


def test_webpush__expired_subscription__failed_bad_recipient_suppressed_nothing_sent(
    tenant, push_service, deliver
):
    # Given a subscription whose expirationTime has passed
    browser = push_service.subscribe(expiration_time=int(time.time() - 60) * 1000)
    # When a push is sent to it
    message = push(tenant, browser.subscription)
    deliver(message.id)
    # Then it is not sent; the subscription is suppressed
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and "expired" in message.error
    assert Suppression.all_tenants.filter(recipient=browser.subscription).exists()
    assert push_service.requests == 0


def test_webpush__fcm_token_recipient__not_attempted_by_the_webpush_provider(
    tenant, push_service, deliver
):
    # Given the tenant's webpush provider first, then a generic HTTP push provider
    create_provider(
        tenant,
        channel="push",
        kind="http",
        name="relay",
        config={"url": f"https://127.0.0.1:{push_service.port}/generic"},
        secrets={"secret": "relay-secret-0123456789"},
        priority=2,
    )
    # When a push goes to an FCM registration token
    token = "dGVzdC10b2tlbg:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
    message = push(tenant, token)
    deliver(message.id)
    # Then the webpush provider is passed over: the generic one carries it
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT, message.error
    assert DeliveryAttempt.objects.get(message=message).provider == "relay"
    assert [r["user_id"] for r in push_service.generic] == [token]
    assert push_service.received == [] and push_service.requests == 1


@pytest.mark.parametrize(
    ("subscription", "says"),
    [
        ("fGx3Jk9sT0e:APA91bH7dQ2x", "not JSON"),
        (
            '{"endpoint":"http://push.example.net/x","keys":{"p256dh":"BA","auth":"AA"}}',
            "not https",
        ),
        ('{"endpoint":"https://push.example.net/x","expirationTime":null}', "no keys"),
        (
            '{"endpoint":"https://push.example.net/x","keys":{"p256dh":"BAAA","auth":"'
            + "A" * 22
            + '"}}',
            "keys.p256dh",
        ),
    ],
)
def test_webpush__not_a_subscription__not_accepted_bad_recipient_saying_what(subscription, says):
    # Given the webpush transport
    kind = webpush.WebPushKind()
    config, secrets = kind.clean(
        {"vapid_subject": SUBJECT}, {"vapid_private_key": VAPID_PRIVATE_B64}
    )
    transport = kind.transport("push", config, secrets)
    # When it is asked about a recipient that is no subscription, and made to send to it
    assert not transport.accepts(subscription)
    with pytest.raises(TransportError) as refused:
        transport.send(Envelope(message_id="m-1", channel="push", recipient=subscription))
    # Then it refuses it as a bad recipient, saying what is wrong
    assert refused.value.kind == "bad_recipient" and says in refused.value.reason


def test_webpush__pem_private_key__public_key_derived_into_config_secret_kept_out(tenant):
    # Given a VAPID key as PEM (what `vapid --gen` writes), and a public key made up by hand
    pem = VAPID_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    # When the provider is created
    provider = create_provider(
        tenant,
        channel="push",
        kind="webpush",
        name="browsers",
        config={"vapid_subject": SUBJECT, "vapid_public_key": "BMadeUp"},
        secrets={"vapid_private_key": pem},
    )
    # Then its config shows the key's own public key, for browsers' applicationServerKey
    provider.refresh_from_db()
    assert provider.config == {
        "vapid_subject": SUBJECT,
        "ttl": 86400,
        "vapid_public_key": VAPID_PUBLIC_B64,
    }
    assert "PRIVATE" not in json.dumps(provider.config)


@pytest.mark.parametrize(
    ("config", "secret", "field_name"),
    [
        ({"vapid_subject": SUBJECT}, "not-a-key", "secrets.vapid_private_key"),
        ({"vapid_subject": SUBJECT}, b64url(bytes(32)), "secrets.vapid_private_key"),
        (
            {"vapid_subject": SUBJECT},
            ec.generate_private_key(ec.SECP384R1())
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode(),
            "secrets.vapid_private_key",
        ),
        ({"vapid_subject": "ops@acme.example"}, VAPID_PRIVATE_B64, "config.vapid_subject"),
        ({"vapid_subject": "http://acme.example"}, VAPID_PRIVATE_B64, "config.vapid_subject"),
        ({"vapid_subject": SUBJECT, "ttl": 2419201}, VAPID_PRIVATE_B64, "config.ttl"),
    ],
)
def test_webpush__bad_vapid_configuration__refused_naming_the_field(
    tenant, config, secret, field_name
):
    # When a webpush provider is created with an unusable key, subject or TTL
    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="push",
            kind="webpush",
            name="browsers",
            config=config,
            secrets={"vapid_private_key": secret},
        )
    # Then it is refused, naming the field, and nothing is stored
    assert set(refused.value.errors) == {field_name}
    assert not Provider.all_tenants.filter(tenant=tenant).exists()


def test_webpush__stale_subscriptions_refused_403__breaker_stays_closed_for_the_others(
    tenant, push_service, deliver, settings
):
    from notify.channels import breaker
    from notify.channels.models import Provider

    # Given more subscriptions made with another key than it takes to open a breaker
    push_service.answer = (403, {})
    for _ in range(settings.PROVIDER_BREAKER_FAILURES + 1):
        deliver(push(tenant, push_service.subscribe().subscription).id)
    # Then the provider's circuit is still closed: the next browser gets its push
    provider = Provider.all_tenants.get(tenant=tenant, kind="webpush")
    assert breaker.state(provider.pk) == breaker.CLOSED
    push_service.answer = None
    fresh = push_service.subscribe()
    message = push(tenant, fresh.subscription)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


def test_webpush__one_push_service_down__its_breaker_opens_the_other_services_still_served(
    tenant, push_service, deliver, settings, certificates
):
    from notify.channels import breaker
    from notify.channels.models import Provider

    # Given a second browser vendor's push service beside the first, which is down
    _, server_pem = certificates
    other_service = PushService(server_pem)
    try:
        push_service.answer = (503, {})
        for _ in range(settings.PROVIDER_BREAKER_FAILURES):
            deliver(push(tenant, push_service.subscribe().subscription).id)
        provider = Provider.all_tenants.get(tenant=tenant, kind="webpush")
        down = f"https://127.0.0.1:{push_service.port}"
        # Then the breaker of that service is open, the provider's own one is not
        assert breaker.state(breaker.circuit(provider.pk, down)) == breaker.OPEN
        assert breaker.state(provider.pk) == breaker.CLOSED
        # and the admin names it among the provider's breakers
        assert breaker.scoped_circuits(provider.pk) == [breaker.circuit(provider.pk, down)]
        # and a browser of the other vendor still gets its push at once
        message = push(tenant, other_service.subscribe().subscription)
        deliver(message.id)
        message.refresh_from_db()
        assert message.status == MessageStatus.DELIVERED
        assert len(other_service.received) == 1
        # while the first service's browsers wait without it being called
        calls_before = push_service.requests
        waiting = push(tenant, push_service.subscribe().subscription)
        deliver(waiting.id)
        waiting.refresh_from_db()
        assert waiting.status == MessageStatus.QUEUED
        assert "circuit open for " + down in waiting.error
        assert push_service.requests == calls_before
        # and a reset forgets the service's breaker with the provider's
        breaker.reset(provider.pk)
        assert breaker.scoped_circuits(provider.pk) == []
        assert breaker.state(breaker.circuit(provider.pk, down)) == breaker.CLOSED
    finally:
        other_service.close()
