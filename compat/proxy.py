"""Proxy mode: a call from a tenant still on the old gateway (stage `legacy`) is forwarded to
it untouched (method, path, query, body, Content-Type) and its answer returned untouched. The
old gateway down, slow or answering with a server error gives the legacy `50000 system error`
within LEGACY_PROXY_TIMEOUT seconds: never a hang, never an HTML page."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from compat.protocol import CONTENT_TYPE, SYSTEM_ERROR

logger = logging.getLogger(__name__)

_local = threading.local()


@dataclass(frozen=True)
class Upstream:
    status: int
    content_type: str | None
    body: bytes


class _UpstreamConnection(http.client.HTTPConnection):
    """A keep-alive connection to the old gateway that acknowledges answers at once: its HTTP
    server writes headers and body separately, and a delayed ACK would hold every proxied
    answer 40 ms (Nagle)."""

    def connect(self) -> None:
        self.sock = socket.create_connection(
            (self.host, self.port), settings.LEGACY_PROXY_CONNECT_TIMEOUT
        )
        self.sock.settimeout(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _encode_request(self, request: str) -> bytes:
        # the request target as the caller sent it: raw bytes beyond ASCII (Latin-1 in WSGI)
        return request.encode("latin-1")

    def getresponse(self) -> http.client.HTTPResponse:
        if hasattr(socket, "TCP_QUICKACK"):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().getresponse()


def _connection(base: str) -> _UpstreamConnection:
    """This thread's connection to the old gateway (one per thread: no setup per call)."""
    connection = getattr(_local, "connection", None)
    if connection is None or getattr(_local, "base", None) != base:
        url = urlsplit(base)
        connection = _UpstreamConnection(
            url.hostname, url.port or 80, timeout=settings.LEGACY_PROXY_TIMEOUT
        )
        _local.connection, _local.base = connection, base
    return connection


def _drop_connection() -> None:
    connection = getattr(_local, "connection", None)
    if connection is not None:
        connection.close()
    _local.connection = None


def forward(method: str, path: str, query: str, body: bytes, content_type: str) -> Upstream:
    base = settings.LEGACY_GATEWAY_URL.rstrip("/")
    prefix = urlsplit(base).path
    target = f"{prefix}{path}" + (f"?{query}" if query else "")
    headers = {"Content-Type": content_type} if content_type else {}
    if body or method == "POST":
        headers["Content-Length"] = str(len(body))
    # a kept connection the old gateway closed meanwhile fails at once: one more try on a new
    # connection, only then (a call the gateway did take would come back `nonce reused`: the
    # same signed call is never sent twice)
    for attempt in (1, 2):
        connection = _connection(base)
        reused = connection.sock is not None
        try:
            connection.request(method, target, body=body or None, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            _drop_connection()
            if reused and attempt == 1:
                continue
            logger.warning("legacy gateway unreachable for %s: %s", path, exc)
            return Upstream(200, CONTENT_TYPE, SYSTEM_ERROR)
        except (OSError, http.client.HTTPException) as exc:
            _drop_connection()
            logger.warning("legacy gateway unreachable for %s: %s", path, exc)
            return Upstream(200, CONTENT_TYPE, SYSTEM_ERROR)
        if response.will_close:
            _drop_connection()
        break
    if response.status >= 500:
        logger.warning("legacy gateway answered HTTP %s for %s", response.status, path)
        return Upstream(200, CONTENT_TYPE, SYSTEM_ERROR)
    return Upstream(response.status, response.getheader("Content-Type"), answer)
