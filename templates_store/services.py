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


__all__ = [
    "RenderedTemplate",
    "TemplateError",
    "TemplateRenderError",
    "add_version",
    "check_source",
    "convert",
    "create_template",
    "publish_version",
    "render_template",
    "render_version",
    "rollback",
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
