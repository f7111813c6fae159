"""Chat robots and webhooks: Slack incoming webhooks, DingTalk custom robots, WeCom group
robots and Feishu/Lark custom bots, each as its provider documents it. A chat message is
addressed to one of the tenant's chat providers by name (`{"channel": "chat", "to": "ops"}`).

Each checks the provider's answer body, not only its status: DingTalk, WeCom and Feishu answer
HTTP 200 with `errcode`/`code` != 0 when they refuse, and that is a failure of its kind (never
a success). Requests go through the outbound gate (notify/outbound.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, ClassVar
from urllib.parse import quote_plus, urlsplit

from notify.channels import breaker
from notify.channels.base import (
    Envelope,
    SendResult,
    Transport,
    TransportError,
    call_seconds,
    call_timeout,
    gated_post,
    retry_after_seconds,
)
from notify.channels.http import _short

MAX_TEXT_CHARS = 4000


def text_of(envelope: Envelope) -> str:
    text = envelope.body or envelope.html
    if envelope.subject:
        text = f"{envelope.subject}\n{text}" if text else envelope.subject
    return text[:MAX_TEXT_CHARS]


class ChatTransport(Transport):
    """One chat provider: POSTs JSON to its webhook and reads its answer."""

    channel = "chat"
    label: ClassVar[str]

    def __init__(self, webhook: str, secret: str = "") -> None:
        self.webhook, self.secret = webhook, secret

    def request(self, envelope: Envelope) -> tuple[str, dict[str, Any]]:
        """(URL, JSON body) of the call."""
        raise NotImplementedError

    def outcome(self, status: int, headers: dict[str, str], body: bytes) -> SendResult:
        raise NotImplementedError

    def send(self, envelope: Envelope) -> SendResult:
        url, payload = self.request(envelope)
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        answer = gated_post(self.label, url, data, {"Content-Type": "application/json"})
        headers = {k.lower(): v for k, v in answer.headers.items()}
        if answer.status == 429:
            retry_after = retry_after_seconds(headers.get("retry-after"))
            raise TransportError(
                f"{self.label} is throttling us (HTTP 429): retried later",
                permanent=False,
                retry_after=retry_after,
                kind="throttled",
                code="429",
            )
        if answer.status >= 500:
            raise TransportError(
                f"{self.label} failed (HTTP {answer.status}): retried later",
                permanent=False,
                kind="provider_down",
                code=str(answer.status),
            )
        return self.outcome(answer.status, headers, answer.body)


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class SlackTransport(ChatTransport):
    """Slack incoming webhook: `{"text": …}`; it answers `200 ok`, or a 4xx whose body names
    the problem (`invalid_payload`, `no_service`, `channel_is_archived`…)."""

    label = "Slack"

    def request(self, envelope: Envelope) -> tuple[str, dict[str, Any]]:
        return self.webhook, {"text": text_of(envelope)}

    def outcome(self, status: int, headers: dict[str, str], body: bytes) -> SendResult:
        text = body.decode("utf-8", "replace").strip()
        if status == 200 and text == "ok":
            return SendResult(detail="posted to Slack", delivered=True)
        if 400 <= status < 500:
            raise TransportError(
                f"Slack refused the message (HTTP {status} {_short(text) or 'no reason'}): "
                "not retried (check the webhook)",
                permanent=True,
                kind="permanent",
                code=_short(text)[:64] or str(status),
            )
        raise TransportError(
            f"Slack answered HTTP {status} {_short(text)!r}, not `ok`: retried later",
            permanent=False,
            kind="temporary",
            code=str(status),
        )


class _ErrcodeTransport(ChatTransport):
    """A robot that answers HTTP 200 with an error code in the body (0: taken)."""

    code_fields: ClassVar[tuple[str, ...]] = ("errcode",)
    message_fields: ClassVar[tuple[str, ...]] = ("errmsg",)
    throttled_codes: ClassVar[frozenset[int]] = frozenset()
    temporary_codes: ClassVar[frozenset[int]] = frozenset({-1})

    def outcome(self, status: int, headers: dict[str, str], body: bytes) -> SendResult:
        answer = _json(body)
        code = next((answer[f] for f in self.code_fields if f in answer), None)
        message = next((answer[f] for f in self.message_fields if f in answer), "")
        if status == 200 and code == 0:
            return SendResult(detail=f"posted to {self.label}", delivered=True)
        if not isinstance(code, int):
            kind = "permanent" if 400 <= status < 500 else "temporary"
            raise TransportError(
                f"{self.label} answered HTTP {status} without a result code: "
                + ("not retried" if kind == "permanent" else "retried later"),
                permanent=kind == "permanent",
                kind=kind,
                code=str(status),
            )
        reason = f"{self.label} refused the message: {code} {_short(message)}".rstrip()
        if code in self.throttled_codes:
            raise TransportError(
                reason + ": too fast, retried later",
                permanent=False,
                kind="throttled",
                code=str(code),
            )
        if code in self.temporary_codes:
            raise TransportError(
                reason + ": retried later", permanent=False, kind="temporary", code=str(code)
            )
        raise TransportError(
            reason + ": not retried (check the robot's settings)",
            permanent=True,
            kind="permanent",
            code=str(code),
        )


class DingTalkTransport(_ErrcodeTransport):
    """DingTalk custom robot: `{"msgtype": "text", "text": {"content": …}}` to its webhook
    (with its access_token); with a signing secret, `timestamp` (ms) and `sign` (base64 of the
    HMAC-SHA256 of `timestamp\\nsecret`, keyed with the secret) are added to the query."""

    label = "DingTalk"
    throttled_codes = frozenset({130101, 410100})

    def request(self, envelope: Envelope) -> tuple[str, dict[str, Any]]:
        url = self.webhook
        if self.secret:
            timestamp = str(int(time.time() * 1000))
            mac = hmac.new(
                self.secret.encode("utf-8"),
                f"{timestamp}\n{self.secret}".encode(),
                hashlib.sha256,
            ).digest()
            sign = quote_plus(base64.b64encode(mac))
            url += ("&" if urlsplit(url).query else "?") + f"timestamp={timestamp}&sign={sign}"
        return url, {"msgtype": "text", "text": {"content": text_of(envelope)}}


class WeComTransport(_ErrcodeTransport):
    """WeCom group robot: `{"msgtype": "text", "text": {"content": …}}` to its webhook (with its
    key); `45009` is its rate limit."""

    label = "WeCom"
    throttled_codes = frozenset({45009})

    def request(self, envelope: Envelope) -> tuple[str, dict[str, Any]]:
        return self.webhook, {"msgtype": "text", "text": {"content": text_of(envelope)}}


class FeishuTransport(_ErrcodeTransport):
    """Feishu/Lark custom bot: `{"msg_type": "text", "content": {"text": …}}`; with a signing
    secret, `timestamp` (s) and `sign` (base64 of the HMAC-SHA256 of an empty message, keyed
    with `timestamp\\nsecret`) go in the body. It answers `{"code": 0, …}` (older bots:
    `StatusCode`); `11232` is its rate limit."""

    label = "Feishu"
    code_fields = ("code", "StatusCode")
    message_fields = ("msg", "StatusMessage")
    throttled_codes = frozenset({11232})

    def request(self, envelope: Envelope) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {"msg_type": "text", "content": {"text": text_of(envelope)}}
        if self.secret:
            timestamp = str(int(time.time()))
            key = f"{timestamp}\n{self.secret}".encode()
            payload["timestamp"] = timestamp
            payload["sign"] = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        return self.webhook, payload


class ChatRouter(Transport):
    """The tenant's chat providers by name: a chat message goes to the one its `to` names
    (no failover: a destination is not interchangeable)."""

    channel = "chat"

    def __init__(self, members: dict[str, tuple[int, Transport, float | None]]) -> None:
        self.members = members

    def close(self) -> None:
        for _, transport, _ in self.members.values():
            transport.close()

    def send(self, envelope: Envelope) -> SendResult:
        member = self.members.get(envelope.recipient)
        if member is None:
            raise TransportError(
                f"no enabled chat provider named {envelope.recipient!r}: add it "
                "(POST /v2/providers) or enable it, then retry the message",
                permanent=True,
                kind="permanent",
            )
        provider_id, transport, timeout = member
        if not breaker.allow(provider_id):
            raise TransportError(
                f"chat provider {envelope.recipient!r} is failing (circuit open): retried later",
                permanent=False,
                kind="provider_down",
                provider=envelope.recipient,
            )
        try:
            with call_timeout(call_seconds(timeout, envelope)):
                result = transport.send(envelope)
        except TransportError as exc:
            exc.provider = envelope.recipient
            breaker.record(provider_id, exc.kind)
            raise
        breaker.record(provider_id, None)
        return SendResult(
            detail=result.detail,
            delivered=result.delivered,
            provider_message_id=result.provider_message_id,
            provider=envelope.recipient,
        )
