from django.db import models
from django.utils import timezone

from notify.tenants.models import Tenant
from notify.tenants.scoping import AllTenantsManager, TenantScopedManager


class LegacyMessage(models.Model):
    """A message the old gateway sent before its tenant moved (its export's messages.jsonl),
    kept as the export had it so that `status.do` and `detail.do` answer for it exactly as the
    old gateway did. Read-only history: nothing sends or changes it."""

    msg_id = models.CharField(primary_key=True, max_length=18)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    batch_id = models.CharField(max_length=18, blank=True, default="")
    # the old gateway's channel names: sms, mail, push
    channel = models.CharField(max_length=8)
    recipient = models.CharField(max_length=4096)
    tpl_id = models.CharField(max_length=64, blank=True, default="")
    tpl_params = models.JSONField(default=dict, blank=True)
    subject = models.TextField(blank=True, default="")
    content = models.TextField(blank=True, default="")
    status = models.PositiveSmallIntegerField()
    err_code = models.CharField(max_length=64, blank=True, default="")
    # (compat.native.key_to_db: up to twice the 64 characters an out_id may have)
    out_id = models.CharField(max_length=128, blank=True, default="")
    # as the export wrote them: Asia/Shanghai wall-clock text, "" when unknown
    send_time = models.CharField(max_length=19, blank=True, default="")
    report_time = models.CharField(max_length=19, blank=True, default="")
    imported_at = models.DateTimeField(default=timezone.now)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["msg_id"]

    def __str__(self) -> str:
        return self.msg_id


class LegacyCallback(models.Model):
    """A delivery report owed to a tenant's `callback_url` (SPEC: "Delivery reports"): one row
    per message that reached a final status, tried at once and again after 10 s, 60 s and
    300 s, then dropped. The row, not the broker, is the pending work."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Delivered"
        DROPPED = "dropped", "Dropped"

    message_id = models.CharField(max_length=18, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # the tenant's callback_url when the message finished: every try goes there, as the old
    # gateway's did ("": a row from before it was kept, which uses the tenant's)
    url = models.TextField(blank=True, default="")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="legacy_callback_due",
            )
        ]

    def __str__(self) -> str:
        return f"callback {self.message_id} {self.state}"
