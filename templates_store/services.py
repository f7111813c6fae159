"""Services write: templates, versions, publication, rendering and legacy conversion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from notify.channels import registry
from notify.tenants.models import Tenant
from templates_store import selectors
from templates_store.engines import JINJA2, VELOCITY, get_engine
from templates_store.models import PublishEvent, Template, TemplateVersion
from templates_store.sandbox.errors import TemplateRenderError
from templates_store.velocity.converter import convert
from templates_store.velocity.verifier import verify


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


def check_source(source: str, autoescape: bool, engine: str = JINJA2) -> None:
    """Raises TemplateRenderError (with line) if the source does not compile in the engine's
    environment (nothing of it runs: compiling evaluates nothing)."""
    get_engine(engine, autoescape and engine == JINJA2).compile(source)


# issues that keep a tenant's Velocity from being rendered by the legacy engine at all: it
# would run Python internals (airspeed has no sandbox) or a text only known from the data
_UNSAFE_FOR_LEGACY = frozenset({"unsafe_name", "#evaluate", "syntax"})
_STATUS_RANK = {"exact": 0, "exact_with_warnings": 1, "needs_review": 2}
MAX_VERIFICATION_SAMPLES = 20


def _html_bodies(channel: str) -> bool:
    try:
        return registry.get(channel).html_bodies
    except registry.UnknownChannel:
        return False


def convert_velocity(
    *, subject: str, body: str, channel: str, samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """A version's fields for a tenant's Velocity subject and body: both converted, both
    sources and the conversion report kept, and the conversion verified against the legacy
    engine on `samples` (rendered in its sandboxed child process). A conversion that would
    make the legacy engine run Python internals is never rendered by it: it needs review.

    The version publishes only through the conversion proof rules (approve_conversion)."""
    # (the converter tunes its warnings by the legacy gateway's channel name)
    try:
        legacy_channel = registry.get(channel).legacy_alias
    except registry.UnknownChannel:
        legacy_channel = channel
    get_engine(VELOCITY)  # (conversions are checked on the engine that renders them)
    fields: dict[str, Any] = {"engine": VELOCITY, "legacy_subject": subject, "legacy_body": body}
    status = "exact"
    issues: list[dict[str, Any]] = []
    differences: list[dict[str, Any]] = []
    mismatched: set[int] = set()
    verified = True
    for name, source in (("subject", subject), ("body", body)):
        if not source:
            fields[name] = ""
            continue
        conversion = convert(source, channel=legacy_channel)
        if conversion.source is None:
            raise TemplateError(f"the {name} could not be converted")
        fields[name] = conversion.source
        status = max(status, conversion.status, key=_STATUS_RANK.__getitem__)
        field_issues = [{**issue, "field": name} for issue in conversion.to_dict()["issues"]]
        issues += field_issues
        if any(issue["construct"] in _UNSAFE_FOR_LEGACY for issue in field_issues):
            verified = False
            continue
        if samples:
            for difference in verify(source, conversion, samples):
                mismatched.add(difference.case_index)
                differences.append({**difference.to_dict(), "field": name})
    if not verified:
        status = "needs_review"
    fields.update(
        conversion_status=status,
        conversion_report={
            "status": status,
            "issues": issues,
            "differences": differences[:50],
            "cases": samples[:MAX_VERIFICATION_SAMPLES],
            "verified_with_legacy_engine": verified and bool(samples),
        },
        verified_cases=len(samples) if verified else 0,
        mismatches=len(mismatched),
    )
    return fields


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
    """A new version. With `publish`, a tenant's own Jinja is published at once; a converted
    version only when it meets the conversion proof rules (see approve_conversion), else it
    stays unpublished with its report."""
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
        if version.is_converted:
            if conversion_proven(version):
                approve_conversion(version, actor=actor)
        else:
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
    conversion: dict[str, Any] | None = None,
) -> Template:
    """A template and its first version. `conversion`: the fields of a converted Velocity
    version (convert_velocity), rendered unescaped exactly as the legacy engine did."""
    if conversion is not None:
        autoescape = False
    elif autoescape is None:
        autoescape = _html_bodies(channel)
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
    fields = conversion or {"subject": subject, "body": body}
    add_version(template, locale=locale, actor=actor, publish=publish, **fields)
    return template


def _lock(template_id: int) -> None:
    # Publication changes are serialised per template, so two concurrent publishes cannot
    # both leave a version published.
    Template.all_tenants.select_for_update().filter(pk=template_id).first()


@transaction.atomic
def publish_version(version: TemplateVersion, *, actor: str = "", action: str = "publish") -> None:
    """Makes `version` the one used for its template and locale, in one step. A converted
    version publishes only once its conversion is approved, which the proof rules decide."""
    if version.is_converted and version.conversion_approved_at is None:
        refusal = conversion_refusal(version)
        if refusal is not None:
            raise TemplateError(f"version {version.number} cannot be published: {refusal}")
        TemplateVersion.objects.filter(pk=version.pk).update(conversion_approved_at=timezone.now())
        version.refresh_from_db()
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
    """The version's subject and body, each rendered in its engine's environment (the one
    the version records) under a fresh budget."""
    kind = version.engine
    # A subject is a header, never HTML: escaping would show `&amp;` to the reader; converted
    # templates render exactly what the legacy engine did, unescaped.
    subject = get_engine(kind, False).render(version.subject, data) if version.subject else ""
    body_engine = get_engine(kind, autoescape and kind == JINJA2)
    body = body_engine.render(version.body, data) if version.body else ""
    return subject, body


def render_template(
    template: Template,
    data: dict[str, Any],
    locale: str = "",
    version: TemplateVersion | None = None,
) -> RenderedTemplate:
    """Renders the published version for `locale` (with fallback; `version`: that version,
    already looked up, as a batch does once for all its messages). Raises TemplateError if none
    is published, TemplateRenderError if rendering fails."""
    version = version or selectors.published_version(template, locale)
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
        Template.all_tenants.filter(pk=template.pk).update(
            status=Template.Status.DRAFT, updated_at=timezone.now()
        )
        template.status = Template.Status.DRAFT


def set_status_by_operator(template: Template, status: str) -> bool:
    """The operator approves or rejects (admin actions). Returns whether anything changed."""
    changed = (
        Template.all_tenants.filter(pk=template.pk)
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
    "convert_velocity",
    "conversion_proven",
    "create_template",
    "ensure_sendable",
    "publish_version",
    "render_template",
    "render_version",
    "rollback",
    "set_status_by_operator",
    "withdraw_approval_on_tenant_change",
]


def conversion_refusal(version: TemplateVersion) -> str | None:
    """Why a converted version may not replace the legacy template (None: it may). The
    proof rules: the converter reports no review, every verified case rendered the same on
    both engines, and at least one case was verified."""
    if not version.is_converted:
        return f"version {version.number} is not a legacy conversion"
    if version.mismatches:
        return f"{version.mismatches} case(s) still render differently"
    if version.conversion_status == TemplateVersion.Conversion.NEEDS_REVIEW:
        return "the converter flagged it for review"
    if version.verified_cases == 0:
        return "no case was verified (give samples the conversion can be checked on)"
    return None


def conversion_proven(version: TemplateVersion) -> bool:
    return conversion_refusal(version) is None


@transaction.atomic
def approve_conversion(version: TemplateVersion, *, actor: str = "", publish: bool = True) -> None:
    """Marks a converted version as fit to replace the legacy template. Refused while any
    verification case renders differently, while the converter asks for review, or when
    nothing was verified."""
    refusal = conversion_refusal(version)
    if refusal is not None:
        raise TemplateError(
            refusal if not version.is_converted else f"version {version.number}: {refusal}"
        )
    TemplateVersion.objects.filter(pk=version.pk).update(conversion_approved_at=timezone.now())
    version.refresh_from_db()
    if publish:
        publish_version(version, actor=actor)
