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
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

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

API_VERSION = "2017-05-25"
BAD_RECIPIENT = frozenset({"isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT"})
THROTTLED = frozenset(
    {"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "Throttling", "isv.DAY_LIMIT_CONTROL"}
)
PROVIDER_DOWN = frozenset({"isp.SYSTEM_ERROR", "ServiceUnavailable", "InternalError"})
# delivery-report codes of a number that cannot receive (out of service, invalid, blacklisted)
REPORT_BAD_RECIPIENT = frozenset(
    {
        "MOBILE_NOT_ON_SERVICE",
        "MOBILE_NUMBER_ILLEGAL",
        "isv.MOBILE_NUMBER_ILLEGAL",
        "MOBILE_IN_BLACK",
    }
)
MAX_REPORTS = 1000
MAX_TEMPLATE_CODES = 500
TEMPLATE_CODE = re.compile(r"[A-Za-z0-9_]{1,64}")
REGION = re.compile(r"[a-z0-9-]{1,32}")


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


def parse_sms_reports(token: str, inbound: Inbound) -> ReceiptBatch:
    """Aliyun's SmsReport HTTP batch push: a JSON array of `{biz_id, success, err_code,
    err_msg, phone_number, out_id, …}`, answered `{"code": 0, "msg": "接收成功"}`. Aliyun does
    not sign these requests: the receipts URL configured in its console carries the provider's
    secret `?token=`, compared in constant time. A batch is read whole or refused whole."""
    given = parse_qs(urlsplit(inbound.url).query).get("token", [""])[0]
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise ReceiptRefused(
            401,
            "Configure Aliyun's HTTP batch push with this provider's receipts URL and "
            "`?token=<its receipts_token>`.",
        )
    try:
        reports = json.loads(inbound.body)
    except (ValueError, RecursionError):
        raise ReceiptRefused(400, "The body is not JSON.") from None
    if not isinstance(reports, list) or len(reports) > MAX_REPORTS:
        raise ReceiptRefused(400, f"The body is a JSON array of at most {MAX_REPORTS} reports.")
    receipts = []
    for report in reports:
        if not isinstance(report, dict):
            raise ReceiptRefused(400, "Each report is a JSON object.")
        biz_id, success = report.get("biz_id"), report.get("success")
        code, text = report.get("err_code") or "", report.get("err_msg") or ""
        if not isinstance(biz_id, str) or not 0 < len(biz_id) <= 255:
            raise ReceiptRefused(400, "Each report has a `biz_id` of 1 to 255 characters.")
        if not isinstance(success, bool) or not isinstance(code, str) or not isinstance(text, str):
            raise ReceiptRefused(400, "`success` is a boolean, `err_code`/`err_msg` strings.")
        if success:
            receipts.append(Receipt(biz_id, "delivered"))
        else:
            receipts.append(
                Receipt(
                    biz_id,
                    "failed",
                    code,
                    f"Aliyun: {code} {text}".strip(),
                    bad_recipient=code in REPORT_BAD_RECIPIENT,
                )
            )
    return ReceiptBatch(receipts, answer={"code": 0, "msg": "接收成功"})


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
            provider_fault=True,
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
            # (Aliyun refuses a message for the account's setup: key, signature, template)
            provider_fault=True,
        )


class AliyunSmsKind(ProviderKind):
    name = "aliyun"
    label = "Aliyun SMS (dysmsapi SendSms)"
    channels = ("sms",)
    config_fields = {
        "sign_name": "the registered SMS signature (签名)",
        "template_codes": "{platform template key or legacy tpl_id: Aliyun TemplateCode}",
        "region": "default cn-hangzhou",
        "endpoint": "default https://dysmsapi.aliyuncs.com/",
    }
    secret_fields = {
        "access_key_id": "",
        "access_key_secret": "",
        "receipts_token": "a random token of 24 to 128 characters; delivery reports are "
        "accepted at this provider's receipts URL with `?token=<it>` (optional: no reports "
        "without it)",
    }

    def clean(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[dict, dict]:
        errors = self.unknown_fields(config, secrets)
        sign_name = config.get("sign_name")
        if (
            not isinstance(sign_name, str)
            or not 1 <= len(sign_name) <= 32
            or not sign_name.isprintable()
        ):
            errors["config.sign_name"] = "The registered signature, 1 to 32 printable characters."
        codes = config.get("template_codes", {})
        if (
            not isinstance(codes, dict)
            or len(codes) > MAX_TEMPLATE_CODES
            or not all(
                isinstance(k, str)
                and 0 < len(k) <= 100
                and k.isprintable()
                and isinstance(v, str)
                and TEMPLATE_CODE.fullmatch(v)
                for k, v in codes.items()
            )
        ):
            errors["config.template_codes"] = (
                f"An object of at most {MAX_TEMPLATE_CODES} template key (1 to 100 characters): "
                "TemplateCode (e.g. SMS_154950909)."
            )
        endpoint = config.get("endpoint", "https://dysmsapi.aliyuncs.com/")
        if not usable_url(endpoint):
            errors["config.endpoint"] = "An http(s) URL."
        region = config.get("region", "cn-hangzhou")
        if not isinstance(region, str) or not REGION.fullmatch(region):
            errors["config.region"] = "A region id, e.g. cn-hangzhou."
        for field in ("access_key_id", "access_key_secret"):
            if not isinstance(secrets.get(field), str) or not secrets[field]:
                errors[f"secrets.{field}"] = "Required."
        token = secrets.get("receipts_token", "")
        if not isinstance(token, str) or not (token == "" or 24 <= len(token) <= 128):
            errors["secrets.receipts_token"] = "A random token of 24 to 128 characters."
        if errors:
            raise ConfigError(errors)
        cleaned = {
            "sign_name": config["sign_name"],
            "template_codes": codes,
            "region": region,
            "endpoint": endpoint,
        }
        return cleaned, {f: secrets[f] for f in self.secret_fields if secrets.get(f)}

    def transport(self, channel: str, config: dict, secrets: dict) -> Transport:
        return AliyunSmsTransport(config, secrets)

    has_receipts = True

    def receipts(self, inbound: Inbound, config: dict, secrets: dict) -> ReceiptBatch:
        return parse_sms_reports(secrets.get("receipts_token", ""), inbound)
