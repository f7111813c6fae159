"""Read side of the rollout: each tenant's health (shadow match rate, per-path error rates and
latency) and the gates' verdicts on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from notify.rollout import metrics
from notify.rollout.models import RolloutBatch, ShadowComparison
from notify.tenants.models import Tenant
from templates_store.models import Template, TemplateVersion

Stage = Tenant.Stage
State = ShadowComparison.State
LADDER = [Stage.LEGACY, Stage.SHADOW, Stage.CANARY, Stage.NEW]


@dataclass
class Health:
    tenant: Tenant
    compared: int = 0
    matches: int = 0
    mismatches: int = 0
    noise: int = 0
    ignored: int = 0
    unreadable: int = 0
    pending: int = 0
    # mismatches per legacy tpl_id
    mismatched_templates: dict[str, int] = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    @property
    def match_rate(self) -> float | None:
        counted = self.compared - self.unreadable
        return (counted - self.mismatches) / counted if counted else None

    @property
    def mismatch_rate(self) -> float:
        counted = self.compared - self.unreadable
        return self.mismatches / counted if counted else 0.0

    def path(self, name: str) -> dict:
        return self.paths.get(
            name, {"calls": 0, "errors": 0, "error_rate": 0.0, "p50_ms": None, "p99_ms": None}
        )

    @property
    def canary_share(self) -> float | None:
        """The platform's share of the calls in the window."""
        new, legacy = self.path("new")["calls"], self.path("legacy")["calls"]
        return new / (new + legacy) if new + legacy else None


def _current_versions(tenant: Tenant) -> Q:
    """Comparisons that judge what the tenant's templates are now: made with a version that is
    still published (a fixed template starts afresh), or without a template (a raw mail)."""
    published = TemplateVersion.objects.filter(
        template__in=Template.objects.for_tenant(tenant), published=True
    ).values("pk")
    return Q(version_id__isnull=True) | Q(version_id__in=published)


def health(tenant: Tenant, window: timedelta | None = None) -> Health:
    window = window or timedelta(seconds=settings.ROLLOUT_GATE_WINDOW)
    since = timezone.now() - window
    result = Health(tenant)
    rows = (
        ShadowComparison.objects.for_tenant(tenant)
        .filter(created_at__gte=since)
        .filter(Q(state=State.PENDING) | _current_versions(tenant))
        .values("state", "tpl_id")
        .annotate(n=Count("id"))
    )
    for row in rows:
        state, count = row["state"], row["n"]
        if state == State.PENDING:
            result.pending += count
            continue
        result.compared += count
        if state == State.MISMATCH:
            result.mismatches += count
            result.mismatched_templates[row["tpl_id"]] = (
                result.mismatched_templates.get(row["tpl_id"], 0) + count
            )
        elif state == State.NOISE:
            result.noise += count
            result.matches += count
        elif state == State.IGNORED:
            result.ignored += count
            result.matches += count
        elif state == State.UNREADABLE:
            result.unreadable += count
        else:
            result.matches += count
    result.paths = metrics.path_summary([tenant.pk], since).get(tenant.pk, {})
    return result


@dataclass
class Verdict:
    tenant: Tenant
    reasons: list[str]

    @property
    def green(self) -> bool:
        return not self.reasons


def gate(tenant: Tenant, target: str, health_: Health | None = None) -> Verdict:
    """Whether the tenant may move to `target`. Moving back, pausing, and leaving `legacy`
    for `shadow` are always allowed; moving the tenant's traffic onto the platform (canary,
    a larger canary, new) needs evidence: enough shadowed calls, no mismatch above the
    threshold, and a platform error rate no worse than the old gateway's."""
    if target not in (Stage.CANARY, Stage.NEW):
        return Verdict(tenant, [])
    h = health_ or health(tenant)
    reasons = []
    counted = h.compared - h.unreadable
    if counted < settings.ROLLOUT_MIN_SHADOW_CALLS:
        reasons.append(
            f"too few shadowed calls to judge: {counted} compared, "
            f"{settings.ROLLOUT_MIN_SHADOW_CALLS} needed"
        )
    if h.mismatches and h.mismatch_rate > settings.ROLLOUT_MAX_MISMATCH_RATE:
        templates = ", ".join(
            f"{tpl or '(no template)'}: {n}" for tpl, n in sorted(h.mismatched_templates.items())
        )
        reasons.append(
            f"shadow mismatches {h.mismatches}/{counted} ({h.mismatch_rate:.1%}) above "
            f"{settings.ROLLOUT_MAX_MISMATCH_RATE:.1%} ({templates})"
        )
    new, legacy = h.path("new"), h.path("legacy")
    if new["calls"] and new["error_rate"] > legacy["error_rate"] + settings.ROLLOUT_ERROR_MARGIN:
        reasons.append(
            f"platform error rate {new['error_rate']:.1%} above the old gateway's "
            f"{legacy['error_rate']:.1%} (+{settings.ROLLOUT_ERROR_MARGIN:.1%} allowed)"
        )
    return Verdict(tenant, reasons)


def batch_tenants(batch: RolloutBatch) -> list[Tenant]:
    return list(batch.tenants.order_by("rollout_position", "slug"))


def batch_stage(tenants: list[Tenant]) -> str:
    """The batch's stage: its tenants' when they agree, else the lowest on the ladder."""
    stages = {t.stage for t in tenants}
    if not stages:
        return Stage.LEGACY
    if len(stages) == 1:
        return stages.pop()
    if Stage.PAUSED in stages:
        return Stage.PAUSED
    return min(stages, key=LADDER.index)
