"""Which system answers a legacy call while its tenant moves (notify.rollout.routing has the
stages and the canary buckets; this module reads a call's parameters for them).

- A send goes by its tenant's stage; at `canary`, by its first recipient's bucket; a send with
  an out_id goes where its out_id is (compat.out_ids), so that a client's retry across a stage
  change never sends twice, from either side.
- A status or detail query goes to the system that issued the msg_id: the platform when it is
  one of its messages, the old gateway otherwise (imported history included: the old gateway
  keeps it up to date; without an old gateway, the platform answers it).
- `template/get.do` is answered by the platform once the tenant is at `new`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from compat import native, out_ids
from compat.protocol import LegacyError, normalise_mobile, split_list
from notify.messaging.models import Message
from notify.rollout.routing import Route, TenantStage, send_route, tenant_stage
from notify.tenants.models import Tenant

QUERY_PATHS = {"/gateway/message/status.do", "/gateway/message/detail.do"}
SEND_PATHS = {
    "/gateway/sms/send.do",
    "/gateway/sms/batch_send.do",
    "/gateway/mail/send.do",
    "/gateway/push/send.do",
}


# the out_id's first call is still being answered by the platform: the legacy `50000`, retry
BUSY = "busy"


@dataclass
class Decision:
    route: str
    stage: TenantStage | None
    # the out_id this forwarded call holds for the old gateway (its answer settles it)
    held_out_id: str = ""


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
        route = send_route(stage, app_key, first_recipient(path, params))
        out_id = params.get("out_id", "")
        if out_ids.keepable(out_id):
            return _by_out_id(route, stage, path, out_id)
        return Decision(route, stage)
    route = Route.NEW if stage.effective_stage == Tenant.Stage.NEW else Route.LEGACY
    return Decision(route, stage)


def _by_out_id(route: str, stage: TenantStage, path: str, out_id: str) -> Decision:
    tenant_id = stage.tenant_id
    # (the platform's own concurrent call is waited for by the platform's send itself)
    found = out_ids.state(tenant_id, path, out_id, wait_s=0 if route == Route.NEW else None)
    if found == out_ids.ANSWERED:
        return Decision(Route.NEW, stage)  # replayed
    if found == out_ids.ANSWERED_THERE:
        return _answered_there(route, stage)
    if found == out_ids.HELD:
        return Decision(Route.LEGACY, stage, held_out_id=out_id)  # the old gateway decides
    if route == Route.NEW:
        return Decision(Route.NEW, stage)
    if found == out_ids.BUSY:
        return Decision(BUSY, stage)
    held = out_ids.hold(tenant_id, path, out_id)
    if held == out_ids.HELD:
        return Decision(route, stage, held_out_id=out_id)
    if held == out_ids.ANSWERED:
        return Decision(Route.NEW, stage)
    if held == out_ids.ANSWERED_THERE:
        return _answered_there(route, stage)
    return Decision(BUSY, stage)


def _answered_there(route: str, stage: TenantStage) -> Decision:
    """A retry of an out_id the old gateway answered: while the old gateway is the call's route
    it replays its own answer (and counts the call, its nonce included); a replay is nothing to
    compare in shadow (the first call was). Else the platform replays the answer it kept."""
    if route == Route.NEW:
        return Decision(Route.NEW, stage)
    return Decision(Route.LEGACY, stage)


def issued_here(tenant_id: int, msg_id: str) -> bool:
    if not msg_id or len(msg_id) > 18 or not native.storable(msg_id):
        return False
    return Message.all_tenants.filter(pk=msg_id, tenant_id=tenant_id).exists()


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
