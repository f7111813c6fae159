"""Bringing the legacy gateway's templates over: read its export, convert each Velocity
template, verify the conversion against the old engine on every known parameter set, and store
the result as a new version (published only once approved)."""

from __future__ import annotations

import contextlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.text import slugify

from notify.channels import registry
from notify.tenants.models import Tenant
from templates_store import services
from templates_store.models import Template, TemplateVersion
from templates_store.velocity.converter import convert
from templates_store.velocity.legacy_render import LegacyRenderer
from templates_store.velocity.verifier import verify

TEMPLATE_STATUS = {
    0: Template.Status.DRAFT,
    1: Template.Status.APPROVED,
    2: Template.Status.REJECTED,
}
STATUS_RANK = {"exact": 0, "exact_with_warnings": 1, "needs_review": 2}
MAX_STORED_CASES = 60
SIGN_PREFIX = re.compile(r"^【[^】]*】")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass
class LegacyExport:
    apps: list[dict[str, Any]]
    templates: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    messages: list[dict[str, Any]]

    @classmethod
    def read(cls, directory: Path) -> LegacyExport:
        return cls(
            apps=read_jsonl(directory / "apps.jsonl"),
            templates=read_jsonl(directory / "templates.jsonl"),
            samples=read_jsonl(directory / "samples.jsonl"),
            messages=read_jsonl(directory / "messages.jsonl"),
        )

    def cases_by_template(self) -> dict[str, list[dict[str, Any]]]:
        """Every known parameter set of each template: the samples, then the real `tpl_params`
        of every historical message (each distinct set once)."""
        cases: dict[str, list[dict[str, Any]]] = defaultdict(list)
        seen: dict[str, set[str]] = defaultdict(set)
        rows = [("sample", s.get("tpl_id", ""), s.get("params"), "") for s in self.samples] + [
            ("message", m.get("tpl_id", ""), m.get("tpl_params"), m.get("msg_id", ""))
            for m in self.messages
        ]
        for origin, tpl_id, params, ref in rows:
            if not tpl_id or not isinstance(params, dict):
                continue
            fingerprint = json.dumps(params, sort_keys=True, ensure_ascii=False)
            if fingerprint in seen[tpl_id]:
                continue
            seen[tpl_id].add(fingerprint)
            cases[tpl_id].append({"origin": origin, "ref": ref, "params": params})
        return cases


@dataclass
class FieldResult:
    status: str
    issues: list[dict[str, Any]]
    differences: list[dict[str, Any]]


@dataclass
class ConversionOutcome:
    tpl_id: str
    tenant: str
    channel: str
    status: str
    cases: int
    mismatches: int
    version: int | None
    approved: bool
    differences: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def convert_and_verify(
    source: str, channel: str, cases: list[dict[str, Any]], legacy: LegacyRenderer | None = None
) -> tuple[str | None, FieldResult]:
    """Converts `source` and verifies it on `cases`; the legacy renders run in `legacy`'s
    child process (a new one by default)."""
    if not source:
        return "", FieldResult("exact", [], [])
    conversion = convert(source, channel=channel)
    differences = verify(source, conversion, [case["params"] for case in cases], legacy=legacy)
    return conversion.source, FieldResult(
        conversion.status,
        conversion.to_dict()["issues"],
        [
            {
                **difference.to_dict(),
                "origin": cases[difference.case_index]["origin"],
                "ref": cases[difference.case_index]["ref"],
            }
            for difference in differences
        ],
    )


@transaction.atomic
def convert_template(
    row: dict[str, Any],
    tenant: Tenant,
    cases: list[dict[str, Any]],
    *,
    approve: bool = True,
    legacy: LegacyRenderer | None = None,
) -> ConversionOutcome:
    """Upserts the template of a legacy row and stores a verified conversion as a new version
    when its legacy source changed. Exact conversions with no difference on any case are
    approved and published when `approve` is set; the others wait for review. The legacy
    renders run in `legacy`'s sandboxed process (one of the tenant's own), else a new one."""
    legacy_channel = row.get("channel", "")
    try:
        channel = registry.from_legacy(legacy_channel).name
    except registry.UnknownChannel:
        channel = legacy_channel
    template = Template.objects.for_tenant(tenant).filter(legacy_tpl_id=row["tpl_id"]).first()
    if template is None:
        key = base = slugify(row["tpl_id"])[:90] or "legacy"
        suffix = 1
        while Template.objects.for_tenant(tenant).filter(key=key).exists():
            suffix += 1
            key = f"{base}-{suffix}"
        template = Template(tenant=tenant, legacy_tpl_id=row["tpl_id"], key=key)
    template.name = row.get("name", "") or template.key
    template.channel = channel
    template.params = [p for p in (row.get("params") or "").split(",") if p]
    template.status = TEMPLATE_STATUS.get(row.get("status"), Template.Status.DRAFT)
    template.autoescape = False  # the legacy engine escaped nothing
    template.save()

    legacy_subject, legacy_body = row.get("subject") or "", row.get("content") or ""
    with contextlib.ExitStack() as stack:
        if legacy is None:
            legacy = stack.enter_context(LegacyRenderer())
        subject, subject_result = convert_and_verify(legacy_subject, legacy_channel, cases, legacy)
        body, body_result = convert_and_verify(legacy_body, legacy_channel, cases, legacy)
    status = max(subject_result.status, body_result.status, key=STATUS_RANK.__getitem__)
    if subject is None or body is None:
        status = "needs_review"
    differences = [
        {**d, "field": name}
        for name, result in (("subject", subject_result), ("body", body_result))
        for d in result.differences
    ]
    issues = [
        {**issue, "field": name}
        for name, result in (("subject", subject_result), ("body", body_result))
        for issue in result.issues
    ]
    report = {
        "status": status,
        "issues": issues,
        "differences": differences[:50],
        "cases": cases[:MAX_STORED_CASES],
    }
    mismatched_cases = len({d["case_index"] for d in differences})

    latest = template.versions.filter(locale="").order_by("-number").first()
    if (
        latest is not None
        and latest.legacy_subject == legacy_subject
        and latest.legacy_body == legacy_body
        and latest.subject == (subject or "")
        and latest.body == (body or "")
    ):
        version = latest
        TemplateVersion.objects.filter(pk=version.pk).update(
            conversion_status=status,
            conversion_report=report,
            verified_cases=len(cases),
            mismatches=mismatched_cases,
        )
        version.refresh_from_db()
    else:
        version = services.add_version(
            template,
            subject=subject or "",
            body=body or "",
            actor="legacy import",
            engine=TemplateVersion.Engine.VELOCITY,
            legacy_subject=legacy_subject,
            legacy_body=legacy_body,
            conversion_status=status,
            conversion_report=report,
            verified_cases=len(cases),
            mismatches=mismatched_cases,
        )
    approved = version.conversion_approved_at is not None
    if approve and not approved and status != "needs_review" and not mismatched_cases and cases:
        services.approve_conversion(version, actor="legacy import")
        approved = True
    return ConversionOutcome(
        tpl_id=row["tpl_id"],
        tenant=tenant.slug,
        channel=channel,
        status=status,
        cases=len(cases),
        mismatches=mismatched_cases,
        version=version.number,
        approved=approved,
        differences=differences,
        issues=issues,
    )


def tenants_of(export: LegacyExport) -> dict[str, Tenant]:
    """The tenants the export's apps became (by app_key); the legacy import (`compat`)
    creates them."""
    keys = [app["app_key"] for app in export.apps if app.get("app_key")]
    return {tenant.app_key: tenant for tenant in Tenant.objects.filter(app_key__in=keys)}


def convert_export(
    export: LegacyExport,
    *,
    tenants: dict[str, Tenant] | None = None,
    tenant_slug_filter: str | None = None,
    approve: bool = True,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda rows: rows,
) -> list[ConversionOutcome]:
    """Converts and verifies the templates of the export's apps that are tenants here
    (`tenants`, by app_key; default: looked up), skipping the others."""
    if tenants is None:
        tenants = tenants_of(export)
    cases = export.cases_by_template()
    outcomes = []
    # each tenant's legacy templates render in a sandboxed process of its own
    renderers: dict[str, LegacyRenderer] = {}
    try:
        for row in progress(export.templates):
            tenant = tenants.get(row.get("app_key", ""))
            if tenant is None or (tenant_slug_filter and tenant.slug != tenant_slug_filter):
                continue
            legacy = renderers.setdefault(tenant.slug, LegacyRenderer())
            outcomes.append(
                convert_template(
                    row, tenant, cases.get(row["tpl_id"], []), approve=approve, legacy=legacy
                )
            )
    finally:
        for legacy in renderers.values():
            legacy.close()
    return outcomes


def strip_sign(content: str) -> str:
    """SMS as sent carries `【sign】` before the rendered template."""
    return SIGN_PREFIX.sub("", content, count=1)
