"""Chat robots, each against a local stand-in that checks the request as the provider
documents it (body shape, signature) and answers in its format, error bodies included: an HTTP
200 carrying an error code is a failure of its kind, recorded per provider."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from notify.channels import breaker
from notify.channels.services import create_provider
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message

SIGNING_SECRET = "SEC-robot-signing-secret-0123456789"


def accepted(answer: object) -> bool:
    if isinstance(answer, str):
        return answer == "ok"
    return isinstance(answer, dict) and (answer.get("errcode") == 0 or answer.get("code") == 0)


def strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    return [value] if isinstance(value, str) else []


class Robot:
    """A chat robot's webhook on loopback: `check(path, query, body) -> (status, answer)`."""

    def __init__(self, check: Callable[[str, dict, dict], tuple[int, object]]) -> None:
        self.received: list[dict] = []
        self.answer_next: tuple[int, object] | None = None
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                body = json.loads(raw)
                status, answer = check(parts.path, parse_qs(parts.query), body)
                if status == 200 and robot.answer_next is not None:
                    status, answer = robot.answer_next
                if status == 200 and accepted(answer):
                    robot.received.append(body)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def slack_check(path: str, query: dict, body: dict) -> tuple[int, object]:
    if path != "/services/T000/B000/XXXX":
        return 404, "no_service"
    if set(body) != {"text"} or not isinstance(body["text"], str):
        return 400, "invalid_payload"
    return 200, "ok"


def dingtalk_check(path: str, query: dict, body: dict) -> tuple[int, object]:
    if query.get("access_token") != ["tok123"]:
        return 200, {"errcode": 300001, "errmsg": "token is not exist"}
    timestamp, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
    string_to_sign = f"{timestamp}\n{SIGNING_SECRET}".encode()
    expected = base64.b64encode(
        hmac.new(SIGNING_SECRET.encode(), string_to_sign, hashlib.sha256).digest()
    ).decode()
    if not timestamp or abs(time.time() * 1000 - int(timestamp)) > 3600_000:
        return 200, {"errcode": 310000, "errmsg": "timestamp invalid"}
    if sign != expected:  # (the query was URL-decoded once, as the robot reads it)
        return 200, {"errcode": 310000, "errmsg": "sign not match"}
    if body.get("msgtype") != "text" or not isinstance(body.get("text", {}).get("content"), str):
        return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
    return 200, {"errcode": 0, "errmsg": "ok"}


def wecom_check(path: str, query: dict, body: dict) -> tuple[int, object]:
    if path != "/cgi-bin/webhook/send" or query.get("key") != ["k-1"]:
        return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
    if body.get("msgtype") != "text" or not isinstance(body.get("text", {}).get("content"), str):
        return 200, {"errcode": 40008, "errmsg": "invalid message type"}
    return 200, {"errcode": 0, "errmsg": "ok"}


def feishu_check(path: str, query: dict, body: dict) -> tuple[int, object]:
    timestamp, sign = body.get("timestamp", ""), body.get("sign", "")
    key = f"{timestamp}\n{SIGNING_SECRET}".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    if sign != expected or abs(time.time() - int(timestamp or 0)) > 3600:
        return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}
    if body.get("msg_type") != "text" or not isinstance(body.get("content", {}).get("text"), str):
        return 200, {"code": 9499, "msg": "Bad Request"}
    return 200, {"code": 0, "msg": "success", "data": {}}


ROBOTS = {
    "slack": (slack_check, "/services/T000/B000/XXXX", {}),
    "dingtalk": (dingtalk_check, "/robot/send?access_token=tok123", {"secret": SIGNING_SECRET}),
    "wecom": (wecom_check, "/cgi-bin/webhook/send?key=k-1", {}),
    "feishu": (feishu_check, "/open-apis/bot/v2/hook/abc", {"secret": SIGNING_SECRET}),
}


@pytest.fixture(params=sorted(ROBOTS))
def robot(request, tenant, settings) -> Iterator[tuple[str, Robot]]:  # noqa: ANN001
    settings.ALLOW_PRIVATE_TARGETS = True
    kind = request.param
    check, path, extra = ROBOTS[kind]
    server = Robot(check)
    provider = create_provider(
        tenant,
        channel="chat",
        kind=kind,
        name="ops-room",
        config={},
        secrets={"webhook": server.base + path, **extra},
    )
    breaker.reset(provider.pk)
    yield kind, server
    breaker.reset(provider.pk)
    server.close()


def chat(tenant, to: str = "ops-room") -> Message:  # noqa: ANN001
    return create_message(
        tenant=tenant,
        draft=MessageDraft(channel="chat", recipient=to, subject="Deploy", body="v1.2 is live"),
    )


def test_chat__each_robot__posted_as_documented_and_delivered(tenant, robot, deliver):
    kind, server = robot
    message = chat(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED, message.error
    (body,) = server.received
    assert "Deploy\nv1.2 is live" in strings(body)
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.provider == "ops-room"


ERROR_BODIES = {
    # an HTTP 200 carrying a refusal, in each robot's own format
    "slack": ((404, "channel_not_found"), "permanent", "channel_not_found"),
    "dingtalk": ((200, {"errcode": 130101, "errmsg": "send too fast"}), "throttled", "130101"),
    "wecom": ((200, {"errcode": 93000, "errmsg": "invalid webhook url"}), "permanent", "93000"),
    "feishu": ((200, {"code": 11232, "msg": "frequency limited"}), "throttled", "11232"),
}


def test_chat__robot_answers_an_error_body__that_failure_kind_never_a_success(
    tenant, robot, deliver
):
    kind, server = robot
    server.answer_next, expected_kind, expected_code = ERROR_BODIES[kind]
    message = chat(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status != MessageStatus.DELIVERED and message.status != MessageStatus.SENT
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.error_code, attempt.provider) == (
        expected_kind,
        expected_code,
        "ops-room",
    )


def test_chat__bad_signing_secret__robots_refusal_recorded_not_sent(tenant, settings, deliver):
    settings.ALLOW_PRIVATE_TARGETS = True
    server = Robot(dingtalk_check)
    try:
        create_provider(
            tenant,
            channel="chat",
            kind="dingtalk",
            name="ops-room",
            config={},
            secrets={
                "webhook": server.base + "/robot/send?access_token=tok123",
                "secret": "SEC-the-wrong-one",
            },
        )
        message = chat(tenant)
        deliver(message.id)
        message.refresh_from_db()
        assert message.status == MessageStatus.FAILED and message.error_code == "310000"
        assert server.received == []
    finally:
        server.close()


def test_chat__no_provider_of_that_name__failed_saying_how_to_fix(tenant, deliver):
    message = chat(tenant, to="nowhere")
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "no enabled chat provider named 'nowhere'" in message.error
