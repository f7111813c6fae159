"""The legacy API answered natively: what a business service on the old API sees."""

import json
import secrets
import time
from urllib.parse import urlencode

import pytest
from django.test import Client

from compat.models import LegacyMessage
from compat.protocol import parse_params
from notify.messaging.models import Lane, Message, MessageStatus
from notify.tenants.models import Tenant
from tests.compat.conftest import app_row, sign

CODE_PARAMS = {"code": "123456", "minutes": 5}
JSON_TYPE = "application/json;charset=UTF-8"


@pytest.fixture
def world(legacy_world):  # noqa: ANN001, ANN201
    return legacy_world


def test_sms_send__valid_call__messages_queued_with_legacy_ids_and_rendered_text(
    world, legacy_call
):
    # When
    answer = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000,+8613900139000,8613800138000",
        tpl_id="SMS_100001",
        tpl_params=CODE_PARAMS,
    )
    # Then one message per distinct mobile, in order, under one batch
    assert (answer.status, answer.content_type) == (200, JSON_TYPE)
    data = answer.json["data"]
    assert answer.json["code"] == 0 and data["count"] == 2
    assert all(len(i) == 18 and i.isdigit() for i in [data["batch_id"], *data["msg_ids"]])
    messages = [Message.all_tenants.get(pk=i) for i in data["msg_ids"]]
    assert [m.recipient for m in messages] == ["13800138000", "13900139000"]
    assert messages[0].body == "【优选商城】您的验证码为123456，5分钟内有效，请勿泄露给他人。"
    assert {m.batch_id for m in messages} == {data["batch_id"]}
    assert messages[0].lane == Lane.TRANSACTIONAL
    # and the answer is written as the old gateway writes it: compact, keys in order
    assert answer.body.startswith(b'{"code":0,"msg":"success","data":{"batch_id":"')


def test_sms_send__same_out_id_twice__same_answer_and_nothing_sent_again(world, legacy_call):
    first = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100001",
        tpl_params=CODE_PARAMS,
        out_id="order-1",
    )
    again = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13700137000",
        tpl_id="SMS_100001",
        tpl_params=CODE_PARAMS,
        out_id="order-1",
    )
    other_endpoint = legacy_call(
        "POST",
        "push/send.do",
        user_ids="u1",
        tpl_id="PUSH_300002",
        tpl_params={"item": "x", "price": 1, "diff": 1},
        out_id="order-1",
    )
    assert first.code == 0 and again.body == first.body
    assert other_endpoint.code == 0 and other_endpoint.body != first.body
    assert Message.all_tenants.filter(reference="order-1").count() == 2


def test_sms_send__render_error__system_error_and_nothing_stored(world, legacy_call):
    # SMS_100003 compares `$points > 0`: a string there makes the old engine raise
    answer = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100003",
        tpl_params={"order_no": "1", "amount": 1, "points": "many"},
        out_id="o-2",
    )
    assert answer.json == {"code": 50000, "msg": "system error", "data": None}
    assert not Message.all_tenants.exists()
    # and the out_id is free again
    retry = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100003",
        tpl_params={"order_no": "1", "amount": 1, "points": 3},
        out_id="o-2",
    )
    assert retry.code == 0


@pytest.mark.parametrize(
    ("tpl_id", "code"),
    [
        ("SMS_404", 20001),  # unknown
        ("SMS_100101", 20001),  # another app's
        ("MAIL_200005", 20001),  # another channel's
        ("SMS_100007", 20003),  # a draft
        ("SMS_100008", 20003),  # rejected
    ],
)
def test_sms_send__template_checks__legacy_codes(world, legacy_call, tpl_id, code):
    answer = legacy_call("POST", "sms/send.do", mobiles="13800138000", tpl_id=tpl_id, tpl_params={})
    assert answer.code == code


def test_sms_send__declared_param_missing__first_missing_named(world, legacy_call):
    answer = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100001",
        tpl_params={"minutes": None},
    )
    assert answer.json["msg"] == "missing tpl param: code"


@pytest.mark.parametrize(
    ("path", "name", "params"),
    [
        ("sms/send.do", "tpl_params", {"mobiles": "13800138000", "tpl_id": "SMS_100001"}),
        ("sms/batch_send.do", "items", {"tpl_id": "SMS_100001"}),
        ("mail/send.do", "tpl_params", {"to": "a@b.cn", "tpl_id": "MAIL_200005"}),
        ("push/send.do", "tpl_params", {"user_ids": "u1", "tpl_id": "PUSH_300002"}),
        ("push/send.do", "extras", {"user_ids": "u1", "tpl_id": "PUSH_300002"}),
    ],
)
@pytest.mark.parametrize(
    "broken", ['{"a":', "[1,2]", '"text"', "null", "1e999999", '{"a":"\\ud800"}', "\xff\xfe"]
)
def test_json_parameters__broken_json__invalid_param_answer(
    world, legacy_call, path, name, params, broken
):
    answer = legacy_call("POST", path, **params, **{name: broken})
    assert answer.status == 200
    assert answer.json == {"code": 10006, "msg": f"invalid param: {name}", "data": None}


def test_json_parameters__nested_deeper_than_the_parser__system_error(world, legacy_call):
    answer = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100001",
        tpl_params="[" * 100_000 + "]" * 100_000,
    )
    assert answer.json["code"] == 50000


def test_send__invalid_utf8_and_repeated_keys__first_value_wins(world, legacy_export):
    # Given a body holding invalid UTF-8 and a repeated `mobiles`, signed as the old gateway
    # read it (replacement characters, first occurrence)
    row = app_row(legacy_export, "shop")
    body = (
        urlencode(
            {
                "app_key": row["app_key"],
                "timestamp": str(int(time.time() * 1000)),
                "nonce": secrets.token_hex(8),
                "mobiles": "13800138000",
                "tpl_id": "SMS_100001",
                "tpl_params": json.dumps(CODE_PARAMS),
            }
        ).encode()
        + b"&mobiles=13700137000&note=%ff%fe\xff"
    )
    params = parse_params(body)
    body += b"&sign=" + sign(params, row["app_secret"]).encode()
    # When
    response = Client().generic(
        "POST", "/gateway/sms/send.do", body, content_type="application/x-www-form-urlencoded"
    )
    # Then
    answer = json.loads(response.content)
    assert answer["code"] == 0, answer
    assert Message.all_tenants.get(pk=answer["data"]["msg_ids"][0]).recipient == "13800138000"


def test_send__huge_parameters__legacy_error_not_500(world, legacy_call):
    mobiles = ",".join(f"138{n:08d}" for n in range(100_000))
    answer = legacy_call("POST", "sms/send.do", mobiles=mobiles, tpl_id="SMS_100001")
    assert answer.json["code"] == 30002
    answer = legacy_call(
        "POST",
        "mail/send.do",
        to="a@b.cn",
        content="x" * 3_000_000,
        subject="s",
        from_alias="y" * 65,
    )
    assert answer.json == {"code": 10006, "msg": "invalid param: from_alias", "data": None}


def test_send__body_over_the_limit__system_error_unread(world, legacy_call, settings):
    settings.LEGACY_MAX_BODY_BYTES = 1000
    answer = legacy_call("POST", "mail/send.do", to="a@b.cn", content="x" * 2000, subject="s")
    assert answer.json["code"] == 50000


def test_status__message_just_sent__sent_with_masked_recipient(world, legacy_call):
    sent = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100001",
        tpl_params=CODE_PARAMS,
        out_id="x-1",
    ).json["data"]
    answer = legacy_call("GET", "message/status.do", msg_id=sent["msg_ids"][0])
    data = answer.json["data"]
    assert list(data) == [
        "msg_id",
        "batch_id",
        "channel",
        "recipient",
        "status",
        "status_desc",
        "err_code",
        "send_time",
        "report_time",
        "out_id",
    ]
    assert (data["recipient"], data["status"], data["status_desc"]) == ("138****8000", 1, "SENT")
    assert (data["batch_id"], data["out_id"], data["report_time"]) == (sent["batch_id"], "x-1", "")


def test_status__message_failed_at_provider__failed_with_the_carrier_code(world, legacy_call):
    sent = legacy_call(
        "POST", "sms/send.do", mobiles="13800134444", tpl_id="SMS_100001", tpl_params=CODE_PARAMS
    ).json["data"]
    Message.all_tenants.filter(pk=sent["msg_ids"][0]).update(
        status=MessageStatus.FAILED, error_code="UNDELIV"
    )
    data = legacy_call("GET", "message/status.do", msg_id=sent["msg_ids"][0]).json["data"]
    assert (data["status"], data["status_desc"], data["err_code"]) == (3, "FAILED", "UNDELIV")


def test_status__bounced_mail__bounced(world, legacy_call):
    sent = legacy_call(
        "POST", "mail/send.do", to="bounce@example.com", content="<p>x</p>", subject="s"
    ).json["data"]
    Message.all_tenants.filter(pk=sent["msg_ids"][0]).update(
        status=MessageStatus.FAILED, error_code="550"
    )
    data = legacy_call("GET", "message/detail.do", msg_id=sent["msg_ids"][0]).json["data"]
    assert (data["status"], data["err_code"], data["recipient"]) == (
        3,
        "BOUNCED",
        "b***@example.com",
    )
    assert (data["subject"], data["content"]) == ("s", "<p>x</p>")


def test_status__historical_message__answered_exactly_as_exported(world, legacy_call):
    row = LegacyMessage.all_tenants.filter(tenant=world["shop"], channel="sms").first()
    data = legacy_call("GET", "message/detail.do", msg_id=row.msg_id).json["data"]
    assert data["msg_id"] == row.msg_id and data["content"] == row.content
    assert (data["send_time"], data["report_time"]) == (row.send_time, row.report_time)


def test_status__another_apps_message__not_found(world, legacy_call):
    sent = legacy_call(
        "POST", "sms/send.do", mobiles="13800138000", tpl_id="SMS_100001", tpl_params=CODE_PARAMS
    ).json["data"]
    history = LegacyMessage.all_tenants.filter(tenant=world["shop"]).first()
    for msg_id in (sent["msg_ids"][0], history.msg_id, "1" * 40, "abc"):
        answer = legacy_call("GET", "message/status.do", app="logi", msg_id=msg_id)
        assert answer.json == {"code": 20004, "msg": "message not found", "data": None}


def test_template_get__own_draft__velocity_source_and_status(world, legacy_call):
    data = legacy_call("GET", "template/get.do", tpl_id="SMS_100007").json["data"]
    assert list(data) == ["tpl_id", "channel", "name", "subject", "content", "params", "status"]
    assert (data["channel"], data["status"], data["params"]) == ("sms", 0, "item")
    assert "${item}" in data["content"]
    other = legacy_call("GET", "template/get.do", app="logi", tpl_id="SMS_100007")
    assert other.code == 20001


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "sms/send.do", 405),
        ("PUT", "template/get.do", 405),
        ("HEAD", "message/status.do", 405),
        # the method as sent: the old server compared it without changing its case
        ("post", "sms/send.do", 405),
        ("Get", "message/status.do", 405),
        ("get", "template/get.do", 405),
        ("POST", "sms/sendx.do", 404),
        ("GET", "message/status.do/", 404),
        ("DELETE", "nothing", 404),
    ],
)
def test_routing__wrong_method_or_unknown_path__empty_answer_without_content_type(
    world, method, path, status
):
    response = Client().generic(method, f"/gateway/{path}")
    assert response.status_code == status
    assert response.content == b""
    assert "Content-Type" not in response.headers


def test_auth__checks_in_the_old_order(world, legacy_call):
    assert legacy_call("POST", "sms/send.do", app_key=None).json["msg"] == "missing param: app_key"
    assert legacy_call("POST", "sms/send.do", app_key="ak_nobody").code == 10002
    assert legacy_call("POST", "sms/send.do", app="club").code == 40002
    assert legacy_call("POST", "sms/send.do", timestamp="123").code == 10004
    assert legacy_call("POST", "sms/send.do", sign="0" * 32).code == 10003
    assert legacy_call("POST", "sms/send.do", nonce="short").code == 10005
    nonce = secrets.token_hex(6)
    reused = legacy_call("POST", "sms/send.do", nonce=nonce)
    assert reused.json["msg"] == "missing param: mobiles"
    assert legacy_call("GET", "message/status.do", nonce=nonce).code == 10005


def test_rate_limit__small_app__calls_beyond_its_qps_refused(world, legacy_call):
    # Given an app allowed 2 sends a second (hrsaas: no other test sends as it)
    Tenant.objects.filter(slug="hrsaas").update(qps_limit=2)
    send = {"mobiles": "13800138000", "tpl_id": "SMS_100304", "tpl_params": {"name": "Li"}}
    # When it makes calls the template checks refuse, then three valid sends at once
    refused = [
        legacy_call("POST", "sms/send.do", app="hrsaas", **{**send, "tpl_id": "SMS_404"}).code
        for _ in range(3)
    ]
    codes = [legacy_call("POST", "sms/send.do", app="hrsaas", **send).code for _ in range(3)]
    # Then the refused calls were not counted, and the third send is over the limit
    assert refused == [20001, 20001, 20001]
    assert codes == [0, 0, 40001]


@pytest.mark.parametrize(
    ("method", "path", "params", "code"),
    [
        ("POST", "sms/send.do", {"app_key": "ak\x00x"}, 10002),
        ("POST", "sms/send.do", {"mobiles": "13800138000", "tpl_id": "SMS\x00"}, 20001),
        ("POST", "mail/send.do", {"to": "a@b.cn\x00"}, 30001),
        ("POST", "push/send.do", {"user_ids": "u\x00"}, 30001),
        ("POST", "sms/batch_send.do", {"items": '[{"mobile":"138\\u0000"}]'}, 30001),
        ("GET", "message/status.do", {"msg_id": "26\x00"}, 20004),
        ("GET", "message/detail.do", {"msg_id": "é" * 5000}, 20004),
        ("GET", "template/get.do", {"tpl_id": "\x00" * 3}, 20001),
        ("GET", "template/get.do", {"tpl_id": "x" * 100_000}, 20001),
    ],
)
def test_every_endpoint__nul_and_oversized_values__legacy_answer_not_500(
    world, legacy_call, method, path, params, code
):
    answer = legacy_call(method, path, **params)
    assert (answer.status, answer.content_type) == (200, JSON_TYPE)
    assert answer.code == code


def test_lookups__app_disabled_meanwhile__refused_once_the_cache_time_passed(
    world, legacy_call, settings
):
    # Given a call that cached the app
    settings.LEGACY_LOOKUP_CACHE_SECONDS = 0.3
    assert legacy_call("GET", "template/get.do", tpl_id="SMS_100001").code == 0
    # When the operator disables it
    Tenant.objects.filter(slug="shop").update(status=Tenant.Status.DISABLED)
    # Then within the cache time calls still pass, and after it they are refused
    assert legacy_call("GET", "template/get.do", tpl_id="SMS_100001").code == 0
    time.sleep(0.35)
    assert legacy_call("GET", "template/get.do", tpl_id="SMS_100001").code == 40002


def test_send__nan_and_infinity_in_json_parameters__accepted_as_by_the_old_gateway(
    world, legacy_call
):
    answer = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100001",
        tpl_params='{"code": NaN, "minutes": Infinity}',
    )
    assert answer.code == 0
    message = Message.all_tenants.get(pk=answer.json["data"]["msg_ids"][0])
    assert message.body == "【优选商城】您的验证码为nan，inf分钟内有效，请勿泄露给他人。"
    push = legacy_call(
        "POST",
        "push/send.do",
        user_ids="u1",
        tpl_id="PUSH_300002",
        tpl_params={"item": "x", "price": 1, "diff": 1},
        extras='{"badge": -Infinity}',
    )
    assert push.code == 0


def test_send__nul_in_stored_values__sent_and_answered_back_as_given(world, legacy_call):
    # NUL cannot be stored in PostgreSQL text; the old gateway stored and answered it
    answer = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100001",
        tpl_params={"code": "12\x0034", "minutes": 5},
        sign_name="A\x00B",
        out_id="o\x00",
    )
    assert answer.code == 0
    msg_id = answer.json["data"]["msg_ids"][0]
    detail = legacy_call("GET", "message/detail.do", msg_id=msg_id).json["data"]
    assert detail["content"] == "【A\x00B】您的验证码为12\x0034，5分钟内有效，请勿泄露给他人。"
    assert detail["out_id"] == "o\x00"
    again = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800138000",
        tpl_id="SMS_100001",
        tpl_params=CODE_PARAMS,
        out_id="o\x00",
    )
    assert again.body == answer.body
    raw = legacy_call("POST", "mail/send.do", to="a@b.cn", content="<p>\x00</p>", subject="s")
    assert raw.code == 0


def test_send__out_ids_differing_by_nul_and_u_ffff__two_sends_each_answered_back_exactly(
    world, legacy_call
):
    # Given two out_ids that differ only where one has NUL and the other U+FFFF
    answers = {
        out_id: legacy_call(
            "POST",
            "sms/send.do",
            mobiles="13800138000",
            tpl_id="SMS_100001",
            tpl_params=CODE_PARAMS,
            out_id=out_id,
        )
        for out_id in ("oidA\x00", "oidA\uffff", "oidA\uffff0")
    }
    # Then each is its own send, and status.do gives each out_id back as it was sent
    msg_ids = {out_id: a.json["data"]["msg_ids"][0] for out_id, a in answers.items()}
    assert len(set(msg_ids.values())) == 3
    for out_id, msg_id in msg_ids.items():
        status = legacy_call("GET", "message/status.do", msg_id=msg_id).json["data"]
        assert status["out_id"] == out_id


@pytest.mark.parametrize(
    "path", ["/GATEWAY/sms/send.do", "/Gateway/message/status.do", "/gateway", "/gatewayx"]
)
def test_routing__other_gateway_spellings__empty_404(world, path):
    response = Client().generic("POST", path)
    assert (response.status_code, response.content) == (404, b"")
    assert "Content-Type" not in response.headers


def test_routing__path_as_sent__escaped_dot_is_not_the_endpoint(world):
    # gunicorn passes the request target as sent (RAW_URI); PATH_INFO is decoded
    response = Client().generic(
        "POST", "/gateway/sms/send.do", RAW_URI="/gateway/sms/send%2Edo?x=1"
    )
    assert (response.status_code, response.content) == (404, b"")


def test_routing__leading_slashes__collapsed_as_the_old_server_did(world, legacy_call):
    response = Client().get("/gateway/message/status.do", RAW_URI="//gateway/message/status.do")
    assert response.status_code == 200
    assert json.loads(response.content)["msg"] == "missing param: app_key"


@pytest.mark.parametrize(
    "target", ["/gateway/message/status.do#part", "/gateway/message/status.do?x=1#part?y"]
)
def test_routing__fragment_in_the_request_target__dropped_as_the_old_server_did(world, target):
    response = Client().get("/gateway/message/status.do", RAW_URI=target)
    assert response.status_code == 200
    assert json.loads(response.content)["msg"] == "missing param: app_key"


def test_import__app_with_qps_limit_zero__every_send_refused(world, legacy_call):
    Tenant.objects.filter(slug="shop").update(qps_limit=0)
    answer = legacy_call(
        "POST", "sms/send.do", mobiles="13800138000", tpl_id="SMS_100001", tpl_params=CODE_PARAMS
    )
    assert answer.json == {"code": 40001, "msg": "rate limit exceeded", "data": None}


def test_answers__sized_like_the_old_gateways(world, legacy_call):
    answer = Client().generic("POST", "/gateway/sms/send.do")
    assert answer.headers["Content-Length"] == str(len(answer.content))
    assert Client().get("/gateway/sms/send.do").headers["Content-Length"] == "0"


def test_mail_send__cc_and_from_alias__copied_on_the_mail_under_that_name(
    world, legacy_call, smtp_server, deliver
):
    # Given a legacy mail with cc and a sender name (line breaks in it must not split headers)
    sent = legacy_call(
        "POST",
        "mail/send.do",
        to="ana@example.com",
        cc="boss@example.com,ana@example.com",
        from_alias="优选商城\r\nBcc: x@evil.test",
        content="<p>hi</p>",
        subject="s",
    ).json["data"]
    # When the worker delivers it
    deliver(sent["msg_ids"][0])
    # Then one mail, to the recipient with the cc copied, under the sender's name
    (mail,) = smtp_server.received
    assert set(mail.rcpt_tos) == {"ana@example.com", "boss@example.com"}
    assert str(mail.message["Cc"]) == "boss@example.com, ana@example.com"
    assert mail.message["Bcc"] is None
    assert str(mail.message["From"]).startswith('"优选商城 Bcc: x@evil.test" <')
