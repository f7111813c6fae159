"""The conformance run's stand-in providers (scripts/conformance/standins.py) hold the platform to
docs/http-providers.md: they refuse what a real provider would refuse and report back as one
would. Real sockets on loopback: an HTTP receiver plays the platform's receipts endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from scripts.conformance.standins import HttpProviderStandin, SmtpStandin

pytestmark = pytest.mark.e2e

SECRET = "standin-test-secret"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """docs/http-providers.md, written out again here rather than taken from the stand-ins."""
    return (
        "v1="
        + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    )


def signed_post(
    url: str, payload: dict, secret: str = SECRET, **overrides: str
) -> requests.Response:
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Notify-Timestamp": timestamp,
        "X-Notify-Signature": sign(secret, timestamp, body),
        **overrides,
    }
    return requests.post(url, data=body, headers=headers, timeout=5)


@dataclass
class ReceivedReport:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """The platform's side of the reports: records each POST and answers as told."""

    url: str
    received: list[ReceivedReport] = field(default_factory=list)
    # statuses to answer, in order; 200 once they are used up
    answers: list[int] = field(default_factory=list)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedReport]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append(ReceivedReport(self.path, dict(self.headers), body))
            status = state.answers.pop(0) if state.answers else 200
            answer = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def sms(receiver: Receiver) -> Iterator[HttpProviderStandin]:
    with HttpProviderStandin("sms", SECRET, receiver.url, retry_delays=(0.1, 0.1)) as standin:
        yield standin


@pytest.fixture
def push(receiver: Receiver) -> Iterator[HttpProviderStandin]:
    with HttpProviderStandin("push", SECRET, receiver.url) as standin:
        yield standin


@pytest.fixture
def smtp() -> Iterator[SmtpStandin]:
    with SmtpStandin() as standin:
        yield standin


SMS = {"id": "261203120000000002", "to": "13800001234", "text": "【Shop】Your code is 1234"}


# ------------------------------------------------------------------ signatures


def test_sms_standin__unsigned_request__401_and_no_report(sms, receiver):
    response = requests.post(sms.url, json=SMS, timeout=5)

    assert response.status_code == 401
    time.sleep(0.6)
    assert receiver.received == []
    assert sms.reports == []


def test_sms_standin__signed_with_another_secret__401(sms):
    response = signed_post(sms.url, SMS, secret="not-the-shared-secret")

    assert response.status_code == 401
    assert response.json()["error"] == "wrong signature"


def test_sms_standin__signature_of_another_body__401(sms):
    timestamp = str(int(time.time()))
    response = requests.post(
        sms.url,
        data=json.dumps(SMS).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Notify-Timestamp": timestamp,
            "X-Notify-Signature": sign(SECRET, timestamp, b'{"id": "other"}'),
        },
        timeout=5,
    )

    assert response.status_code == 401


def test_sms_standin__timestamp_older_than_300_s__401(sms):
    body = json.dumps(SMS).encode()
    stale = str(int(time.time()) - 301)
    response = requests.post(
        sms.url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Notify-Timestamp": stale,
            "X-Notify-Signature": sign(SECRET, stale, body),
        },
        timeout=5,
    )

    assert response.status_code == 401


def test_push_standin__unsigned_request__401(push):
    response = requests.post(push.url, json={"id": "1", "user_id": "u1"}, timeout=5)

    assert response.status_code == 401


# ------------------------------------------------------------------ body shape


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "261203120000000002", "to": "13800001234"},  # no text
        {**SMS, "to": 13800001234},  # a number, not a string
        {**SMS, "mobile": "13800001234"},  # a key the protocol does not have
        ["not", "an", "object"],
    ],
)
def test_sms_standin__signed_body_of_wrong_shape__400(sms, payload):
    response = signed_post(sms.url, payload)

    assert response.status_code == 400
    assert sms.reports == []


def test_push_standin__extras_not_an_object__400(push):
    payload = {"id": "1", "user_id": "u1", "title": "T", "body": "B", "extras": "[]"}

    response = signed_post(push.url, payload)

    assert response.status_code == 400


# ------------------------------------------------------------------ answers and reports


def test_sms_standin__good_sms_to_mobile_ending_4444__accepted_then_signed_undeliv_report(
    sms, receiver
):
    started = time.monotonic()
    response = signed_post(sms.url, {**SMS, "to": "+8613800004444"})

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "accepted"
    provider_id = answer["message_id"]
    (report,) = receiver.wait_for(1)
    assert time.monotonic() - started >= 0.3
    assert report.path == "/v2/receipts/http/sms"
    timestamp = report.headers["X-Notify-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 10
    assert report.headers["X-Notify-Signature"] == sign(SECRET, timestamp, report.body)
    assert json.loads(report.body) == {
        "message_id": provider_id,
        "status": "failed",
        "error_code": "UNDELIV",
        "error": "undeliverable",
    }
    assert [request.status for request in sms.requests] == [200]
    assert sms.requests[0].payload["to"] == "+8613800004444"


def test_sms_standin__good_sms_to_other_mobile__delivered_report(sms, receiver):
    provider_id = signed_post(sms.url, SMS).json()["message_id"]

    (report,) = receiver.wait_for(1)
    payload = json.loads(report.body)
    assert (payload["message_id"], payload["status"]) == (provider_id, "delivered")


def test_push_standin__user_id_starting_offline__failed_no_device_report(push, receiver):
    payload = {"id": "7", "user_id": "offline_42", "title": "T", "body": "B", "extras": {"k": 1}}

    provider_id = signed_post(push.url, payload).json()["message_id"]

    (report,) = receiver.wait_for(1)
    assert report.path == "/v2/receipts/http/push"
    assert json.loads(report.body)["error_code"] == "NO_DEVICE"
    assert json.loads(report.body)["message_id"] == provider_id


def test_sms_standin__platform_answers_503_then_200__report_tried_again_freshly_signed(
    sms, receiver
):
    receiver.answers = [503]

    signed_post(sms.url, SMS)

    first, second = receiver.wait_for(2)
    assert first.body == second.body
    for report in (first, second):
        timestamp = report.headers["X-Notify-Timestamp"]
        assert report.headers["X-Notify-Signature"] == sign(SECRET, timestamp, report.body)
    time.sleep(0.5)
    assert len(receiver.received) == 2  # 200: no more tries
    assert sms.reports[0].attempts == [503, 200]


# ------------------------------------------------------------------ SMTP


def _mail(to: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "notify@localhost"
    mail["To"] = to
    mail["Subject"] = "Order shipped"
    mail.set_content("Your parcel is on its way.")
    return mail


def test_smtp_standin__recipient_starting_bounce__refused_with_550(smtp):
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        client.ehlo()
        client.mail("notify@localhost")
        code, reply = client.rcpt("bounce.test@example.com")

    assert code == 550
    assert reply == b"5.1.1 mailbox unavailable"
    assert smtp.refused == ["bounce.test@example.com"]
    assert smtp.received == []


def test_smtp_standin__other_recipient__accepted_and_recorded(smtp):
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        refused = client.send_message(_mail("buyer@example.com"))

    assert refused == {}
    (mail,) = smtp.received
    assert mail.rcpt_tos == ["buyer@example.com"]
    assert mail.subject == "Order shipped"


def test_smtp_standin__bounce_among_others__only_bounce_refused(smtp):
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        refused = client.send_message(
            _mail("buyer@example.com"), to_addrs=["buyer@example.com", "bounce@example.com"]
        )

    assert refused == {"bounce@example.com": (550, b"5.1.1 mailbox unavailable")}
    (mail,) = smtp.received
    assert mail.rcpt_tos == ["buyer@example.com"]
