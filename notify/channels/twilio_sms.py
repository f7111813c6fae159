"""Twilio Programmable Messaging through Twilio's official SDK (`twilio`): `Messages.create`
with `To`, `From` or `MessagingServiceSid`, `Body` and, when the tenant gives its receipts URL,
`StatusCallback`. The SDK's HTTP goes through the platform's outbound gate (an HttpClient of
our own), so `base_url` may point at a local stand-in and a tenant's URL is checked like any
other. Twilio answers errors with an HTTP status and its own error code
(https://www.twilio.com/docs/api/errors): a number that cannot receive is `bad_recipient`,
rate limits `throttled`, Twilio's 5xx `provider_down`, the rest `permanent`.

Delivery reports are Twilio's status callbacks (form-encoded, `MessageSid`, `MessageStatus`,
`ErrorCode`), verified with `X-Twilio-Signature` (HMAC-SHA1 of the callback URL and the sorted
parameters, keyed with the auth token) by the SDK's RequestValidator."""

from __future__ import annotations

import base64
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from notify.channels.base import (
    ConfigError,
    Envelope,
    Inbound,
    ProviderKind,
    Receipt,
    ReceiptBatch,
    ReceiptRefused,
    SendResult,
    Transport,
    TransportError,
    gated_post,
    usable_url,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.twilio.com"
# Twilio's codes for a number that cannot receive SMS, at send time or in a status callback
BAD_RECIPIENT = frozenset(
    {
        "21211",  # invalid 'To' number
        "21214",  # 'To' number cannot be reached
        "21610",  # the recipient replied STOP
        "21612",  # 'To' not reachable via SMS
        "21614",  # 'To' is not a mobile number
        "21635",  # 'To' is a landline
        "30005",  # unknown destination handset
        "30006",  # landline or unreachable carrier
    }
)
THROTTLED = frozenset({"20429", "14107", "30022"})
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
SENDER = re.compile(r"\+[1-9][0-9]{6,14}|[0-9]{3,8}|[A-Za-z0-9 ]{1,11}")
# the account or its sender cannot send at all (not this message's fault)
ACCOUNT_FAULTS = frozenset({"20003", "20404", "21606", "21608", "21212", "21659", "30002"})
DELIVERED, FAILED = frozenset({"delivered", "read"}), frozenset({"undelivered", "failed"})


class GatedHttpClient(HttpClient):
    """The SDK's HTTP, through the outbound gate (resolved once, public addresses unless
    ALLOW_PRIVATE_TARGETS, pinned connection, no redirects). Sending only POSTs."""

    def __init__(self, label: str) -> None:
        super().__init__(logger, is_async=False, timeout=settings.HTTP_PROVIDER_TIMEOUT)
        self.label = label

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if method.upper() != "POST":
            raise TransportError(
                f"{self.label}: only sending is supported (not {method})",
                permanent=True,
                kind="permanent",
            )
        url = uri + (f"?{urlencode(params, doseq=True)}" if params else "")
        sent_headers = {
            k: v for k, v in (headers or {}).items() if k.lower() not in ("host", "content-length")
        }
        sent_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            sent_headers["Authorization"] = f"Basic {token}"
        body = urlencode({k: v for k, v in (data or {}).items() if v is not None}, doseq=True)
        answer = gated_post(self.label, url, body.encode(), sent_headers)
        return TwilioResponse(
            answer.status, answer.body.decode("utf-8", "replace"), dict(answer.headers)
        )


class TwilioSmsTransport(Transport):
    channel = "sms"
    label = "Twilio"

    def __init__(self, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.config = config
        self.client = Client(
            config["account_sid"],
            secrets["auth_token"],
            account_sid=config["account_sid"],
            http_client=GatedHttpClient(self.label),
        )
        self.client.api.base_url = config.get("base_url", DEFAULT_BASE_URL)

    def send(self, envelope: Envelope) -> SendResult:
        sender = self.config.get("from", "")
        options: dict[str, Any] = {"to": envelope.recipient, "body": envelope.body}
        if self.config.get("messaging_service_sid"):
            options["messaging_service_sid"] = self.config["messaging_service_sid"]
        if sender:
            options["from_"] = sender
        if self.config.get("status_callback"):
            options["status_callback"] = self.config["status_callback"]
        try:
            created = self.client.messages.create(**options)
        except TwilioRestException as exc:
            raise self._refusal(exc) from None
        sid = str(getattr(created, "sid", "") or "")
        if not sid:
            raise TransportError(
                f"{self.label} accepted the message without a sid: retried later",
                permanent=False,
                kind="temporary",
            )
        return SendResult(
            detail=f"accepted by Twilio ({getattr(created, 'status', '') or 'queued'})",
            provider_message_id=sid[:255],
        )

    def _refusal(self, exc: TwilioRestException) -> TransportError:
        code = str(exc.code) if exc.code is not None else str(exc.status)
        reason = f"{self.label} refused the message: HTTP {exc.status} {code} {exc.msg}"[:500]
        if code in BAD_RECIPIENT:
            return TransportError(
                reason + ": not retried (check the number)",
                permanent=True,
                kind="bad_recipient",
                code=code,
            )
        if exc.status == 429 or code in THROTTLED:
            return TransportError(
                reason + ": retried later", permanent=False, kind="throttled", code=code
            )
        if exc.status >= 500:
            return TransportError(
                reason + ": retried later", permanent=False, kind="provider_down", code=code
            )
        return TransportError(
            reason + ": not retried (check the provider's account SID, auth token and sender)",
            permanent=True,
            kind="permanent",
            code=code,
            provider_fault=exc.status in (401, 403, 404) or code in ACCOUNT_FAULTS,
        )


class TwilioSmsKind(ProviderKind):
    name = "twilio"
    label = "Twilio SMS (Programmable Messaging)"
    channels = ("sms",)
    config_fields = {
        "account_sid": "the account SID (AC…)",
        "from": "the sender: a Twilio number in E.164 or an alphanumeric sender id",
        "messaging_service_sid": "a Messaging Service (MG…), instead of or beside `from`",
        "status_callback": "this provider's receipts URL on the platform, as Twilio reaches it "
        "(https://<platform>/v2/receipts/providers/<id>): delivery reports are then asked for",
        "base_url": f"default {DEFAULT_BASE_URL}",
    }
    secret_fields = {"auth_token": "the account's auth token (also verifies status callbacks)"}

    def clean(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[dict, dict]:
        errors = self.unknown_fields(config, secrets)
        sid = config.get("account_sid")
        if not isinstance(sid, str) or not ACCOUNT_SID.fullmatch(sid):
            errors["config.account_sid"] = "The account SID: AC and 32 hexadecimal digits."
        sender = config.get("from", "")
        service = config.get("messaging_service_sid", "")
        if not isinstance(sender, str) or not isinstance(service, str) or not (sender or service):
            errors["config.from"] = "A sender (`from`) or a `messaging_service_sid` is required."
        elif sender and not SENDER.fullmatch(sender):
            errors["config.from"] = (
                "A Twilio number in E.164 (+15005550006), a short code, or an alphanumeric "
                "sender id (1 to 11 letters, digits or spaces)."
            )
        elif service and not SERVICE_SID.fullmatch(service):
            errors["config.messaging_service_sid"] = "MG and 32 hexadecimal digits."
        for field in ("status_callback", "base_url"):
            value = config.get(field, "")
            if value and (not usable_url(value) or len(value) > 2000):
                errors[f"config.{field}"] = "An http(s) URL of at most 2000 characters."
        token = secrets.get("auth_token")
        if not isinstance(token, str) or not 16 <= len(token) <= 128:
            errors["secrets.auth_token"] = "The auth token (16 to 128 characters) is required."
        if errors:
            raise ConfigError(errors)
        cleaned = {"account_sid": sid, "base_url": config.get("base_url") or DEFAULT_BASE_URL}
        for field in ("from", "messaging_service_sid", "status_callback"):
            if config.get(field):
                cleaned[field] = config[field]
        return cleaned, {"auth_token": token}

    def transport(self, channel: str, config: dict, secrets: dict) -> Transport:
        return TwilioSmsTransport(config, secrets)

    has_receipts = True

    def receipts(self, inbound: Inbound, config: dict, secrets: dict) -> ReceiptBatch:
        try:
            pairs = parse_qsl(inbound.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise ReceiptRefused(400, "The body is not form-encoded UTF-8.") from None
        params = dict(pairs)
        # Twilio signs the URL it was given: the configured one, else the one it called
        url = config.get("status_callback") or inbound.url
        validator = RequestValidator(secrets.get("auth_token", ""))
        signature = inbound.headers.get("X-Twilio-Signature", "")
        if not signature or not validator.validate(url, params, signature):
            raise ReceiptRefused(
                401,
                "Not signed by Twilio for this provider: X-Twilio-Signature must be Twilio's "
                "signature of the status callback URL with this provider's auth token.",
            )
        if params.get("AccountSid") != config.get("account_sid"):
            raise ReceiptRefused(401, "The report is of another Twilio account.")
        sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
        if not sid or len(sid) > 255:
            raise ReceiptRefused(400, "`MessageSid` is missing.")
        if status in DELIVERED:
            return ReceiptBatch([Receipt(sid, "delivered")])
        if status in FAILED:
            code = params.get("ErrorCode", "")[:64]
            error = f"Twilio: {status}" + (f" (error {code})" if code else "")
            return ReceiptBatch(
                [Receipt(sid, "failed", code, error, bad_recipient=code in BAD_RECIPIENT)]
            )
        # (queued, sending, sent, accepted…: not the end of the message)
        return ReceiptBatch([])
