"""Delivery reports to a legacy tenant's callback_url, as the old gateway sent them."""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from django.utils import timezone

from compat import callbacks
from compat.models import LegacyCallback
from compat.protocol import compute_sign
from notify.messaging.models import Message, MessageStatus
from notify.messaging.signals import message_finished
from notify.tenants.models import Tenant

CODE_PARAMS = {"code": "123456", "minutes": 5}


class Receiver:
    """A business service's callback handler: records each form, answers what the test says."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        # each request: method, path, headers
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        # each answer: status, body, and a Location header when given
        self.answers: list[tuple] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                receiver.forms.append(
                    dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                )
                self.answer()

            def do_GET(self) -> None:  # noqa: N802
                self.answer()

            def answer(self) -> None:
                receiver.requests.append((self.command, self.path, dict(self.headers)))
                status, body, *location = (
                    receiver.answers.pop(0) if receiver.answers else (200, b"SUCCESS")
                )
                self.send_response(status)
                if location:
                    self.send_header("Location", location[0])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):  # noqa: ANN001, ANN201
    settings.ALLOW_PRIVATE_TARGETS = True
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def sent(legacy_world, legacy_call, receiver):  # noqa: ANN001, ANN201
    """A legacy SMS accepted for shop, whose callback_url is the receiver."""
    Tenant.objects.filter(slug="shop").update(callback_url=receiver.url)
    data = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13800134444",
        tpl_id="SMS_100001",
        tpl_params=CODE_PARAMS,
        out_id="o-9",
    ).json["data"]
    return Message.all_tenants.select_related("tenant").get(pk=data["msg_ids"][0])


def finish(message: Message, status: str, error_code: str = "") -> None:
    now = timezone.now()
    Message.all_tenants.filter(pk=message.pk).update(
        status=status, error_code=error_code, failed_at=now, delivered_at=now
    )
    message_finished.send(sender=None, message_id=message.pk, status=status)


def test_callback__message_failed__signed_legacy_form_posted_once(sent, receiver):
    # When the message fails at the carrier and the report is delivered (twice, as a broker may)
    finish(sent, MessageStatus.FAILED, "UNDELIV")
    callback = LegacyCallback.all_tenants.get(message_id=sent.pk)
    callbacks.deliver(callback.pk)
    callbacks.deliver(callback.pk)
    # Then one form, as the old gateway sent it
    assert len(receiver.forms) == 1
    form = receiver.forms[0]
    assert {k: form[k] for k in ("msg_id", "out_id", "recipient", "status", "err_code")} == {
        "msg_id": sent.pk,
        "out_id": "o-9",
        "recipient": "13800134444",
        "status": "3",
        "err_code": "UNDELIV",
    }
    assert form["sign"] == compute_sign(form, sent.tenant.app_secret)
    assert LegacyCallback.all_tenants.get(pk=callback.pk).state == LegacyCallback.State.DONE


def test_callback__receiver_not_answering_success__retried_on_schedule_then_dropped(
    sent, receiver, settings
):
    receiver.answers = [(200, b"OK"), (500, b"SUCCESS"), (200, b"SUCCESS "), (404, b"")]
    finish(sent, MessageStatus.DELIVERED)
    callback = LegacyCallback.all_tenants.get(message_id=sent.pk)
    waits = []
    for _ in range(4):
        before = timezone.now()
        callbacks.deliver(callback.pk)
        row = LegacyCallback.all_tenants.get(pk=callback.pk)
        waits.append(round((row.next_attempt_at - before).total_seconds()))
        # (time passes)
        LegacyCallback.all_tenants.filter(pk=callback.pk).update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )
    assert len(receiver.forms) == 4
    assert [f["nonce"] for f in receiver.forms] == list(
        dict.fromkeys(f["nonce"] for f in receiver.forms)
    )
    assert waits[:3] == [10, 60, 300]
    assert LegacyCallback.all_tenants.get(pk=callback.pk).state == LegacyCallback.State.DROPPED


def test_callback__tenant_without_callback_url__nothing_owed(legacy_world, legacy_call):
    data = legacy_call(
        "POST", "sms/send.do", mobiles="13800138000", tpl_id="SMS_100001", tpl_params=CODE_PARAMS
    ).json["data"]
    finish(Message.all_tenants.get(pk=data["msg_ids"][0]), MessageStatus.DELIVERED)
    assert not LegacyCallback.all_tenants.exists()


def test_callback__private_target_not_allowed__refused_without_a_request(sent, receiver, settings):
    settings.ALLOW_PRIVATE_TARGETS = False
    finish(sent, MessageStatus.DELIVERED)
    callback = LegacyCallback.all_tenants.get(message_id=sent.pk)
    callbacks.deliver(callback.pk)
    assert receiver.forms == []
    row = LegacyCallback.all_tenants.get(pk=callback.pk)
    assert row.state == LegacyCallback.State.PENDING and "non-public" in row.last_error


def test_callback_sweep__due_reports__published_again(sent, receiver):
    finish(sent, MessageStatus.DELIVERED)
    assert callbacks.sweep() == 1


def test_callback__receiver_redirects__followed_as_urllib_did_a_get_without_the_form(
    sent, receiver
):
    # Given a callback handler that redirects the report elsewhere, where it answers SUCCESS
    receiver.answers = [(302, b"", "/moved")]
    finish(sent, MessageStatus.DELIVERED)
    callback = LegacyCallback.all_tenants.get(message_id=sent.pk)
    # When the report is delivered
    callbacks.deliver(callback.pk)
    # Then the form was POSTed, the redirect followed with a GET, and one try was enough
    assert [(method, path) for method, path, _ in receiver.requests] == [
        ("POST", "/cb"),
        ("GET", "/moved"),
    ]
    assert "Content-Type" not in receiver.requests[1][2]
    assert receiver.requests[0][2]["User-Agent"].startswith("Python-urllib/")
    assert LegacyCallback.all_tenants.get(pk=callback.pk).state == LegacyCallback.State.DONE


def test_callback__url_changed_after_the_message_finished__retries_keep_the_first_url(
    sent, receiver
):
    # Given a report whose first try failed
    receiver.answers = [(500, b"")]
    finish(sent, MessageStatus.DELIVERED)
    callback = LegacyCallback.all_tenants.get(message_id=sent.pk)
    callbacks.deliver(callback.pk)
    # When the tenant's callback_url changes before the retry
    other = Receiver()
    try:
        tenant = Tenant.objects.get(slug="shop")
        tenant.callback_url = other.url
        tenant.save()
        LegacyCallback.all_tenants.filter(pk=callback.pk).update(next_attempt_at=timezone.now())
        callbacks.deliver(callback.pk)
        # Then the retry went where the first try went, as the old gateway's did
        assert len(receiver.forms) == 2 and other.forms == []
    finally:
        other.close()


def test_callback__out_id_with_nul__reported_as_the_caller_gave_it(sent, receiver):
    from compat import native

    Message.all_tenants.filter(pk=sent.pk).update(reference=native.key_to_db("o\x009"))
    finish(sent, MessageStatus.DELIVERED)
    callbacks.deliver(LegacyCallback.all_tenants.get(message_id=sent.pk).pk)
    assert receiver.forms[0]["out_id"] == "o\x009"


def test_callback_follow_up__message_finished_before_the_url_was_set__not_owed(
    legacy_world, legacy_call, receiver
):
    # Given a message that finished while its tenant had no callback_url
    data = legacy_call(
        "POST", "sms/send.do", mobiles="13800137777", tpl_id="SMS_100001", tpl_params=CODE_PARAMS
    ).json["data"]
    earlier = Message.all_tenants.get(pk=data["msg_ids"][0])
    finish(earlier, MessageStatus.DELIVERED)
    # When the tenant sets one, and the follow-up sweep looks for reports owed
    tenant = Tenant.objects.get(slug="shop")
    tenant.callback_url = receiver.url
    tenant.save()
    later = legacy_call(
        "POST", "sms/send.do", mobiles="13800137778", tpl_id="SMS_100001", tpl_params=CODE_PARAMS
    ).json["data"]["msg_ids"][0]
    Message.all_tenants.filter(pk=later).update(status=MessageStatus.DELIVERED)
    window = (timezone.now() - timedelta(hours=1), timezone.now() + timedelta(hours=1))
    owed = {row[0] for row in callbacks.missing_callbacks(*window)}
    # Then the old message owes nothing (the old gateway never reported it); the new one does
    assert earlier.pk not in owed and later in owed
