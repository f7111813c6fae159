"""Aliyun SMS against a local stand-in of dysmsapi that checks the request as Alibaba Cloud
documents it (RPC signature v1, HMAC-SHA1, required parameters) and answers in its format,
error codes in an HTTP 200 included."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

import pytest

from notify.channels import breaker
from notify.channels.services import create_provider
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus, Suppression
from notify.messaging.services import MessageDraft, create_message
from tests.standin import JsonStandIn

KEY_ID, KEY_SECRET = "LTAI-test-key", "test-secret-0123456789"
RECEIPTS_TOKEN = "aliyun-receipts-token-0123456789"
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


class Dysmsapi(JsonStandIn):
    provider = None

    def __init__(self) -> None:
        self.answer: dict | None = None
        self.accepted: list[dict] = []
        super().__init__()
        self.url = f"{self.base}/"

    def respond(self, path: str, headers, raw: bytes) -> tuple[int, dict, dict]:  # noqa: ANN001
        status, answer = self.check(dict(parse_qsl(raw.decode(), keep_blank_values=True)))
        return status, answer, {}

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
        secrets={
            "access_key_id": KEY_ID,
            "access_key_secret": KEY_SECRET,
            "receipts_token": RECEIPTS_TOKEN,
        },
    )
    breaker.reset(provider.pk)
    api.provider = provider
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


# ---- delivery reports (SmsReport, HTTP batch push) -----------------------------------------


def sms_report(biz_id: str, success: bool, code: str = "DELIVERED", text: str = "用户接收成功"):  # noqa: ANN201, FBT001
    """One report as Aliyun's SmsReport documents it."""
    return {
        "phone_number": "13912345678",
        "send_time": "2026-12-03 10:00:00",
        "report_time": "2026-12-03 10:00:03",
        "success": success,
        "err_code": code,
        "err_msg": text,
        "sms_size": "1",
        "biz_id": biz_id,
        "out_id": "",
    }


def push_reports(provider, reports: list, token: str = RECEIPTS_TOKEN):  # noqa: ANN001, ANN201
    from django.test import Client

    return Client().post(
        f"/v2/receipts/providers/{provider.pk}?token={token}",
        data=json.dumps(reports, ensure_ascii=False).encode(),
        content_type="application/json",
    )


def sent_aliyun_sms(tenant, deliver) -> Message:  # noqa: ANN001
    message = code_sms(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    return message


def test_aliyun_reports__batch_with_the_token__each_message_moves_answered_as_aliyun_expects(
    tenant, dysmsapi, deliver
):
    # Given two messages Aliyun took
    first, second = sent_aliyun_sms(tenant, deliver), sent_aliyun_sms(tenant, deliver)
    # When Aliyun pushes one batch: the first received, the second refused (number out of service)
    answer = push_reports(
        dysmsapi.provider,
        [
            sms_report("biz-1", True),
            sms_report("biz-2", False, "MOBILE_NOT_ON_SERVICE", "停机"),
        ],
    )
    # Then it gets the answer its push protocol documents, and each message moved
    assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "接收成功"}
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == MessageStatus.DELIVERED
    assert (second.status, second.error_code) == (MessageStatus.FAILED, "MOBILE_NOT_ON_SERVICE")
    # And the out-of-service number is suppressed
    assert Suppression.all_tenants.filter(tenant=tenant, recipient=second.recipient).exists()


@pytest.mark.parametrize("token", ["", "aliyun-receipts-token-012345678X"])
def test_aliyun_reports__without_the_token__401_nothing_changes(tenant, dysmsapi, deliver, token):
    message = sent_aliyun_sms(tenant, deliver)
    answer = push_reports(dysmsapi.provider, [sms_report("biz-1", True)], token=token)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "authentication_failed"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_aliyun_reports__one_unreadable_report__400_and_none_of_the_batch_recorded(
    tenant, dysmsapi, deliver
):
    message = sent_aliyun_sms(tenant, deliver)
    answer = push_reports(dysmsapi.provider, [sms_report("biz-1", True), {"success": "yes"}])
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "parse_error"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_aliyun_reports__another_tenants_biz_id__changes_nothing(tenant, dysmsapi, deliver):
    from notify.tenants.services import create_tenant

    # Given our message sent, and another tenant's Aliyun provider with its own token
    message = sent_aliyun_sms(tenant, deliver)
    other, _ = create_tenant("globex", name="Globex")
    theirs = create_provider(
        other,
        channel="sms",
        kind="aliyun",
        name="aliyun",
        config={"sign_name": "Globex"},
        secrets={
            "access_key_id": KEY_ID,
            "access_key_secret": KEY_SECRET,
            "receipts_token": "globex-receipts-token-0123456789",
        },
    )
    # When a report of our BizId arrives at their receipts URL with their token
    answer = push_reports(
        theirs,
        [sms_report("biz-1", False, "MOBILE_NOT_ON_SERVICE")],
        token="globex-receipts-token-0123456789",
    )
    # Then the request is theirs to make, but nothing of ours moved
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert not Suppression.all_tenants.exists()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"region": "\u202e" * 3000}, "config.region"),
        ({"template_codes": {f"t{n}": "SMS_1" for n in range(501)}}, "config.template_codes"),
        ({"template_codes": {"login": "SMS_1&Action=x"}}, "config.template_codes"),
        ({"sign_name": "优选\n商城"}, "config.sign_name"),
    ],
)
def test_aliyun_provider__unbounded_or_unsafe_config__refused_naming_it(tenant, config, field):
    from notify.channels.base import ConfigError

    with pytest.raises(ConfigError) as refused:
        create_provider(
            tenant,
            channel="sms",
            kind="aliyun",
            name="aliyun",
            config={"sign_name": "优选商城", **config},
            secrets={"access_key_id": KEY_ID, "access_key_secret": KEY_SECRET},
        )
    assert field in refused.value.errors


def test_aliyun_reports__provider_renamed_after_the_send__report_still_finds_its_message(
    tenant, dysmsapi, deliver
):
    from notify.channels.services import update_provider
    from notify.messaging.models import DeliveryAttempt

    # Given a message Aliyun took, then its provider renamed by the tenant
    message = sent_aliyun_sms(tenant, deliver)
    update_provider(dysmsapi.provider, name="aliyun-renamed")
    # When Aliyun reports on it
    answer = push_reports(dysmsapi.provider, [sms_report("biz-1", True)])
    # Then the message moves, its attempt now naming the provider as it is called
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert DeliveryAttempt.objects.get(message=message).provider == "aliyun-renamed"
