"""Transport contract, after healthchecks' transports: one class per channel; a failure says
whether trying again can help."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, ClassVar

from django.conf import settings


class TransportError(Exception):
    """`permanent`: trying again cannot help. `retry_after`: the provider asked for this many
    seconds before the next try (its Retry-After), honoured over the platform's backoff."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        kind: str = "",
        code: str = "",
        provider: str = "",
        provider_fault: bool = False,
    ) -> None:
        super().__init__(reason)
        # the provider's setup is at fault (credentials, sender, URL, an unmapped template),
        # not the message: failover tries the next provider, and the breaker counts it
        self.provider_fault = provider_fault
        self.reason = reason
        # the provider that refused, by name (blank: the platform's own transport)
        self.provider = provider
        # the provider's own error code (a carrier's `UNDELIV`, an SMTP reply code)
        self.code = code[:64]
        self.permanent = permanent
        self.retry_after = retry_after
        self.kind = kind or ("permanent" if permanent else "temporary")


@dataclass(frozen=True)
class Envelope:
    """What a transport sends: the rendered message and where to, nothing else. Transports
    never see a database row, an API request or the legacy world."""

    message_id: str
    channel: str
    recipient: str
    subject: str = ""
    body: str = ""
    html: str = ""
    headers: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    # what a provider may use (a sender name, a template id at the provider...)
    provider_hints: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SendResult:
    detail: str
    # True when the provider's acceptance is the last word we will get (SMTP's 250 after DATA);
    # False when a delivery receipt is still to come.
    delivered: bool = False
    provider_message_id: str = ""
    # the provider that took it, by name (blank: the platform's own transport)
    provider: str = ""


class Transport:
    """One provider connection's worth of sending: `send` may be called many times (a chunk
    reuses one transport, hence one connection), then `close`."""

    channel: ClassVar[str]

    def send(self, envelope: Envelope) -> SendResult:
        raise NotImplementedError

    def accepts(self, recipient: str) -> bool:
        """Whether this transport can address `recipient` at all (a Web Push subscription is
        not an FCM token): failover passes over the providers that cannot."""
        return True

    def breaker_scope(self, recipient: str) -> str:
        """What fails together for this provider ("": the provider as a whole). A transport
        that reaches many independent services (Web Push: each browser's push service) names
        the recipient's, so one service down does not open the breaker for the others."""
        return ""

    def close(self) -> None:
        """Releases what the sends kept open (a connection)."""


_registry: dict[str, type[Transport]] = {}


def register(transport_class: type[Transport]) -> type[Transport]:
    _registry[transport_class.channel] = transport_class
    return transport_class


def get_transport(channel: str, tenant_id: int | None = None) -> Transport:
    """The tenant's own providers for the channel, in their order with failover, when it has
    any enabled; else the platform's transport for the channel (settings)."""
    # Importing the modules registers their transports.
    from notify.channels import email, http, inapp, selectors  # noqa: F401 - (registration)

    if tenant_id is not None:
        own = selectors.tenant_transport(tenant_id, channel)
        if own is not None:
            return own
    transport_class = _registry.get(channel)
    if settings.NOTIFY_DEV_TRANSPORT and not _configured(transport_class):
        from notify.channels.dev import DEV_TRANSPORTS

        return DEV_TRANSPORTS[settings.NOTIFY_DEV_TRANSPORT]()
    if transport_class is None:
        raise TransportError(f"no transport for channel {channel!r}", permanent=True)
    return transport_class()


def _configured(transport_class: type[Transport] | None) -> bool:
    """Whether the platform's transport for a channel has its provider configured."""
    if transport_class is None:
        return False
    url_setting = getattr(transport_class, "url_setting", None)
    return url_setting is None or bool(getattr(settings, url_setting, ""))


# the bounds of a provider's or a message's per-call timeout (seconds)
MIN_PROVIDER_TIMEOUT, MAX_PROVIDER_TIMEOUT = 0.5, 60.0
_call_timeout: ContextVar[float | None] = ContextVar("provider_call_timeout", default=None)
# the HTTP status of the last provider answer in this context (the attempt records it)
_http_status: ContextVar[int | None] = ContextVar("provider_http_status", default=None)


def note_http_status(status: int | None) -> None:
    _http_status.set(status)


def take_http_status() -> int | None:
    """The HTTP status of the last provider answer since the last call (None: none)."""
    status = _http_status.get()
    _http_status.set(None)
    return status


@contextmanager
def call_timeout(seconds: float | None) -> Iterator[None]:
    """Within the block, a call to a tenant's provider (gated_post) may take `seconds` (None:
    HTTP_PROVIDER_TIMEOUT): the provider tier of a message's deadlines."""
    token = _call_timeout.set(seconds)
    try:
        yield
    finally:
        _call_timeout.reset(token)


def call_seconds(provider_timeout: float | None, envelope: Envelope) -> float | None:
    """How long one call may take: the provider's own timeout, shortened by the message's
    `provider` deadline tier when it has one (None: the platform's default)."""
    message_limit = envelope.provider_hints.get("provider_timeout")
    limits = [t for t in (provider_timeout, message_limit) if isinstance(t, (int, float)) and t > 0]
    return float(min(limits)) if limits else None


def gated_post(label: str, url: str, body: bytes, headers: dict[str, str]):  # noqa: ANN201
    """POSTs to a tenant-given URL through the outbound gate (notify/outbound.py) and returns
    its Answer; what cannot be sent or reached is a TransportError of the right kind. The
    exceptions' texts are not repeated where they may quote the URL (which may hold a token)."""
    from http.client import HTTPException

    from notify import outbound

    timeout = _call_timeout.get() or settings.HTTP_PROVIDER_TIMEOUT
    try:
        answer = outbound.post(url, body, headers, timeout)
        note_http_status(answer.status)
        return answer
    except outbound.TargetRefused as exc:
        raise TransportError(
            f"{label} URL refused: {exc}: not retried (fix the provider's URL)",
            permanent=True,
            kind="permanent",
            provider_fault=True,
        ) from exc
    except TimeoutError as exc:
        raise TransportError(
            f"{label} did not answer within {timeout:g}s: retried later",
            permanent=False,
            kind="provider_down",
        ) from exc
    except ValueError as exc:
        raise TransportError(
            f"{label} request not sendable ({type(exc).__name__}): not retried (check the "
            "provider's URL)",
            permanent=True,
            kind="permanent",
            provider_fault=True,
        ) from exc
    except (OSError, HTTPException) as exc:
        raise TransportError(
            f"{label} unreachable ({type(exc).__name__}): retried later",
            permanent=False,
            kind="provider_down",
        ) from exc


def usable_url(value: object) -> bool:
    """An http(s) URL the outbound gate can call (its address is checked when called)."""
    if not isinstance(value, str):
        return False
    from notify import outbound

    try:
        outbound.checked_url(value)
    except outbound.TargetRefused:
        return False
    return True


class ConfigError(ValueError):
    """The configuration is unusable: {field: message}."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class ProviderKind:
    """How the platform talks to one kind of provider. `config` holds what may be shown,
    `secrets` what is stored encrypted and never shown again."""

    name: ClassVar[str]
    label: ClassVar[str]
    channels: ClassVar[tuple[str, ...]]
    config_fields: ClassVar[dict[str, str]] = {}
    secret_fields: ClassVar[dict[str, str]] = {}

    def clean(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[dict, dict]:
        raise NotImplementedError

    def transport(self, channel: str, config: dict, secrets: dict) -> Transport:
        raise NotImplementedError

    # Delivery reports (`POST /v2/receipts/providers/<id>`), for the kinds whose provider sends
    # them: verified by the provider's own scheme, parsed into Receipts.
    has_receipts: ClassVar[bool] = False

    def receipts(self, inbound: Inbound, config: dict, secrets: dict) -> ReceiptBatch:
        raise NotImplementedError

    def unknown_fields(self, config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, str]:
        unknown = (set(config) - set(self.config_fields)) | (set(secrets) - set(self.secret_fields))
        return {"config": f"Unknown field(s): {', '.join(sorted(unknown))}."} if unknown else {}


@dataclass(frozen=True)
class Inbound:
    """A provider's delivery-report request as the platform received it: the URL it called
    (scheme, host and path as the provider saw them), its headers and its body."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    method: str = "POST"


@dataclass(frozen=True)
class Receipt:
    provider_message_id: str
    # "delivered", "failed", or "suppress" (a complaint, an unsubscribe: the recipient is
    # suppressed, the message stays as it was)
    status: str
    error_code: str = ""
    error: str = ""
    # the provider said the recipient cannot receive, ever (the recipient is then suppressed)
    bad_recipient: bool = False


@dataclass(frozen=True)
class ReceiptBatch:
    """What a report request said (the reports it carried, possibly none: a status the
    platform does not track) and what the provider expects as the answer's JSON body."""

    receipts: list[Receipt]
    answer: dict = field(default_factory=lambda: {"ok": True})


class ReceiptRefused(Exception):
    """The report request is not the provider's (bad signature: `status` 401) or not readable
    (400); the message says how to fix it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def retry_after_seconds(value: str | None) -> float | None:
    """A provider's Retry-After in seconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3);
    None when absent, unreadable or already past (the platform's own backoff applies)."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
        return seconds if seconds > 0 else None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
