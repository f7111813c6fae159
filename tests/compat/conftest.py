import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from compat import guards
from compat.legacy_import import import_export
from notify.tenants.models import Tenant
from templates_store.legacy import LegacyExport
from tests.conftest import ReferenceGateway
from tests.messaging.conftest import (  # noqa: F401 - the worker's delivery, in-process
    announced,
    deliver,
    deliver_then_die,
)

SHOP_TEMPLATES = {
    "SMS_100001",
    "SMS_100003",
    "SMS_100007",
    "SMS_100008",
    "MAIL_200005",
    "PUSH_300002",
    "PUSH_300003",
}
LOGI_TEMPLATES = {"SMS_100101"}
HRSAAS_TEMPLATES = {"SMS_100304"}


@pytest.fixture
def legacy_world(db, legacy_export: LegacyExport) -> dict[str, Tenant]:
    """Every legacy app imported (stage new), a few of shop's templates converted, and the
    first 200 historical messages of each app."""
    wanted = SHOP_TEMPLATES | LOGI_TEMPLATES | HRSAAS_TEMPLATES
    per_app: dict[str, int] = {}
    messages = []
    for message in legacy_export.messages:
        key = message["app_key"]
        if per_app.get(key, 0) < 200:
            per_app[key] = per_app.get(key, 0) + 1
            messages.append(message)
    export = LegacyExport(
        apps=legacy_export.apps,
        templates=[t for t in legacy_export.templates if t["tpl_id"] in wanted],
        samples=[s for s in legacy_export.samples if s.get("tpl_id") in wanted],
        messages=messages,
    )
    report = import_export(export, stage=Tenant.Stage.NEW)
    assert report.ok
    guards.reset_local_state()
    return {t.slug: t for t in Tenant.objects.all()}


def app_row(legacy_export: LegacyExport, prefix: str) -> dict[str, Any]:
    return next(a for a in legacy_export.apps if a["app_key"].startswith(f"ak_{prefix}_"))


def sign(params: dict[str, str], secret: str) -> str:
    parts = [secret]
    for key in sorted(k for k, v in params.items() if k != "sign" and v != ""):
        parts += [key, params[key]]
    parts.append(secret)
    return hashlib.md5("".join(parts).encode()).hexdigest().upper()


@dataclass
class Answer:
    status: int
    content_type: str | None
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> int:
        return self.json["code"]


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@pytest.fixture
def legacy_call(legacy_export: LegacyExport) -> Callable[..., Answer]:
    """Calls the legacy API as a business service does: signed with the app's secret, a
    fresh timestamp and nonce."""
    client = Client()

    def call(method: str, path: str, app: str = "shop", **params: Any) -> Answer:
        row = app_row(legacy_export, app)
        dropped = [k for k, v in params.items() if v is None]
        full = {k: as_text(v) for k, v in params.items() if v is not None}
        full.setdefault("app_key", row["app_key"])
        full.setdefault("timestamp", str(int(time.time() * 1000)))
        full.setdefault("nonce", secrets.token_hex(8))
        full.setdefault("sign", sign(full, row["app_secret"]))
        full = {k: v for k, v in full.items() if k not in dropped}
        url = f"/gateway/{path}"
        if method == "GET":
            response = client.get(url, full)
        else:
            response = client.generic(
                method,
                url,
                "&".join(f"{_quote(k)}={_quote(v)}" for k, v in full.items()).encode(),
                content_type="application/x-www-form-urlencoded;charset=UTF-8",
            )
        return Answer(response.status_code, response.headers.get("Content-Type"), response.content)

    return call


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


@pytest.fixture
def via_reference(settings, reference_gateway: ReferenceGateway) -> ReferenceGateway:  # noqa: ANN001
    """The platform in front of the reference gateway (proxy, shadow and canary stages)."""
    settings.LEGACY_GATEWAY_URL = reference_gateway.url
    return reference_gateway
