from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from notify.tenants.crypto import EncryptedTextField


class Tenant(models.Model):
    """A customer of the platform; in the legacy gateway, an *app*."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    class Stage(models.TextChoices):
        """Where the tenant's legacy API calls are served (notify.rollout moves it)."""

        # proxied to the old gateway untouched
        LEGACY = "legacy", "Legacy (proxied to the old gateway)"
        # proxied, and the platform processes the same call as a dry run to compare
        SHADOW = "shadow", "Shadow (proxied; the platform compares, never sends)"
        # recipients in the lowest `canary_percent` buckets are served by the platform
        CANARY = "canary", "Canary (a share of recipients served by the platform)"
        # answered by this platform
        NEW = "new", "New (served by the platform)"
        # the rollout is held: calls are routed as in `paused_stage`, nothing moves
        PAUSED = "paused", "Paused (routed as before the pause)"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Legacy identity: tenants keep their app_key/app_secret through the migration.
    app_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    # The legacy MD5 signature needs the secret itself, so it is encrypted, not hashed.
    app_secret = EncryptedTextField(blank=True, default="")
    sign_name = models.CharField(max_length=32, blank=True, default="")
    callback_url = models.URLField(max_length=500, blank=True, default="")
    # when callback_url got its current value (None: before this was kept): the legacy
    # reports owed are those of messages that finished since
    callback_url_since = models.DateTimeField(null=True, blank=True, editable=False)
    # where the tenant's legacy API calls are served (the rollout moves it)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.NEW)
    canary_percent = models.PositiveSmallIntegerField(default=0)
    # a paused tenant's routing: the stage (and canary_percent) it was paused in
    paused_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True, default="")
    # where an automatic rollback returns: the stage the tenant last advanced from
    previous_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True, default="")
    previous_percent = models.PositiveSmallIntegerField(default=0)
    stage_changed_at = models.DateTimeField(null=True, blank=True)
    rollout_batch = models.ForeignKey(
        "rollout.RolloutBatch",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tenants",
    )
    # the tenant's place in its batch's planned order
    rollout_position = models.PositiveIntegerField(default=0)
    qps_limit = models.PositiveIntegerField(default=200, validators=[MinValueValidator(1)])
    # Granted by the operator: this tenant may approve its own templates through the API.
    # Without it, only the operator approves (Django admin), and sends refuse unapproved ones.
    templates_self_approve = models.BooleanField(
        "may approve its own templates",
        default=False,
        help_text="Lets the tenant set its templates' status to approved through the API. "
        "Off: only an operator approves them, in the admin.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: Any, **kwargs: Any) -> None:
        loaded = "callback_url" in self.__dict__  # (a deferred field is not being changed)
        if loaded and self.callback_url != getattr(self, "_loaded_callback_url", None):
            self.callback_url_since = timezone.now()
            fields = kwargs.get("update_fields")
            if fields is not None and "callback_url" in fields:
                kwargs["update_fields"] = {*fields, "callback_url_since"}
        super().save(*args, **kwargs)
        self._loaded_callback_url = self.callback_url

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Tenant:
        tenant = super().from_db(db, field_names, values)
        tenant._loaded_callback_url = tenant.__dict__.get("callback_url")
        return tenant

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    # The v2 API authenticates a tenant (not a Django user); DRF's IsAuthenticated asks this.
    is_authenticated = True


def hash_api_key(raw_key: str) -> str:
    # Keys are 190+ bits of randomness, so a fast hash is enough (no brute force possible).
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A v2 API key. Only its hash is stored; `prefix` identifies it in lists and logs."""

    PREFIX_LENGTH = 12

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant.slug})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def generate(cls, tenant: Tenant, name: str = "default") -> tuple[ApiKey, str]:
        """Creates a key and returns it with the raw key, which is never shown again."""
        raw = "nk_" + secrets.token_urlsafe(32)
        key = cls.objects.create(
            tenant=tenant, name=name, prefix=raw[: cls.PREFIX_LENGTH], key_hash=hash_api_key(raw)
        )
        return key, raw

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
