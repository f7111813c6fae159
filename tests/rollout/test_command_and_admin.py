"""`manage.py rollout` and the admin's rollout actions: the same gates and audit log."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from notify.rollout.models import RolloutBatch, RolloutEvent
from notify.tenants.models import Tenant

Stage = Tenant.Stage


@pytest.fixture
def batch(db) -> RolloutBatch:  # noqa: ANN001
    batch = RolloutBatch.objects.create(name="wave-1")
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


def run(*args: str) -> str:
    out = StringIO()
    call_command("rollout", *args, stdout=out)
    return out.getvalue()


def test_command__stage_of_a_batch__moved_and_audited_with_the_shell_user(batch):
    output = run("stage", "--batch", "wave-1", "shadow", "--reason", "wave 1 starts")
    assert "t0: legacy -> shadow" in output and "t1: legacy -> shadow" in output
    assert set(batch.tenants.values_list("stage", flat=True)) == {"shadow"}
    event = RolloutEvent.objects.filter(tenant_slug="t0").get()
    assert event.actor.startswith("shell:") and event.reason == "wave 1 starts"


def test_command__canary_blocked_by_a_gate__error_then_override(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 10
    with pytest.raises(CommandError, match="too few shadowed calls"):
        run("stage", "ak_t0", "canary", "--percent", "10", "--reason", "try")
    assert Tenant.objects.get(slug="t0").stage == Stage.LEGACY
    output = run("stage", "ak_t0", "canary", "--percent", "10", "--reason", "ok", "--override")
    assert "t0: legacy -> canary 10% (gates overridden)" in output


def test_command__canary_without_percent__clear_error(batch):
    with pytest.raises(CommandError, match="--percent"):
        run("stage", "ak_t0", "canary", "--reason", "x")


def test_command__status__every_tenant_with_stage_and_health(batch):
    run("stage", "--all", "shadow", "--reason", "everyone")
    output = run("status")
    assert "batch wave-1: shadow" in output
    assert "t0" in output and "ak_t1" in output


@pytest.fixture
def admin_client(db) -> Client:  # noqa: ANN001
    user = get_user_model().objects.create_superuser("ann", "ann@example.com", "pw-long-enough")
    client = Client()
    client.force_login(user)
    return client


def test_admin__advance_batch__asks_a_reason_then_moves_and_audits(batch, admin_client):
    url = reverse("admin:rollout_rolloutbatch_changelist")
    # When the admin picks the action, a form asks why
    page = admin_client.post(url, {"action": "advance", "_selected_action": [batch.pk]})
    assert page.status_code == 200 and b'name="reason"' in page.content
    assert set(batch.tenants.values_list("stage", flat=True)) == {"legacy"}
    # and nothing moves without one
    admin_client.post(
        url, {"action": "advance", "_selected_action": [batch.pk], "apply": "1", "reason": ""}
    )
    assert set(batch.tenants.values_list("stage", flat=True)) == {"legacy"}
    # With a reason, the batch moves and the log says who and why
    admin_client.post(
        url,
        {
            "action": "advance",
            "_selected_action": [batch.pk],
            "apply": "1",
            "reason": "wave 1 into shadow",
        },
    )
    assert set(batch.tenants.values_list("stage", flat=True)) == {"shadow"}
    assert set(RolloutEvent.objects.values_list("actor", "reason")) == {
        ("ann", "wave 1 into shadow")
    }


def test_admin__gate_says_no__error_shown_nothing_moves(batch, admin_client, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 10
    Tenant.objects.update(stage=Stage.SHADOW)
    url = reverse("admin:rollout_rolloutbatch_changelist")
    page = admin_client.post(
        url,
        {
            "action": "set_canary",
            "_selected_action": [batch.pk],
            "apply": "1",
            "reason": "go",
            "percent": "10",
        },
        follow=True,
    )
    assert b"too few shadowed calls" in page.content
    assert set(batch.tenants.values_list("stage", flat=True)) == {"shadow"}


def test_admin__tenant_stage__read_only_in_the_form(batch, admin_client):
    tenant = Tenant.objects.get(slug="t0")
    page = admin_client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))
    assert page.status_code == 200
    assert b'name="stage"' not in page.content


def test_admin__dashboard__stage_and_audit_shown(batch, admin_client):
    admin_client.post(
        reverse("admin:rollout_rolloutbatch_changelist"),
        {
            "action": "advance",
            "_selected_action": [batch.pk],
            "apply": "1",
            "reason": "wave 1 into shadow",
        },
    )
    page = admin_client.get(reverse("admin:rollout_dashboard"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "wave-1" in text and 'class="batch-stage">shadow<' in text
    assert "wave 1 into shadow" in text


def test_admin__audit_log__no_change_or_delete(batch, admin_client):
    admin_client.post(
        reverse("admin:rollout_rolloutbatch_changelist"),
        {"action": "pause", "_selected_action": [batch.pk], "apply": "1", "reason": "hold"},
    )
    event = RolloutEvent.objects.first()
    assert (
        admin_client.get(reverse("admin:rollout_rolloutevent_delete", args=[event.pk])).status_code
        == 403
    )
    page = admin_client.post(
        reverse("admin:rollout_rolloutevent_change", args=[event.pk]), {"reason": "rewritten"}
    )
    assert page.status_code == 403
    assert RolloutEvent.objects.get(pk=event.pk).reason == "hold"


def test_check__tenants_routed_to_an_unset_gateway__warned(batch, settings):
    from notify.rollout.checks import legacy_gateway_configured

    settings.LEGACY_GATEWAY_URL = ""
    (warning,) = legacy_gateway_configured(databases=["default"])
    assert warning.id == "rollout.W001" and "t0" in warning.msg
    settings.LEGACY_GATEWAY_URL = "http://old-gateway.internal"
    assert legacy_gateway_configured(databases=["default"]) == []


def staff_client(*permissions: str) -> Client:
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(
        "viewer", "v@example.com", "pw-long-enough", is_staff=True
    )
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_admin__staff_who_may_only_view__cannot_move_a_batch(batch):
    # Given a staff member who may view batches and tenants, not move them
    client = staff_client("view_rolloutbatch", "view_tenant")
    url = reverse("admin:rollout_rolloutbatch_changelist")
    # Then the rollout actions are not offered, and posting one moves nothing
    assert b'value="advance"' not in client.get(url).content
    client.post(
        url, {"action": "advance", "_selected_action": [batch.pk], "apply": "1", "reason": "sneaky"}
    )
    tenants_url = reverse("admin:tenants_tenant_changelist")
    client.post(
        tenants_url,
        {
            "action": "roll_back",
            "_selected_action": [t.pk for t in batch.tenants.all()],
            "apply": "1",
            "reason": "sneaky",
        },
    )
    assert set(batch.tenants.values_list("stage", flat=True)) == {"legacy"}
    assert not RolloutEvent.objects.exists()
    # but the dashboard is theirs to see
    assert client.get(reverse("admin:rollout_dashboard")).status_code == 200


def test_admin__override_without_its_permission__refused(batch, settings):
    settings.ROLLOUT_MIN_SHADOW_CALLS = 10
    Tenant.objects.update(stage=Stage.SHADOW)
    client = staff_client("view_rolloutbatch", "change_rolloutbatch", "change_stage")
    client.post(
        reverse("admin:rollout_rolloutbatch_changelist"),
        {
            "action": "set_canary",
            "_selected_action": [batch.pk],
            "apply": "1",
            "reason": "go",
            "percent": "10",
            "override": "on",
        },
    )
    assert set(batch.tenants.values_list("stage", flat=True)) == {"shadow"}


def test_admin__dashboard_without_view_permission__refused(batch):
    client = staff_client()
    assert client.get(reverse("admin:rollout_dashboard")).status_code == 403


def test_audit_log__tenant_deleted__entries_kept_with_its_name(batch):
    call_command("rollout", "stage", "ak_t0", "shadow", "--reason", "start", stdout=StringIO())
    Tenant.objects.get(slug="t0").delete()
    event = RolloutEvent.objects.get()
    assert event.tenant is None and event.tenant_slug == "t0" and event.reason == "start"


def test_admin__dashboard__per_template_figures_and_match_rate(batch, admin_client):
    from django.utils import timezone

    from notify.rollout import metrics
    from notify.rollout.models import PathMetric, ShadowComparison

    tenant = Tenant.objects.get(slug="t0")
    for state in ["match", "match", "match", "mismatch"]:
        ShadowComparison.all_tenants.create(
            tenant=tenant,
            endpoint="/gateway/sms/send.do",
            tpl_id="SMS_1",
            legacy_code=0,
            state=state,
        )
    buckets = [0] * (len(metrics.LATENCY_BOUNDS_MS) + 1)
    buckets[2] = 9
    PathMetric.all_tenants.create(
        tenant=tenant,
        tpl_id="SMS_1",
        path="new",
        period=metrics.period_of(timezone.now()),
        calls=9,
        errors=1,
        latency_buckets=buckets,
    )
    text = admin_client.get(reverse("admin:rollout_dashboard")).content.decode()
    row = text[text.index('data-template="SMS_1"') :]
    row = row[: row.index("</tr>")]
    assert ">4<" in row and "75%" in row and ">1/9<" in row
    assert "4 compared, 1 mismatches" in text
