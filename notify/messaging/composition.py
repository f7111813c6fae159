"""Composition: what a caller asked for (inline content, or a template with its data and
locale) turned into the message to send. One service for every entry point: the v2 API today,
the legacy facade tomorrow; views only parse input and answer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from notify.channels import registry
from notify.headers import header_problem
from notify.messaging.services import MessageDraft
from notify.tenants.models import Tenant
from templates_store import selectors as template_selectors
from templates_store import services as template_services
from templates_store.velocity.engine import TemplateRenderError

# RFC 5322's line limit: a longer subject cannot be one header line
MAX_SUBJECT_CHARS = 998
# a batch's recipients that cannot be composed, named in one answer (at most)
MAX_REPORTED_RECIPIENTS = 100


class CompositionError(Exception):
    """The request cannot become a message; `fields` names the input at fault and why."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class ComposeRequest:
    """One message as a caller asked for it: inline content, or `template` with `data`."""

    channel: str
    recipient: str
    subject: str = ""
    body: str = ""
    html: str = ""
    template: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    locale: str = ""
    category: str = ""
    critical: bool = False


def compose(tenant: Tenant, request: ComposeRequest) -> MessageDraft:
    """The message to send. Raises CompositionError (the caller's input is at fault) or
    TemplateNotApproved (the template may not be sent yet)."""
    if not request.template:
        return MessageDraft(
            channel=request.channel,
            recipient=request.recipient,
            subject=request.subject,
            body=request.body,
            html=request.html,
            category=request.category,
            critical=request.critical,
        )
    return _from_template(tenant, request)


def compose_many(
    tenant: Tenant, request: ComposeRequest, recipients: list[tuple[str, dict[str, Any]]]
) -> list[MessageDraft]:
    """One message per (recipient, data) of a batch: `request` gives what they share (its
    `data` under each recipient's own). The template is read once. Raises CompositionError
    naming each recipient at fault (`recipients.<index>.<field>`, the first
    MAX_REPORTED_RECIPIENTS of them: one answer lists what to fix), or TemplateNotApproved."""
    template = _sendable_template(tenant, request) if request.template else None
    version = template_selectors.published_version(template, request.locale) if template else None
    drafts = []
    problems: dict[str, list[str]] = {}
    for index, (recipient, data) in enumerate(recipients):
        one = replace(request, recipient=recipient, data={**request.data, **data})
        try:
            drafts.append(
                _render(one, template, version) if template is not None else compose(tenant, one)
            )
        except CompositionError as exc:
            problems.update({f"recipients.{index}.{name}": m for name, m in exc.fields.items()})
            if len(problems) >= MAX_REPORTED_RECIPIENTS:
                break
    if problems:
        raise CompositionError(problems)
    return drafts


def _sendable_template(tenant: Tenant, request: ComposeRequest) -> Any:
    template = template_selectors.get_template(tenant, request.template)
    if template is None or template.channel != request.channel:
        raise CompositionError({"template": [f"No {request.channel} template with this key."]})
    template_services.ensure_sendable(template)
    return template


def _from_template(tenant: Tenant, request: ComposeRequest) -> MessageDraft:
    """Renders the tenant's template now: the message keeps exactly what was sent."""
    return _render(request, _sendable_template(tenant, request))


def _render(request: ComposeRequest, template: Any, version: Any = None) -> MessageDraft:
    missing = [name for name in template.params if name not in request.data]
    if missing:
        raise CompositionError({"data": [f"Missing template parameter: {missing[0]}."]})
    try:
        rendered = template_services.render_template(
            template, request.data, request.locale, version
        )
    except template_services.TemplateError as exc:
        raise CompositionError({"template": [str(exc)]}) from exc
    except TemplateRenderError as exc:
        raise CompositionError({"data": [f"The template cannot be rendered: {exc}"]}) from exc
    subject = request.subject or rendered.subject
    problems = []
    if not subject and registry.get(request.channel).needs_subject:
        problems.append("The rendered subject is empty.")
    elif len(subject) > MAX_SUBJECT_CHARS:
        problems.append("The rendered subject is too long.")
    elif problem := header_problem(subject):
        problems.append(f"The rendered subject cannot be a header: {problem}")
    if not rendered.body:
        problems.append("The rendered body is empty.")
    if "\x00" in subject or "\x00" in rendered.body:
        problems.append("The rendered message contains NUL characters.")
    if problems:
        raise CompositionError({"data": problems})
    return MessageDraft(
        channel=request.channel,
        recipient=request.recipient,
        subject=subject,
        # Email template bodies are HTML (legacy mail content always was).
        html=rendered.body,
        params={
            "template": template.key,
            "version": rendered.version.number,
            "locale": rendered.version.locale,
            "data": request.data,
        },
        category=request.category,
        critical=request.critical,
    )
