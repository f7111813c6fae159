"""Aliyun SMS against a local stand-in of dysmsapi that checks the request as Alibaba Cloud
documents it (RPC signature v1, HMAC-SHA1, required parameters) and answers in its format,
error codes in an HTTP 200 included."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote

import pytest

from notify.channels import breaker
from notify.channels.services import create_provider
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message

KEY_ID, KEY_SECRET = "LTAI-test-key", "test-secret-0123456789"
REQUIRED = {
    "AccessKeyId",
    "Action",
    "Format",
    "PhoneNumbers",
    "RegionId",
    "SignName",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "TemplateCode",
    "Timestamp",
    "Version",
    "Signature",
}


def documented_signature(params: dict[str, str]) -> str:
    """As the Alibaba Cloud RPC signature v1 documentation writes it (independently of the
    platform's code): percent-encode, sort, join, sign "POST&%2F&…" with "<secret>&"."""

    def enc(value: str) -> str:
        return quote(value, safe="~").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")

    canonical = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()))
    string_to_sign = "POST&" + enc("/") + "&" + enc(canonical)
    digest = hmac.new((KEY_SECRET + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class Dysmsapi:
    def __init__(self) -> None:
        self.answer: dict | None = None
        self.accepted: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = dict(parse_qsl(raw, keep_blank_values=True))
                status, answer = api.check(params)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, params: dict[str, str]) -> tuple[int, dict]:
        missing = REQUIRED - set(params)
        if missing:
            return 400, {"Code": "MissingParameter", "Message": f"missing {sorted(missing)}"}
        signature = params.pop("Signature")
        if params["AccessKeyId"] != KEY_ID:
            return 404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified key"}
        if signature != documented_signature(params):
            return 400, {
                "Code": "SignatureDoesNotMatch",
                "Message": "Specified signature is not matched with our calculation.",
            }
        when = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if abs((datetime.now(UTC) - when).total_seconds()) > 900:
            return 400, {"Code": "InvalidTimeStamp.Expired", "Message": "expired"}
        if (
            params["Action"],
            params["Version"],
            params["SignatureMethod"],
            params["SignatureVersion"],
            params["Format"],
        ) != ("SendSms", "2017-05-25", "HMAC-SHA1", "1.0", "JSON"):
            return 400, {"Code": "InvalidParameter", "Message": "bad protocol parameters"}
        json.loads(params["TemplateParam"])
        if self.answer is not None:
            return 200, self.answer
        self.accepted.append(params)
        return 200, {
            "Message": "OK",
            "RequestId": "R-1",
            "BizId": f"biz-{len(self.accepted)}",
            "Code": "OK",
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dysmsapi(tenant, settings) -> Iterator[Dysmsapi]:  # noqa: ANN001
    settings.ALLOW_PRIVATE_TARGETS = True
    api = Dysmsapi()
    provider = create_provider(
        tenant,
        channel="sms",
        kind="aliyun",
        name="aliyun",
        config={
            "sign_name": "优选商城",
            "template_codes": {"login-code": "SMS_154950909"},
            "endpoint": api.url,
        },
        secrets={"access_key_id": KEY_ID, "access_key_secret": KEY_SECRET},
    )
    breaker.reset(provider.pk)
    yield api
    breaker.reset(provider.pk)
    api.close()


def code_sms(tenant, template: str = "login-code") -> Message:  # noqa: ANN001
    return create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="sms",
            recipient="+8613912345678",
            body="您的验证码为 482913",
            params={"template": template, "data": {"code": "482913", "minutes": 5}},
        ),
    )


def test_aliyun__template_message__sent_signed_as_documented_with_its_template_code(
    tenant, dysmsapi, deliver
):
    message = code_sms(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT, message.error
    (params,) = dysmsapi.accepted
    assert (params["PhoneNumbers"], params["SignName"], params["TemplateCode"]) == (
        "13912345678",
        "优选商城",
        "SMS_154950909",
    )
    assert json.loads(params["TemplateParam"]) == {"code": "482913", "minutes": "5"}
    assert params["OutId"] == message.id
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.provider, attempt.provider_message_id) == ("aliyun", "biz-1")


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", "bad_recipient", MessageStatus.FAILED),
        ("isv.BUSINESS_LIMIT_CONTROL", "throttled", MessageStatus.QUEUED),
        ("isv.SMS_TEMPLATE_ILLEGAL", "permanent", MessageStatus.FAILED),
    ],
)
def test_aliyun__error_code_in_a_200__that_failure_kind_never_a_success(
    tenant, dysmsapi, deliver, code, kind, status
):
    dysmsapi.answer = {"Code": code, "Message": "refused", "RequestId": "R-2"}
    message = code_sms(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == status
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.error_code, attempt.provider) == (kind, code, "aliyun")


def test_aliyun__unmapped_template__failed_saying_how_to_map_it(tenant, dysmsapi, deliver):
    message = code_sms(tenant, template="order-shipped")
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and "template_codes" in message.error
    assert dysmsapi.accepted == []


def test_aliyun__wrong_secret__signature_refused_not_sent(tenant, settings, deliver):
    settings.ALLOW_PRIVATE_TARGETS = True
    api = Dysmsapi()
    try:
        create_provider(
            tenant,
            channel="sms",
            kind="aliyun",
            name="aliyun",
            config={
                "sign_name": "优选商城",
                "template_codes": {"login-code": "SMS_1"},
                "endpoint": api.url,
            },
            secrets={"access_key_id": KEY_ID, "access_key_secret": "not-the-secret"},
        )
        message = code_sms(tenant)
        deliver(message.id)
        message.refresh_from_db()
        assert message.status == MessageStatus.FAILED
        assert message.error_code == "SignatureDoesNotMatch" and api.accepted == []
    finally:
        api.close()
