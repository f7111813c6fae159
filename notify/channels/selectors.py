"""Reading a tenant's providers (the rows) into transports: the one module of the channels
that touches the database besides the models and the admin; transports get plain configuration."""

from __future__ import annotations

import json
import logging

from notify.caching import TtlCache
from notify.channels.base import Transport, TransportError
from notify.channels.chat import ChatRouter
from notify.channels.models import Provider
from notify.channels.providers import ConfigError, FailoverTransport, Member, kind_of

logger = logging.getLogger(__name__)

# a change to a tenant's providers reaches every worker within this many seconds
CACHE_SECONDS = 5.0
_enabled: TtlCache[list[Provider]] = TtlCache(CACHE_SECONDS)


def _enabled_providers(tenant_id: int, channel: str) -> list[Provider]:
    """The tenant's enabled providers for the channel in failover order, each process keeping
    them CACHE_SECONDS (one query per tenant and channel then, not one per message)."""
    return _enabled.get(
        (tenant_id, channel),
        lambda: list(
            Provider.all_tenants.filter(
                tenant_id=tenant_id, channel=channel, enabled=True
            ).order_by("priority", "id")
        ),
    )


def forget_cached() -> None:
    _enabled.forget()


def tenant_transport(tenant_id: int, channel: str) -> Transport | None:
    """The tenant's enabled providers for the channel with failover, or None (it has none:
    the platform's own transport carries the channel)."""
    rows = _enabled_providers(tenant_id, channel)
    if channel == "chat":
        return _chat_router(tenant_id, rows)
    members = []
    for row in rows:
        try:
            kind = kind_of(row.kind)
            secrets = json.loads(row.secrets) if row.secrets else {}
            config, secrets = kind.clean(dict(row.config), secrets)
            members.append(
                Member(
                    row.pk,
                    row.name,
                    kind.transport(channel, config, secrets),
                    row.timeout,
                    row.send_rate,
                )
            )
        except (ConfigError, ValueError) as exc:
            logger.error("provider %s of tenant %s unusable, skipped: %s", row.name, tenant_id, exc)
    if not rows:
        return None
    if not members:
        raise TransportError(
            f"none of the tenant's {channel} providers is usable: fix their configuration",
            permanent=False,
            kind="provider_down",
        )
    return FailoverTransport(channel, members)


def _chat_router(tenant_id: int, rows: list[Provider]) -> ChatRouter:
    members = {}
    for row in rows:
        try:
            kind = kind_of(row.kind)
            secrets = json.loads(row.secrets) if row.secrets else {}
            config, secrets = kind.clean(dict(row.config), secrets)
            members[row.name] = (row.pk, kind.transport("chat", config, secrets), row.timeout)
        except (ConfigError, ValueError) as exc:
            logger.error("provider %s of tenant %s unusable, skipped: %s", row.name, tenant_id, exc)
    return ChatRouter(members)
