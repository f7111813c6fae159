"""Writing a tenant's providers: every change is validated by its kind before it is stored,
secrets are kept encrypted and replaced only when given."""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction

from notify.channels import registry
from notify.channels.models import Provider
from notify.channels.providers import ConfigError, kind_of
from notify.channels.signals import provider_renamed
from notify.tenants.models import Tenant


def _checked(channel: str, kind_name: str, config: Any, secrets: Any) -> tuple[dict, dict]:
    kind = kind_of(kind_name)
    if channel not in kind.channels:
        raise ConfigError(
            {
                "channel": f"A {kind.name} provider carries "
                f"{', '.join(kind.channels)}, not {channel}."
            }
        )
    if not isinstance(config, dict):
        raise ConfigError({"config": "A JSON object."})
    if not isinstance(secrets, dict):
        raise ConfigError({"secrets": "A JSON object."})
    return kind.clean(config, secrets)


def stored_secrets(provider: Provider) -> dict:
    try:
        value = json.loads(provider.secrets) if provider.secrets else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def create_provider(
    tenant: Tenant,
    *,
    channel: str,
    kind: str,
    name: str,
    config: dict,
    secrets: dict,
    priority: int = 100,
    enabled: bool = True,
    timeout: float | None = None,
    send_rate: float | None = None,
) -> Provider:
    registry.get(channel)
    config, secrets = _checked(channel, kind, config, secrets)
    try:
        with transaction.atomic():
            return Provider.all_tenants.create(
                tenant=tenant,
                channel=channel,
                kind=kind,
                name=name,
                config=config,
                secrets=json.dumps(secrets),
                priority=priority,
                enabled=enabled,
                timeout=timeout,
                send_rate=send_rate,
            )
    except IntegrityError:
        raise ConfigError(
            {"name": f"You have a {channel} provider named {name!r} already."}
        ) from None


def update_provider(provider: Provider, **changes: Any) -> Provider:
    """Changes some fields; `secrets` replaces the stored ones only where given (a secret is
    never shown, so a change of config alone keeps them)."""
    config = changes.get("config", provider.config)
    # (a secret given as null or "" is removed: e.g. the API key of another ESP)
    secrets = {
        key: value
        for key, value in {**stored_secrets(provider), **changes.get("secrets", {})}.items()
        if value not in (None, "")
    }
    config, secrets = _checked(provider.channel, provider.kind, config, secrets)
    provider.config = config
    provider.secrets = json.dumps(secrets)
    old_name = provider.name
    for field in ("name", "priority", "enabled", "timeout", "send_rate"):
        if field in changes:
            setattr(provider, field, changes[field])
    try:
        with transaction.atomic():
            provider.save()
            if provider.name != old_name:
                provider_renamed.send(Provider, provider=provider, old_name=old_name)
    except IntegrityError:
        raise ConfigError(
            {"name": f"You have a {provider.channel} provider named {provider.name!r} already."}
        ) from None
    return provider
