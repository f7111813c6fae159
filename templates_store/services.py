"""Services write: templates, versions, publication, rendering and legacy conversion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from notify.tenants.models import Tenant
from templates_store import selectors
from templates_store.engines import get_engine
from templates_store.models import PublishEvent, Template, TemplateVersion
from templates_store.velocity.converter import convert
from templates_store.velocity.engine import TemplateRenderError


class TemplateError(Exception):
    """A template operation that cannot be done; the message says why."""


class TemplateNotApproved(TemplateError):
    """A send from a template the operator has not approved (a draft, or one it rejected).

    The one place that says what this is in each API: `code` for v2, and the legacy gateway's
    code and text for the legacy facade (SPEC: `20003 template not approved`, checked after
    `20001` and before `20002`)."""

    code = "template_not_approved"
    legacy_code = "20003"
    legacy_msg = "template not approved"

    def __init__(self, template: Template) -> None:
        super().__init__(
            f"Template '{template.key}' is not approved (status: {template.status}); the "
            "operator must approve it before messages can be sent with it."
        )
        self.template = template


class StatusChangeNotAllowed(TemplateError):
    """A tenant asked for a template status that only the operator can set."""

    code = "status_change_not_allowed"


@dataclass(frozen=True)
class RenderedTemplate:
    subject: str
    body: str
    version: TemplateVersion


def _next_number(template: Template, locale: str) -> int:
    current = template.versions.filter(locale=locale).aggregate(top=Max("number"))["top"]
    return (current or 0) + 1


def check_source(source: str, autoescape: bool) -> None:
    """Raises TemplateRenderError (with line) if the Jinja2 source does not compile."""
    get_engine(autoescape).compile(source)


@transaction.atomic
def add_version(
    template: Template,
    *,
    subject: str,
    body: str,
    locale: str = "",
    actor: str = "",
    publish: bool = False,
    **conversion: Any,
) -> TemplateVersion:
    _lock(template.pk)  # serialise numbering
    version = TemplateVersion.objects.create(
        template=template,
        number=_next_number(template, locale),
        locale=locale,
        subject=subject,
        body=body,
        created_by_label=actor,
        **conversion,
    )
    if publish:
        publish_version(version, actor=actor)
    return version


@transaction.atomic
def create_template(
    *,
    tenant: Tenant,
    key: str,
    channel: str,
    subject: str = "",
    body: str,
    name: str = "",
    params: list[str] | None = None,
    locale: str = "",
    autoescape: bool | None = None,
    legacy_tpl_id: str = "",
    status: str = Template.Status.DRAFT,
    actor: str = "",
    publish: bool = True,
) -> Template:
    if autoescape is None:
        autoescape = channel == "email"
    template = Template.objects.create(
        tenant=tenant,
        key=key,
        name=name or key,
        channel=channel,
        params=params or [],
        autoescape=autoescape,
        legacy_tpl_id=legacy_tpl_id,
        status=status,
    )
    add_version(template, subject=subject, body=body, locale=locale, actor=actor, publish=publish)
    return template


def _lock(template_id: int) -> None:
    # Publication changes are serialised per template, so two concurrent publishes cannot
    # both leave a version published.
    Template.objects.select_for_update().filter(pk=template_id).first()


@transaction.atomic
def publish_version(version: TemplateVersion, *, actor: str = "", action: str = "publish") -> None:
    """Makes `version` the one used for its template and locale, in one step."""
    if version.is_converted and version.conversion_approved_at is None:
        raise TemplateError(
            f"version {version.number} is a legacy conversion that has not been approved"
        )
    _lock(version.template_id)
    TemplateVersion.objects.filter(
        template_id=version.template_id, locale=version.locale, published=True
    ).exclude(pk=version.pk).update(published=False)
    TemplateVersion.objects.filter(pk=version.pk).update(
        published=True, published_at=timezone.now()
    )
    version.refresh_from_db()
    PublishEvent.objects.create(version=version, action=action, actor=actor)


def publication_stack(template: Template, locale: str) -> list[int]:
    """Version ids in the order they were put live; a rollback pops the current one."""
    stack: list[int] = []
    events = PublishEvent.objects.filter(
        version__template=template, version__locale=locale
    ).order_by("created_at", "id")
    for event in events:
        if event.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != event.version_id:
                stack.append(event.version_id)
        elif not stack or stack[-1] != event.version_id:
            stack.append(event.version_id)
    return stack


@transaction.atomic
def rollback(template: Template, *, locale: str = "", actor: str = "") -> TemplateVersion:
    """Publishes again the version that was live before the current one (repeatable: each
    rollback steps one further back)."""
    _lock(template.pk)
    stack = publication_stack(template, locale)
    if len(stack) < 2:
        raise TemplateError("no earlier published version to roll back to")
    previous = TemplateVersion.objects.get(pk=stack[-2])
    publish_version(previous, actor=actor, action="rollback")
    return previous


def render_version(
    version: TemplateVersion, data: dict[str, Any], *, autoescape: bool
) -> tuple[str, str]:
    # A subject is a header, never HTML: escaping would show `&amp;` to the reader.
    subject = get_engine(False).render(version.subject, data) if version.subject else ""
    body = get_engine(autoescape).render(version.body, data) if version.body else ""
    return subject, body


def render_template(template: Template, data: dict[str, Any], locale: str = "") -> RenderedTemplate:
    """Renders the published version for `locale` (with fallback). Raises TemplateError if none
    is published, TemplateRenderError if rendering fails."""
    version = selectors.published_version(template, locale)
    if version is None:
        raise TemplateError(f"template {template.key!r} has no published version")
    subject, body = render_version(version, data, autoescape=template.autoescape)
    return RenderedTemplate(subject=subject, body=body, version=version)


def ensure_sendable(template: Template) -> None:
    """Raises TemplateNotApproved unless messages may be sent with `template`."""
    if template.status != Template.Status.APPROVED:
        raise TemplateNotApproved(template)


def check_status_by_tenant(tenant: Tenant, current: str, wanted: str) -> None:
    """What a tenant may do with its own template's status (the API); the rest is the
    operator's, in the admin. Raises StatusChangeNotAllowed.

    - draft: always (withdrawing an approval, or a template's first status);
    - approved: only when the operator granted the tenant self-approval;
    - rejected, and any change away from rejected: never. A rejection is the operator's
      decision, and only the operator takes it back."""
    if wanted == current:
        return
    if current == Template.Status.REJECTED:
        raise StatusChangeNotAllowed(
            "The operator rejected this template; only the operator can change its status."
        )
    if wanted == Template.Status.REJECTED:
        raise StatusChangeNotAllowed("Only the operator can reject a template.")
    if wanted == Template.Status.APPROVED and not tenant.templates_self_approve:
        raise StatusChangeNotAllowed(
            "Only the operator can approve this tenant's templates: ask the operator to "
            "approve it, or to let this tenant approve its own."
        )


def withdraw_approval_on_tenant_change(template: Template, tenant: Tenant) -> None:
    """An approval covers what the operator saw. When a tenant without self-approval changes
    what a template sends (publishes or rolls back a version, switches escaping), the template
    goes back to draft until the operator approves it again."""
    if template.status == Template.Status.APPROVED and not tenant.templates_self_approve:
        Template.objects.filter(pk=template.pk).update(
            status=Template.Status.DRAFT, updated_at=timezone.now()
        )
        template.status = Template.Status.DRAFT


def set_status_by_operator(template: Template, status: str) -> bool:
    """The operator approves or rejects (admin actions). Returns whether anything changed."""
    changed = (
        Template.objects.filter(pk=template.pk)
        .exclude(status=status)
        .update(status=status, updated_at=timezone.now())
    )
    template.status = status
    return changed == 1


__all__ = [
    "RenderedTemplate",
    "StatusChangeNotAllowed",
    "TemplateError",
    "TemplateNotApproved",
    "TemplateRenderError",
    "add_version",
    "check_source",
    "check_status_by_tenant",
    "convert",
    "create_template",
    "ensure_sendable",
    "publish_version",
    "render_template",
    "render_version",
    "rollback",
    "set_status_by_operator",
    "withdraw_approval_on_tenant_change",
]


@transaction.atomic
def approve_conversion(version: TemplateVersion, *, actor: str = "", publish: bool = True) -> None:
    """Marks a converted version as fit to replace the legacy template. Refused while any
    verification case renders differently, while the converter asks for review, or when
    nothing was verified."""
    if not version.is_converted:
        raise TemplateError(f"version {version.number} is not a legacy conversion")
    if version.mismatches:
        raise TemplateError(
            f"version {version.number}: {version.mismatches} case(s) still render differently"
        )
    if version.conversion_status == TemplateVersion.Conversion.NEEDS_REVIEW:
        raise TemplateError(f"version {version.number}: the converter flagged it for review")
    if version.verified_cases == 0:
        raise TemplateError(f"version {version.number}: no case was verified")
    TemplateVersion.objects.filter(pk=version.pk).update(conversion_approved_at=timezone.now())
    version.refresh_from_db()
    if publish:
        publish_version(version, actor=actor)
