"""A legacy business service end to end: it sends an SMS through /gateway with real processes
(web, Celery worker with its beat), the carrier stand-in reports the delivery, and the service's
callback handler gets the old gateway's signed report; its status query then agrees."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
import requests

from compat.legacy_import import import_export
from notify.tenants.models import Tenant
from scripts.conformance.standins import Standins
from templates_store.legacy import LegacyExport
from tests.compat.conftest import sign
from tests.e2e import conftest as e2e
from tests.e2e.conftest import (
    Platform,
    _ready_with_worker,
    platform_env,
    spawn,
    stop,
    web_command,
    worker_command,
)
from tests.smtp import free_port

pytestmark = pytest.mark.e2e


class CallbackReceiver:
    """The business service's handler: answers SUCCESS only from the second try on."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                receiver.forms.append(dict(parse_qsl(self.rfile.read(length).decode())))
                body = b"SUCCESS" if len(receiver.forms) > 1 else b"busy"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dlr"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def legacy_platform(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[tuple]:  # noqa: ANN001
    tmp_path = tmp_path_factory.mktemp("legacy")
    with django_db_blocker.unblock():
        database_url = e2e.test_database_url()
    port = free_port()
    receiver = CallbackReceiver()
    with Standins(f"http://127.0.0.1:{port}") as standins:
        env = platform_env(
            database_url,
            **standins.platform_env(),
            ALLOW_PRIVATE_TARGETS="true",
            LEGACY_CALLBACK_DELAYS="1,1,1",
        )
        logs = [tmp_path / "web.log", tmp_path / "worker.log"]
        processes = []
        try:
            processes.append(spawn(web_command(port), env, logs[0]))
            processes.append(spawn(worker_command(tmp_path / "celerybeat-schedule"), env, logs[1]))
            running = Platform(f"http://127.0.0.1:{port}", None, logs)
            running.wait_for(lambda: _ready_with_worker(running.base_url), 60, "readiness")
            yield running, standins, receiver
        finally:
            stop(processes)
            receiver.close()


def call(base: str, method: str, path: str, app: dict, **params: str) -> dict:
    full = {
        **params,
        "app_key": app["app_key"],
        "timestamp": str(int(time.time() * 1000)),
        "nonce": secrets.token_hex(8),
    }
    full["sign"] = sign(full, app["app_secret"])
    url = f"{base}/gateway/{path}"
    if method == "GET":
        return requests.get(url, params=full, timeout=10).json()
    return requests.post(url, data=full, timeout=10).json()


def test_legacy_sms__undelivered__signed_report_retried_until_success_and_status_agrees(
    transactional_db, legacy_platform, legacy_export: LegacyExport
):
    running, standins, receiver = legacy_platform
    # Given the shop app, imported with its code template, on the new platform, with a callback
    app = next(a for a in legacy_export.apps if a["app_key"].startswith("ak_shop_"))
    export = LegacyExport(
        apps=[app],
        templates=[t for t in legacy_export.templates if t["tpl_id"] == "SMS_100001"],
        samples=[s for s in legacy_export.samples if s.get("tpl_id") == "SMS_100001"],
        messages=[],
    )
    assert import_export(export, stage=Tenant.Stage.NEW).ok
    Tenant.objects.filter(app_key=app["app_key"]).update(callback_url=receiver.url)
    # When the service sends a code to a number the carrier cannot reach
    answer = call(
        running.base_url,
        "POST",
        "sms/send.do",
        app,
        mobiles="13800134444",
        tpl_id="SMS_100001",
        tpl_params='{"code":"123456","minutes":5}',
        out_id="order-77",
    )
    assert answer["code"] == 0, answer
    msg_id = answer["data"]["msg_ids"][0]
    # Then the carrier got the text once, and the handler gets the report, again until SUCCESS
    running.wait_for(lambda: len(receiver.forms) >= 2, 30, "two callback tries")
    sent = [r for r in standins.sms.requests if (r.payload or {}).get("id") == msg_id]
    assert len(sent) == 1
    assert (
        sent[0].payload["text"] == "【优选商城】您的验证码为123456，5分钟内有效，请勿泄露给他人。"
    )
    first, second = receiver.forms[:2]
    for form in (first, second):
        assert form["sign"] == sign(form, app["app_secret"])
        assert (form["msg_id"], form["status"], form["err_code"]) == (msg_id, "3", "UNDELIV")
        assert (form["out_id"], form["recipient"]) == ("order-77", "13800134444")
    assert first["nonce"] != second["nonce"]
    time.sleep(1.5)
    assert len(receiver.forms) == 2  # SUCCESS ended it
    status = call(running.base_url, "GET", "message/status.do", app, msg_id=msg_id)["data"]
    assert (status["status"], status["err_code"], status["out_id"]) == (3, "UNDELIV", "order-77")
