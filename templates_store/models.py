from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from notify.channels import registry
from notify.tenants.models import Tenant
from notify.tenants.scoping import AllTenantsManager, TenantScopedManager

# the channels of the registry (notify/channels/registry.py), where each is declared
TemplateChannel = models.TextChoices(
    "TemplateChannel",
    [(spec.name.upper(), (spec.name, spec.label)) for spec in registry.all_channels()],
)


class Template(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="templates")
    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200, blank=True, default="")
    channel = models.CharField(max_length=16, choices=TemplateChannel.choices)
    # The legacy gateway's id (`SMS_100001`): legacy calls find the template by it.
    legacy_tpl_id = models.CharField(max_length=64, blank=True, default="")
    params = models.JSONField(default=list, blank=True, help_text="Declared parameter names")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    # HTML-escape inserted values. Off for converted legacy templates (the old engine escaped
    # nothing and their output must not change); on by default for new email templates.
    autoescape = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    all_tenants = AllTenantsManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["tenant", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "key"], name="template_unique_key_per_tenant"
            ),
            models.UniqueConstraint(
                fields=["tenant", "legacy_tpl_id"],
                condition=~Q(legacy_tpl_id=""),
                name="template_unique_legacy_id_per_tenant",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.key}"


class TemplateVersion(models.Model):
    class Engine(models.TextChoices):
        # tenant-authored Jinja, in the tenant environment (Jinja's filters, no legacy helpers)
        JINJA2 = "jinja2", "Jinja2 (sandboxed)"
        # converted from legacy Velocity, in the converted-template environment (the helpers)
        VELOCITY = "velocity", "Converted Velocity (sandboxed)"

    class Conversion(models.TextChoices):
        NONE = "", "Not converted"
        EXACT = "exact", "Exact"
        EXACT_WITH_WARNINGS = "exact_with_warnings", "Exact, with warnings"
        NEEDS_REVIEW = "needs_review", "Needs review"

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    locale = models.CharField(max_length=35, blank=True, default="", help_text="'' = default")
    subject = models.TextField(blank=True, default="")
    body = models.TextField(blank=True, default="")
    engine = models.CharField(max_length=16, choices=Engine.choices, default=Engine.JINJA2)
    # For a version converted from the legacy engine: the Velocity source it came from, the
    # converter's report and how many verification cases rendered differently.
    legacy_subject = models.TextField(blank=True, default="")
    legacy_body = models.TextField(blank=True, default="")
    conversion_status = models.CharField(
        max_length=32, choices=Conversion.choices, blank=True, default=""
    )
    conversion_report = models.JSONField(default=dict, blank=True)
    verified_cases = models.PositiveIntegerField(default=0)
    mismatches = models.PositiveIntegerField(default=0)
    conversion_approved_at = models.DateTimeField(null=True, blank=True)
    published = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_by_label = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["template", "locale", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "locale", "number"], name="version_unique_number"
            ),
            models.UniqueConstraint(
                fields=["template", "locale"],
                condition=Q(published=True),
                name="version_one_published_per_locale",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}{' ' + self.locale if self.locale else ''}"

    @property
    def is_converted(self) -> bool:
        return bool(self.legacy_subject or self.legacy_body or self.conversion_status)


class PublishEvent(models.Model):
    """Audit trail of publications and rollbacks."""

    version = models.ForeignKey(TemplateVersion, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=16)  # publish / rollback
    actor = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.version}"
