"""Read side of the rollout: each tenant's health (shadow match rate, per-path error rates and
latency) and the gates' verdicts on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from notify.messaging.models import AttemptOutcome, DeliveryAttempt, Origin
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
    # the platform's delivery attempts of the tenant's legacy-API messages: how many ended,
    # how many failed for a reason other than the recipient
    delivery_attempts: int = 0
    delivery_failures: int = 0

    @property
    def delivery_failure_rate(self) -> float:
        return self.delivery_failures / self.delivery_attempts if self.delivery_attempts else 0.0

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
    result.delivery_attempts, result.delivery_failures = delivery_summary(tenant, since)
    return result


FAILED_ATTEMPTS = [
    AttemptOutcome.TEMPORARY_FAILURE,
    AttemptOutcome.PERMANENT_FAILURE,
    AttemptOutcome.ABANDONED,
]


def delivery_summary(tenant: Tenant, since) -> tuple[int, int]:  # noqa: ANN001
    """(attempts ended, attempts failed) of the platform's deliveries of the tenant's legacy-API
    messages since `since`: a call answered `0` whose message then fails to go out is an error
    of the platform path too (a recipient that cannot receive is not)."""
    attempts = DeliveryAttempt.objects.filter(
        message__tenant=tenant, message__origin=Origin.LEGACY, started_at__gte=since
    ).exclude(outcome=AttemptOutcome.SENDING)
    counts = attempts.aggregate(
        ended=Count("id"),
        failed=Count("id", filter=Q(outcome__in=FAILED_ATTEMPTS) & ~Q(error_kind="bad_recipient")),
    )
    return counts["ended"], counts["failed"]


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
    if (
        h.delivery_attempts >= settings.ROLLOUT_AUTO_ROLLBACK_MIN_CALLS
        and h.delivery_failure_rate > settings.ROLLOUT_MAX_DELIVERY_FAILURE_RATE
    ):
        limit = settings.ROLLOUT_MAX_DELIVERY_FAILURE_RATE
        reasons.append(
            f"platform delivery failures {h.delivery_failures}/{h.delivery_attempts} "
            f"({h.delivery_failure_rate:.1%}) above {limit:.1%}"
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


def template_breakdown(tenant: Tenant, window: timedelta) -> list[dict]:
    """Per template of the tenant: its shadow comparisons and both paths' calls, errors and
    latency over `window` (the dashboard's detail rows)."""
    since = timezone.now() - window
    rows: dict[str, dict] = {}

    def row(tpl_id: str) -> dict:
        return rows.setdefault(
            tpl_id,
            {"tpl_id": tpl_id, "compared": 0, "mismatches": 0, "noise": 0, "paths": {}},
        )

    comparisons = (
        ShadowComparison.objects.for_tenant(tenant)
        .filter(created_at__gte=since)
        .exclude(state__in=[State.PENDING, State.UNREADABLE])
        .filter(_current_versions(tenant))
        .values("tpl_id", "state")
        .annotate(n=Count("id"))
    )
    for item in comparisons:
        entry = row(item["tpl_id"])
        entry["compared"] += item["n"]
        if item["state"] == State.MISMATCH:
            entry["mismatches"] += item["n"]
        elif item["state"] == State.NOISE:
            entry["noise"] += item["n"]
    for tpl_id in {r["tpl_id"] for r in metrics.templates_seen(tenant.pk, since)}:
        row(tpl_id)["paths"] = metrics.path_summary([tenant.pk], since, tpl_id).get(tenant.pk, {})
    for entry in rows.values():
        counted = entry["compared"]
        entry["match_rate"] = (counted - entry["mismatches"]) / counted if counted else None
        for name in ("legacy", "new"):
            entry.setdefault("paths", {}).setdefault(
                name, {"calls": 0, "errors": 0, "p50_ms": None, "p99_ms": None}
            )
    return sorted(rows.values(), key=lambda e: e["tpl_id"])


def consistency_series(tenant_ids: list[int], since, step: timedelta) -> dict[str, list[int]]:  # noqa: ANN001
    """Shadow comparisons and mismatches per `step` since `since` (the dashboard's chart)."""
    count = max(1, int((timezone.now() - since) / step) + 1)
    out = {"compared": [0] * count, "mismatches": [0] * count}
    rows = (
        ShadowComparison.all_tenants.filter(tenant_id__in=tenant_ids, created_at__gte=since)
        .exclude(state__in=[State.PENDING, State.UNREADABLE])
        .annotate(minute=TruncMinute("created_at"))
        .values("minute", "state")
        .annotate(n=Count("id"))
    )
    for item in rows:
        index = min(count - 1, int((item["minute"] - since) / step))
        out["compared"][index] += item["n"]
        if item["state"] == State.MISMATCH:
            out["mismatches"][index] += item["n"]
    return out
