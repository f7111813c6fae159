"""POST /v2/messages/batch and GET /v2/batches/<id>: one request, many recipients, stored in
one transaction, published in chunks, each message sent once."""

import pytest

from notify.messaging import services
from notify.messaging.models import Message, MessageStatus


@pytest.fixture
def chunks(monkeypatch) -> list[list[str]]:  # noqa: ANN001
    """The chunks published (one task each); nothing reaches a broker."""
    published: list[list[str]] = []
    from notify.messaging import tasks

    monkeypatch.setattr(
        tasks.deliver_chunk, "apply_async", lambda args: published.append(list(args[0]))
    )
    return published


def post_batch(client, body, **headers):  # noqa: ANN001, ANN201
    return client.post("/v2/messages/batch", body, format="json", **headers)


INLINE = {"channel": "email", "subject": "Maintenance tonight", "body": "From 2 to 3 am."}


def test_batch__inline_content__one_message_each_sent_in_chunks_and_counted(
    api_client,
    other_tenant_client,
    chunks,
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
    # Then it is accepted with its id and count, and published in 3 chunks
    assert response.status_code == 202, response.content
    batch_id = response.json()["batch_id"]
    assert response.json()["count"] == 5
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    summary = api_client.get(f"/v2/batches/{batch_id}").json()
    assert summary["counts"] == {"queued": 5} and summary["progress"] == 0
    # When the chunks' tasks run (one of them twice)
    for chunk in [*chunks, chunks[0]]:
        services.deliver_chunk(chunk)
    # Then each recipient got one mail, and the batch is done
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == sorted(
        r["to"] for r in recipients
    )
    summary = api_client.get(f"/v2/batches/{batch_id}").json()
    assert summary["counts"] == {"delivered": 5} and summary["progress"] == 1.0
    # And another tenant cannot see it
    assert other_tenant_client.get(f"/v2/batches/{batch_id}").status_code == 404


def test_batch__template_with_shared_and_own_data__each_rendered_with_its_own(
    api_client, approve_as_operator, chunks
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


def test_batch__one_bad_recipient__400_naming_it_and_nothing_stored(api_client, chunks):
    response = post_batch(
        api_client,
        {**INLINE, "recipients": [{"to": "a@example.com"}, {"to": "not-an-address"}]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "recipients.1.to": ["Enter a valid email address."]
    }
    assert Message.all_tenants.count() == 0 and chunks == []


@pytest.mark.parametrize("count", [0, 10_001])
def test_batch__no_or_too_many_recipients__400(api_client, chunks, count):
    recipients = [{"to": f"u{i}@example.com"} for i in range(count)]
    response = post_batch(api_client, {**INLINE, "recipients": recipients})
    assert response.status_code == 400
    assert "recipients" in response.json()["error"]["fields"]


def test_batch__10000_recipients__accepted_stored_and_published_in_100_chunks(
    api_client, chunks, django_capture_on_commit_callbacks
):
    # Given the largest batch allowed
    recipients = [{"to": f"user{i}@example.com"} for i in range(10_000)]
    # When it is sent
    with django_capture_on_commit_callbacks(execute=True):
        response = post_batch(api_client, {**INLINE, "recipients": recipients})
    # Then every message is stored queued, and published in chunks of 100
    assert response.status_code == 202, response.content
    assert response.json()["count"] == 10_000
    assert Message.all_tenants.filter(status=MessageStatus.QUEUED).count() == 10_000
    assert len(chunks) == 100 and sum(map(len, chunks)) == 10_000


def test_batch__same_idempotency_key_again__first_answer_no_second_batch(api_client, chunks):
    body = {**INLINE, "recipients": [{"to": "a@example.com"}, {"to": "b@example.com"}]}
    first = post_batch(api_client, body, HTTP_IDEMPOTENCY_KEY="campaign-7")
    again = post_batch(api_client, body, HTTP_IDEMPOTENCY_KEY="campaign-7")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert Message.all_tenants.count() == 2
