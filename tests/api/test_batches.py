"""POST /v2/messages/batch and GET /v2/batches/<id>: one request, many recipients, stored in
one transaction, woken up in the bulk lane, sent in chunks, each message once; tenants' batches
take turns."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging import services
from notify.messaging.models import Message, MessageStatus


@pytest.fixture
def wakeups(monkeypatch) -> list[int]:  # noqa: ANN001
    """The bulk lane wake-ups published (one entry each); nothing reaches a broker."""
    published: list[int] = []
    from notify.messaging import tasks

    monkeypatch.setattr(tasks.deliver_bulk, "apply_async", lambda: published.append(1))
    return published


def run_bulk_lane() -> int:
    """The bulk lane's turns until it has no work, as its workers take them. Returns how many."""
    turns = 0
    while services.deliver_bulk():
        turns += 1
    return turns


def post_batch(client, body, **headers):  # noqa: ANN001, ANN201
    return client.post("/v2/messages/batch", body, format="json", **headers)


INLINE = {"channel": "email", "subject": "Maintenance tonight", "body": "From 2 to 3 am."}


def test_batch__inline_content__one_message_each_sent_in_chunks_and_counted(
    api_client,
    other_tenant_client,
    wakeups,
    smtp_server,
    settings,
    django_capture_on_commit_callbacks,
):
    # Given chunks of 2
    settings.NOTIFY_CHUNK_SIZE = 2
    recipients = [{"to": f"user{i}@example.com"} for i in range(5)]
    # When a batch of 5 is sent
    with django_capture_on_commit_callbacks(execute=True):
        response = post_batch(api_client, {**INLINE, "recipients": recipients})
    # Then it is accepted with its id and count, and one wake-up per chunk is published
    assert response.status_code == 202, response.content
    batch_id = response.json()["batch_id"]
    assert response.json()["count"] == 5
    assert len(wakeups) == 3
    summary = api_client.get(f"/v2/batches/{batch_id}").json()
    assert summary["counts"] == {"queued": 5} and summary["progress"] == 0
    # When the bulk lane takes its turns: three chunks; then a chunk's work arrives again
    assert run_bulk_lane() == 3
    services.deliver_chunk(list(Message.all_tenants.values_list("pk", flat=True)))
    # Then each recipient got one mail, and the batch is done
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == sorted(
        r["to"] for r in recipients
    )
    summary = api_client.get(f"/v2/batches/{batch_id}").json()
    assert summary["counts"] == {"delivered": 5} and summary["progress"] == 1.0
    # And another tenant cannot see it
    assert other_tenant_client.get(f"/v2/batches/{batch_id}").status_code == 404


def test_batch__template_with_shared_and_own_data__each_rendered_with_its_own(
    api_client, approve_as_operator, wakeups
):
    # Given an approved template
    api_client.post(
        "/v2/templates",
        {
            "key": "notice",
            "channel": "email",
            "subject": "{{ site }}: hello {{ name }}",
            "body": "<p>{{ name }}</p>",
        },
        format="json",
    )
    approve_as_operator("notice")
    # When a batch shares `site` and gives each recipient a `name`
    response = post_batch(
        api_client,
        {
            "channel": "email",
            "template": "notice",
            "data": {"site": "Acme", "name": "nobody"},
            "recipients": [
                {"to": "a@example.com", "data": {"name": "Ana"}},
                {"to": "b@example.com", "data": {"name": "Bo"}},
            ],
        },
    )
    # Then each message has its own name and the shared site
    assert response.status_code == 202, response.content
    subjects = sorted(Message.all_tenants.values_list("subject", flat=True))
    assert subjects == ["Acme: hello Ana", "Acme: hello Bo"]


def test_batch__one_bad_recipient__400_naming_it_and_nothing_stored(
    api_client, wakeups, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_batch(
            api_client,
            {**INLINE, "recipients": [{"to": "a@example.com"}, {"to": "not-an-address"}]},
        )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "recipients.1.to": ["Enter a valid email address."]
    }
    assert Message.all_tenants.count() == 0 and wakeups == []


@pytest.mark.parametrize("count", [0, 10_001])
def test_batch__no_or_too_many_recipients__400(api_client, wakeups, count):
    recipients = [{"to": f"u{i}@example.com"} for i in range(count)]
    response = post_batch(api_client, {**INLINE, "recipients": recipients})
    assert response.status_code == 400
    assert "recipients" in response.json()["error"]["fields"]


def test_batch__10000_recipients__accepted_stored_and_the_bulk_lane_woken(
    api_client, wakeups, settings, django_capture_on_commit_callbacks
):
    # Given the largest batch allowed
    recipients = [{"to": f"user{i}@example.com"} for i in range(10_000)]
    # When it is sent
    with django_capture_on_commit_callbacks(execute=True):
        response = post_batch(api_client, {**INLINE, "recipients": recipients})
    # Then every message is stored queued, and the lane gets as many wake-ups as it keeps
    # in flight (each one that finds work publishes its successor)
    assert response.status_code == 202, response.content
    assert response.json()["count"] == 10_000
    assert Message.all_tenants.filter(status=MessageStatus.QUEUED).count() == 10_000
    assert len(wakeups) == settings.NOTIFY_BULK_WAKEUPS


def test_batch__same_idempotency_key_again__first_answer_no_second_batch(api_client, wakeups):
    body = {**INLINE, "recipients": [{"to": "a@example.com"}, {"to": "b@example.com"}]}
    first = post_batch(api_client, body, HTTP_IDEMPOTENCY_KEY="campaign-7")
    again = post_batch(api_client, body, HTTP_IDEMPOTENCY_KEY="campaign-7")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert Message.all_tenants.count() == 2


def test_bulk_lane__a_big_campaign_queued_first__another_tenants_batch_takes_turns_with_it(
    tenant, smtp_server, settings, wakeups, django_capture_on_commit_callbacks
):
    # Given chunks of 10, a 300-recipient campaign of one tenant, then another tenant's 40
    from notify.messaging.services import MessageDraft, create_batch
    from notify.tenants.services import create_tenant

    settings.NOTIFY_CHUNK_SIZE = 10
    other, _ = create_tenant("globex", name="Globex")

    def drafts(prefix: str, count: int) -> list[MessageDraft]:
        return [
            MessageDraft(
                channel="email", recipient=f"{prefix}{n}@example.com", subject="S", body="B"
            )
            for n in range(count)
        ]

    create_batch(tenant=tenant, drafts=drafts("campaign", 300))
    small = create_batch(tenant=other, drafts=drafts("notice", 40))
    # When the bulk lane takes its turns
    order = []
    while services.deliver_bulk():
        order.append(smtp_server.received[-1].rcpt_tos[0])
    # Then the small batch is done after 8 turns (4 of its own, 4 of the campaign's), not after
    # the campaign's 30, and everything was sent once
    small_turns = [n for n, to in enumerate(order) if to.startswith("notice")]
    assert max(small_turns) <= 7
    # (every other turn: which tenant goes first depends on where the rotation stood)
    assert small_turns in ([0, 2, 4, 6], [1, 3, 5, 7])
    assert len(smtp_server.received) == 340
    assert len({mail.rcpt_tos[0] for mail in smtp_server.received}) == 340
    assert set(
        Message.all_tenants.filter(batch_id=small.batch_id).values_list("status", flat=True)
    ) == {MessageStatus.DELIVERED}


def test_batch__send_at_later__nothing_sent_until_due_then_the_sweep_wakes_the_lane(
    api_client, wakeups, smtp_server, django_capture_on_commit_callbacks, time_machine
):
    # Given a batch scheduled for an hour from now
    later = timezone.now() + timedelta(hours=1)
    recipients = [{"to": f"user{i}@example.com"} for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_batch(
            api_client, {**INLINE, "recipients": recipients, "send_at": later.isoformat()}
        )
    assert response.status_code == 202, response.content
    # Then no wake-up is published and the bulk lane finds nothing to send yet
    assert wakeups == []
    assert run_bulk_lane() == 0
    messages = Message.all_tenants.all()
    assert {m.send_at for m in messages} == {later} and smtp_server.received == []
    # When the time has come and the sweep runs
    time_machine.move_to(later + timedelta(seconds=1), tick=False)
    services.sweep()
    # Then the lane is woken and each recipient gets the mail
    assert wakeups
    assert run_bulk_lane() == 1
    assert len(smtp_server.received) == 3


def test_batch__data_without_a_template__400_as_for_one_message(api_client, wakeups):
    for body in (
        {**INLINE, "data": {"a": 1}, "recipients": [{"to": "a@example.com"}]},
        {**INLINE, "recipients": [{"to": "a@example.com", "data": {"a": 1}}]},
    ):
        response = post_batch(api_client, body)
        assert response.status_code == 400, response.content
        assert "template" in response.json()["error"]["fields"]
    assert not Message.all_tenants.exists()


def test_batch__several_recipients_missing_template_data__all_named_in_one_answer(
    api_client, approve_as_operator, wakeups
):
    # Given an approved template that needs a `name`
    api_client.post(
        "/v2/templates",
        {
            "key": "hello",
            "channel": "email",
            "subject": "Hi {{ name }}",
            "body": "<p>x</p>",
            "params": ["name"],
        },
        format="json",
    )
    approve_as_operator("hello")
    # When two of four recipients have no name
    recipients = [
        {"to": "a@example.com", "data": {"name": "Ana"}},
        {"to": "b@example.com"},
        {"to": "c@example.com", "data": {"name": "Cy"}},
        {"to": "d@example.com"},
    ]
    response = post_batch(
        api_client, {"channel": "email", "template": "hello", "recipients": recipients}
    )
    # Then one answer names both, and nothing is stored
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["fields"]) == {"recipients.1.data", "recipients.3.data"}
    assert not Message.all_tenants.exists()
