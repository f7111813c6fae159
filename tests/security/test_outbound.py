"""The gate for tenant-given URLs: no request reaches a non-public address."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from notify import outbound


@pytest.fixture(autouse=True)
def _private_targets_refused(settings):  # noqa: ANN001, ANN202
    settings.ALLOW_PRIVATE_TARGETS = False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://[::1]:9/x",
        "http://10.1.2.3/x",
        "http://172.16.0.1/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/x",
        "http://0.0.0.0/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[fe80::1]/x",
        "http://localhost:9/x",
        "http://2130706433/x",
        # IPv6 forms of an internal IPv4 address, and a metadata address IANA calls global
        "http://[64:ff9b::a9fe:a9fe]/x",
        "http://[64:ff9b:1::a9fe:a9fe]/x",
        "http://[2002:a9fe:a9fe::1]/x",
        "http://[::a9fe:a9fe]/x",
        "http://[::]/x",
        "http://192.0.0.192/x",
    ],
)
def test_post__non_public_target__refused_before_connecting(url, monkeypatch):
    connects = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connects.append(a))
    with pytest.raises(outbound.TargetRefused):
        outbound.post(url, b"", {}, 1.0)
    assert connects == []


def test_post__name_resolving_to_a_private_address__refused(monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 80))],
    )
    with pytest.raises(outbound.TargetRefused, match="non-public"):
        outbound.post("http://rebind.example.com/x", b"", {}, 1.0)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "http:///nohost"])
def test_post__not_http__refused(url):
    with pytest.raises(outbound.TargetRefused):
        outbound.post(url, b"", {}, 1.0)


def test_post__redirect__returned_not_followed(settings):
    settings.ALLOW_PRIVATE_TARGETS = True
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

        def do_POST(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    answer = outbound.post(f"http://127.0.0.1:{server.server_address[1]}/a", b"x", {}, 2.0)
    server.server_close()
    assert answer.status == 302 and hits == ["/a"]


def test_post__peer_dripping_its_answer__timed_out_at_the_deadline_not_per_read(settings):
    import time

    settings.ALLOW_PRIVATE_TARGETS = True

    class Drip(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):  # a byte every 0.3 s: never idle as long as the timeout
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                pass

    server = HTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            outbound.post(f"http://127.0.0.1:{server.server_address[1]}/", b"", {}, 1.0)
        # (a guard against the per-read timeout: 100 bytes would take 30 s)
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
        server.server_close()
