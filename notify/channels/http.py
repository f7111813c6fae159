"""The generic HTTP providers (SMS and push): one documented JSON protocol, signed with a
shared secret, so an operator connects an in-house carrier, an SMPP bridge or a push service by
configuration. The protocol, its answers and what each means: docs/http-providers.md."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, ClassVar

import requests
from django.conf import settings

from notify.channels.base import (
    Envelope,
    Inbound,
    Receipt,
    ReceiptBatch,
    ReceiptRefused,
    SendResult,
    Transport,
    TransportError,
    note_http_status,
    register,
    retry_after_seconds,
)

TIMESTAMP_HEADER = "X-Notify-Timestamp"
SIGNATURE_HEADER = "X-Notify-Signature"
# how far a signed request's timestamp may be from our clock (either way)
SIGNATURE_TOLERANCE = 300
# error codes the protocol documents as a recipient that cannot receive (never will)
BAD_RECIPIENT_CODES = frozenset({"INVALID_NUMBER", "NO_DEVICE", "UNREGISTERED"})
# a provider's answer is a small JSON object: more than this is not one
MAX_ANSWER_BYTES = 64 * 1024
# DeliveryAttempt.provider_message_id's length
MAX_PROVIDER_ID_CHARS = 255
MAX_PROVIDER_TEXT_CHARS = 500


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Notify-Signature` value of `body` sent at `timestamp` (Unix seconds, as text)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signature_valid(
    secret: str, timestamp: str, signature: str, body: bytes, now: float | None = None
) -> bool:
    """Whether `signature` is the signature of `body` at `timestamp` with `secret`, and that
    timestamp within SIGNATURE_TOLERANCE seconds of `now`. An empty secret verifies nothing."""
    if not secret or not signature or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    when = int(timestamp)
    now = time.time() if now is None else now
    if abs(now - when) > SIGNATURE_TOLERANCE:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


REPORTED_STATUSES = frozenset({"delivered", "failed"})


def parse_report(secret: str, secret_hint: str, inbound: Inbound) -> ReceiptBatch:
    """A delivery report of the protocol (docs/http-providers.md): signed with the provider's
    shared secret, one JSON object `{message_id, status, error_code?, error?}`."""
    if not signature_valid(
        secret,
        inbound.headers.get(TIMESTAMP_HEADER, ""),
        inbound.headers.get(SIGNATURE_HEADER, ""),
        inbound.body,
    ):
        # (no secret configured: nothing can be verified, every report is refused)
        raise ReceiptRefused(
            401,
            f"Sign the report with {secret_hint} (X-Notify-Timestamp within "
            f"{SIGNATURE_TOLERANCE} s, X-Notify-Signature: v1=<hex HMAC-SHA256 of "
            "'<timestamp>.<body>'>).",
        )
    try:
        data = json.loads(inbound.body)
    except (ValueError, RecursionError):
        raise ReceiptRefused(400, "The body is not JSON.") from None
    if not isinstance(data, dict):
        raise ReceiptRefused(400, "The body is not a JSON object.")
    message_id = data.get("message_id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_PROVIDER_ID_CHARS:
        raise ReceiptRefused(
            400, f"`message_id` is a string of 1 to {MAX_PROVIDER_ID_CHARS} characters."
        )
    status = data.get("status")
    if not isinstance(status, str) or status not in REPORTED_STATUSES:
        raise ReceiptRefused(400, "`status` is 'delivered' or 'failed'.")
    # (absent or null: none given)
    error_code = "" if data.get("error_code") is None else data["error_code"]
    error = "" if data.get("error") is None else data["error"]
    if not isinstance(error_code, str) or not isinstance(error, str):
        raise ReceiptRefused(400, "`error_code` and `error` are strings.")
    receipt = Receipt(
        message_id, status, error_code, error, bad_recipient=error_code in BAD_RECIPIENT_CODES
    )
    return ReceiptBatch([receipt])


def _short(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:MAX_PROVIDER_TEXT_CHARS]


class HttpTransport(Transport):
    """One provider of the generic HTTP protocol; subclasses say which channel and settings."""

    # what the operator reads: "SMS provider", "push provider"
    provider: ClassVar[str]
    url_setting: ClassVar[str]
    secret_setting: ClassVar[str]

    def __init__(self) -> None:
        # one connection pool for every send of this transport (a chunk)
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def payload(self, envelope: Envelope) -> dict[str, Any]:
        raise NotImplementedError

    # where the operator fixes the provider's address and secret (error messages say so)
    @property
    def config_hint(self) -> str:
        return f"{self.url_setting}/{self.secret_setting}"

    def target(self) -> tuple[str, str]:
        """(URL, secret) of the provider."""
        url = getattr(settings, self.url_setting, "")
        if not url:
            raise TransportError(
                f"no {self.provider} configured: set {self.url_setting}",
                permanent=True,
                kind="permanent",
            )
        return url, getattr(settings, self.secret_setting, "")

    def send(self, envelope: Envelope) -> SendResult:
        url, secret = self.target()
        payload = self.payload(envelope)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        status, answer_headers, answer = self.post(url, body, headers)
        return self._result(status, answer_headers, answer)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        """(status, headers, body) of the provider's answer, or TransportError."""
        timeout = settings.HTTP_PROVIDER_TIMEOUT
        try:
            # (no redirects: a POST redirected becomes a GET, and a moved provider is ours to
            # configure)
            with self._session.post(
                url, data=body, headers=headers, timeout=timeout, stream=True, allow_redirects=False
            ) as response:
                answer = self._read(response)
        except TransportError:
            raise
        except requests.Timeout as exc:
            raise TransportError(
                f"{self.provider} did not answer within {timeout:g}s: retried later",
                permanent=False,
                kind="provider_down",
            ) from exc
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
        ) as exc:
            # (the exception's text would quote the URL, which may hold credentials)
            raise TransportError(
                f"{self.url_setting} is not a usable http(s) URL ({type(exc).__name__}): fix it",
                permanent=True,
                kind="permanent",
            ) from exc
        except requests.RequestException as exc:
            raise TransportError(
                f"{self.provider} unreachable ({type(exc).__name__}): retried later",
                permanent=False,
                kind="provider_down",
            ) from exc
        note_http_status(response.status_code)
        return response.status_code, response.headers, answer

    def _read(self, response: requests.Response) -> bytes:
        """The answer's body, at most MAX_ANSWER_BYTES (a longer one is not an answer)."""
        if not 200 <= response.status_code < 300:
            return b""
        content = b""
        for chunk in response.iter_content(chunk_size=8192):
            content += chunk
            if len(content) > MAX_ANSWER_BYTES:
                raise TransportError(
                    f"{self.provider} answered with more than {MAX_ANSWER_BYTES} bytes, not a "
                    "documented answer: retried later (check the provider)",
                    permanent=False,
                    kind="temporary",
                )
        return content

    def _result(self, status: int, headers: Any, content: bytes) -> SendResult:
        if status == 429:
            retry_after = retry_after_seconds(headers.get("Retry-After"))
            raise TransportError(
                f"{self.provider} is throttling us (HTTP 429): retried "
                + (f"in {retry_after:g}s as it asked" if retry_after is not None else "later"),
                permanent=False,
                retry_after=retry_after,
                kind="throttled",
                code="429",
            )
        if status >= 500:
            raise TransportError(
                f"{self.provider} failed (HTTP {status}): retried later",
                permanent=False,
                kind="provider_down",
                code=str(status),
            )
        if 400 <= status < 500:
            raise TransportError(
                f"{self.provider} refused the request (HTTP {status}): not retried; check the "
                f"message and {self.config_hint}, then retry it",
                permanent=True,
                kind="permanent",
                code=str(status),
                # (refused our signature or our account: any message would be)
                provider_fault=status in (401, 403),
            )
        if not 200 <= status < 300:
            raise TransportError(
                f"{self.provider} answered HTTP {status}, not a documented answer: retried "
                f"later (check {self.config_hint}: redirects are not followed)",
                permanent=False,
                kind="temporary",
                code=str(status),
            )
        return self._answer(content)

    def _answer(self, content: bytes) -> SendResult:
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        status = answer.get("status") if isinstance(answer, dict) else None
        if status in ("accepted", "delivered"):
            provider_id = answer.get("message_id")
            if isinstance(provider_id, str) and 0 < len(provider_id) <= MAX_PROVIDER_ID_CHARS:
                if status == "delivered":
                    return SendResult(
                        detail=f"delivered, said the {self.provider} (id {provider_id})",
                        delivered=True,
                        provider_message_id=provider_id,
                    )
                return SendResult(
                    detail=f"accepted by the {self.provider} (id {provider_id}); "
                    "its delivery report follows",
                    delivered=False,
                    provider_message_id=provider_id,
                )
        elif status == "failed":
            code = answer.get("error_code", "")
            error = answer.get("error", "")
            if isinstance(code, str) and isinstance(error, str):
                bad_recipient = code in BAD_RECIPIENT_CODES
                then = "check the recipient" if bad_recipient else "fix the cause, then retry it"
                raise TransportError(
                    f"{self.provider} refused the message: {_short(code) or 'no code'}"
                    + (f" {_short(error)}" if error else "")
                    + f": not retried ({then})",
                    permanent=True,
                    kind="bad_recipient" if bad_recipient else "permanent",
                    code=code,
                )
        raise TransportError(
            f"{self.provider} answered 200 without a documented answer"
            + (f" (status {_short(status)})" if status is not None else "")
            + ": not counted as sent, retried later (check the provider)",
            permanent=False,
            kind="temporary",
        )


@register
class HttpSmsTransport(HttpTransport):
    channel = "sms"
    provider = "SMS provider"
    url_setting = "SMS_HTTP_URL"
    secret_setting = "SMS_HTTP_SECRET"

    def payload(self, envelope: Envelope) -> dict[str, Any]:
        # (a message composed from a template carries its rendered text in `html`)
        return {
            "id": envelope.message_id,
            "to": envelope.recipient,
            "text": envelope.body or envelope.html,
        }


@register
class HttpPushTransport(HttpTransport):
    channel = "push"
    provider = "push provider"
    url_setting = "PUSH_HTTP_URL"
    secret_setting = "PUSH_HTTP_SECRET"

    def payload(self, envelope: Envelope) -> dict[str, Any]:
        extras = envelope.provider_hints.get("extras", {})
        return {
            "id": envelope.message_id,
            "user_id": envelope.recipient,
            "title": envelope.subject,
            "body": envelope.body or envelope.html,
            "extras": dict(extras) if isinstance(extras, dict) else {},
        }
