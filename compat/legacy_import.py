"""The legacy import: the old gateway's export brought over. Apps become tenants that keep
their app_key and app_secret; templates are converted and verified by the template store;
messages are kept as history so that every old msg_id stays queryable. Idempotent: a second
run of the same export changes nothing. The report compares, per table, a checksum over the
source rows with one over the rows as stored."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils.text import slugify

from compat.models import LegacyMessage
from compat.native import from_db, json_safe, key_from_db, key_to_db, to_db
from notify.channels import registry
from notify.tenants.models import Tenant
from templates_store.legacy import ConversionOutcome, LegacyExport, convert_export
from templates_store.models import Template

MESSAGE_FIELDS = (
    "msg_id",
    "batch_id",
    "app_key",
    "channel",
    "recipient",
    "tpl_id",
    "tpl_params",
    "subject",
    "content",
    "status",
    "err_code",
    "out_id",
    "send_time",
    "report_time",
)
APP_FIELDS = ("app_key", "app_secret", "name", "status", "sign_name", "callback_url", "qps_limit")
TEMPLATE_FIELDS = ("tpl_id", "app_key", "channel", "name", "subject", "content", "params", "status")
CHUNK = 1000

Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]


def no_progress(rows: Iterable[Any], what: str, total: int) -> Iterable[Any]:
    return rows


def tenant_slug(app: dict[str, Any]) -> str:
    # `ak_shop_7f3a9c21d4e8b605` → `shop`; names are often not ASCII.
    key = app["app_key"]
    parts = key.split("_")
    core = "-".join(parts[1:-1]) if len(parts) > 2 else key
    return slugify(core) or slugify(key) or "app"


def _app_values(app: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": app.get("name") or tenant_slug(app),
        "app_secret": app.get("app_secret", ""),
        "status": Tenant.Status.ACTIVE if app.get("status", 1) == 1 else Tenant.Status.DISABLED,
        "sign_name": app.get("sign_name", "") or "",
        "callback_url": app.get("callback_url", "") or "",
        "qps_limit": 200 if app.get("qps_limit") is None else app["qps_limit"],
    }


@transaction.atomic
def import_apps(
    apps: Iterable[dict[str, Any]], stage: str = Tenant.Stage.LEGACY
) -> tuple[dict[str, Tenant], Counter]:
    """One tenant per app, keeping its app_key and app_secret. A new tenant starts on `stage`;
    an existing one keeps its stage (the rollout moves it) and is saved only if the export
    changed it. Returns the tenants by app_key and counts (created, updated, unchanged)."""
    tenants: dict[str, Tenant] = {}
    counts: Counter = Counter()
    for app in apps:
        values = _app_values(app)
        tenant = Tenant.objects.filter(app_key=app["app_key"]).first()
        if tenant is None:
            slug, suffix = tenant_slug(app), 1
            while Tenant.objects.filter(slug=slug).exists():
                suffix += 1
                slug = f"{tenant_slug(app)}-{suffix}"
            tenant = Tenant(slug=slug, app_key=app["app_key"], stage=stage, **values)
            tenant.save()
            counts["created"] += 1
        elif any(getattr(tenant, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(tenant, name, value)
            tenant.save()
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
        tenants[app["app_key"]] = tenant
    return tenants, counts


def _history_row(message: dict[str, Any], tenant: Tenant) -> LegacyMessage:
    return LegacyMessage(
        msg_id=message["msg_id"],
        tenant=tenant,
        batch_id=message.get("batch_id") or "",
        channel=message.get("channel") or "",
        recipient=message.get("recipient") or "",
        tpl_id=message.get("tpl_id") or "",
        tpl_params=json_safe(message.get("tpl_params") or {}),
        subject=to_db(message.get("subject") or ""),
        content=to_db(message.get("content") or ""),
        status=int(message.get("status") or 0),
        err_code=message.get("err_code") or "",
        out_id=key_to_db(message.get("out_id") or ""),
        send_time=message.get("send_time") or "",
        report_time=message.get("report_time") or "",
    )


HISTORY_COLUMNS = [name for name in MESSAGE_FIELDS if name not in ("msg_id", "app_key")]


def import_messages(
    messages: list[dict[str, Any]], tenants: dict[str, Tenant], progress: Progress = no_progress
) -> Counter:
    """The messages as history rows, in chunks of 1,000 (each chunk one transaction): new ones
    inserted, changed ones (a status the old gateway updated since an earlier export) updated,
    the rest left alone. Messages of an app that is not a tenant are skipped and counted."""
    counts: Counter = Counter()
    chunks = [messages[i : i + CHUNK] for i in range(0, len(messages), CHUNK)]
    for chunk in progress(chunks, "messages", len(chunks)):
        rows = []
        for message in chunk:
            tenant = tenants.get(message.get("app_key", ""))
            if tenant is None or not message.get("msg_id"):
                counts["skipped"] += 1
                continue
            rows.append(_history_row(message, tenant))
        existing = {
            row.msg_id: row
            for row in LegacyMessage.all_tenants.filter(pk__in=[r.msg_id for r in rows])
        }
        new = [row for row in rows if row.msg_id not in existing]
        changed = [
            row
            for row in rows
            if row.msg_id in existing
            and _history_values(row) != _history_values(existing[row.msg_id])
        ]
        with transaction.atomic():
            LegacyMessage.all_tenants.bulk_create(new)
            if changed:
                LegacyMessage.all_tenants.bulk_update(changed, ["tenant", *HISTORY_COLUMNS])
        counts["created"] += len(new)
        counts["updated"] += len(changed)
        counts["unchanged"] += len(rows) - len(new) - len(changed)
    return counts


def _history_values(row: LegacyMessage) -> tuple:
    return (row.tenant_id, *(getattr(row, name) for name in HISTORY_COLUMNS))


# ---- verification --------------------------------------------------------------------------


def checksum(rows: Iterable[dict[str, Any]], fields: tuple[str, ...]) -> str:
    """SHA-256 over the rows' `fields`, in key order, whatever order the rows come in."""
    lines = sorted(
        json.dumps([row.get(name) for name in fields], ensure_ascii=False, sort_keys=True)
        for row in rows
    )
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _stored_apps(keys: set[str]) -> list[dict[str, Any]]:
    return [
        {
            "app_key": t.app_key,
            "app_secret": t.app_secret,
            "name": t.name,
            "status": 1 if t.is_active else 0,
            "sign_name": t.sign_name,
            "callback_url": t.callback_url,
            "qps_limit": t.qps_limit,
        }
        for t in Tenant.objects.filter(app_key__in=keys)
    ]


TEMPLATE_STATUS_CODES = {
    Template.Status.DRAFT: 0,
    Template.Status.APPROVED: 1,
    Template.Status.REJECTED: 2,
}


def _stored_templates(keys: set[str]) -> list[dict[str, Any]]:
    rows = []
    templates = (
        Template.all_tenants.filter(tenant__app_key__in=keys)
        .exclude(legacy_tpl_id="")
        .select_related("tenant")
        .prefetch_related("versions")
    )
    for template in templates:
        versions = sorted(
            (v for v in template.versions.all() if v.locale == "" and v.is_converted),
            key=lambda v: v.number,
        )
        latest = versions[-1] if versions else None
        rows.append(
            {
                "tpl_id": template.legacy_tpl_id,
                "app_key": template.tenant.app_key,
                "channel": registry.get(template.channel).legacy_alias,
                "name": template.name,
                "subject": latest.legacy_subject if latest else "",
                "content": latest.legacy_body if latest else "",
                "params": ",".join(template.params or []),
                "status": TEMPLATE_STATUS_CODES.get(template.status, 0),
            }
        )
    return rows


def _stored_messages(msg_ids: list[str]) -> list[dict[str, Any]]:
    rows = []
    for start in range(0, len(msg_ids), CHUNK):
        for row in LegacyMessage.all_tenants.filter(
            pk__in=msg_ids[start : start + CHUNK]
        ).select_related("tenant"):
            values = {name: getattr(row, name) for name in HISTORY_COLUMNS}
            for name in ("subject", "content"):
                values[name] = from_db(values[name])
            values["out_id"] = key_from_db(values["out_id"])
            rows.append({"msg_id": row.msg_id, "app_key": row.tenant.app_key, **values})
    return rows


def _source_template(row: dict[str, Any]) -> dict[str, Any]:
    params = ",".join(p for p in (row.get("params") or "").split(",") if p)
    return {**row, "subject": row.get("subject") or "", "params": params}


def _source_message(row: dict[str, Any]) -> dict[str, Any]:
    out = {name: row.get(name) for name in MESSAGE_FIELDS}
    for name in MESSAGE_FIELDS:
        if out[name] is None and name not in ("status", "tpl_params"):
            out[name] = ""
    out["tpl_params"] = out["tpl_params"] or {}
    out["status"] = int(out["status"] or 0)
    return out


@dataclass
class TableCheck:
    name: str
    source_rows: int
    stored_rows: int
    source_checksum: str
    stored_checksum: str

    @property
    def ok(self) -> bool:
        return self.source_checksum == self.stored_checksum


@dataclass
class ImportReport:
    apps: Counter
    messages: Counter
    templates: list[ConversionOutcome]
    per_tenant: dict[str, Counter] = field(default_factory=dict)
    tables: list[TableCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(table.ok for table in self.tables)


def verify(export: LegacyExport, tenants: dict[str, Tenant]) -> list[TableCheck]:
    keys = set(tenants)
    apps = [a for a in export.apps if a.get("app_key") in keys]
    templates = [_source_template(t) for t in export.templates if t.get("app_key") in keys]
    messages = [_source_message(m) for m in export.messages if m.get("app_key") in keys]
    checks = []
    for name, source, stored, fields in (
        ("apps", apps, _stored_apps(keys), APP_FIELDS),
        ("templates", templates, _stored_templates(keys), TEMPLATE_FIELDS),
        (
            "messages",
            messages,
            _stored_messages([m["msg_id"] for m in messages]),
            MESSAGE_FIELDS,
        ),
    ):
        checks.append(
            TableCheck(
                name, len(source), len(stored), checksum(source, fields), checksum(stored, fields)
            )
        )
    return checks


def import_export(
    export: LegacyExport,
    *,
    stage: str = Tenant.Stage.LEGACY,
    progress: Progress = no_progress,
) -> ImportReport:
    """Apps, then templates (converted and verified), then messages; then the verification."""
    tenants, app_counts = import_apps(export.apps, stage)
    outcomes = convert_export(
        export,
        tenants=tenants,
        progress=lambda rows: progress(rows, "templates", len(export.templates)),
    )
    message_counts = import_messages(export.messages, tenants, progress)
    per_tenant: dict[str, Counter] = {}
    slugs = {key: tenant.slug for key, tenant in tenants.items()}
    for name, rows in (("templates", export.templates), ("messages", export.messages)):
        for row in rows:
            slug = slugs.get(row.get("app_key", ""))
            if slug is not None:
                per_tenant.setdefault(slug, Counter())[name] += 1
    for outcome in outcomes:
        counts = per_tenant.setdefault(outcome.tenant, Counter())
        counts["needs_review"] += outcome.status == "needs_review" or bool(outcome.mismatches)
    return ImportReport(
        apps=app_counts,
        messages=message_counts,
        templates=outcomes,
        per_tenant=per_tenant,
        tables=verify(export, tenants),
    )
