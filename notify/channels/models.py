from django.db import models
from django.utils import timezone

from notify.tenants.crypto import EncryptedTextField
from notify.tenants.models import Tenant
from notify.tenants.scoping import AllTenantsManager, TenantScopedManager


class Provider(models.Model):
    """A tenant's account at a provider for one channel: its kind (how to talk to it), its
    configuration, its secrets (encrypted, write-only in the API and the admin), and its place
    in the channel's failover order (lower `priority` first)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="providers")
    channel = models.CharField(max_length=16)
    kind = models.CharField(max_length=32)
    name = models.SlugField(max_length=64)
    config = models.JSONField(default=dict, blank=True)
    # a JSON object, encrypted at rest
    secrets = EncryptedTextField(blank=True, default="")
    priority = models.PositiveIntegerField(default=100)
    # seconds one call to this provider may take before failover moves on (its deadline
    # tier); blank: HTTP_PROVIDER_TIMEOUT
    timeout = models.FloatField(null=True, blank=True)
    # messages per second the platform sends through this account, all workers together
    # (blank: no limit of its own); a send over it waits its turn, briefly, or fails over
    send_rate = models.FloatField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["tenant_id", "channel", "priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "name"], name="provider_name_per_tenant_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.name}"
