"""Aliyun (Alibaba Cloud) SMS through its documented signed RPC API (dysmsapi, `SendSms`,
version 2017-05-25): parameters signed with HMAC-SHA1 per its signature v1 (percent-encoded,
sorted, `POST&%2F&<encoded query>`, keyed with `<AccessKeySecret>&`), sent through the outbound
gate. Aliyun sends only registered templates: the platform template (its key, or the legacy
tpl_id) maps to the tenant's `TemplateCode`, and the message's template data is the
`TemplateParam`. It answers `{"Code": "OK", "BizId": …}`, or another `Code` (also with HTTP 200):
a bad number is `bad_recipient`, flow control `throttled`, a system error `provider_down`, the
rest `permanent` (never a success)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from notify.channels.base import Envelope, SendResult, Transport, TransportError, gated_post

API_VERSION = "2017-05-25"
BAD_RECIPIENT = frozenset({"isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT"})
THROTTLED = frozenset(
    {"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "Throttling", "isv.DAY_LIMIT_CONTROL"}
)
PROVIDER_DOWN = frozenset({"isp.SYSTEM_ERROR", "ServiceUnavailable", "InternalError"})


def percent_encode(value: str) -> str:
    """Aliyun's encoding: RFC 3986 unreserved characters kept, everything else %XX (UTF-8)."""
    return quote(value, safe="-_.~")


def signature(params: dict[str, str], secret: str, method: str = "POST") -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
    )
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def mainland_number(recipient: str) -> str:
    """Aliyun takes mainland China numbers without +86 (others with their country code)."""
    if recipient.startswith("+86"):
        return recipient[3:]
    return recipient.lstrip("+")


class AliyunSmsTransport(Transport):
    channel = "sms"
    label = "Aliyun SMS"

    def __init__(self, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.config, self.secrets = config, secrets

    def _template_code(self, envelope: Envelope) -> str:
        codes = self.config.get("template_codes", {})
        hints = envelope.provider_hints
        for key in (hints.get("template", ""), hints.get("legacy_tpl_id", "")):
            if key and key in codes:
                return codes[key]
        raise TransportError(
            f"Aliyun sends only registered templates: map template "
            f"{hints.get('template') or '(none: raw text)'!r} to its TemplateCode in the "
            "provider's config (template_codes), then retry the message",
            permanent=True,
            kind="permanent",
        )

    def send(self, envelope: Envelope) -> SendResult:
        data = envelope.provider_hints.get("data", {})
        params = {
            "AccessKeyId": self.secrets["access_key_id"],
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": mainland_number(envelope.recipient),
            "RegionId": self.config.get("region", "cn-hangzhou"),
            "SignName": self.config["sign_name"],
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": self._template_code(envelope),
            "TemplateParam": json.dumps(
                {k: str(v) for k, v in dict(data).items()}, ensure_ascii=False
            ),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            "OutId": envelope.message_id,
        }
        params["Signature"] = signature(params, self.secrets["access_key_secret"])
        body = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())
        answer = gated_post(
            self.label,
            self.config.get("endpoint", "https://dysmsapi.aliyuncs.com/"),
            body.encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        return self._outcome(answer.status, answer.body)

    def _outcome(self, status: int, body: bytes) -> SendResult:
        try:
            answer = json.loads(body) if body else {}
        except ValueError:
            answer = {}
        code = answer.get("Code") if isinstance(answer, dict) else None
        if status == 200 and code == "OK" and isinstance(answer.get("BizId"), str):
            return SendResult(
                detail=f"accepted by Aliyun (BizId {answer['BizId']})",
                provider_message_id=answer["BizId"][:255],
            )
        if status >= 500 and not isinstance(code, str):
            raise TransportError(
                f"{self.label} failed (HTTP {status}): retried later",
                permanent=False,
                kind="provider_down",
                code=str(status),
            )
        if not isinstance(code, str):
            raise TransportError(
                f"{self.label} answered HTTP {status} without a Code: retried later",
                permanent=False,
                kind="temporary",
                code=str(status),
            )
        message = str(answer.get("Message", ""))[:300]
        reason = f"{self.label} refused the message: {code} {message}".rstrip()
        if code in BAD_RECIPIENT:
            raise TransportError(
                reason + ": not retried (check the number)",
                permanent=True,
                kind="bad_recipient",
                code=code,
            )
        if code in THROTTLED:
            raise TransportError(
                reason + ": retried later", permanent=False, kind="throttled", code=code
            )
        if code in PROVIDER_DOWN:
            raise TransportError(
                reason + ": retried later", permanent=False, kind="provider_down", code=code
            )
        raise TransportError(
            reason + ": not retried (check the provider's settings)",
            permanent=True,
            kind="permanent",
            code=code[:64],
        )
