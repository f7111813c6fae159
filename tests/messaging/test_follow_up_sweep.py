"""The follow-up sweep: a finished message whose follow-up (its fallback, inbox item, webhook
deliveries) was lost between the commit of its final status and the `message_finished`
receivers (the process died, a receiver failed) is announced again by the sweep, once its grace
period is over; each follow-up then exists once, and a second sweep changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notify.celery import app as celery_app
from notify.messaging import followups, services, webhooks
from notify.messaging.models import (
    InboxItem,
    Message,
    MessageEvent,
    MessageStatus,
    WebhookDelivery,
    WebhookSubscription,
)
from notify.messaging.services import MessageDraft, create_message
from notify.messaging.tasks import sweep_follow_ups

GRACE = timedelta(seconds=61)


@pytest.fixture
def clock(time_machine):  # noqa: ANN001, ANN201
    """The time, stopped: the test moves it on."""
    time_machine.move_to(timezone.now(), tick=False)
    return time_machine


@pytest.fixture
def sms_outbox(settings, tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """SMS "sent" to a file (the development transport); no broker wake-ups."""
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    settings.NOTIFY_DEV_TRANSPORT = "file"
    settings.NOTIFY_DEV_OUTBOX = str(tmp_path / "outbox.jsonl")
    settings.SMS_HTTP_URL = ""
    return tmp_path / "outbox.jsonl"


@pytest.fixture
def subscription(tenant) -> WebhookSubscription:  # noqa: ANN001
    """The tenant's webhook subscription to every event (never posted to here)."""
    webhooks.forget_cached()
    created = WebhookSubscription.all_tenants.create(
        tenant=tenant, url="https://hooks.example.com/notify", secret=webhooks.new_secret()
    )
    yield created
    webhooks.forget_cached()


def accepted(tenant, channel: str = "sms", to: str = "13912345678", **fields) -> Message:  # noqa: ANN001, ANN003
    return create_message(
        tenant=tenant,
        draft=MessageDraft(channel=channel, recipient=to, subject="Hello", body="hi", **fields),
    )


def inapp(tenant, to: str = "user-42") -> Message:  # noqa: ANN001
    return accepted(tenant, channel="inapp", to=to)


# ---- inbox ---------------------------------------------------------------------------------


def test_follow_up_sweep__inbox_item_lost__written_once_after_the_grace_period(
    tenant, deliver_then_die, clock
):
    # Given an in-app message delivered by a worker that died right after the commit
    message = inapp(tenant)
    deliver_then_die(message.id)
    assert Message.all_tenants.get(pk=message.id).status == MessageStatus.DELIVERED
    assert not InboxItem.all_tenants.exists()
    # When the sweep runs within the grace period
    # Then it leaves the message alone (its receivers may still be running)
    assert followups.reannounce_missing() == 0
    assert not InboxItem.all_tenants.exists()
    # When it runs once the grace period is over
    clock.shift(GRACE)
    assert followups.reannounce_missing() == 1
    # Then the inbox item exists, once
    (item,) = InboxItem.all_tenants.all()
    assert (item.message_id, item.recipient, item.tenant_id) == (message.id, "user-42", tenant.pk)
    # And a second sweep changes nothing
    assert followups.reannounce_missing() == 0
    assert InboxItem.all_tenants.count() == 1


def test_follow_up_sweep__inbox_receiver_failed__the_others_not_written_twice(
    tenant, deliver, lost, subscription, clock
):
    # Given an in-app message whose inbox receiver failed, the webhook receiver having run
    message = inapp(tenant)
    with lost("messaging.inbox"):
        deliver(message.id)
    assert not InboxItem.all_tenants.exists()
    assert WebhookDelivery.objects.count() == 1
    # When the sweep runs after the grace period
    clock.shift(GRACE)
    assert followups.reannounce_missing() == 1
    # Then the inbox item is written, and the webhook event is not owed twice
    assert InboxItem.all_tenants.filter(message_id=message.id).count() == 1
    assert WebhookDelivery.objects.count() == 1
    assert followups.reannounce_missing() == 0


def test_follow_up_sweep__follow_ups_present__not_announced_again(
    tenant, deliver, subscription, announced, clock
):
    # Given an in-app message delivered with all its follow-ups written
    message = inapp(tenant)
    deliver(message.id)
    announced.clear()
    # When the sweep runs after the grace period
    clock.shift(GRACE)
    # Then nothing is announced again, and nothing is written twice
    assert followups.reannounce_missing() == 0
    assert announced == []
    assert InboxItem.all_tenants.filter(message_id=message.id).count() == 1
    assert WebhookDelivery.objects.count() == 1


def test_follow_up_sweep__finished_before_the_window__left_alone(tenant, deliver_then_die, clock):
    # Given an in-app message whose follow-up was lost longer ago than the window
    deliver_then_die(inapp(tenant).id)
    clock.shift(timedelta(hours=6, minutes=1))
    # When the sweep runs
    # Then it is not looked at any more (the window bounds each run)
    assert followups.reannounce_missing() == 0
    assert not InboxItem.all_tenants.exists()


def test_follow_up_sweep__more_than_a_batch__the_rest_on_the_next_runs(
    tenant, deliver_then_die, clock, settings
):
    # Given three in-app messages whose follow-up was lost, and a batch of two
    settings.NOTIFY_FOLLOW_UP_BATCH = 2
    for n in range(3):
        deliver_then_die(inapp(tenant, to=f"user-{n}").id)
    clock.shift(GRACE)
    # When the sweep runs three times
    # Then two, then the last one, then none are announced again; each written once
    assert [followups.reannounce_missing() for _ in range(3)] == [2, 1, 0]
    assert InboxItem.all_tenants.count() == 3


def test_follow_up_sweep__task__runs_the_sweep_and_is_scheduled_every_minute(
    tenant, deliver_then_die, clock, settings
):
    # Given a message whose follow-up was lost
    deliver_then_die(inapp(tenant).id)
    clock.shift(GRACE)
    # When beat's task runs
    sweep_follow_ups.apply()
    # Then the follow-up is written
    assert InboxItem.all_tenants.count() == 1
    entry = settings.CELERY_BEAT_SCHEDULE["follow-ups-sweep"]
    assert entry["task"] == sweep_follow_ups.name == "messaging.sweep_follow_ups"
    assert entry["schedule"] == 60.0 and sweep_follow_ups.name in celery_app.tasks


# ---- webhooks ------------------------------------------------------------------------------


def test_follow_up_sweep__webhook_delivery_lost__owed_once(
    tenant, deliver_then_die, sms_outbox, subscription, clock
):
    # Given a delivered SMS of a tenant with a subscription, its worker dead after the commit
    message = accepted(tenant)
    deliver_then_die(message.id)
    assert not WebhookDelivery.objects.exists()
    # When the sweep runs within the grace period, then after it
    assert followups.reannounce_missing() == 0
    clock.shift(GRACE)
    assert followups.reannounce_missing() == 1
    # Then the event is owed once, as the receiver writes it
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.subscription_id == subscription.pk
    assert delivery.event_id == f"evt_{message.id}_delivered_1_{subscription.pk}"
    assert delivery.event_type == "message.delivered"
    assert delivery.payload["data"]["id"] == message.id
    # And a second sweep changes nothing
    assert followups.reannounce_missing() == 0
    assert WebhookDelivery.objects.count() == 1


def test_follow_up_sweep__event_not_wanted_or_subscription_disabled__nothing_owed(
    tenant, deliver_then_die, sms_outbox, subscription, announced, clock
):
    # Given a subscription to failures only, and another one disabled
    WebhookSubscription.all_tenants.filter(pk=subscription.pk).update(events=["message.failed"])
    WebhookSubscription.all_tenants.create(
        tenant=tenant, url="https://hooks.example.com/off", secret="whsec_x", enabled=False
    )
    # When an SMS is delivered, its worker dead after the commit, and the sweep runs
    deliver_then_die(accepted(tenant).id)
    clock.shift(GRACE)
    # Then no event is owed: nothing is announced again
    assert followups.reannounce_missing() == 0
    assert announced == [] and not WebhookDelivery.objects.exists()


def test_follow_up_sweep__subscription_made_after_the_message_finished__not_sent_the_past(
    tenant, deliver_then_die, sms_outbox, announced, clock
):
    # Given an SMS delivered (its worker dead after the commit) before the tenant subscribed
    deliver_then_die(accepted(tenant).id)
    clock.shift(timedelta(seconds=5))
    webhooks.forget_cached()
    WebhookSubscription.all_tenants.create(
        tenant=tenant, url="https://hooks.example.com/new", secret=webhooks.new_secret()
    )
    # When the sweep runs
    clock.shift(GRACE)
    # Then the new subscription is not owed that earlier event
    assert followups.reannounce_missing() == 0
    assert announced == [] and not WebhookDelivery.objects.exists()


# ---- fallback ------------------------------------------------------------------------------


@pytest.fixture
def refused_email_with_fallback(api_client, smtp_server, sms_outbox) -> str:  # noqa: ANN001
    """An email to an address the server refuses for good, with an SMS fallback."""
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "reject-me@example.com",
            "subject": "Your code",
            "body": "Code 4821",
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        },
        format="json",
    )
    assert answer.status_code == 202, answer.content
    return answer.json()["id"]


def test_follow_up_sweep__fallback_lost__next_channel_once(
    refused_email_with_fallback, deliver_then_die, clock
):
    # Given an email refused for good by a worker that died right after the commit
    email_id = refused_email_with_fallback
    deliver_then_die(email_id)
    email = Message.all_tenants.get(pk=email_id)
    assert email.status == MessageStatus.FAILED and "fallback" in email.params
    assert not Message.all_tenants.filter(channel="sms").exists()
    # When the sweep runs within the grace period
    # Then it leaves the message alone
    assert followups.reannounce_missing() == 0
    assert not Message.all_tenants.filter(channel="sms").exists()
    # When it runs after the grace period
    clock.shift(GRACE)
    assert followups.reannounce_missing() == 1
    # Then the SMS fallback exists, once, and the email says where it went
    (sms,) = Message.all_tenants.filter(channel="sms")
    assert sms.params["fallback_of"] == email_id and sms.recipient == "+8613912345678"
    assert "fallback" not in Message.all_tenants.get(pk=email_id).params
    assert MessageEvent.objects.filter(
        message_id=email_id, detail=f"falling back to sms: message {sms.id}"
    ).exists()
    # And a second sweep changes nothing
    assert followups.reannounce_missing() == 0
    assert Message.all_tenants.filter(channel="sms").count() == 1


def test_follow_up_sweep__fallback_taken__not_announced_again(
    refused_email_with_fallback, deliver, announced, clock
):
    # Given an email refused for good that fell back to SMS as it should
    deliver(refused_email_with_fallback)
    assert Message.all_tenants.filter(channel="sms").count() == 1
    announced.clear()
    # When the sweep runs after the grace period
    clock.shift(GRACE)
    # Then the email is not announced again, and no second SMS is made
    assert followups.reannounce_missing() == 0
    assert announced == []
    assert Message.all_tenants.filter(channel="sms").count() == 1


def test_follow_up_sweep__status_written_directly__every_follow_up_once(
    tenant, subscription, announced, clock
):
    # Given a dead in-app message with a fallback whose final status was written and nothing
    # else (the process died before any receiver)
    message = accepted(
        tenant,
        channel="inapp",
        to="user-7",
        params={"fallback": [{"channel": "sms", "to": "+8613912345678"}]},
    )
    Message.all_tenants.filter(pk=message.id).update(
        status=MessageStatus.DEAD, attempts=5, updated_at=timezone.now()
    )
    # When the sweep runs after the grace period
    clock.shift(GRACE)
    # Then the message is announced once, for both follow-ups it owes
    assert followups.reannounce_missing() == 1
    assert announced == [(message.id, "dead")]
    assert Message.all_tenants.filter(params__fallback_of=message.id).count() == 1
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event_id == f"evt_{message.id}_dead_5_{subscription.pk}"
    # And a second sweep changes nothing
    assert followups.reannounce_missing() == 0
    assert announced == [(message.id, "dead")]
