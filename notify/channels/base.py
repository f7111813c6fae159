"""Transport contract, after healthchecks' transports: one class per channel; a failure says
whether trying again can help."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

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
    ) -> None:
        super().__init__(reason)
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


def gated_post(label: str, url: str, body: bytes, headers: dict[str, str]):  # noqa: ANN201
    """POSTs to a tenant-given URL through the outbound gate (notify/outbound.py) and returns
    its Answer; what cannot be sent or reached is a TransportError of the right kind. The
    exceptions' texts are not repeated where they may quote the URL (which may hold a token)."""
    from http.client import HTTPException

    from notify import outbound

    timeout = settings.HTTP_PROVIDER_TIMEOUT
    try:
        return outbound.post(url, body, headers, timeout)
    except outbound.TargetRefused as exc:
        raise TransportError(
            f"{label} URL refused: {exc}: not retried (fix the provider's URL)",
            permanent=True,
            kind="permanent",
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
        ) from exc
    except (OSError, HTTPException) as exc:
        raise TransportError(
            f"{label} unreachable ({type(exc).__name__}): retried later",
            permanent=False,
            kind="provider_down",
        ) from exc
