"""The generic HTTP SMS and push transports (docs/http-providers.md) against a stand-in
provider: a real HTTP server on loopback that checks each request's body and signature exactly
as the protocol says, and gives each documented answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType

import pytest

from notify.channels.base import Envelope, SendResult, TransportError, get_transport
from notify.channels.http import HttpPushTransport, HttpSmsTransport
from notify.messaging import services
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message
from notify.messaging.signals import message_finished
from tests.smtp import free_port

SMS_SECRET = "sms-shared-secret-for-tests"
PUSH_SECRET = "push-shared-secret-for-tests"


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The protocol's signature, computed here from the document (not by the code under test)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"status": "accepted", "message_id": "prov-1"}'
    headers: dict[str, str] = field(default_factory=dict)
    # seconds the provider takes before answering
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class StandInProvider:
    """A provider of the generic HTTP protocol on loopback. It answers each request with the
    next queued Answer (default: accepted as `prov-1`), after checking what the protocol
    requires; a request that breaks it is answered 401 and noted in `violations`."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.answers: list[Answer] = []
        self.violations: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                provider.received.append(Received(self.path, dict(self.headers), body))
                problem = provider.violation(self.headers, body)
                if problem:
                    provider.violations.append(problem)
                    answer = Answer(status=401, body=b'{"error": "bad signature"}')
                else:
                    answer = provider.answers.pop(0) if provider.answers else Answer()
                time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up (the timeout case)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"

    def violation(self, headers: object, body: bytes) -> str:
        if headers.get("Content-Type") != "application/json":
            return f"Content-Type {headers.get('Content-Type')!r}"
        timestamp = headers.get("X-Notify-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return f"timestamp {timestamp!r}"
        signature = headers.get("X-Notify-Signature", "")
        if not hmac.compare_digest(signature, expected_signature(self.secret, timestamp, body)):
            return f"signature {signature!r}"
        try:
            json.loads(body)
        except ValueError:
            return "body not JSON"
        return ""

    def answer(self, **kwargs: object) -> None:
        if isinstance(kwargs.get("body"), dict):
            kwargs["body"] = json.dumps(kwargs["body"]).encode()
        self.answers.append(Answer(**kwargs))

    def __enter__(self) -> StandInProvider:
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def sms_provider(settings):  # noqa: ANN001, ANN201
    with StandInProvider(SMS_SECRET) as provider:
        settings.SMS_HTTP_URL = provider.url
        settings.SMS_HTTP_SECRET = SMS_SECRET
        settings.HTTP_PROVIDER_TIMEOUT = 2.0
        yield provider
        assert provider.violations == []


@pytest.fixture
def push_provider(settings):  # noqa: ANN001, ANN201
    with StandInProvider(PUSH_SECRET) as provider:
        settings.PUSH_HTTP_URL = provider.url
        settings.PUSH_HTTP_SECRET = PUSH_SECRET
        settings.HTTP_PROVIDER_TIMEOUT = 2.0
        yield provider
        assert provider.violations == []


SMS = Envelope(
    message_id="261121000000500001", channel="sms", recipient="+8613800138000", body="Code 1234"
)
PUSH = Envelope(
    message_id="261121000000500002",
    channel="push",
    recipient="user-42",
    subject="Parcel",
    body="Your parcel is on its way",
    provider_hints=MappingProxyType({"extras": {"order": "A-17", "deep_link": "app://o/17"}}),
)


def send_sms(envelope: Envelope = SMS) -> SendResult:
    transport = get_transport("sms")
    try:
        return transport.send(envelope)
    finally:
        transport.close()


def refusal(envelope: Envelope = SMS) -> TransportError:
    with pytest.raises(TransportError) as refused:
        send_sms(envelope)
    return refused.value


# What is sent


def test_get_transport__sms_and_push__the_http_transports():
    assert isinstance(get_transport("sms"), HttpSmsTransport)
    assert isinstance(get_transport("push"), HttpPushTransport)


def test_sms_send__any_message__documented_body_signed_with_the_shared_secret(sms_provider):
    send_sms()
    (request,) = sms_provider.received
    assert request.path == "/send"
    assert request.json == {"id": SMS.message_id, "to": "+8613800138000", "text": "Code 1234"}
    timestamp = request.headers["X-Notify-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 5
    assert request.headers["X-Notify-Signature"] == expected_signature(
        SMS_SECRET, timestamp, request.body
    )


def test_push_send__message_with_extras__documented_body_with_title_body_and_extras(
    push_provider,
):
    transport = get_transport("push")
    transport.send(PUSH)
    transport.close()
    (request,) = push_provider.received
    assert request.json == {
        "id": PUSH.message_id,
        "user_id": "user-42",
        "title": "Parcel",
        "body": "Your parcel is on its way",
        "extras": {"order": "A-17", "deep_link": "app://o/17"},
    }


def test_push_send__no_extras_given__empty_extras_object(push_provider):
    transport = get_transport("push")
    transport.send(Envelope(message_id="1", channel="push", recipient="user-1", body="b"))
    transport.close()
    assert push_provider.received[0].json["extras"] == {}


def test_sms_send__non_ascii_text__utf8_json_signed_over_the_exact_bytes(sms_provider):
    send_sms(Envelope(message_id="1", channel="sms", recipient="+8613800138000", body="验证码 ✓"))
    assert sms_provider.received[0].json["text"] == "验证码 ✓"


def test_sms_send__several_sends_on_one_transport__one_connection_reused(sms_provider):
    transport = get_transport("sms")
    try:
        transport.send(SMS)
        transport.send(SMS)
    finally:
        transport.close()
    assert len(sms_provider.received) == 2


# How each answer maps


def test_sms_send__accepted__sent_not_delivered_with_the_provider_id(sms_provider):
    sms_provider.answer(body={"status": "accepted", "message_id": "carrier-77"})
    result = send_sms()
    assert result.delivered is False
    assert result.provider_message_id == "carrier-77"
    assert "carrier-77" in result.detail


def test_sms_send__delivered__delivered_with_the_provider_id(sms_provider):
    sms_provider.answer(body={"status": "delivered", "message_id": "carrier-78"})
    result = send_sms()
    assert result.delivered is True
    assert result.provider_message_id == "carrier-78"


@pytest.mark.parametrize("code", ["INVALID_NUMBER", "NO_DEVICE", "UNREGISTERED"])
def test_sms_send__failed_with_a_bad_recipient_code__permanent_bad_recipient(sms_provider, code):
    sms_provider.answer(body={"status": "failed", "error_code": code, "error": "no such user"})
    error = refusal()
    assert (error.permanent, error.kind, error.code) == (True, "bad_recipient", code)
    assert "no such user" in error.reason and "not retried" in error.reason


def test_sms_send__failed_with_another_code__permanent_with_the_code(sms_provider):
    sms_provider.answer(body={"status": "failed", "error_code": "CONTENT_BLOCKED", "error": "spam"})
    error = refusal()
    assert (error.permanent, error.kind, error.code) == (True, "permanent", "CONTENT_BLOCKED")
    assert "CONTENT_BLOCKED" in error.reason


@pytest.mark.parametrize(("retry_after", "expected"), [("30", 30.0), ("2.5", 2.5)])
def test_sms_send__429_with_numeric_retry_after__throttled_retried_after_it(
    sms_provider, retry_after, expected
):
    sms_provider.answer(status=429, body=b"{}", headers={"Retry-After": retry_after})
    error = refusal()
    assert (error.permanent, error.kind, error.retry_after) == (False, "throttled", expected)


def test_sms_send__429_with_an_http_date__throttled_with_the_platform_backoff(sms_provider):
    sms_provider.answer(
        status=429, body=b"{}", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    )
    error = refusal()
    assert (error.permanent, error.kind, error.retry_after) == (False, "throttled", None)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_sms_send__5xx__provider_down_retried(sms_provider, status):
    sms_provider.answer(status=status, body=b"oops")
    error = refusal()
    assert (error.permanent, error.kind) == (False, "provider_down")
    assert "retried" in error.reason


def test_sms_send__provider_slower_than_the_timeout__provider_down_retried(sms_provider, settings):
    settings.HTTP_PROVIDER_TIMEOUT = 0.3
    sms_provider.answer(delay=1.5)
    started = time.monotonic()
    error = refusal()
    assert time.monotonic() - started < 1.4
    assert (error.permanent, error.kind) == (False, "provider_down")


def test_sms_send__nothing_listening__provider_down_and_no_credentials_in_the_reason(settings):
    settings.SMS_HTTP_URL = f"http://user:hunter2@127.0.0.1:{free_port()}/send?token=t0ps3cret"
    settings.SMS_HTTP_SECRET = SMS_SECRET
    error = refusal()
    assert (error.permanent, error.kind) == (False, "provider_down")
    for secret in ("hunter2", "t0ps3cret", SMS_SECRET):
        assert secret not in error.reason


@pytest.mark.parametrize(
    "url", ["127.0.0.1:9/send", "ftp://127.0.0.1/send", "http://user:hunter2@[::1/send"]
)
def test_sms_send__unusable_url__permanent_saying_what_to_fix_without_the_url(settings, url):
    settings.SMS_HTTP_URL = url
    error = refusal()
    assert (error.permanent, error.kind) == (True, "permanent")
    assert "SMS_HTTP_URL" in error.reason and url not in error.reason
    assert "hunter2" not in error.reason


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_sms_send__other_4xx__permanent(sms_provider, status):
    sms_provider.answer(status=status, body=b'{"error": "nope"}')
    error = refusal()
    assert (error.permanent, error.kind, error.code) == (True, "permanent", str(status))
    assert SMS_SECRET not in error.reason


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[]",
        b'{"status": "ok"}',
        b'{"status": "accepted"}',
        b'{"status": "accepted", "message_id": 17}',
        b'{"status": "delivered", "message_id": ""}',
        b'{"status": "failed", "error_code": ["X"]}',
        b'{"message_id": "x"}',
    ],
)
def test_sms_send__200_with_a_malformed_body__temporary_never_a_success(sms_provider, body):
    sms_provider.answer(body=body)
    error = refusal()
    assert (error.permanent, error.kind) == (False, "temporary")


def test_sms_send__no_url_configured__permanent_saying_what_to_set(settings):
    settings.SMS_HTTP_URL = ""
    error = refusal()
    assert error.reason == "no SMS provider configured: set SMS_HTTP_URL"
    assert (error.permanent, error.kind) == (True, "permanent")


def test_push_send__no_url_configured__permanent_saying_what_to_set(settings):
    settings.PUSH_HTTP_URL = ""
    transport = get_transport("push")
    with pytest.raises(TransportError) as refused:
        transport.send(PUSH)
    assert refused.value.reason == "no push provider configured: set PUSH_HTTP_URL"
    assert (refused.value.permanent, refused.value.kind) == (True, "permanent")


def test_push_send__answers__mapped_as_for_sms(push_provider):
    push_provider.answer(body={"status": "failed", "error_code": "UNREGISTERED", "error": "gone"})
    transport = get_transport("push")
    with pytest.raises(TransportError) as refused:
        transport.send(PUSH)
    assert (refused.value.kind, refused.value.code) == ("bad_recipient", "UNREGISTERED")


# Through the delivery path


@pytest.fixture
def finished(db):  # noqa: ANN001, ANN201
    """The message_finished signals sent: (message_id, status)."""
    sent: list[tuple[str, str]] = []

    def receiver(sender, message_id, status, **kwargs):  # noqa: ANN001, ANN003, ANN202
        sent.append((message_id, status))

    message_finished.connect(receiver)
    yield sent
    message_finished.disconnect(receiver)


@pytest.fixture
def deliver(django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """The delivery service as the task runs it, with what it does on commit."""

    def run(message_id: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            services.deliver(message_id)

    return run


@pytest.fixture
def no_wakeups(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)


def make_message(tenant, channel="sms", recipient="+8613800138000", **draft) -> Message:  # noqa: ANN001
    draft.setdefault("body", "Code 1234")
    return create_message(
        tenant=tenant, draft=MessageDraft(channel=channel, recipient=recipient, **draft)
    )


def test_deliver__push_message_with_extras_in_its_params__extras_reach_the_provider(
    deliver, tenant, push_provider, no_wakeups
):
    message = make_message(
        tenant,
        channel="push",
        recipient="device-token-123",
        subject="Parcel",
        body="On its way",
        params={"extras": {"order": "A-17"}},
    )
    deliver(message.id)
    assert push_provider.received[0].json == {
        "id": message.id,
        "user_id": "device-token-123",
        "title": "Parcel",
        "body": "On its way",
        "extras": {"order": "A-17"},
    }
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_deliver__sms_accepted__sent_with_the_provider_id_on_its_attempt_no_signal(
    deliver, tenant, sms_provider, no_wakeups, finished
):
    sms_provider.answer(body={"status": "accepted", "message_id": "carrier-1"})
    message = make_message(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.delivered_at is None
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.outcome, attempt.provider_message_id) == ("sent", "carrier-1")
    assert finished == []


def test_deliver__sms_delivered_at_once__delivered_and_message_finished_sent(
    deliver, tenant, sms_provider, no_wakeups, finished
):
    sms_provider.answer(body={"status": "delivered", "message_id": "carrier-2"})
    message = make_message(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert finished == [(message.id, "delivered")]


def test_deliver__sms_bad_recipient__failed_with_the_code_and_message_finished_sent(
    deliver, tenant, sms_provider, no_wakeups, finished
):
    sms_provider.answer(
        body={"status": "failed", "error_code": "INVALID_NUMBER", "error": "+8613800138000?"}
    )
    message = make_message(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "INVALID_NUMBER")
    # the provider quoted the number: masked, as every failure's text
    assert "+8613800138000" not in message.error
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.error_kind, attempt.error_code) == ("bad_recipient", "INVALID_NUMBER")
    assert finished == [(message.id, "failed")]


def test_deliver__provider_down_and_no_retry_left__dead_and_message_finished_sent(
    deliver, tenant, sms_provider, no_wakeups, finished, settings
):
    settings.NOTIFY_RETRY_DELAYS = []
    sms_provider.answer(status=503, body=b"")
    message = make_message(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DEAD
    assert finished == [(message.id, "dead")]


def test_deliver__provider_down_with_retries_left__queued_again_no_signal(
    deliver, tenant, sms_provider, no_wakeups, finished
):
    sms_provider.answer(status=503, body=b"")
    message = make_message(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert finished == []


def test_deliver__sms_without_a_provider__failed_saying_what_to_set(
    deliver, tenant, no_wakeups, settings
):
    settings.SMS_HTTP_URL = ""
    message = make_message(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "set SMS_HTTP_URL" in message.error
