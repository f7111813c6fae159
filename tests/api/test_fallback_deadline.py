"""Fallback channels and deadlines: a message refused for good (or past its deadline) goes on to
the next channel of its `fallback`, once; a message not sent by its deadline fails saying so."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging import services
from notify.messaging.models import Message, MessageEvent, MessageStatus


@pytest.fixture
def run(django_capture_on_commit_callbacks, monkeypatch):  # noqa: ANN001, ANN201
    """Delivers every queued message as a worker would, until none is left."""
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)

    def deliver_all() -> None:
        for _ in range(5):
            queued = list(
                Message.all_tenants.filter(status=MessageStatus.QUEUED).values_list("pk", flat=True)
            )
            if not queued:
                return
            for message_id in queued:
                with django_capture_on_commit_callbacks(execute=True):
                    services.deliver(message_id)

    return deliver_all


@pytest.fixture
def sms_outbox(settings, tmp_path):  # noqa: ANN001, ANN201
    settings.NOTIFY_DEV_TRANSPORT = "file"
    settings.NOTIFY_DEV_OUTBOX = str(tmp_path / "outbox.jsonl")
    settings.SMS_HTTP_URL = ""
    return tmp_path / "outbox.jsonl"


def test_fallback__email_refused_for_good__sms_sent_once_with_the_text(
    api_client, smtp_server, sms_outbox, run
):
    # Given an email to an address the server refuses, with an SMS fallback
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "reject-me@example.com",
            "subject": "Your code",
            "html": "<p>Code <b>4821</b></p>",
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        },
        format="json",
    )
    assert answer.status_code == 202, answer.content
    email_id = answer.json()["id"]
    # When it is delivered
    run()
    # Then the email failed, and an SMS with its text went out, once
    email = Message.all_tenants.get(pk=email_id)
    assert email.status == MessageStatus.FAILED
    (sms,) = Message.all_tenants.filter(channel="sms")
    assert sms.status == MessageStatus.DELIVERED and sms.params["fallback_of"] == email_id
    assert (sms.recipient, sms.subject, sms.body) == ("+8613912345678", "Your code", "Code 4821")
    assert len(sms_outbox.read_text().splitlines()) == 1
    assert MessageEvent.objects.filter(
        message_id=email_id, detail=f"falling back to sms: message {sms.id}"
    ).exists()


def test_deadline__passed_before_sending__failed_saying_so_and_falls_back(
    api_client, sms_outbox, run, smtp_server
):
    deadline = timezone.now() + timedelta(seconds=1)
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "ann@example.com",
            "subject": "Flash sale",
            "body": "Ends soon",
            "deadline": deadline.isoformat(),
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        },
        format="json",
    )
    assert answer.status_code == 202, answer.content
    Message.all_tenants.filter(pk=answer.json()["id"]).update(
        params={
            "deadline": (timezone.now() - timedelta(seconds=1)).isoformat(),
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        }
    )
    run()
    email = Message.all_tenants.get(pk=answer.json()["id"])
    assert email.status == MessageStatus.FAILED and "deadline" in email.error
    assert smtp_server.received == []
    assert Message.all_tenants.get(channel="sms").status == MessageStatus.DELIVERED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fallback", [{"channel": "sms", "to": "not a number"}]),
        ("fallback", [{"channel": "fax", "to": "1"}]),
        ("fallback", [{"channel": "sms", "to": "+8613912345678"}] * 4),
        ("deadline", "2000-01-01T00:00:00Z"),
    ],
)
def test_fallback_or_deadline__invalid__400_naming_it(api_client, field, value):
    answer = api_client.post(
        "/v2/messages",
        {"channel": "email", "to": "ann@example.com", "subject": "s", "body": "b", field: value},
        format="json",
    )
    assert answer.status_code == 400 and field in answer.json()["error"]["fields"]
    assert not Message.all_tenants.exists()


def test_deadline__before_send_at__400(api_client):
    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "ann@example.com",
            "subject": "s",
            "body": "b",
            "send_at": (timezone.now() + timedelta(hours=2)).isoformat(),
            "deadline": (timezone.now() + timedelta(hours=1)).isoformat(),
        },
        format="json",
    )
    assert answer.status_code == 400 and "deadline" in answer.json()["error"]["fields"]


def test_fallback__failure_announced_twice__falls_back_once(
    api_client, smtp_server, sms_outbox, run
):
    from notify.messaging.fallback import on_message_finished

    answer = api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "reject-me@example.com",
            "subject": "s",
            "body": "b",
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        },
        format="json",
    )
    run()
    on_message_finished(sender=None, message_id=answer.json()["id"], status="failed")
    assert Message.all_tenants.filter(channel="sms").count() == 1


# ---- deadline tiers (provider, channel, message) ------------------------------------------


def post_with_timeouts(api_client, timeouts: dict, **fields: object):  # noqa: ANN001, ANN201
    return api_client.post(
        "/v2/messages",
        {
            "channel": "email",
            "to": "reject-me@example.com",
            "subject": "Your code",
            "body": "Code 4821",
            "timeouts": timeouts,
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
            **fields,
        },
        format="json",
    )


def test_timeouts__channel_and_message__stored_as_the_deadlines_delivery_reads(api_client):
    # Given a message that may try its channel 60 s and take 600 s in all
    before = timezone.now()
    answer = post_with_timeouts(api_client, {"provider": 2.5, "channel": 60, "message": 600})
    assert answer.status_code == 202, answer.content
    # Then its channel deadline is 60 s away, its message deadline 600 s, its calls 2.5 s
    message = Message.all_tenants.get(pk=answer.json()["id"])
    channel_ends = services.moment_of(message.params["deadline"])
    message_ends = services.moment_of(message.params["final_deadline"])
    assert timedelta(seconds=59) < channel_ends - before < timedelta(seconds=61)
    assert timedelta(seconds=599) < message_ends - before < timedelta(seconds=601)
    assert services.envelope_of(message).provider_hints["provider_timeout"] == 2.5


def test_timeouts__channel_shorter_than_deadline__the_earlier_one_holds(api_client):
    answer = post_with_timeouts(
        api_client,
        {"channel": 30},
        deadline=(timezone.now() + timedelta(hours=1)).isoformat(),
    )
    message = Message.all_tenants.get(pk=answer.json()["id"])
    assert services.moment_of(message.params["deadline"]) < timezone.now() + timedelta(seconds=31)


@pytest.mark.parametrize(
    "timeouts",
    [
        {"provider": 0.1},
        {"provider": 600},
        {"channel": 0},
        {"channel": 900, "message": 60},
        {"message": "soon"},
    ],
)
def test_timeouts__out_of_bounds__400_naming_them_nothing_stored(api_client, timeouts):
    answer = post_with_timeouts(api_client, timeouts)
    assert answer.status_code == 400 and "timeouts" in json.dumps(answer.json())
    assert not Message.all_tenants.exists()


def test_timeouts__message_deadline__carried_to_the_fallback_which_fails_past_it(
    api_client, smtp_server, sms_outbox, run
):
    # Given an email refused for good, with an SMS fallback and a message deadline
    answer = post_with_timeouts(api_client, {"message": 600})
    email_id = answer.json()["id"]
    run()
    # Then the SMS fallback carries the same message deadline
    email = Message.all_tenants.get(pk=email_id)
    (sms,) = Message.all_tenants.filter(channel="sms")
    assert sms.params["final_deadline"] == email.params["final_deadline"]


def test_timeouts__message_deadline_passed__no_fallback_and_the_timeline_says_why(
    api_client, smtp_server, sms_outbox, run
):
    from notify.messaging.fallback import on_message_finished

    # Given an email refused for good whose message deadline has passed by the time it failed
    answer = post_with_timeouts(api_client, {"message": 600})
    email_id = answer.json()["id"]
    Message.all_tenants.filter(pk=email_id).update(
        params={
            "final_deadline": (timezone.now() - timedelta(seconds=1)).isoformat(),
            "fallback": [{"channel": "sms", "to": "+8613912345678"}],
        }
    )
    run()
    # Then it failed on the deadline, with no SMS, and says why (once, however often announced)
    email = Message.all_tenants.get(pk=email_id)
    assert email.status == MessageStatus.FAILED and "deadline" in email.error
    on_message_finished(sender=None, message_id=email_id, status="failed")
    assert not Message.all_tenants.filter(channel="sms").exists()
    assert sms_outbox.exists() is False or sms_outbox.read_text() == ""
    assert (
        MessageEvent.objects.filter(message_id=email_id, detail__startswith="no fallback").count()
        == 1
    )


def test_fallback__unusable_next_step__given_up_once_saying_why(
    api_client, smtp_server, sms_outbox, run
):
    from notify.messaging.fallback import on_message_finished

    # Given an email refused for good whose stored fallback step cannot be used
    answer = post_with_timeouts(api_client, {})
    email_id = answer.json()["id"]
    Message.all_tenants.filter(pk=email_id).update(
        params={"fallback": [{"channel": "fax", "to": "+8613912345678"}]}
    )
    run()
    # When its end is announced again (the follow-up sweep)
    on_message_finished(sender=None, message_id=email_id, status="failed")
    # Then no message was made, the list is spent, and the timeline says why, once
    email = Message.all_tenants.get(pk=email_id)
    assert "fallback" not in email.params
    assert not Message.all_tenants.exclude(pk=email_id).exists()
    assert (
        MessageEvent.objects.filter(
            message_id=email_id, detail__startswith="no fallback: its next step is unusable"
        ).count()
        == 1
    )


@pytest.mark.parametrize(("channel", "to"), [("sms", "+8613912345678"), ("push", "device-token-1")])
def test_message__no_subject_for_a_channel_without_one__202(api_client, channel, to):
    answer = api_client.post(
        "/v2/messages", {"channel": channel, "to": to, "body": "Code 4821"}, format="json"
    )
    assert answer.status_code == 202, answer.content
    assert Message.all_tenants.get(pk=answer.json()["id"]).subject == ""


def test_message__email_without_subject__400_naming_it(api_client):
    answer = api_client.post(
        "/v2/messages", {"channel": "email", "to": "ann@example.com", "body": "b"}, format="json"
    )
    assert answer.status_code == 400 and "subject" in answer.json()["error"]["fields"]
