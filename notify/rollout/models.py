"""Rollout records: batches of tenants, the audit log of every stage change, the shadow
comparisons and the per-path call metrics that the health gates judge."""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.utils import timezone

from notify.tenants.models import Tenant
from notify.tenants.scoping import AllTenantsManager, TenantScopedManager

Stage = Tenant.Stage


class RolloutBatch(models.Model):
    """A named group of tenants moved together, in a planned order (`position`)."""

    class State(models.TextChoices):
        ACTIVE = "active", "In progress"
        # at `new` with its gates green for the stability window
        COMPLETE = "complete", "Complete"

    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveIntegerField(default=0, help_text="The batch's place in the plan.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    stability_hours = models.PositiveIntegerField(
        default=72, help_text="How long the batch stays at `new` with green gates to complete."
    )
    retention_days = models.PositiveIntegerField(
        default=30,
        help_text="After completion, how long rolling back to legacy stays one action.",
    )
    new_since = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "name"]
        verbose_name = "rollout batch"
        verbose_name_plural = "rollout batches"
        permissions = [
            ("change_stage", "Can move tenants between rollout stages"),
            ("override_gates", "Can override the rollout health gates"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def retention_ends_at(self):  # noqa: ANN201 - datetime | None
        if self.completed_at is None:
            return None
        return self.completed_at + timezone.timedelta(days=self.retention_days)

    @property
    def can_roll_back(self) -> bool:
        """Rolling back to legacy stays one action until the retention period has passed."""
        ends = self.retention_ends_at
        return ends is None or timezone.now() < ends


class RolloutEvent(models.Model):
    """One entry of the append-only audit log: who moved what, when, from where to where and
    why. Rows are never changed or deleted: save and delete refuse, and PostgreSQL refuses
    both, but for clearing the link to a deleted tenant or batch (the entry keeps its names)."""

    class Action(models.TextChoices):
        ADVANCE = "advance", "Advance"
        SET_PERCENT = "set_percent", "Set canary %"
        PAUSE = "pause", "Pause"
        RESUME = "resume", "Resume"
        ROLLBACK = "rollback", "Roll back to legacy"
        AUTO_ROLLBACK = "auto_rollback", "Automatic rollback"
        SET_STAGE = "set_stage", "Set stage"
        COMPLETE = "complete", "Batch complete"
        GATE_BLOCKED = "gate_blocked", "Refused by a gate"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Action.choices)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # kept as text too: the log outlives a deleted tenant or batch
    tenant_slug = models.CharField(max_length=64, blank=True, default="")
    batch = models.ForeignKey(
        RolloutBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    batch_name = models.CharField(max_length=100, blank=True, default="")
    from_stage = models.CharField(max_length=16, blank=True, default="")
    from_percent = models.PositiveSmallIntegerField(default=0)
    to_stage = models.CharField(max_length=16, blank=True, default="")
    to_percent = models.PositiveSmallIntegerField(default=0)
    reason = models.TextField()
    # a gate said no and the actor went ahead (the reason says why)
    override = models.BooleanField(default=False)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "rollout audit entry"
        verbose_name_plural = "rollout audit log"

    def __str__(self) -> str:
        who = self.tenant_slug or self.batch_name
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {who}"

    def save(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        if self.pk is not None:
            raise PermissionDenied("the rollout audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        raise PermissionDenied("the rollout audit log is append-only")


class ShadowComparison(models.Model):
    """One shadowed legacy send: what the old gateway answered and sent (its detail.do) beside
    what this platform would have answered and sent for the same call, compared field by field.
    The row is the pending work until it is compared."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        MATCH = "match", "Match"
        # differences only where the same side differs from itself (timestamps, random codes)
        NOISE = "noise", "Match but for noise"
        MISMATCH = "mismatch", "Mismatch"
        # differences an ignore rule accepts
        IGNORED = "ignored", "Accepted difference"
        # the old gateway's side could not be read (it kept failing)
        UNREADABLE = "unreadable", "Could not compare"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.CharField(max_length=64)
    tpl_id = models.CharField(max_length=64, blank=True, default="")
    # the converted template version the platform rendered (null: no template, or none)
    version_id = models.BigIntegerField(null=True, blank=True)
    # the call's own parameters (signature fields removed), as the platform re-runs them
    params = models.JSONField(default=dict)
    legacy_code = models.IntegerField()
    legacy_msg_ids = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    new_code = models.IntegerField(null=True, blank=True)
    # [{"field", "legacy", "new", "recipient"}]: the differences that count
    differences = models.JSONField(default=list, blank=True)
    # [{"field", "side", ...}]: differences explained by a side differing from itself
    noise = models.JSONField(default=list, blank=True)
    ignored = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    legacy_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    compared_at = models.DateTimeField(null=True, blank=True)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="shadow_comparison_due",
            ),
            models.Index(fields=["tenant", "created_at"], name="shadow_tenant_created"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.endpoint} {self.tpl_id} {self.state}"


class IgnoreRule(models.Model):
    """A known, accepted difference: where `field` (of a tenant's and template's shadowed
    sends, or every tenant's) differs and both sides match `pattern` once the parts it matches
    are blanked out, the difference is accepted, counted apart and never a mismatch."""

    class Field(models.TextChoices):
        CODE = "code", "Answer code"
        CHANNEL = "channel", "Channel"
        RECIPIENT = "recipient", "Recipient"
        SUBJECT = "subject", "Subject"
        CONTENT = "content", "Content"
        COUNT = "count", "Recipient count"

    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: every tenant.",
    )
    tpl_id = models.CharField(max_length=64, blank=True, default="", help_text="Empty: any.")
    field = models.CharField(max_length=16, choices=Field.choices)
    pattern = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="A regular expression; the parts it matches are blanked out on both sides "
        "before comparing. Empty: any difference in this field is accepted.",
    )
    reason = models.TextField()
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["tenant_id", "tpl_id", "field"]

    def __str__(self) -> str:
        return f"ignore {self.field} {self.tpl_id or '*'}"

    def clean(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValidationError({"pattern": f"not a regular expression: {exc}"}) from exc


class PathMetric(models.Model):
    """Legacy API calls of one tenant and template on one path (the old gateway or this
    platform) in one period (notify.rollout.metrics.PERIOD_S seconds from `period`): how many,
    how many failed (a system error or no answer), and their latency as a histogram
    (metrics.LATENCY_BOUNDS_MS)."""

    class Path(models.TextChoices):
        LEGACY = "legacy", "Old gateway"
        NEW = "new", "Platform"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tpl_id = models.CharField(max_length=64, blank=True, default="")
    path = models.CharField(max_length=8, choices=Path.choices)
    period = models.DateTimeField()
    calls = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    latency_ms_total = models.FloatField(default=0)
    latency_buckets = models.JSONField(default=list)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "tpl_id", "path", "period"], name="path_metric_unique_period"
            )
        ]
        indexes = [models.Index(fields=["period"], name="path_metric_period")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.tpl_id} {self.path} {self.period:%H:%M:%S}"
