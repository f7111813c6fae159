"""Attempts are rows; retries back off with full jitter and honour Retry-After; a message
whose attempts are all spent is dead, and a retry (API or admin) gives it a new round."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from notify.channels.base import Envelope, SendResult, Transport, TransportError
from notify.messaging import delivery_sql, services
from notify.messaging.models import Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message


@pytest.fixture(autouse=True)
def published(monkeypatch) -> list[str]:  # noqa: ANN001
    calls: list[str] = []
    monkeypatch.setattr(services, "enqueue_delivery", calls.append)
    return calls


class ScriptedTransport(Transport):
    """A provider that answers each send with the next scripted outcome."""

    def __init__(self, outcomes: list) -> None:
        self.outcomes = outcomes

    def send(self, envelope: Envelope) -> SendResult:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def provider(monkeypatch) -> list:  # noqa: ANN001
    outcomes: list = []
    monkeypatch.setattr(
        services, "get_transport", lambda channel, tenant_id=None: ScriptedTransport(outcomes)
    )
    return outcomes


def make_message(tenant, to="ana@example.com") -> Message:  # noqa: ANN001
    message = create_message(
        tenant=tenant, draft=MessageDraft(channel="email", recipient=to, subject="S", body="B")
    )
    return message


def test_attempt__provider_accepts__one_row_with_outcome_and_latency(tenant, deliver, provider):
    # Given a provider that accepts the message with its own id
    provider.append(SendResult("250 OK", delivered=True, provider_message_id="prov-1"))
    message = make_message(tenant)
    # When it is delivered
    deliver(message.id)
    # Then one attempt row tells how
    (attempt,) = message.delivery_attempts.all()
    assert (attempt.number, attempt.outcome, attempt.provider_message_id) == (
        1,
        "delivered",
        "prov-1",
    )
    assert attempt.finished_at >= attempt.started_at and attempt.latency_ms is not None


@pytest.mark.parametrize(
    ("jitter", "retry_after", "expected"),
    [(1.0, None, 60.0), (0.5, None, 30.0), (0.0, None, 1.0), (0.5, 120, 120.0), (1.0, 5, 60.0)],
)
def test_retry_delay__jitter_and_retry_after__within_the_step_never_before_the_provider_asks(
    monkeypatch,
    settings,
    jitter,
    retry_after,
    expected,  # noqa: ANN001
):
    # Given a backoff step of 60 s for the second attempt
    settings.NOTIFY_RETRY_DELAYS = [10, 60]
    monkeypatch.setattr(services, "backoff_jitter", lambda: jitter)
    # When the delay is chosen
    # Then it lies anywhere in the step (at least 1 s), and never before Retry-After
    assert services.retry_delay(2, retry_after) == expected


def test_retry_delay__many_messages_failing_together__retries_spread_out(settings):
    # Given the real jitter
    settings.NOTIFY_RETRY_DELAYS = [600]
    # When 200 messages fail at once
    delays = [services.retry_delay(1) for _ in range(200)]
    # Then their retries are spread over the step, not all at its end
    assert all(1.0 <= delay <= 600.0 for delay in delays)
    assert len({round(delay) for delay in delays}) > 100


def test_attempt__provider_asks_to_wait__retry_scheduled_after_its_retry_after(
    tenant, deliver, provider, settings
):
    # Given a provider that answers "too many requests, retry after 900 s"
    settings.NOTIFY_RETRY_DELAYS = [10, 10]
    provider.append(TransportError("429 slow down", permanent=False, retry_after=900))
    message = make_message(tenant)
    before = timezone.now()
    # When the attempt fails
    deliver(message.id)
    # Then the retry waits at least what the provider asked
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at >= before + timedelta(seconds=900)
    (attempt,) = message.delivery_attempts.all()
    assert attempt.outcome == "temporary_failure" and "429" in attempt.error


def test_dead_message__retried_through_the_api__new_round_then_delivered(
    tenant,
    deliver,
    provider,
    settings,
    api_client,
    other_tenant_client,
    published,
    django_capture_on_commit_callbacks,
):
    # Given a message whose only allowed attempt failed temporarily: dead
    settings.NOTIFY_RETRY_DELAYS = []
    provider.append(TransportError("451 try later", permanent=False))
    message = make_message(tenant)
    deliver(message.id)
    assert Message.all_tenants.get(pk=message.id).status == MessageStatus.DEAD
    url = reverse("message-retry", args=[message.id])
    # When another tenant asks to retry it
    response = other_tenant_client.post(url)
    # Then it is not found, and nothing changed
    assert response.status_code == 404
    assert Message.all_tenants.get(pk=message.id).status == MessageStatus.DEAD
    # When its tenant retries it
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(url)
    # Then it is queued again, published, and says who retried it
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["error"] == ""
    assert body["events"][-1]["detail"] == "retried by tenant acme (API)"
    assert published == [message.id]
    # And the new attempt is sent
    provider.append(SendResult("250 OK", delivered=True))
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED and message.attempts == 2
    assert [
        a["outcome"]
        for a in api_client.get(reverse("message-detail", args=[message.id])).json()[
            "delivery_attempts"
        ]
    ] == ["temporary_failure", "delivered"]  # noqa: E501
    # When it is retried again, now delivered
    response = api_client.post(url)
    # Then the API says why not, in its own format
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_retryable"


def test_dead_message__retried_from_admin__queued_with_the_operator_named(
    tenant, deliver, provider, settings, client, published
):
    # Given a dead message, a delivered one, and an operator in the admin
    settings.NOTIFY_RETRY_DELAYS = []
    provider.extend([TransportError("451 later", permanent=False), SendResult("250 OK", True)])
    dead = make_message(tenant)
    deliver(dead.id)
    delivered = make_message(tenant, to="b@example.com")
    deliver(delivered.id)
    operator = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-12345678")
    client.force_login(operator)
    # When the operator runs "retry" on both
    response = client.post(
        reverse("admin:messaging_message_changelist"),
        {"action": "retry", "_selected_action": [dead.id, delivered.id]},
        follow=True,
    )
    # Then the dead one is queued again, the delivered one is left alone, and the page says so
    assert response.status_code == 200
    assert Message.all_tenants.get(pk=dead.id).status == MessageStatus.QUEUED
    assert Message.all_tenants.get(pk=delivered.id).status == MessageStatus.DELIVERED
    page = response.content.decode()
    assert "1 message(s) queued again." in page and "1 message(s) skipped" in page
    assert dead.events.latest("created_at", "id").detail == "retried by operator ops (admin)"


def test_sweep__worker_died__its_open_attempt_marked_abandoned(tenant, settings, time_machine):
    # Given a claimed message whose worker died
    settings.NOTIFY_SENDING_LEASE = 10
    time_machine.move_to(timezone.now(), tick=False)
    message = make_message(tenant)
    assert delivery_sql.claim([message.id], timezone.now())
    # When the sweep runs after the lease
    time_machine.shift(timedelta(seconds=11))
    services.sweep()
    # Then the attempt is closed as abandoned
    (attempt,) = message.delivery_attempts.all()
    assert attempt.outcome == "abandoned" and "lease expired" in attempt.error


def test_dead_batch_message__retried__woken_in_the_bulk_lane_not_the_transactional_queue(
    tenant, provider, settings, published, monkeypatch, django_capture_on_commit_callbacks
):
    # Given a dead message of a batch
    settings.NOTIFY_RETRY_DELAYS = []
    bulk_wakeups: list[int] = []
    monkeypatch.setattr(services, "publish_bulk_wakeups", lambda n: bulk_wakeups.append(n) or 1)
    provider.append(TransportError("451 later", permanent=False))
    batch = services.create_batch(
        tenant=tenant,
        drafts=[MessageDraft(channel="email", recipient="a@example.com", subject="S", body="B")],
    )
    (message_id,) = batch.message_ids
    bulk_wakeups.clear()
    services.deliver_chunk([message_id])
    dead = Message.all_tenants.get(pk=message_id)
    assert dead.status == MessageStatus.DEAD
    # When it is retried
    with django_capture_on_commit_callbacks(execute=True):
        services.retry_message(dead, by="operator ops (admin)")
    # Then the bulk lane is woken for it, and the transactional queue is left to codes
    assert bulk_wakeups == [1] and published == []
    assert Message.all_tenants.get(pk=message_id).status == MessageStatus.QUEUED
