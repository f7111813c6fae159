"""The one gate for requests to URLs a tenant gave (callback URLs, webhooks): the host is
resolved once, every address it resolves to must be a public one, and the connection is made
to the checked address itself (no second lookup: no DNS-rebinding window). Redirects are never
followed. Loopback, private, link-local, shared, reserved and metadata addresses are refused
unless the operator sets ALLOW_PRIVATE_TARGETS=true (local development, tests)."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
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


# IPv6 prefixes that carry an IPv4 address (NAT64, 6to4, IPv4-compatible): the embedded one
# is what is reached, so it is what is checked
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_6TO4 = ipaddress.ip_network("2002::/16")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# global by IANA's registry, yet cloud metadata services or internal by convention
_NOT_PUBLIC = (ipaddress.ip_network("192.0.0.0/24"),)


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _is_public(embedded)
    if any(address in network for network in _NOT_PUBLIC if network.version == address.version):
        return False
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64) or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


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
    return call("POST", url, body, headers, timeout)


def call(method: str, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """`post` with another method (a GET sends no body)."""
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
    # `timeout` bounds each socket operation; the watchdog bounds the whole call (a peer that
    # drips its answer a byte at a time must not hold a worker past it)
    watchdog = _Watchdog(connection, timeout)
    try:
        connection.request(
            method, path, body=body or None, headers={"Host": host_header, **headers}
        )
        # (the response keeps the socket; the connection lets go of it when told to close)
        watchdog.sock = connection.sock
        response = connection.getresponse()
        answer = Answer(
            response.status, response.read(MAX_ANSWER_BYTES), dict(response.getheaders())
        )
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.fired:
            raise TimeoutError(f"no whole answer within {timeout:g}s") from exc
        raise
    finally:
        watchdog.cancel()
        connection.close()
    if watchdog.fired:
        raise TimeoutError(f"no whole answer within {timeout:g}s")
    return answer


class _Watchdog:
    """Shuts the connection's socket down when `seconds` have passed (from another thread:
    whatever read is blocked then returns at once)."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.fired = False
        self.sock: socket.socket | None = None
        self._connection = connection
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self.sock or self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()
