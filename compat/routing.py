"""Which system answers a legacy call while its tenant moves (notify.rollout.routing has the
stages and the canary buckets; this module reads a call's parameters for them).

- A send goes by its tenant's stage; at `canary`, by its first recipient's bucket.
- A send whose out_id either system already answered (or is answering) goes to the platform,
  which replays the first answer: proxied sends with an out_id are claimed in the platform's
  send requests before they are forwarded, and keep the old gateway's answer. A client's retry
  across a stage change therefore never sends twice, from either side.
- A status or detail query goes to the system that issued the msg_id: the platform when it is
  one of its messages (or of the imported history), the old gateway otherwise.
- `template/get.do` is answered by the platform once the tenant is at `new`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from compat import native
from compat.models import LegacyMessage
from compat.protocol import LegacyError, normalise_mobile, split_list
from notify.messaging.models import Message, SendRequest
from notify.rollout.routing import Route, TenantStage, send_route, tenant_stage
from notify.tenants.models import Tenant

QUERY_PATHS = {"/gateway/message/status.do", "/gateway/message/detail.do"}
SEND_PATHS = {
    "/gateway/sms/send.do",
    "/gateway/sms/batch_send.do",
    "/gateway/mail/send.do",
    "/gateway/push/send.do",
}


@dataclass
class Decision:
    route: str
    stage: TenantStage | None


def decide(path: str, params: dict[str, str]) -> Decision:
    app_key = params.get("app_key", "")
    if not native.storable(app_key):
        return Decision(Route.LEGACY, None)
    stage = tenant_stage(app_key)
    if stage is None:
        return Decision(Route.LEGACY, None)
    if path in QUERY_PATHS:
        route = (
            Route.NEW if issued_here(stage.tenant_id, params.get("msg_id", "")) else Route.LEGACY
        )
        return Decision(route, stage)
    if path in SEND_PATHS:
        out_id = params.get("out_id", "")
        if out_id and answered_here(stage.tenant_id, path, out_id):
            return Decision(Route.NEW, stage)
        return Decision(send_route(stage, app_key, first_recipient(path, params)), stage)
    route = Route.NEW if stage.effective_stage == Tenant.Stage.NEW else Route.LEGACY
    return Decision(route, stage)


def issued_here(tenant_id: int, msg_id: str) -> bool:
    if not msg_id or len(msg_id) > 18 or not native.storable(msg_id):
        return False
    return (
        Message.all_tenants.filter(pk=msg_id, tenant_id=tenant_id).exists()
        or LegacyMessage.all_tenants.filter(pk=msg_id, tenant_id=tenant_id).exists()
    )


def answered_here(tenant_id: int, endpoint: str, out_id: str) -> bool:
    """Whether the out_id has a send request (answered or being answered) on the platform."""
    if len(out_id) > 64 or not native.storable(out_id):
        return False
    return SendRequest.all_tenants.filter(
        tenant_id=tenant_id, endpoint=endpoint, idempotency_key=native.to_db(out_id)
    ).exists()


def first_recipient(path: str, params: dict[str, str]) -> str | None:
    """The call's first recipient as the platform stores it; None when it has none readable
    (the call is then refused the same way by either system)."""
    try:
        if path == "/gateway/sms/send.do":
            first = next(iter(split_list(params.get("mobiles", ""))), None)
            return normalise_mobile(first) if first else None
        if path == "/gateway/sms/batch_send.do":
            items = json.loads(params.get("items", ""))
            mobile = items[0]["mobile"] if isinstance(items, list) and items else None
            return normalise_mobile(mobile.strip()) if isinstance(mobile, str) else None
        if path == "/gateway/mail/send.do":
            first = next(iter(split_list(params.get("to", ""))), None)
            return first.strip().lower() if first else None
        if path == "/gateway/push/send.do":
            first = next(iter(split_list(params.get("user_ids", ""))), None)
            return first.strip() if first else None
    except (LegacyError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    return None
