"""The legacy API while a tenant moves, against the real reference gateway: shadow calls are
proxied and compared, canary recipients are split by their bucket, status queries go to the
system that issued the msg_id, and an out_id's retry across a stage change sends nothing."""

from __future__ import annotations

import secrets

import pytest

from compat import shadow
from notify.messaging.models import Message
from notify.rollout import metrics, routing, selectors, services
from notify.rollout.models import PathMetric, RolloutBatch, RolloutEvent, ShadowComparison
from notify.tenants.models import Tenant
from templates_store.models import TemplateVersion
from tests.smtp import free_port

CODE_PARAMS = {"code": "482913", "minutes": "5"}


def set_stage(tenant: Tenant, stage: str, percent: int = 0) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(stage=stage, canary_percent=percent)


def send_code(legacy_call, mobile: str, **extra):  # noqa: ANN001, ANN003, ANN201
    return legacy_call(
        "POST", "sms/send.do", mobiles=mobile, tpl_id="SMS_100001", tpl_params=CODE_PARAMS, **extra
    )


def mobiles(count: int, start: int = 0) -> list[str]:
    return [f"1391234{n:04d}" for n in range(start, start + count)]


def compare_all() -> list[str]:
    pending = ShadowComparison.all_tenants.filter(state=ShadowComparison.State.PENDING)
    return [shadow.compare(pk) for pk in pending.values_list("pk", flat=True)]


@pytest.fixture
def shop(legacy_world, via_reference) -> Tenant:  # noqa: ANN001
    return legacy_world["shop"]


def test_shadow__converted_template__old_gateway_sends_platform_compares_and_matches(
    shop, legacy_call, via_reference
):
    # Given a tenant in shadow
    set_stage(shop, Tenant.Stage.SHADOW)
    # When a business service sends a code
    answer = send_code(legacy_call, "13912340001")
    # Then the old gateway sent it, the platform sent nothing
    assert answer.code == 0
    msg_id = answer.json["data"]["msg_ids"][0]
    assert msg_id in {m["msg_id"] for m in via_reference.sent()}
    assert not Message.all_tenants.filter(tenant=shop).exists()
    # and the comparison of both systems' message matches
    assert compare_all() == [ShadowComparison.State.MATCH]
    comparison = ShadowComparison.all_tenants.get(tenant=shop)
    assert comparison.legacy_msg_ids == [msg_id]
    assert comparison.differences == [] and comparison.new_code == 0


def test_shadow__broken_converted_template__mismatch_found_and_the_gate_blocks_advancing(
    shop, legacy_call, settings
):
    # Given a converted template that renders something else than the legacy one
    settings.ROLLOUT_MIN_SHADOW_CALLS = 3
    version = TemplateVersion.objects.get(
        template__tenant=shop, template__legacy_tpl_id="SMS_100001", published=True
    )
    TemplateVersion.objects.filter(pk=version.pk).update(body=version.body.replace("分钟", "小时"))
    set_stage(shop, Tenant.Stage.SHADOW)
    # When shadowed calls are compared
    for mobile in mobiles(4):
        assert send_code(legacy_call, mobile).code == 0
    assert compare_all() == [ShadowComparison.State.MISMATCH] * 4
    # Then the difference is the content, both renderings shown
    comparison = ShadowComparison.all_tenants.filter(tenant=shop).first()
    (difference,) = comparison.differences
    assert difference["field"] == "content"
    assert "5分钟" in difference["legacy"] and "5小时" in difference["new"]
    # and the batch it belongs to cannot advance to canary, none of its tenants
    batch = RolloutBatch.objects.create(name="wave-1")
    Tenant.objects.filter(slug__in=["shop", "logi"]).update(rollout_batch=batch)
    Tenant.objects.filter(slug="logi").update(stage=Tenant.Stage.SHADOW)
    with pytest.raises(services.GateBlocked, match="SMS_100001: 4"):
        services.advance_batch(batch, actor="ops", reason="shadow looked fine")
    assert set(batch.tenants.values_list("stage", flat=True)) == {Tenant.Stage.SHADOW}
    refusal = RolloutEvent.objects.get(action=RolloutEvent.Action.GATE_BLOCKED, tenant_slug="shop")
    assert refusal.to_stage == Tenant.Stage.CANARY and refusal.batch_name == "wave-1"
    # unless an admin overrides it, with a reason, audited
    shop.refresh_from_db()
    (event,) = services.advance([shop], actor="ops", reason="accepted: wording", override=True)
    assert event.override and event.to_stage == Tenant.Stage.CANARY


def test_shadow__template_fixed__old_mismatches_no_longer_block(shop, legacy_call, settings):
    # Given mismatches made with a broken version
    settings.ROLLOUT_MIN_SHADOW_CALLS = 2
    version = TemplateVersion.objects.get(
        template__tenant=shop, template__legacy_tpl_id="SMS_100001", published=True
    )
    TemplateVersion.objects.filter(pk=version.pk).update(body=version.body + "!")
    set_stage(shop, Tenant.Stage.SHADOW)
    for mobile in mobiles(2):
        send_code(legacy_call, mobile)
    compare_all()
    assert not selectors.gate(shop, Tenant.Stage.CANARY).green
    # When a fixed version is published
    TemplateVersion.objects.filter(pk=version.pk).update(published=False)
    TemplateVersion.objects.create(
        template=version.template,
        number=version.number + 1,
        locale=version.locale,
        subject=version.subject,
        body=version.body,
        engine=version.engine,
        legacy_subject=version.legacy_subject,
        legacy_body=version.legacy_body,
        published=True,
    )
    from compat import native

    native.lookups.forget()
    # Then the gate waits for new evidence, and passes on it
    assert "too few shadowed calls" in " ".join(selectors.gate(shop, Tenant.Stage.CANARY).reasons)
    for mobile in mobiles(2, start=10):
        send_code(legacy_call, mobile)
    assert compare_all() == [ShadowComparison.State.MATCH] * 2
    assert selectors.gate(shop, Tenant.Stage.CANARY).green


def test_shadow__endpoint_error__codes_compared_without_sending(shop, legacy_call):
    # Given a tenant in shadow, when a call misses a template parameter
    set_stage(shop, Tenant.Stage.SHADOW)
    answer = legacy_call(
        "POST", "sms/send.do", mobiles="13912340001", tpl_id="SMS_100001", tpl_params={"code": "1"}
    )
    # Then the old gateway's error is the answer, and the platform would have given the same
    assert answer.code == 20002
    assert compare_all() == [ShadowComparison.State.MATCH]
    assert ShadowComparison.all_tenants.get(tenant=shop).new_code == 20002


def test_shadow__bad_signature__not_compared(shop, legacy_call):
    set_stage(shop, Tenant.Stage.SHADOW)
    answer = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13912340001",
        tpl_id="SMS_100001",
        tpl_params=CODE_PARAMS,
        sign="0" * 32,
    )
    assert answer.code == 10003
    assert not ShadowComparison.all_tenants.exists()


def test_canary__recipients__each_served_by_the_system_of_its_bucket(
    shop, legacy_call, via_reference
):
    # Given a canary at 50%
    set_stage(shop, Tenant.Stage.CANARY, 50)
    numbers = mobiles(40, start=100)
    # When each recipient gets a code
    issued = {m: send_code(legacy_call, m).json["data"]["msg_ids"][0] for m in numbers}
    # Then the platform sent exactly those in the canary's buckets, the old gateway the others
    ours = set(Message.all_tenants.filter(tenant=shop).values_list("recipient", flat=True))
    expected = {m for m in numbers if routing.in_canary(shop.app_key, m, 50)}
    assert ours == expected and 0 < len(ours) < len(numbers)
    theirs = {line["msg_id"] for line in via_reference.sent()}
    for mobile, msg_id in issued.items():
        assert (msg_id in theirs) == (mobile not in expected)
    # and a second code for each goes the same way (sticky)
    for mobile in numbers:
        send_code(legacy_call, mobile)
    assert Message.all_tenants.filter(tenant=shop).count() == 2 * len(expected)


def test_status__after_rollback__each_msg_id_answered_by_the_system_that_issued_it(
    shop, legacy_call
):
    # Given codes sent during a 50% canary by both systems
    set_stage(shop, Tenant.Stage.CANARY, 50)
    issued = [send_code(legacy_call, m).json["data"]["msg_ids"][0] for m in mobiles(12, 200)]
    ours = set(Message.all_tenants.filter(tenant=shop).values_list("pk", flat=True))
    assert ours and ours != set(issued)
    # When the tenant is rolled back to legacy
    set_stage(shop, Tenant.Stage.LEGACY)
    # Then every msg_id, of either system, still has its status and detail
    for msg_id in issued:
        status = legacy_call("GET", "message/status.do", msg_id=msg_id)
        detail = legacy_call("GET", "message/detail.do", msg_id=msg_id)
        assert status.code == 0 and status.json["data"]["msg_id"] == msg_id
        assert detail.code == 0 and "482913" in detail.json["data"]["content"]
    # and the same holds once it is at new again
    set_stage(shop, Tenant.Stage.NEW)
    for msg_id in issued:
        assert legacy_call("GET", "message/status.do", msg_id=msg_id).code == 0


def test_out_id__proxied_first__retry_at_new_replays_the_old_gateways_answer(
    shop, legacy_call, via_reference
):
    # Given a send with an out_id answered by the old gateway
    set_stage(shop, Tenant.Stage.LEGACY)
    first = send_code(legacy_call, "13912349001", out_id="order-7781")
    assert first.code == 0
    # When the tenant moves to new and the client retries
    set_stage(shop, Tenant.Stage.NEW)
    retry = send_code(legacy_call, "13912349001", out_id="order-7781")
    # Then the first answer comes back, and nobody sends again
    assert retry.body == first.body
    assert not Message.all_tenants.filter(tenant=shop).exists()
    assert [m["recipient"] for m in via_reference.sent()].count("13912349001") == 1


def test_out_id__proxied_first__retry_still_at_legacy_is_the_old_gateways_to_answer(
    shop, legacy_call, via_reference
):
    # Given a send with an out_id answered by the old gateway, the tenant still at legacy
    set_stage(shop, Tenant.Stage.LEGACY)
    nonce = secrets.token_hex(8)
    first = send_code(legacy_call, "13912349005", out_id="order-7785", nonce=nonce)
    assert first.code == 0
    # When the client retries it, with the same nonce and then with a new one
    replayed_nonce = send_code(legacy_call, "13912349005", out_id="order-7785", nonce=nonce)
    retry = send_code(legacy_call, "13912349005", out_id="order-7785")
    # Then the old gateway answers both, as it always did: its refusal of a nonce it saw (the
    # platform's own nonce book never saw it), then its first answer again
    assert replayed_nonce.code == 10005
    assert retry.body == first.body
    assert [m["recipient"] for m in via_reference.sent()].count("13912349005") == 1
    assert not Message.all_tenants.filter(tenant=shop).exists()


def test_out_id__retried_in_shadow__the_old_gateway_replays_it_and_only_the_first_is_compared(
    shop, legacy_call, via_reference
):
    set_stage(shop, Tenant.Stage.SHADOW)
    first = send_code(legacy_call, "13912349006", out_id="order-7786")
    retry = send_code(legacy_call, "13912349006", out_id="order-7786")
    assert first.code == 0 and retry.body == first.body
    assert ShadowComparison.all_tenants.filter(tenant=shop).count() == 1
    assert not Message.all_tenants.filter(tenant=shop).exists()


def test_out_id__served_here_first__retry_after_rollback_not_sent_by_the_old_gateway(
    shop, legacy_call, via_reference
):
    # Given a send with an out_id answered by the platform
    set_stage(shop, Tenant.Stage.NEW)
    first = send_code(legacy_call, "13912349002", out_id="order-7782")
    assert first.code == 0
    # When the tenant is rolled back and the client retries
    set_stage(shop, Tenant.Stage.LEGACY)
    retry = send_code(legacy_call, "13912349002", out_id="order-7782")
    # Then the platform's first answer comes back; the old gateway sends nothing
    assert retry.body == first.body
    assert Message.all_tenants.filter(tenant=shop).count() == 1
    assert "13912349002" not in [m["recipient"] for m in via_reference.sent()]


def test_out_id__refused_by_the_old_gateway__free_for_a_later_send(shop, legacy_call):
    set_stage(shop, Tenant.Stage.LEGACY)
    refused = legacy_call(
        "POST",
        "sms/send.do",
        mobiles="13912349003",
        tpl_id="SMS_100001",
        tpl_params={},
        out_id="order-7783",
    )
    assert refused.code == 20002
    set_stage(shop, Tenant.Stage.NEW)
    assert send_code(legacy_call, "13912349003", out_id="order-7783").code == 0
    assert Message.all_tenants.filter(tenant=shop).count() == 1


def test_metrics__calls_on_both_paths__counted_per_path_with_latency(shop, legacy_call):
    # Given calls served by both systems
    set_stage(shop, Tenant.Stage.CANARY, 50)
    for mobile in mobiles(10, 300):
        send_code(legacy_call, mobile)
    # When the process writes its counts
    metrics.recorder.flush()
    # Then each path has its calls, and latency figures
    rows = PathMetric.all_tenants.filter(tenant=shop)
    by_path = {path: sum(r.calls for r in rows if r.path == path) for path in ("legacy", "new")}
    ours = Message.all_tenants.filter(tenant=shop).count()
    assert by_path["new"] == ours and by_path["legacy"] == 10 - ours
    summary = metrics.path_summary([shop.pk], min(r.period for r in rows))[shop.pk]
    assert summary["new"]["p50_ms"] is not None and summary["new"]["errors"] == 0


def test_out_id__old_gateway_outcome_unknown__retry_never_sent_by_the_platform(
    shop, legacy_call, via_reference, settings
):
    # Given the old gateway unreachable while a send with an out_id is forwarded to it
    set_stage(shop, Tenant.Stage.LEGACY)
    settings.LEGACY_GATEWAY_URL = f"http://127.0.0.1:{free_port()}"
    assert send_code(legacy_call, "13912349004", out_id="order-7784").code == 50000
    # When the tenant moves to new and the client retries, with the old gateway still down
    set_stage(shop, Tenant.Stage.NEW)
    assert send_code(legacy_call, "13912349004", out_id="order-7784").code == 50000
    # Then the platform sent nothing: the old gateway may have sent it
    assert not Message.all_tenants.filter(tenant=shop).exists()
    # and once it answers again, the retry is its to decide, once, and replayed afterwards
    settings.LEGACY_GATEWAY_URL = via_reference.url
    first = send_code(legacy_call, "13912349004", out_id="order-7784")
    assert first.code == 0
    again = send_code(legacy_call, "13912349004", out_id="order-7784")
    assert again.body == first.body
    assert not Message.all_tenants.filter(tenant=shop).exists()
    assert [m["recipient"] for m in via_reference.sent()].count("13912349004") == 1


def test_history__imported_msg_id__answered_by_the_old_gateway_while_it_is_configured(
    shop, legacy_call, settings
):
    from compat.models import LegacyMessage

    msg_id = LegacyMessage.all_tenants.filter(tenant=shop).values_list("pk", flat=True).first()
    set_stage(shop, Tenant.Stage.NEW)
    via_gateway = legacy_call("GET", "message/detail.do", msg_id=msg_id)
    settings.LEGACY_GATEWAY_URL = ""
    from_import = legacy_call("GET", "message/detail.do", msg_id=msg_id)
    assert via_gateway.code == 0 and via_gateway.body == from_import.body
