"""The one gate for requests to URLs a tenant gave (callback URLs, webhooks): the host is
resolved once, every address it resolves to must be a public one, and the connection is made
to the checked address itself (no second lookup: no DNS-rebinding window). Redirects are never
followed. Loopback, private, link-local, shared, reserved and metadata addresses are refused
unless the operator sets ALLOW_PRIVATE_TARGETS=true (local development, tests)."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import SplitResult, quote, urlsplit

from django.conf import settings

MAX_ANSWER_BYTES = 64 * 1024


class TargetRefused(Exception):
    """The URL may not be called (the message says why)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most MAX_ANSWER_BYTES
    headers: dict[str, str] = field(default_factory=dict)


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> str:
    """The address to connect to for `host`, checked; raises TargetRefused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"cannot resolve {host!r}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"{host!r} resolves to no address")
    if not settings.ALLOW_PRIVATE_TARGETS:
        refused = [str(a) for a in addresses if not _is_public(a)]
        if refused:
            raise TargetRefused(
                f"{host!r} resolves to a non-public address ({refused[0]}); "
                "set ALLOW_PRIVATE_TARGETS=true to allow private targets"
            )
    return str(addresses[0])


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the certificate checked against the URL's host."""

    def __init__(self, address: str, port: int, server_name: str, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)


URL_SAFE = "/%:@!$&'()*+,;=-._~?"


def checked_url(url: str) -> tuple[SplitResult, int]:
    """The URL's parts and port, or TargetRefused: http(s), a host, a valid port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a usable URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("only http and https URLs with a host can be called")
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        raise TargetRefused("the URL's host is not a valid name") from None
    return parts, port or (443 if parts.scheme == "https" else 80)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POSTs `body` to `url` through the gate. Raises TargetRefused, or OSError /
    http.client.HTTPException when the target cannot be reached or answers badly."""
    parts, port = checked_url(url)
    address = resolve(parts.hostname, port)
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = _PinnedHTTPSConnection(
            address, port, parts.hostname, timeout
        )
    else:
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
    # (a path or query beyond ASCII is sent percent-encoded, as a browser would)
    path = quote(parts.path or "/", safe=URL_SAFE) + (
        f"?{quote(parts.query, safe=URL_SAFE)}" if parts.query else ""
    )
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    try:
        connection.request("POST", path, body=body, headers={"Host": host_header, **headers})
        response = connection.getresponse()
        return Answer(response.status, response.read(MAX_ANSWER_BYTES), dict(response.getheaders()))
    finally:
        connection.close()
