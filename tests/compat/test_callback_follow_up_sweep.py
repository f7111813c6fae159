"""The follow-up sweep for legacy delivery reports: a legacy-API message of a tenant with a
callback_url whose report was lost between the commit of its final status and the receiver (the
process died) gets its report from the sweep, once, after the grace period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compat.models import LegacyCallback
from notify.messaging import followups, services
from notify.messaging.models import Message, MessageStatus, Origin
from notify.messaging.services import MessageDraft, create_message
from notify.tenants.models import Tenant

GRACE = timedelta(seconds=61)


@pytest.fixture
def clock(time_machine):  # noqa: ANN001, ANN201
    """The time, stopped: the test moves it on."""
    time_machine.move_to(timezone.now(), tick=False)
    return time_machine


@pytest.fixture
def legacy_tenant(tenant, settings, tmp_path, monkeypatch) -> Tenant:  # noqa: ANN001
    """A tenant with a callback_url (never posted to here) whose SMS go to a file."""
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    settings.NOTIFY_DEV_TRANSPORT = "file"
    settings.NOTIFY_DEV_OUTBOX = str(tmp_path / "outbox.jsonl")
    settings.SMS_HTTP_URL = ""
    Tenant.objects.filter(pk=tenant.pk).update(callback_url="https://shop.example.com/cb")
    return Tenant.objects.get(pk=tenant.pk)


def sms(tenant: Tenant, origin: str = Origin.LEGACY) -> Message:
    return create_message(
        tenant=tenant,
        draft=MessageDraft(channel="sms", recipient="13800134444", body="【shop】code 123456"),
        origin=origin,
    )


def test_callback_follow_up_sweep__report_lost__owed_once_after_the_grace_period(
    legacy_tenant, deliver_then_die, clock
):
    # Given a legacy SMS delivered by a worker that died right after the commit
    message = sms(legacy_tenant)
    deliver_then_die(message.id)
    assert Message.all_tenants.get(pk=message.id).status == MessageStatus.DELIVERED
    assert not LegacyCallback.all_tenants.exists()
    # When the sweep runs within the grace period
    # Then it leaves the message alone
    assert followups.reannounce_missing() == 0
    assert not LegacyCallback.all_tenants.exists()
    # When it runs after the grace period
    clock.shift(GRACE)
    assert followups.reannounce_missing() == 1
    # Then the report is owed, once
    (callback,) = LegacyCallback.all_tenants.all()
    assert (callback.message_id, callback.tenant_id) == (message.id, legacy_tenant.pk)
    assert callback.state == LegacyCallback.State.PENDING
    # And a second sweep changes nothing
    assert followups.reannounce_missing() == 0
    assert LegacyCallback.all_tenants.count() == 1


def test_callback_follow_up_sweep__status_written_directly__owed_once(
    legacy_tenant, announced, clock
):
    # Given a legacy SMS whose failure was written and nothing else (the process died)
    message = sms(legacy_tenant)
    Message.all_tenants.filter(pk=message.id).update(
        status=MessageStatus.FAILED, error_code="UNDELIV", updated_at=timezone.now()
    )
    # When the sweep runs after the grace period, twice
    clock.shift(GRACE)
    assert [followups.reannounce_missing() for _ in range(2)] == [1, 0]
    # Then it was announced once, and the report is owed once
    assert announced == [(message.id, "failed")]
    assert LegacyCallback.all_tenants.filter(message_id=message.id).count() == 1


def test_callback_follow_up_sweep__report_written__not_announced_again(
    legacy_tenant, deliver, announced, clock
):
    # Given a legacy SMS delivered with its report owed as it should
    message = sms(legacy_tenant)
    deliver(message.id)
    assert LegacyCallback.all_tenants.filter(message_id=message.id).count() == 1
    announced.clear()
    # When the sweep runs after the grace period
    clock.shift(GRACE)
    # Then the message is not announced again, and no second report is owed
    assert followups.reannounce_missing() == 0
    assert announced == []
    assert LegacyCallback.all_tenants.count() == 1


def test_callback_follow_up_sweep__v2_message_or_no_callback_url__nothing_owed(
    legacy_tenant, deliver_then_die, announced, clock
):
    # Given a v2 SMS of the tenant, and a legacy SMS of a tenant without a callback_url, both
    # delivered by workers that died after the commit
    other = Tenant.objects.create(name="Logi", slug="logi")
    deliver_then_die(sms(legacy_tenant, origin=Origin.V2).id)
    deliver_then_die(sms(other).id)
    # When the sweep runs after the grace period
    clock.shift(GRACE)
    # Then no report is owed: nothing is announced again
    assert followups.reannounce_missing() == 0
    assert announced == [] and not LegacyCallback.all_tenants.exists()
