"""Proxy mode: a tenant still on the old gateway is served by it, untouched."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from notify.tenants.models import Tenant

SYSTEM_ERROR = b'{"code":50000,"msg":"system error","data":null}'


class Upstream:
    """A stand-in old gateway: records each request, answers what the test sets."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.body = b'{"code":0,"msg":"success","data":{"x":"\xe4\xbd\xa0"}}'
        self.content_type: str | None = "application/json;charset=UTF-8"
        self.delay = 0.0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                upstream.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "body": self.rfile.read(length) if length else b"",
                        "content_type": self.headers.get("Content-Type"),
                    }
                )
                time.sleep(upstream.delay)
                self.send_response(upstream.status)
                if upstream.content_type:
                    self.send_header("Content-Type", upstream.content_type)
                self.send_header("Content-Length", str(len(upstream.body)))
                self.end_headers()
                self.wfile.write(upstream.body)

            do_GET = do_POST = do_PUT = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def form_post(path: str, body: str):  # noqa: ANN201
    return Client().generic(
        "POST", path, body.encode(), content_type="application/x-www-form-urlencoded"
    )


@pytest.fixture
def upstream(settings):  # noqa: ANN001, ANN201
    server = Upstream()
    settings.LEGACY_GATEWAY_URL = server.url
    settings.LEGACY_PROXY_TIMEOUT = 1.0
    yield server
    server.close()


@pytest.fixture
def legacy_tenant(db) -> Tenant:  # noqa: ANN001
    return Tenant.objects.create(
        slug="shop", name="Shop", app_key="ak_shop_1", app_secret="s", stage=Tenant.Stage.LEGACY
    )


def test_proxy__tenant_on_legacy_stage__call_forwarded_and_answer_returned_untouched(
    upstream, legacy_tenant
):
    # When
    body = b"app_key=ak_shop_1&mobiles=138%2C139&x=%FF&x=2"
    response = Client().generic(
        "POST", "/gateway/sms/send.do?ignored=1", body, content_type="text/odd; charset=latin-1"
    )
    # Then
    assert upstream.requests == [
        {
            "method": "POST",
            "path": "/gateway/sms/send.do?ignored=1",
            "body": body,
            "content_type": "text/odd; charset=latin-1",
        }
    ]
    assert response.status_code == 200
    assert response.content == upstream.body
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"


def test_proxy__query__forwarded_with_its_query_string(upstream, legacy_tenant):
    response = Client().get("/gateway/message/status.do?app_key=ak_shop_1&msg_id=1")
    assert upstream.requests[0]["path"] == "/gateway/message/status.do?app_key=ak_shop_1&msg_id=1"
    assert response.content == upstream.body


def test_proxy__unknown_app_key__forwarded_for_the_old_gateway_to_answer(upstream, db):
    form_post("/gateway/sms/send.do", "app_key=ak_unknown")
    assert len(upstream.requests) == 1


def test_proxy__tenant_on_new_stage__answered_here_not_forwarded(upstream, legacy_tenant):
    Tenant.objects.filter(pk=legacy_tenant.pk).update(stage=Tenant.Stage.NEW)
    response = form_post("/gateway/sms/send.do", "app_key=ak_shop_1")
    assert upstream.requests == []
    assert response.content == b'{"code":10001,"msg":"missing param: timestamp","data":null}'


def test_proxy__old_gateway_slow__system_error_within_the_timeout(upstream, legacy_tenant):
    upstream.delay = 3.0
    started = time.monotonic()
    response = form_post("/gateway/sms/send.do", "app_key=ak_shop_1")
    assert time.monotonic() - started < 2.5
    assert (response.status_code, response.content) == (200, SYSTEM_ERROR)
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"


def test_proxy__old_gateway_down__system_error(upstream, legacy_tenant, settings):
    upstream.close()
    response = form_post("/gateway/sms/send.do", "app_key=ak_shop_1")
    assert (response.status_code, response.content) == (200, SYSTEM_ERROR)


def test_proxy__old_gateway_server_error_page__system_error_not_html(upstream, legacy_tenant):
    upstream.status, upstream.body, upstream.content_type = 502, b"<html>bad</html>", "text/html"
    response = form_post("/gateway/sms/send.do", "app_key=ak_shop_1")
    assert (response.status_code, response.content) == (200, SYSTEM_ERROR)


def test_proxy__wrong_method__answered_here_without_forwarding(upstream, legacy_tenant):
    response = Client().get("/gateway/sms/send.do?app_key=ak_shop_1")
    assert response.status_code == 405 and upstream.requests == []


def test_proxy__raw_bytes_in_the_query__forwarded_as_sent(upstream, legacy_tenant):
    # WSGI gives raw bytes beyond ASCII one character each (Latin-1), as the old server read them
    response = Client().get(
        "/gateway/message/status.do", QUERY_STRING="app_key=ak_shop_1&msg_id=\xe9\xff"
    )
    assert response.status_code == 200 and response.content == upstream.body
    assert (
        upstream.requests[0]["path"]
        == "/gateway/message/status.do?app_key=ak_shop_1&msg_id=\xe9\xff"
    )


def test_stage_change__next_call__routed_by_the_new_stage_at_once(upstream, legacy_tenant):
    # Given a tenant served natively, its app already looked up (and cached) by a call
    Tenant.objects.filter(pk=legacy_tenant.pk).update(stage=Tenant.Stage.NEW)
    form_post("/gateway/sms/send.do", "app_key=ak_shop_1")
    # When the operator rolls it back to the old gateway
    Tenant.objects.filter(pk=legacy_tenant.pk).update(stage=Tenant.Stage.LEGACY)
    form_post("/gateway/sms/send.do", "app_key=ak_shop_1")
    # Then the very next call goes there
    assert len(upstream.requests) == 1


def test_proxy__forwarding_crashes__legacy_system_error_not_500(
    upstream, legacy_tenant, monkeypatch
):
    from compat import proxy

    def crash(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ValueError("unexpected")

    monkeypatch.setattr(proxy, "forward", crash)
    response = form_post("/gateway/sms/send.do", "app_key=ak_shop_1")
    assert (response.status_code, response.content) == (200, SYSTEM_ERROR)
