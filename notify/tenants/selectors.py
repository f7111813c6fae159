"""Selectors read: the tenant behind an API key, as every v2 call asks it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from notify.caching import TtlCache
from notify.tenants.models import ApiKey, Tenant, hash_api_key

# A key and its tenant, kept by each process NOTIFY_API_KEY_CACHE_SECONDS: a key revoked or a
# tenant disabled in another process is refused that much later (at once in this one).
# A key that matched nothing is not kept, so a key just created works at once everywhere.
_keys: TtlCache[ApiKey | None] = TtlCache(
    lambda: settings.NOTIFY_API_KEY_CACHE_SECONDS, keep_none=False
)


def api_key_for(raw_key: str) -> ApiKey | None:
    """The stored key matching `raw_key` with its tenant (revoked or not: the caller says
    why it refuses), or None."""
    key_hash = hash_api_key(raw_key)
    return _keys.get(
        key_hash,
        lambda: (
            ApiKey.objects.select_related("tenant")
            # The legacy secret is not needed here, and must not be decrypted on every call.
            .defer("tenant__app_secret")
            .filter(prefix=raw_key[: ApiKey.PREFIX_LENGTH], key_hash=key_hash)
            .first()
        ),
    )


def forget_api_keys() -> None:
    """After a change to keys or tenants made without saving a model (a queryset update)."""
    _keys.forget()


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
@receiver(post_save, sender=Tenant)
@receiver(post_delete, sender=Tenant)
def _forget_changed(**kwargs: Any) -> None:
    _keys.forget()
