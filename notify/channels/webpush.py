"""Web Push to browsers: the tenant's VAPID key signs, the browser's subscription addresses.

The protocol, as the three RFCs define it:

- RFC 8030 (Generic Event Delivery Using HTTP Push): a browser subscribes with its push
  service and hands the site a PushSubscription, whose `endpoint` is an https URL at that
  service (an unguessable capability: whoever knows it can push to the browser). The
  application server POSTs the message to the endpoint with a `TTL` header (how long the
  service may hold it for an offline browser) and an optional `Urgency`. The service answers
  201 Created (with a `Location` for the push message resource); 404/410 when the subscription
  is gone (expired, unsubscribed: it will never come back), 413 when the payload is too large,
  429 when throttling, 5xx when failing.
- RFC 8291 (Message Encryption for Web Push): the payload is encrypted end to end for the
  browser, so the push service cannot read it. Content coding `aes128gcm` (RFC 8188): an
  ephemeral P-256 key of ours, ECDH with the subscription's `keys.p256dh`, mixed with its
  `keys.auth` secret through HKDF; one record, at most 4096 bytes on the wire (header
  included), which leaves 3993 bytes of plaintext.
- RFC 8292 (VAPID): the request carries `Authorization: vapid t=<JWT>, k=<public key>`, a
  JWT signed ES256 with the tenant's P-256 key, claims `aud` (the endpoint's origin), `exp`
  (at most 24 h ahead) and `sub` (a `mailto:` or `https:` contact for the push service's
  operator). A subscription made with an `applicationServerKey` is bound to that public key:
  the push service refuses (401/403) any other.

The endpoint is the browser's (so anyone's) URL: it is called only through the outbound gate
(`gated_post`), never quoted in errors or logs, and neither are the keys.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import http_ece
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from py_vapid.jwt import sign as vapid_jwt

from notify import outbound
from notify.channels.base import (
    ConfigError,
    Envelope,
    ProviderKind,
    SendResult,
    Transport,
    TransportError,
    gated_post,
    retry_after_seconds,
    usable_url,
)

LABEL = "Web Push service"
DEFAULT_TTL = 86400
# RFC 8030 leaves the maximum to the push service; 28 days is what FCM and autopush keep
MAX_TTL = 28 * 86400
# push services must accept 4096 bytes of encrypted body (RFC 8030 §7.2); aes128gcm adds a
# 86-byte header (salt, record size, our 65-byte public key) and 17 bytes of delimiter and tag
MAX_BODY_BYTES = 4096
MAX_PLAINTEXT_BYTES = MAX_BODY_BYTES - 86 - 17
# RFC 8292 allows 24 h; a margin keeps a slow clock on our side from making it too long
JWT_LIFETIME = 12 * 3600
MAX_SUBJECT_CHARS = 500
MAX_PROVIDER_ID_CHARS = 255

_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_EMAIL = EmailValidator()


class InvalidSubscription(ValueError):
    """The recipient is not a usable PushSubscription (the message says what is wrong, never
    quoting the endpoint or the keys)."""


def b64url_decode(value: object) -> bytes:
    """Strict base64url (padding optional): what browsers and VAPID tools print."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise ValueError("not base64url")
    text = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Subscription:
    endpoint: str
    p256dh: bytes  # the browser's P-256 public key, uncompressed point
    auth: bytes  # its 16-byte authentication secret
    expires_at: float | None  # Unix seconds, or None

    @property
    def audience(self) -> str:
        """The endpoint's origin, as the VAPID `aud` claim must be (RFC 8292 §2)."""
        parts = urlsplit(self.endpoint)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        # (an origin omits the scheme's default port)
        port = f":{parts.port}" if parts.port not in (None, 443) else ""
        return f"https://{host}{port}"


def parse_subscription(recipient: str) -> Subscription:
    """The PushSubscription JSON a browser's `JSON.stringify(subscription)` gives, checked."""
    parsed = _parsed_subscription(recipient)
    if isinstance(parsed, str):
        raise InvalidSubscription(parsed)
    return parsed


@functools.lru_cache(maxsize=256)
def _parsed_subscription(recipient: str) -> Subscription | str:
    # (one send asks three times: the provider's `accepts`, its breaker scope, the send; the
    # key check is an elliptic-curve point validation)
    try:
        return _parse_subscription(recipient)
    except InvalidSubscription as exc:
        return str(exc)


def _parse_subscription(recipient: str) -> Subscription:
    try:
        value = json.loads(recipient)
    except ValueError:
        raise InvalidSubscription("the recipient is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidSubscription("the recipient is not a JSON object")
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, str) or not usable_url(endpoint):
        raise InvalidSubscription("its endpoint is not a URL")
    parts = urlsplit(endpoint)
    if parts.scheme != "https":
        raise InvalidSubscription("its endpoint is not https (RFC 8030 requires it)")
    if parts.username is not None or parts.password is not None:
        raise InvalidSubscription("its endpoint carries credentials")
    keys = value.get("keys")
    if not isinstance(keys, dict):
        raise InvalidSubscription("it has no keys (a subscription made without keys)")
    try:
        p256dh = b64url_decode(keys.get("p256dh"))
        if len(p256dh) != 65:
            raise ValueError("not an uncompressed point")
        # (a point off the curve would make ECDH fail at send time: refused here instead)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise InvalidSubscription(
            "its keys.p256dh is not a base64url uncompressed P-256 public key"
        ) from None
    try:
        auth = b64url_decode(keys.get("auth"))
    except ValueError:
        raise InvalidSubscription("its keys.auth is not base64url") from None
    if len(auth) != 16:
        raise InvalidSubscription("its keys.auth is not a 16-byte secret")
    expiration = value.get("expirationTime")
    if expiration is not None and (
        isinstance(expiration, bool)
        or not isinstance(expiration, int | float)
        or not math.isfinite(expiration)
    ):
        raise InvalidSubscription("its expirationTime is neither null nor a time")
    expires_at = expiration / 1000 if expiration is not None else None
    return Subscription(endpoint, p256dh, auth, expires_at)


def load_vapid_key(value: object) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key from PEM, or from base64url of the raw 32-byte scalar (what
    `web-push generate-vapid-keys` prints) or of its DER (what py_vapid stores); ValueError
    saying what is wrong otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("Required: a PEM key or the base64url raw private key.")
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            raw = b64url_decode(text)
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except TypeError:
        # (cryptography says so for an encrypted PEM)
        raise ValueError("The key is encrypted: give it without a passphrase.") from None
    except (ValueError, UnicodeError, UnsupportedAlgorithm):
        raise ValueError(
            "Not a readable private key: give a PEM key or the base64url of the raw 32-byte "
            "P-256 private key (as `vapid --gen` or web-push's generate-vapid-keys make it)."
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("VAPID keys are P-256 (prime256v1) EC keys; this is another kind.")
    return key


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as browsers take it for `applicationServerKey` (and as VAPID's `k=`)."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(point)


def subject_problem(subject: object) -> str | None:
    """Why `subject` cannot be the VAPID `sub` (RFC 8292 §2.1: a mailto: or https: URI), or
    None."""
    if not isinstance(subject, str) or not subject:
        return "Required: mailto:<address> or an https: URL where you can be reached."
    if len(subject) > MAX_SUBJECT_CHARS:
        return f"At most {MAX_SUBJECT_CHARS} characters."
    if subject.startswith("mailto:"):
        try:
            _EMAIL(subject[len("mailto:") :])
        except DjangoValidationError:
            return "mailto: followed by a valid email address (no spaces)."
        return None
    if subject.startswith("https:"):
        parts = urlsplit(subject)
        if not usable_url(subject) or parts.username is not None or " " in subject:
            return "An https: URL with a host."
        return None
    return "mailto:<address> or an https: URL (RFC 8292); push services refuse others."


class WebPushTransport(Transport):
    channel = "push"

    def __init__(self, subject: str, ttl: int, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.subject, self.ttl, self._key = subject, ttl, private_key
        self._public_key = public_key_b64(private_key)

    def accepts(self, recipient: str) -> bool:
        try:
            parse_subscription(recipient)
        except InvalidSubscription:
            return False
        return True

    def breaker_scope(self, recipient: str) -> str:
        try:
            return parse_subscription(recipient).audience
        except InvalidSubscription:
            return ""

    def _authorization(self, audience: str) -> str:
        claims = {"aud": audience, "exp": int(time.time()) + JWT_LIFETIME, "sub": self.subject}
        return f"vapid t={vapid_jwt(claims, self._key)}, k={self._public_key}"

    def send(self, envelope: Envelope) -> SendResult:
        try:
            subscription = parse_subscription(envelope.recipient)
        except InvalidSubscription as exc:
            raise TransportError(
                f"not a Web Push subscription: {exc}: not retried (store the browser's "
                "PushSubscription as JSON.stringify gives it)",
                permanent=True,
                kind="bad_recipient",
            ) from None
        if subscription.expires_at is not None and subscription.expires_at <= time.time():
            raise TransportError(
                "the Web Push subscription has expired (its expirationTime is past): not "
                "retried (the browser must subscribe again)",
                permanent=True,
                kind="bad_recipient",
            )
        body = self._encrypted(envelope, subscription)
        headers = {
            "Authorization": self._authorization(subscription.audience),
            "TTL": str(self.ttl),
            "Urgency": "normal",
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        try:
            answer = gated_post(LABEL, subscription.endpoint, body, headers)
        except TransportError as exc:
            # gated_post's advice is about a provider's URL; here the URL is the browser's.
            # (TargetRefused names the host at most; a ValueError's text may quote the URL.)
            cause = exc.__cause__
            if isinstance(cause, outbound.TargetRefused):
                raise TransportError(
                    f"{LABEL} endpoint refused: {cause}: not retried (a subscription's "
                    "endpoint must be a public https address)",
                    permanent=True,
                    kind="permanent",
                ) from exc
            if isinstance(cause, ValueError):
                raise TransportError(
                    f"{LABEL} request not sendable ({type(cause).__name__}): not retried (the "
                    "subscription's endpoint is not usable: the browser must subscribe again)",
                    permanent=True,
                    kind="permanent",
                ) from exc
            raise
        return self._outcome(answer.status, {k.lower(): v for k, v in answer.headers.items()})

    def _encrypted(self, envelope: Envelope, subscription: Subscription) -> bytes:
        hints = envelope.provider_hints
        # (the platform hands a push message's `extras` over; `data` where a caller gives it)
        data: dict[str, Any] = {}
        for name in ("extras", "data"):
            if isinstance(hints.get(name), dict):
                data.update(hints[name])
        payload = {
            "title": envelope.subject,
            # (a message composed from a template carries its rendered text in `html`)
            "body": envelope.body or envelope.html,
            "message_id": envelope.message_id,
            "data": data,
        }
        plaintext = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise TransportError(
                f"the Web Push payload is {len(plaintext)} bytes, over the {MAX_PLAINTEXT_BYTES} "
                f"that fit the {MAX_BODY_BYTES}-byte limit push services must accept once "
                "encrypted: not retried (shorten the title, body or data)",
                permanent=True,
                kind="permanent",
                code="413",
            )
        # a fresh key per message: RFC 8291 §3.1, the application server's key is ephemeral
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        return http_ece.encrypt(
            plaintext,
            private_key=ephemeral,
            dh=subscription.p256dh,
            auth_secret=subscription.auth,
            version="aes128gcm",
        )

    def _outcome(self, status: int, headers: dict[str, str]) -> SendResult:
        if 200 <= status < 300:
            location = headers.get("location", "")
            return SendResult(
                detail=f"accepted by the {LABEL} (HTTP {status}), held up to {self.ttl}s for "
                "the browser; push services report no delivery",
                # (201 is the last word: browsers' push services send no receipt)
                delivered=True,
                provider_message_id=location[:MAX_PROVIDER_ID_CHARS],
            )
        reason = f"{LABEL} answered HTTP {status}"
        if status in (404, 410):
            raise TransportError(
                f"{reason}: the subscription is gone: not retried (it expired or the browser "
                "unsubscribed; the browser must subscribe again)",
                permanent=True,
                kind="bad_recipient",
                code=str(status),
            )
        if status == 413:
            raise TransportError(
                f"{reason}: payload too large: not retried (shorten the title, body or data)",
                permanent=True,
                kind="permanent",
                code="413",
            )
        if status == 429:
            retry_after = retry_after_seconds(headers.get("retry-after"))
            raise TransportError(
                f"{reason}: throttling us: retried "
                + (f"in {retry_after:g}s as it asked" if retry_after is not None else "later"),
                permanent=False,
                retry_after=retry_after,
                kind="throttled",
                code="429",
            )
        if status >= 500:
            raise TransportError(
                f"{reason}: retried later", permanent=False, kind="provider_down", code=str(status)
            )
        if status in (400, 401, 403):
            raise TransportError(
                f"{reason}: it refused our request: not retried (check the provider's "
                "vapid_private_key and vapid_subject; a subscription made with another "
                "applicationServerKey is refused too)",
                permanent=True,
                kind="permanent",
                code=str(status),
                # (not the provider's fault for sure: a push service refuses a subscription
                # made with another key this way too, and a few stale ones must not open the
                # breaker for every browser)
            )
        if 400 <= status < 500:
            raise TransportError(
                f"{reason}: it refused the message: not retried (check the message and the "
                "provider's configuration)",
                permanent=True,
                kind="permanent",
                code=str(status),
            )
        # (redirects are not followed: a push service answers the endpoint itself)
        raise TransportError(
            f"{reason}, not a Web Push answer: retried later",
            permanent=False,
            kind="temporary",
            code=str(status),
        )


class WebPushKind(ProviderKind):
    name = "webpush"
    label = "Web Push (VAPID)"
    channels = ("push",)
    config_fields = {
        "vapid_subject": "mailto:<address> or an https: URL the push services can reach you at",
        "ttl": f"seconds a push service keeps an undelivered message, 0 to {MAX_TTL} "
        f"(default {DEFAULT_TTL})",
        "vapid_public_key": "shown, not given: the applicationServerKey to subscribe browsers "
        "with (derived from the private key)",
    }
    secret_fields = {
        "vapid_private_key": "the P-256 VAPID private key: PEM, or base64url of its 32 raw bytes"
    }

    def clean(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[dict, dict]:
        errors = self.unknown_fields(config, secrets)
        subject = config.get("vapid_subject")
        problem = subject_problem(subject)
        if problem:
            errors["config.vapid_subject"] = problem
        ttl = config.get("ttl", DEFAULT_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
            errors["config.ttl"] = f"Whole seconds, 0 to {MAX_TTL}."
        public_key = ""
        try:
            public_key = public_key_b64(load_vapid_key(secrets.get("vapid_private_key")))
        except ValueError as exc:
            errors["secrets.vapid_private_key"] = str(exc)
        if errors:
            raise ConfigError(errors)
        # (any vapid_public_key given is replaced: it is the private key's, never chosen, and
        # a stored config comes back here with the one derived last time)
        cleaned = {"vapid_subject": subject, "ttl": ttl, "vapid_public_key": public_key}
        return cleaned, {"vapid_private_key": secrets["vapid_private_key"].strip()}

    def transport(self, channel: str, config: dict, secrets: dict) -> Transport:
        key = load_vapid_key(secrets["vapid_private_key"])
        return WebPushTransport(config["vapid_subject"], config["ttl"], key)
