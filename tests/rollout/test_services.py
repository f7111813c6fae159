"""Stage changes: the runbook's ladder, gates, the audit log, automatic rollback and the
stability clock."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from notify.rollout import metrics, services
from notify.rollout.models import PathMetric, RolloutBatch, RolloutEvent, ShadowComparison
from notify.tenants.models import Tenant

Stage = Tenant.Stage
Action = RolloutEvent.Action


@pytest.fixture
def batch(db) -> RolloutBatch:  # noqa: ANN001
    batch = RolloutBatch.objects.create(name="wave-1", stability_hours=72, retention_days=30)
    for n in range(2):
        Tenant.objects.create(
            slug=f"t{n}",
            name=f"T{n}",
            app_key=f"ak_t{n}",
            stage=Stage.LEGACY,
            rollout_batch=batch,
            rollout_position=n,
        )
    return batch


def tenants(batch: RolloutBatch) -> list[Tenant]:
    return list(batch.tenants.order_by("rollout_position"))


def shadow_evidence(tenant: Tenant, count: int, state: str = "match") -> None:
    ShadowComparison.all_tenants.bulk_create(
        ShadowComparison(
            tenant=tenant,
            endpoint="/gateway/sms/send.do",
            legacy_code=0,
            state=state,
            compared_at=timezone.now(),
        )
        for _ in range(count)
    )


def calls(tenant: Tenant, path: str, count: int, errors: int = 0, at=None) -> None:  # noqa: ANN001
    buckets = [0] * (len(metrics.LATENCY_BOUNDS_MS) + 1)
    buckets[3] = count
    PathMetric.all_tenants.create(
        tenant=tenant,
        path=path,
        period=metrics.period_of(at or timezone.now()),
        calls=count,
        errors=errors,
        latency_ms_total=count * 8.0,
        latency_buckets=buckets,
    )


def test_advance__batch_walks_the_ladder__every_step_audited(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 5
    settings.ROLLOUT_CANARY_STEPS = [10, 50]
    for tenant in tenants(batch):
        shadow_evidence(tenant, 5)
    seen = []
    for _ in range(5):
        services.advance_batch(batch, actor="ann", reason="plan step")
        seen.append([(t.stage, t.canary_percent) for t in tenants(batch)][0])
    assert seen == [("shadow", 0), ("canary", 10), ("canary", 50), ("new", 0), ("new", 0)]
    events = RolloutEvent.objects.filter(action=Action.ADVANCE, tenant_slug="t0").order_by(
        "at", "id"
    )
    # (advancing at new changes nothing, and writes nothing)
    assert [(e.from_stage, e.to_stage, e.to_percent) for e in events] == [
        ("legacy", "shadow", 0),
        ("shadow", "canary", 10),
        ("canary", "canary", 50),
        ("canary", "new", 0),
    ]
    assert all(
        e.actor == "ann" and e.reason == "plan step" and e.batch_name == "wave-1" for e in events
    )


def test_move__no_reason__refused_and_nothing_changes(batch):
    with pytest.raises(services.RolloutError, match="reason"):
        services.advance_batch(batch, actor="ann", reason="  ")
    assert {t.stage for t in tenants(batch)} == {Stage.LEGACY}
    assert not RolloutEvent.objects.exists()


def test_gate__one_tenant_without_evidence__whole_batch_stays(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 5
    services.advance_batch(batch, actor="ann", reason="to shadow")
    first, second = tenants(batch)
    shadow_evidence(first, 5)
    shadow_evidence(second, 2)
    with pytest.raises(services.GateBlocked, match="t1: too few shadowed calls to judge: 2"):
        services.advance_batch(batch, actor="ann", reason="to canary")
    assert {t.stage for t in tenants(batch)} == {Stage.SHADOW}


def test_gate__platform_errors_above_the_old_gateways__blocks_raising_the_canary(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 1
    tenant = tenants(batch)[0]
    shadow_evidence(tenant, 3)
    services.set_canary([tenant], 10, actor="ann", reason="start")
    calls(tenant, "legacy", 100, errors=1)
    calls(tenant, "new", 100, errors=9)
    with pytest.raises(services.GateBlocked, match="platform error rate 9.0% above"):
        services.set_canary([tenant], 50, actor="ann", reason="more")
    # moving back is never gated
    services.set_canary([tenant], 5, actor="ann", reason="less")
    tenant.refresh_from_db()
    assert tenant.canary_percent == 5


def test_pause__canary_paused__routing_kept_and_resume_returns_there(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 0
    tenant = tenants(batch)[0]
    services.set_canary([tenant], 25, actor="ann", reason="start")
    services.pause([tenant], actor="ann", reason="investigating a complaint")
    tenant.refresh_from_db()
    assert (tenant.stage, tenant.paused_stage, tenant.canary_percent) == ("paused", "canary", 25)
    services.advance([tenant], actor="ann", reason="resolved")
    tenant.refresh_from_db()
    assert (tenant.stage, tenant.paused_stage, tenant.canary_percent) == ("canary", "", 25)


def test_roll_back__from_new__legacy_at_once_and_audited(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 0
    services.move(tenants(batch), services.Target(Stage.NEW), actor="ann", reason="go")
    services.roll_back(tenants(batch), actor="bob", reason="customer complaints", batch=batch)
    assert {(t.stage, t.canary_percent) for t in tenants(batch)} == {("legacy", 0)}
    rollbacks = RolloutEvent.objects.filter(action=Action.ROLLBACK)
    assert {(e.actor, e.from_stage, e.to_stage) for e in rollbacks} == {("bob", "new", "legacy")}


def test_audit_log__append_only__update_and_delete_refused(batch):
    services.advance_batch(batch, actor="ann", reason="to shadow")
    event = RolloutEvent.objects.first()
    event.reason = "rewritten"
    with pytest.raises(PermissionDenied):
        event.save()
    with pytest.raises(PermissionDenied):
        event.delete()
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            RolloutEvent.objects.filter(pk=event.pk).update(reason="rewritten")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            RolloutEvent.objects.filter(pk=event.pk).delete()
    assert RolloutEvent.objects.get(pk=event.pk).reason == "to shadow"


def test_auto_rollback__platform_errors_cross_the_threshold__previous_stage_audited(
    batch, settings
):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 0
    settings.ROLLOUT_AUTO_ROLLBACK_MIN_CALLS = 20
    settings.ROLLOUT_AUTO_ROLLBACK_ERROR_RATE = 0.05
    tenant, healthy = tenants(batch)
    services.set_canary([tenant, healthy], 10, actor="ann", reason="start")
    services.set_canary([tenant, healthy], 50, actor="ann", reason="more")
    Tenant.objects.update(stage_changed_at=timezone.now() - timedelta(minutes=2))
    calls(tenant, "new", 40, errors=10)
    calls(healthy, "new", 40, errors=1)
    (event,) = services.auto_roll_back()
    tenant.refresh_from_db()
    healthy.refresh_from_db()
    assert (tenant.stage, tenant.canary_percent) == ("canary", 10)
    assert (healthy.stage, healthy.canary_percent) == ("canary", 50)
    assert event.actor == "system" and event.action == Action.AUTO_ROLLBACK
    assert "25.0%" in event.reason
    # the errors that caused it are not counted against the stage it returned to
    assert services.auto_roll_back() == []


def test_batch__at_new_with_green_gates__complete_after_the_window_then_rollback_limited(
    batch, settings
):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 0
    services.move(tenants(batch), services.Target(Stage.NEW), actor="ann", reason="go", batch=batch)
    batch.refresh_from_db()
    assert batch.new_since is not None and batch.state == RolloutBatch.State.ACTIVE
    services.refresh_batch(batch, now=batch.new_since + timedelta(hours=71))
    assert batch.state == RolloutBatch.State.ACTIVE
    services.refresh_batch(batch, now=batch.new_since + timedelta(hours=72, seconds=1))
    assert batch.state == RolloutBatch.State.COMPLETE
    assert RolloutEvent.objects.filter(action=Action.COMPLETE, batch_name="wave-1").exists()
    # within the retention period, rolling back is one action
    assert batch.can_roll_back
    # after it, the old gateway may be gone: an override is needed
    RolloutBatch.objects.filter(pk=batch.pk).update(
        completed_at=timezone.now() - timedelta(days=31)
    )
    batch.refresh_from_db()
    with pytest.raises(services.RolloutError, match="retention period has ended"):
        services.roll_back(tenants(batch), actor="bob", reason="late", batch=batch)
    services.roll_back(
        tenants(batch), actor="bob", reason="gateway checked", batch=batch, override=True
    )
    batch.refresh_from_db()
    assert batch.state == RolloutBatch.State.ACTIVE and batch.new_since is None


def test_auto_rollback__paused_canary_failing__rolled_back_too(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 0
    settings.ROLLOUT_AUTO_ROLLBACK_MIN_CALLS = 10
    tenant = tenants(batch)[0]
    services.set_canary([tenant], 10, actor="ann", reason="start")
    services.pause([tenant], actor="ann", reason="hold")
    Tenant.objects.update(stage_changed_at=timezone.now() - timedelta(minutes=2))
    calls(tenant, "new", 20, errors=20)
    (event,) = services.auto_roll_back()
    tenant.refresh_from_db()
    assert (event.from_stage, tenant.stage) == ("paused", "legacy")  # where it came from


def test_batch__a_gate_turns_red_in_the_window__clock_starts_again(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 0
    services.move(tenants(batch), services.Target(Stage.NEW), actor="ann", reason="go", batch=batch)
    batch.refresh_from_db()
    started = batch.new_since
    calls(tenants(batch)[0], "new", 100, errors=30)
    later = started + timedelta(hours=10)
    services.refresh_batch(batch, now=later)
    assert batch.new_since == later and batch.state == RolloutBatch.State.ACTIVE


def test_auto_rollback__answers_fine_but_deliveries_fail__rolled_back(batch, settings):
    from notify.messaging.models import AttemptOutcome, DeliveryAttempt, Message, Origin

    settings.ROLLOUT_MIN_SHADOW_CALLS = 0
    settings.ROLLOUT_AUTO_ROLLBACK_MIN_CALLS = 10
    tenant = tenants(batch)[0]
    services.set_canary([tenant], 10, actor="ann", reason="start")
    Tenant.objects.update(stage_changed_at=timezone.now() - timedelta(minutes=2))
    # Given legacy-API messages the platform accepted, whose provider then refused them
    for n in range(10):
        message = Message.all_tenants.create(
            id=f"26120300000000{n:04d}",
            tenant=tenant,
            channel="sms",
            recipient=f"1391234{n:04d}",
            body="code",
            origin=Origin.LEGACY,
        )
        DeliveryAttempt.objects.create(
            message=message,
            number=1,
            started_at=timezone.now(),
            outcome=AttemptOutcome.TEMPORARY_FAILURE if n < 3 else AttemptOutcome.SENT,
            error_kind="provider_down" if n < 3 else "",
        )
    # When the clock runs
    (event,) = services.auto_roll_back()
    # Then the tenant is back where it came from, the reason names the failures
    assert event.to_stage == "legacy" and "delivery failures 30.0% (3/10" in event.reason


def test_metrics__process_goes_idle__its_counts_written_by_its_own_thread(
    transactional_db, settings, monkeypatch
):
    # Given a process counting calls with its flushing thread, and then no more calls
    settings.ROLLOUT_METRICS_FLUSH_THREAD = True
    monkeypatch.setattr(metrics, "FLUSH_INTERVAL_S", 0.2)
    tenant = Tenant.objects.create(slug="idle", name="Idle", app_key="ak_idle")
    recorder = metrics.Recorder()
    try:
        recorder.record(tenant.pk, "SMS_1", "new", True, 3.0)
        # Then the counts reach the database without another call
        deadline = time.monotonic() + 10  # a guard against a hang, not a speed requirement
        while time.monotonic() < deadline and not PathMetric.all_tenants.exists():
            time.sleep(0.05)
        row = PathMetric.all_tenants.get()
        assert (row.tenant_id, row.tpl_id, row.calls, row.errors) == (tenant.pk, "SMS_1", 1, 1)
    finally:
        recorder.stop_flusher()
