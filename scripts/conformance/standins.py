"""Stand-in providers for the conformance run (and tests/e2e/test_standins.py): threads in the
calling process that play the outside world the platform delivers to.

- `SmtpStandin`: an SMTP server (aiosmtpd) on loopback. A recipient whose local part starts
  with `bounce` is refused at RCPT with `550 5.1.1 mailbox unavailable`; others are accepted.
- `HttpProviderStandin`: the provider side of docs/http-providers.md for one channel (`sms` or
  `push`). It checks `X-Notify-Timestamp`/`X-Notify-Signature` (401 when wrong) and the JSON
  body's shape (400 when wrong), answers `{"status": "accepted", "message_id": "<uuid>"}` and
  300 ms later POSTs a signed delivery report to `<platform>/v2/receipts/http/<channel>`,
  tried again a few times until the platform answers 200. The outcome follows the legacy
  gateway's rules: SMS to a mobile ending `4444` fails `UNDELIV`, push to a user_id starting
  `offline` fails `NO_DEVICE`, everything else is delivered.
- `Standins`: all three together, with the platform settings that point at them.

Everything received (and every report sent) is recorded on the objects for tests to read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

logger = logging.getLogger("conformance.standins")

SIGNATURE_HEADER = "X-Notify-Signature"
TIMESTAMP_HEADER = "X-Notify-Timestamp"
# a timestamp further than this from the receiver's clock is refused (401)
CLOCK_TOLERANCE_S = 300
SEND_PATH = "/send"
REPORT_DELAY_S = 0.3
# pauses before the 2nd, 3rd, ... try of a report the platform did not answer with 200
REPORT_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
REPORT_TIMEOUT_S = 5.0

# The request body of each channel (docs/http-providers.md, "Sending"): exactly these keys.
BODY_SHAPES: dict[str, dict[str, type]] = {
    "sms": {"id": str, "to": str, "text": str},
    "push": {"id": str, "user_id": str, "title": str, "body": str, "extras": dict},
}
# keys whose value must not be empty
REQUIRED_TEXT = {"sms": ("id", "to"), "push": ("id", "user_id")}
BOUNCE_REPLY = "550 5.1.1 mailbox unavailable"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------- signing


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=<hex>`: lowercase hex HMAC-SHA256, keyed with the secret, of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def signature_problem(
    secret: str, timestamp: str | None, given: str | None, body: bytes, now: float | None = None
) -> str | None:
    """Why a request's signature is refused, or None when it is right."""
    if not timestamp or not given:
        return "missing X-Notify-Timestamp or X-Notify-Signature"
    if not (timestamp.isascii() and timestamp.isdigit()):
        return f"timestamp {timestamp!r} is not Unix seconds"
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > CLOCK_TOLERANCE_S:
        return f"timestamp {timestamp} is more than {CLOCK_TOLERANCE_S} s from the clock"
    expected = signature(secret, timestamp, body)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return "wrong signature"
    return None


# ---------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


@dataclass
class BouncingHandler:
    received: list[ReceivedMail] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        if address.split("@", 1)[0].startswith("bounce"):
            self.refused.append(address)
            logger.info("smtp: refused RCPT %s", address)
            return BOUNCE_REPLY
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        logger.info("smtp: accepted mail to %s", ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpStandin:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.handler = BouncingHandler()
        self.host = host
        self.port = port or free_port()
        self._controller = Controller(self.handler, hostname=host, port=self.port)

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    @property
    def refused(self) -> list[str]:
        return self.handler.refused

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> SmtpStandin:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- HTTP providers


@dataclass
class ProviderRequest:
    """One request the stand-in received, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    answer: dict[str, Any]
    payload: dict[str, Any] | None = None

    @property
    def message_id(self) -> str:
        return self.answer.get("message_id", "")


@dataclass
class Report:
    """A delivery report the stand-in sent to the platform, with every try's outcome (an HTTP
    status, or the error text when there was no answer)."""

    url: str
    payload: dict[str, Any]
    attempts: list[int | str] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return bool(self.attempts) and self.attempts[-1] == 200


def outcome(channel: str, payload: dict[str, Any]) -> tuple[str, str, str]:
    """(status, error_code, error) of a message, decided by its recipient as the old gateway did."""
    if channel == "sms" and payload["to"].endswith("4444"):
        return "failed", "UNDELIV", "undeliverable"
    if channel == "push" and payload["user_id"].startswith("offline"):
        return "failed", "NO_DEVICE", "no device registered for this user"
    return "delivered", "", ""


def shape_problem(channel: str, payload: Any) -> str | None:
    """Why a request body does not have the channel's documented shape, or None."""
    shape = BODY_SHAPES[channel]
    if not isinstance(payload, dict):
        return "the body is not a JSON object"
    missing = [key for key in shape if key not in payload]
    if missing:
        return f"missing keys: {', '.join(missing)}"
    unknown = sorted(set(payload) - set(shape))
    if unknown:
        return f"unknown keys: {', '.join(unknown)}"
    for key, kind in shape.items():
        if not isinstance(payload[key], kind):
            return f"{key} must be a JSON {'object' if kind is dict else 'string'}"
    for key in REQUIRED_TEXT[channel]:
        if not payload[key]:
            return f"{key} is empty"
    return None


class HttpProviderStandin:
    """The provider side of the generic HTTP protocol for one channel, on loopback."""

    def __init__(
        self,
        channel: str,
        secret: str,
        platform_url: str,
        *,
        report_delay: float = REPORT_DELAY_S,
        retry_delays: tuple[float, ...] = REPORT_RETRY_DELAYS_S,
        host: str = "127.0.0.1",
    ) -> None:
        if channel not in BODY_SHAPES:
            raise ValueError(f"no HTTP provider protocol for channel {channel!r}")
        self.channel = channel
        self.secret = secret
        self.platform_url = platform_url.rstrip("/")
        self.report_delay = report_delay
        self.retry_delays = retry_delays
        self.requests: list[ProviderRequest] = []
        self.reports: list[Report] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._report_threads: list[threading.Thread] = []
        self._server = ThreadingHTTPServer((host, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{SEND_PATH}"

    @property
    def report_url(self) -> str:
        return f"{self.platform_url}/v2/receipts/http/{self.channel}"

    def start(self) -> HttpProviderStandin:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits
            name=f"standin-{self.channel}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:  # shutdown() waits for a serve_forever that never ran
            self._server.shutdown()
        self._server.server_close()
        for thread in [self._thread, *self._report_threads]:
            if thread is not None:
                thread.join(timeout=REPORT_TIMEOUT_S + 1)

    def __enter__(self) -> HttpProviderStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- receiving

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """The answer to one request (status, JSON body); records it and schedules its report."""
        payload = None
        status, answer = self._check(method, path, headers, body)
        if status == 200:
            payload = json.loads(body)
            answer = {"status": "accepted", "message_id": str(uuid.uuid4())}
        record = ProviderRequest(method, path, headers, body, status, answer, payload)
        with self._lock:
            self.requests.append(record)
        logger.info("%s: %s %s -> %s %s", self.channel, method, path, status, json.dumps(answer))
        if payload is not None:
            self._schedule_report(answer["message_id"], payload)
        return status, answer

    def _check(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if path.split("?", 1)[0] != SEND_PATH:
            return 404, {"error": "not found"}
        if method != "POST":
            return 405, {"error": "method not allowed"}
        lowered = {key.lower(): value for key, value in headers.items()}
        problem = signature_problem(
            self.secret,
            lowered.get(TIMESTAMP_HEADER.lower()),
            lowered.get(SIGNATURE_HEADER.lower()),
            body,
        )
        if problem:
            return 401, {"error": problem}
        content_type = lowered.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            return 400, {"error": f"Content-Type {content_type!r} is not application/json"}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        problem = shape_problem(self.channel, payload)
        if problem:
            return 400, {"error": problem}
        return 200, {}

    # -- reporting

    def _schedule_report(self, message_id: str, payload: dict[str, Any]) -> None:
        status, error_code, error = outcome(self.channel, payload)
        report = Report(
            self.report_url,
            {"message_id": message_id, "status": status, "error_code": error_code, "error": error},
        )
        with self._lock:
            self.reports.append(report)
        thread = threading.Thread(target=self._send_report, args=(report,), daemon=True)
        with self._lock:
            self._report_threads = [t for t in self._report_threads if t.is_alive()]
            self._report_threads.append(thread)
        thread.start()

    def _send_report(self, report: Report) -> None:
        delays = (self.report_delay, *self.retry_delays)
        for delay in delays:
            if self._stopping.wait(delay):
                return
            result = self._post_report(report)
            report.attempts.append(result)
            logger.info("%s: report %s -> %s", self.channel, json.dumps(report.payload), result)
            if result == 200:
                return
        logger.warning("%s: report for %s given up", self.channel, report.payload["message_id"])

    def _post_report(self, report: Report) -> int | str:
        body = json.dumps(report.payload).encode()
        request = urllib.request.Request(
            report.url, data=body, method="POST", headers=signed_headers(self.secret, body)
        )
        try:
            with urllib.request.urlopen(request, timeout=REPORT_TIMEOUT_S) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"


def _handler_for(standin: HttpProviderStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"standin-{standin.channel}/1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            status, answer = standin.handle(self.command, self.path, dict(self.headers), body)
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # the platform gave up waiting (its provider timeout): as a provider, the
                # request was handled; the platform retries or fails over
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # every request is logged by `handle`

    return Handler


# ---------------------------------------------------------------------------- all together


class Standins:
    """The SMTP, SMS and push stand-ins of one platform (whose URL the reports go to)."""

    def __init__(self, platform_url: str) -> None:
        self.smtp = SmtpStandin()
        self.sms = HttpProviderStandin("sms", secrets.token_urlsafe(32), platform_url)
        self.push = HttpProviderStandin("push", secrets.token_urlsafe(32), platform_url)

    def platform_env(self) -> dict[str, str]:
        """The platform settings that make it deliver to these stand-ins."""
        return {
            "EMAIL_URL": self.smtp.url,
            "SMS_HTTP_URL": self.sms.url,
            "SMS_HTTP_SECRET": self.sms.secret,
            "PUSH_HTTP_URL": self.push.url,
            "PUSH_HTTP_SECRET": self.push.secret,
        }

    def start(self) -> Standins:
        started = []
        try:
            for standin in (self.smtp, self.sms, self.push):
                standin.start()
                started.append(standin)
        except BaseException:
            for standin in reversed(started):
                standin.stop()
            raise
        return self

    def stop(self) -> None:
        for standin in (self.push, self.sms, self.smtp):
            try:
                standin.stop()
            except Exception:  # noqa: BLE001 - stop the others anyway
                logger.exception("stopping a stand-in")

    def __enter__(self) -> Standins:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
