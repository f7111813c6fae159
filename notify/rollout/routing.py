"""Which system serves a tenant's legacy call. The stage is read from the database on every
call (no process keeps a copy), so a change is seen by every web and worker process at once.

Canary routing is sticky and monotonic (as Unleash's gradual rollout): a recipient's bucket is
a hash of the tenant's app_key and the recipient, 0 to 9,999; a recipient is served by the
platform while its bucket is below `canary_percent` × 100. Raising the percentage only moves
recipients from the old gateway to the platform, and a recipient's codes never alternate
between the two systems while the percentage holds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from notify.tenants.models import Tenant

Stage = Tenant.Stage
BUCKETS = 10_000


class Route:
    LEGACY = "legacy"  # proxied to the old gateway
    SHADOW = "shadow"  # proxied, then compared with the platform's dry run
    NEW = "new"  # served by the platform


@dataclass(frozen=True)
class TenantStage:
    tenant_id: int
    stage: str
    canary_percent: int
    paused_stage: str

    @property
    def effective_stage(self) -> str:
        """A paused tenant is routed as in the stage it was paused in."""
        if self.stage == Stage.PAUSED:
            return self.paused_stage or Stage.LEGACY
        return self.stage


def tenant_stage(app_key: str) -> TenantStage | None:
    """The tenant's stage, read afresh (one indexed query)."""
    row = (
        Tenant.objects.filter(app_key=app_key)
        .values_list("pk", "stage", "canary_percent", "paused_stage")
        .first()
    )
    return TenantStage(*row) if row is not None else None


def bucket(app_key: str, recipient: str) -> int:
    digest = hashlib.sha1(f"{app_key}:{recipient}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_canary(app_key: str, recipient: str, percent: int) -> bool:
    return bucket(app_key, recipient) < max(0, min(percent, 100)) * (BUCKETS // 100)


def send_route(stage: TenantStage | None, app_key: str, recipient: str | None) -> str:
    """Where a send goes; `recipient` is the call's first recipient, normalised (None: the
    call names none the platform could read, so it goes where nothing changes: the old
    gateway, unless the tenant is fully moved)."""
    if stage is None:
        return Route.LEGACY
    effective = stage.effective_stage
    if effective == Stage.NEW:
        return Route.NEW
    if effective == Stage.SHADOW:
        return Route.SHADOW
    if effective == Stage.CANARY:
        # the old gateway's share of a canary is still shadowed: evidence for the next step
        if recipient is not None and in_canary(app_key, recipient, stage.canary_percent):
            return Route.NEW
        return Route.SHADOW
    return Route.LEGACY
