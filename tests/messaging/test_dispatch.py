from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging import services
from notify.messaging.models import Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message
from notify.messaging.tasks import deliver_message


@pytest.fixture(autouse=True)
def longest_backoff(monkeypatch) -> None:  # noqa: ANN001
    """Each retry waits its whole step (the jitter picks the top of its range)."""
    monkeypatch.setattr(services, "backoff_jitter", lambda: 1.0)


@pytest.fixture
def queued_retries(monkeypatch) -> list[str]:  # noqa: ANN001
    """The ids of the broker wake-ups published (nothing reaches a broker)."""
    calls: list[str] = []
    monkeypatch.setattr(services, "enqueue_delivery", calls.append)
    return calls


def retry_wait(message: Message) -> float:
    """Seconds from the last failure to the retry the row schedules (the sweep publishes it
    then: nothing waits in the broker)."""
    message.refresh_from_db()
    assert message.republish_at == message.next_attempt_at
    failed_at = message.events.filter(status="queued").latest("created_at", "id").created_at
    return round((message.next_attempt_at - failed_at).total_seconds())


def make_email(tenant, to="ana@example.com", subject="Your code") -> Message:  # noqa: ANN001
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(channel="email", recipient=to, subject=subject, body="Code: 123456"),
    )
    return message


def make_due(message: Message) -> None:
    """The retry's wait is over."""
    Message.all_tenants.filter(pk=message.pk).update(next_attempt_at=timezone.now())


def statuses(message: Message) -> list[str]:
    return list(message.events.order_by("created_at", "id").values_list("status", flat=True))


def test_deliver__smtp_accepts__mail_arrives_and_message_delivered(
    tenant, smtp_server, queued_retries
):
    # Given
    message = make_email(tenant)
    # When
    deliver_message.apply(args=[message.id])
    # Then
    assert len(smtp_server.received) == 1
    mail = smtp_server.received[0]
    assert mail.rcpt_tos == ["ana@example.com"]
    assert mail.subject == "Your code"
    assert mail.message["X-Notify-Message-Id"] == message.id
    assert "Code: 123456" in mail.message.get_content()
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert message.attempts == 1
    assert message.sent_at is not None and message.delivered_at is not None
    assert statuses(message) == ["queued", "sending", "sent", "delivered"]


def test_deliver__task_delivered_twice__one_mail(tenant, smtp_server, queued_retries):
    # Given
    message = make_email(tenant)
    # When the broker hands the same task over twice
    deliver_message.apply(args=[message.id])
    deliver_message.apply(args=[message.id])
    # Then
    assert len(smtp_server.received) == 1
    message.refresh_from_db()
    assert message.attempts == 1


def test_deliver__message_already_sending__not_sent_again(
    deliver, tenant, smtp_server, queued_retries
):
    # Given a message another worker has claimed
    message = make_email(tenant)
    Message.all_tenants.filter(pk=message.id).update(status=MessageStatus.SENDING)
    # When
    deliver(message.id)
    # Then
    assert smtp_server.received == []


def test_deliver__html_message__sent_as_html(deliver, tenant, smtp_server, queued_retries):
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="email", recipient="a@example.com", subject="S", html="<b>x</b>"
        ),
    )
    deliver(message.id)
    mail = smtp_server.received[0].message
    assert mail.get_content_type() == "text/html"
    assert "<b>x</b>" in mail.get_content()


def test_deliver__recipient_refused_permanently__failed_with_reason_no_retry(
    deliver, tenant, smtp_server, queued_retries
):
    # Given
    message = make_email(tenant, to="reject-me@example.com")
    # When
    deliver(message.id)
    # Then
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "550" in message.error and "mailbox does not exist" in message.error
    assert message.failed_at is not None
    assert statuses(message) == ["queued", "sending", "failed"]
    assert smtp_server.received == []
    assert queued_retries == []


def test_deliver__recipient_refused_temporarily__requeued_with_backoff(
    deliver, tenant, smtp_server, queued_retries, settings
):
    # Given
    settings.NOTIFY_RETRY_DELAYS = [7, 70]
    message = make_email(tenant, to="busy-mailbox@example.com")
    # When
    deliver(message.id)
    # Then it waits and tries again
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert "451" in message.error
    assert retry_wait(message) == 7
    # When the second try fails too, the wait grows
    make_due(message)
    deliver(message.id)
    message.refresh_from_db()
    assert retry_wait(message) == 70
    assert message.attempts == 2
    # When the last try fails, the message is dead (kept for a retry)
    make_due(message)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DEAD
    assert message.error.startswith("gave up after 3 attempts")
    assert statuses(message) == [
        "queued",
        "sending",
        "queued",
        "sending",
        "queued",
        "sending",
        "dead",
    ]
    assert list(message.delivery_attempts.values_list("number", "outcome")) == [
        (1, "temporary_failure"),
        (2, "temporary_failure"),
        (3, "temporary_failure"),
    ]


def test_deliver__smtp_server_down__temporary_failure_retried(
    deliver, tenant, settings, queued_retries
):
    # Given no server listens on the configured port
    from tests.smtp import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.NOTIFY_RETRY_DELAYS = [5]
    message = make_email(tenant)
    # When
    deliver(message.id)
    # Then
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert "unreachable" in message.error
    assert retry_wait(message) == 5


def test_deliver__temporary_failure_then_success__delivered_once(
    deliver, tenant, smtp_server, queued_retries, settings
):
    # Given a first try that hit a temporary refusal
    settings.NOTIFY_RETRY_DELAYS = [1]
    message = make_email(tenant, to="busy@example.com")
    deliver(message.id)
    # When the mailbox frees up and the retry runs
    Message.all_tenants.filter(pk=message.id).update(recipient="ana@example.com")
    make_due(message)
    deliver(message.id)
    # Then
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert len(smtp_server.received) == 1


def test_deliver__retry_task_arrives_early__not_sent_and_published_when_due(
    deliver, tenant, smtp_server, queued_retries, settings, time_machine
):
    # Given a message whose first try failed, waiting 300 s for its retry
    settings.NOTIFY_RETRY_DELAYS = [300]
    message = make_email(tenant, to="busy@example.com")
    before = timezone.now()
    deliver(message.id)
    after = timezone.now()
    message.refresh_from_db()
    assert before + timedelta(seconds=300) <= message.next_attempt_at
    assert message.next_attempt_at <= after + timedelta(seconds=300)
    Message.all_tenants.filter(pk=message.id).update(recipient="ana@example.com")
    published = len(queued_retries)
    # When a duplicate task runs 120 s before the retry is due, and the sweep runs then
    time_machine.move_to(message.next_attempt_at - timedelta(seconds=120), tick=False)
    deliver(message.id)
    services.sweep()
    # Then nothing is sent or published yet
    assert smtp_server.received == []
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.attempts == 1
    assert len(queued_retries) == published
    # When the retry is due, the sweep publishes it, and its task sends it
    time_machine.move_to(message.next_attempt_at, tick=False)
    services.sweep()
    assert queued_retries[published:] == [message.id]
    deliver(message.id)
    assert len(smtp_server.received) == 1


def test_deliver__refusal_quotes_recipient__reason_masked(
    deliver, tenant, smtp_server, queued_retries
):
    # Given a server whose refusal quotes the address, as real ones do
    message = make_email(tenant, to="quote-reject.secret@example.com")
    # When
    deliver(message.id)
    # Then
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "Recipient address rejected" in message.error
    assert "quote-reject.secret" not in message.error
    assert "q***@example.com" in message.error
    details = "".join(message.events.values_list("detail", flat=True))
    assert "quote-reject.secret" not in details


def test_deliver_chunk__one_smtp_connection__reopened_only_after_a_refusal(
    tenant, smtp_server, queued_retries
):
    # Given a chunk of five messages, the third to a mailbox the server refuses
    recipients = ["a@example.com", "b@example.com", "reject-me@example.com", "c@example.com"]
    messages = [make_email(tenant, to=to) for to in [*recipients, "d@example.com"]]
    # When one task sends the chunk
    services.deliver_chunk([m.id for m in messages])
    # Then the four accepted mails came over two connections: one until the refusal, one after
    sessions = [mail.session for mail in smtp_server.received]
    assert len(sessions) == 4
    assert sessions[0] == sessions[1] and sessions[2] == sessions[3]
    assert sessions[1] != sessions[2]
    statuses_now = [Message.all_tenants.get(pk=m.id).status for m in messages]
    assert statuses_now == ["delivered", "delivered", "failed", "delivered", "delivered"]


def test_deliver__database_drops_while_recording__recorded_on_a_later_try_sent_once(
    tenant, smtp_server, queued_retries, monkeypatch
):
    # Given a database that refuses the first two writes of the outcome
    from django.db import OperationalError

    from notify.messaging import delivery_sql

    real_record = delivery_sql.record
    refusals = []

    def flaky_record(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if len(refusals) < 2:
            refusals.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(delivery_sql, "record", flaky_record)
    monkeypatch.setattr(services, "RECORD_RETRY_DELAYS", (0.01, 0.01, 0.01))
    message = make_email(tenant)
    # When the worker delivers it
    services.deliver(message.id)
    # Then the mail went out once and the outcome is recorded
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert len(smtp_server.received) == 1 and len(refusals) == 2


def test_deliver__database_down_for_good__error_raised_for_the_task_to_retry(
    tenant, smtp_server, queued_retries, monkeypatch
):
    from django.db import OperationalError

    from notify.messaging import delivery_sql

    def down(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OperationalError("could not connect")

    monkeypatch.setattr(delivery_sql, "record", down)
    monkeypatch.setattr(services, "RECORD_RETRY_DELAYS", (0.01,))
    message = make_email(tenant)
    with pytest.raises(OperationalError):
        services.deliver(message.id)
