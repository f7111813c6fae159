"""Moving tenants between stages. Every change goes through `move`: it checks the gates when
the change puts more of a tenant's traffic on the platform, applies the change to every tenant
or to none, and writes one audit entry per tenant in the same transaction. The routing reads
the stage from the database on every call, so a committed change is in effect at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notify.rollout import metrics, selectors
from notify.rollout.models import RolloutBatch, RolloutEvent
from notify.tenants.models import Tenant

logger = logging.getLogger(__name__)
Stage = Tenant.Stage
Action = RolloutEvent.Action
SYSTEM_ACTOR = "system"


class RolloutError(Exception):
    """A change that cannot be made as asked (the message says why and what to do)."""


class GateBlocked(RolloutError):
    def __init__(self, verdicts: list[selectors.Verdict]) -> None:
        self.verdicts = verdicts
        lines = [f"{v.tenant.slug}: {'; '.join(v.reasons)}" for v in verdicts]
        super().__init__(
            "blocked by the health gates (override with a reason to go ahead): " + " | ".join(lines)
        )


@dataclass(frozen=True)
class Target:
    stage: str
    percent: int = 0


def share(stage: str, percent: int, paused_stage: str = "") -> int:
    """How much of the tenant's send traffic the platform serves, in percent."""
    if stage == Stage.PAUSED:
        return share(paused_stage or Stage.LEGACY, percent)
    if stage == Stage.NEW:
        return 100
    if stage == Stage.CANARY:
        return percent
    return 0


def _rank(stage: str, percent: int, paused_stage: str = "") -> tuple[int, int]:
    effective = paused_stage if stage == Stage.PAUSED else stage
    effective = effective or Stage.LEGACY
    return selectors.LADDER.index(effective), share(effective, percent)


def next_target(tenant: Tenant) -> Target:
    """The next step of the runbook: legacy → shadow → canary (ROLLOUT_CANARY_STEPS) → new; a
    paused tenant resumes where it was."""
    if tenant.stage == Stage.PAUSED:
        return Target(tenant.paused_stage or Stage.LEGACY, tenant.canary_percent)
    if tenant.stage == Stage.LEGACY:
        return Target(Stage.SHADOW)
    if tenant.stage == Stage.SHADOW:
        return Target(Stage.CANARY, settings.ROLLOUT_CANARY_STEPS[0])
    if tenant.stage == Stage.CANARY:
        for step in settings.ROLLOUT_CANARY_STEPS:
            if step > tenant.canary_percent:
                return Target(Stage.CANARY, step)
        return Target(Stage.NEW)
    return Target(Stage.NEW)


def previous_target(tenant: Tenant) -> Target:
    """Where an automatic rollback goes: the stage the tenant last advanced from, when it is
    below the current one; otherwise one step down the ladder."""
    current = _rank(tenant.stage, tenant.canary_percent, tenant.paused_stage)
    if tenant.previous_stage:
        candidate = Target(tenant.previous_stage, tenant.previous_percent)
        if _rank(candidate.stage, candidate.percent) < current:
            return candidate
    effective = tenant.paused_stage if tenant.stage == Stage.PAUSED else tenant.stage
    if effective == Stage.NEW:
        steps = settings.ROLLOUT_CANARY_STEPS
        return Target(Stage.CANARY, steps[-1])
    if effective == Stage.CANARY:
        return Target(Stage.SHADOW)
    return Target(Stage.LEGACY)


def _validate(target: Target) -> Target:
    if target.stage not in Stage.values:
        raise RolloutError(f"unknown stage {target.stage!r}: one of {', '.join(Stage.values)}")
    if target.stage == Stage.CANARY:
        if not 1 <= target.percent <= 100:
            raise RolloutError("a canary needs a percentage from 1 to 100")
        return target
    return Target(target.stage, 0 if target.stage != Stage.PAUSED else target.percent)


def move(
    tenants: Iterable[Tenant],
    targets: Target | Callable[[Tenant], Target],
    *,
    actor: str,
    reason: str,
    action: str = Action.SET_STAGE,
    override: bool = False,
    batch: RolloutBatch | None = None,
) -> list[RolloutEvent]:
    """Moves each tenant to its target (one Target for all, or a function of the tenant as
    locked): all of them or, when a gate says no and `override` is not set, none (the refusal
    is audited too). A tenant already where it is asked to go is left alone, unaudited."""
    reason = (reason or "").strip()
    if not reason:
        raise RolloutError("a reason is required for every rollout change")
    ids = [t.pk for t in tenants]
    now = timezone.now()
    with transaction.atomic():
        locked = list(Tenant.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
        plan: list[tuple[Tenant, Target]] = []
        for tenant in locked:
            target = targets if isinstance(targets, Target) else targets(tenant)
            if target.stage == Stage.PAUSED:
                if tenant.stage == Stage.PAUSED:
                    continue
                target = Target(Stage.PAUSED, tenant.canary_percent)
            target = _validate(target)
            if target.stage == tenant.stage and (
                target.stage != Stage.CANARY or target.percent == tenant.canary_percent
            ):
                continue
            plan.append((tenant, target))
        _check_retention(plan, override, batch)
        verdicts = []
        for tenant, target in plan:
            before = _rank(tenant.stage, tenant.canary_percent, tenant.paused_stage)
            after = _rank(target.stage, target.percent, _paused_from(tenant, target))
            if after[1] > before[1]:
                verdict = selectors.gate(tenant, target.stage)
                if not verdict.green:
                    verdicts.append(verdict)
        if verdicts and not override:
            _audit_refusal(verdicts, actor, reason, action, batch, plan, now)
            blocked = GateBlocked(verdicts)
        else:
            blocked = None
            events = [
                _apply(
                    tenant,
                    target,
                    actor,
                    reason,
                    action,
                    override and bool(verdicts),
                    batch,
                    now,
                    verdicts,
                )
                for tenant, target in plan
            ]
    if blocked is not None:
        raise blocked
    if batch is not None:
        refresh_batch(batch)
    return events


def _paused_from(tenant: Tenant, target: Target) -> str:
    if target.stage != Stage.PAUSED:
        return ""
    return tenant.paused_stage if tenant.stage == Stage.PAUSED else tenant.stage


def _check_retention(
    plan: list[tuple[Tenant, Target]], override: bool, batch: RolloutBatch | None
) -> None:
    """After a completed batch's retention period, the old gateway may be gone: rolling back
    to it is no longer one action."""
    for tenant, target in plan:
        owner = batch or tenant.rollout_batch
        if (
            target.stage in (Stage.LEGACY, Stage.SHADOW, Stage.CANARY)
            and owner is not None
            and not owner.can_roll_back
            and not override
        ):
            raise RolloutError(
                f"{owner.name} completed on {owner.completed_at:%Y-%m-%d} and its retention "
                f"period has ended: check that the old gateway still serves {tenant.slug}, "
                "then override with a reason"
            )


def _audit_refusal(verdicts, actor, reason, action, batch, plan, now) -> None:  # noqa: ANN001
    with transaction.atomic():
        for verdict in verdicts:
            target = next(t for tenant, t in plan if tenant.pk == verdict.tenant.pk)
            RolloutEvent.objects.create(
                at=now,
                actor=actor,
                action=Action.GATE_BLOCKED,
                tenant=verdict.tenant,
                tenant_slug=verdict.tenant.slug,
                batch=batch,
                batch_name=batch.name if batch else "",
                from_stage=verdict.tenant.stage,
                from_percent=verdict.tenant.canary_percent,
                to_stage=target.stage,
                to_percent=target.percent,
                reason=reason,
                details={"attempted": action, "gates": verdict.reasons},
            )


def _apply(tenant, target, actor, reason, action, override, batch, now, verdicts) -> RolloutEvent:  # noqa: ANN001, PLR0913
    from_stage, from_percent = tenant.stage, tenant.canary_percent
    before = _rank(tenant.stage, tenant.canary_percent, tenant.paused_stage)
    paused_from = _paused_from(tenant, target)
    after = _rank(target.stage, target.percent, paused_from)
    if after > before and target.stage != Stage.PAUSED:
        # where an automatic rollback would return
        tenant.previous_stage = paused_from or (
            tenant.paused_stage if tenant.stage == Stage.PAUSED else tenant.stage
        )
        tenant.previous_percent = tenant.canary_percent
    tenant.paused_stage = paused_from
    tenant.stage = target.stage
    if target.stage == Stage.CANARY:
        tenant.canary_percent = target.percent
    elif target.stage != Stage.PAUSED:
        tenant.canary_percent = 0
    tenant.stage_changed_at = now
    tenant.save(
        update_fields=[
            "stage",
            "canary_percent",
            "paused_stage",
            "previous_stage",
            "previous_percent",
            "stage_changed_at",
            "updated_at",
        ]
    )
    details = {}
    mine = [v for v in verdicts if v.tenant.pk == tenant.pk]
    if mine:
        details["gates_overridden"] = mine[0].reasons
    return RolloutEvent.objects.create(
        at=now,
        actor=actor,
        action=action,
        tenant=tenant,
        tenant_slug=tenant.slug,
        batch=batch or tenant.rollout_batch,
        batch_name=(batch or tenant.rollout_batch).name if (batch or tenant.rollout_batch) else "",
        from_stage=from_stage,
        from_percent=from_percent,
        to_stage=tenant.stage,
        to_percent=tenant.canary_percent,
        reason=reason,
        override=override and bool(mine),
        details=details,
    )


# ---- the admin's actions ---------------------------------------------------------------------


def advance(
    tenants: Iterable[Tenant],
    *,
    actor: str,
    reason: str,
    override: bool = False,
    batch: RolloutBatch | None = None,
) -> list[RolloutEvent]:
    return move(
        tenants,
        next_target,
        actor=actor,
        reason=reason,
        action=Action.ADVANCE,
        override=override,
        batch=batch,
    )


def set_canary(
    tenants: Iterable[Tenant],
    percent: int,
    *,
    actor: str,
    reason: str,
    override: bool = False,
    batch: RolloutBatch | None = None,
) -> list[RolloutEvent]:
    return move(
        tenants,
        Target(Stage.CANARY, percent),
        actor=actor,
        reason=reason,
        action=Action.SET_PERCENT,
        override=override,
        batch=batch,
    )


def pause(
    tenants: Iterable[Tenant], *, actor: str, reason: str, batch: RolloutBatch | None = None
) -> list[RolloutEvent]:
    return move(
        tenants, Target(Stage.PAUSED), actor=actor, reason=reason, action=Action.PAUSE, batch=batch
    )


def roll_back(
    tenants: Iterable[Tenant],
    *,
    actor: str,
    reason: str,
    override: bool = False,
    batch: RolloutBatch | None = None,
) -> list[RolloutEvent]:
    return move(
        tenants,
        Target(Stage.LEGACY),
        actor=actor,
        reason=reason,
        action=Action.ROLLBACK,
        override=override,
        batch=batch,
    )


def advance_batch(batch: RolloutBatch, **kwargs) -> list[RolloutEvent]:  # noqa: ANN003
    return advance(selectors.batch_tenants(batch), batch=batch, **kwargs)


# ---- the clock: automatic rollback and completion ----------------------------------------------


def auto_roll_back(now=None) -> list[RolloutEvent]:  # noqa: ANN001
    """Moves back to its previous stage every tenant whose platform error rate, since its last
    stage change and within ROLLOUT_AUTO_ROLLBACK_WINDOW, crosses the threshold."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.ROLLOUT_AUTO_ROLLBACK_WINDOW)
    events = []
    serving = Q(stage__in=[Stage.CANARY, Stage.NEW]) | Q(
        stage=Stage.PAUSED, paused_stage__in=[Stage.CANARY, Stage.NEW]
    )
    for tenant in Tenant.objects.filter(serving):
        since = now - window
        if tenant.stage_changed_at:
            # whole periods after the change only: one that began before it is the old stage's
            after_change = metrics.period_of(tenant.stage_changed_at) + timedelta(
                seconds=metrics.PERIOD_S
            )
            since = max(since, after_change)
        reason = _failing(tenant, since)
        if reason is None:
            continue
        target = previous_target(tenant)
        try:
            # (moving back passes every gate; past a batch's retention it is refused)
            events += move(
                [tenant], target, actor=SYSTEM_ACTOR, reason=reason, action=Action.AUTO_ROLLBACK
            )
        except RolloutError as exc:
            logger.error("automatic rollback of %s not made: %s (%s)", tenant.slug, exc, reason)
    return events


def _failing(tenant: Tenant, since) -> str | None:  # noqa: ANN001
    """Why the platform path of the tenant fails since `since` (its answers' system errors or
    its deliveries' failures above ROLLOUT_AUTO_ROLLBACK_ERROR_RATE), or None."""
    threshold = settings.ROLLOUT_AUTO_ROLLBACK_ERROR_RATE
    enough = settings.ROLLOUT_AUTO_ROLLBACK_MIN_CALLS
    cell = metrics.path_summary([tenant.pk], since).get(tenant.pk, {}).get("new")
    if cell and cell["calls"] >= enough and cell["error_rate"] > threshold:
        return (
            f"platform error rate {cell['error_rate']:.1%} ({cell['errors']}/{cell['calls']} "
            f"calls since {since:%H:%M:%S}) above {threshold:.1%}"
        )
    attempts, failures = selectors.delivery_summary(tenant, since)
    if attempts >= enough and failures / attempts > threshold:
        return (
            f"platform delivery failures {failures / attempts:.1%} ({failures}/{attempts} "
            f"attempts since {since:%H:%M:%S}) above {threshold:.1%}"
        )
    return None


def refresh_batch(batch: RolloutBatch, now=None) -> RolloutBatch:  # noqa: ANN001
    """Starts (or stops) the batch's stability clock and completes it once its tenants have
    been at `new` for `stability_hours` with their gates green."""
    now = now or timezone.now()
    batch.refresh_from_db()
    tenants = selectors.batch_tenants(batch)
    all_new = bool(tenants) and all(t.stage == Stage.NEW for t in tenants)
    if not all_new:
        if batch.new_since is not None or batch.state == RolloutBatch.State.COMPLETE:
            batch.new_since = None
            batch.state = RolloutBatch.State.ACTIVE
            batch.completed_at = None
            batch.save(update_fields=["new_since", "state", "completed_at"])
        return batch
    if batch.new_since is None:
        batch.new_since = max(t.stage_changed_at or now for t in tenants)
        batch.save(update_fields=["new_since"])
    if batch.state == RolloutBatch.State.COMPLETE:
        return batch
    verdicts = [selectors.gate(t, Stage.NEW) for t in tenants]
    if any(not v.green and not _only_evidence_missing(v) for v in verdicts):
        # the window is one of green gates: a red one starts it again
        batch.new_since = now
        batch.save(update_fields=["new_since"])
        return batch
    if now < batch.new_since + timedelta(hours=batch.stability_hours):
        return batch
    with transaction.atomic():
        batch.state = RolloutBatch.State.COMPLETE
        batch.completed_at = now
        batch.save(update_fields=["state", "completed_at"])
        RolloutEvent.objects.create(
            at=now,
            actor=SYSTEM_ACTOR,
            action=Action.COMPLETE,
            batch=batch,
            batch_name=batch.name,
            from_stage=Stage.NEW,
            to_stage=Stage.NEW,
            reason=f"at new for {batch.stability_hours} h with green gates",
        )
    return batch


def _only_evidence_missing(verdict: selectors.Verdict) -> bool:
    # at `new` nothing is shadowed any more: the lack of fresh shadow calls is no red light
    return all(reason.startswith("too few shadowed calls") for reason in verdict.reasons)


def evaluate() -> None:
    """The rollout's clock (Celery beat): automatic rollbacks, then batch completion."""
    auto_roll_back()
    for batch in RolloutBatch.objects.filter(state=RolloutBatch.State.ACTIVE):
        refresh_batch(batch)
    for batch in RolloutBatch.objects.filter(state=RolloutBatch.State.COMPLETE):
        refresh_batch(batch)
