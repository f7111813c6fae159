"""A message the email transport cannot build is a permanent failure, with the reason, decided
before any SMTP connection: retrying the same content could only fail again. A subject that
would break a header line is sent on one line instead."""

import pytest

from notify.messaging import services
from notify.messaging.models import Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message


@pytest.fixture
def queued_retries(monkeypatch) -> list:  # noqa: ANN001
    calls: list = []
    monkeypatch.setattr(services, "enqueue_delivery", lambda *args, **kwargs: calls.append(args))
    return calls


def stored_email(  # noqa: ANN001
    tenant, *, to: str = "ana@example.com", subject: str = "S", cc: tuple[str, ...] = ()
) -> Message:
    """A message as stored before the API refused such input (or from another origin)."""
    return create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="email",
            recipient=to,
            subject=subject,
            body="B",
            params={"cc": list(cc)} if cc else None,
        ),
    )


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\r\n", "\t"])
def test_deliver__subject_breaks_a_header_line__sent_on_one_line_nothing_injected(
    tenant, smtp_server, queued_retries, char
):
    # Given a stored message whose subject breaks a header line (the legacy API accepts it, as
    # the old gateway did, which delivered it)
    message = stored_email(tenant, subject=f"Hello{char}Bcc: victim@example.com")
    # When the worker delivers it
    services.deliver(message.id)
    # Then it goes out once, to its recipient only, the break a space: no header was added
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    (mail,) = smtp_server.received
    assert mail.rcpt_tos == ["ana@example.com"]
    assert mail.message["Bcc"] is None
    assert mail.subject == "Hello" + " " * len(char) + "Bcc: victim@example.com"


def test_deliver__recipient_cannot_be_a_header__failed_with_recipient_masked(
    tenant, smtp_server, queued_retries
):
    message = stored_email(tenant, to="ana@exam\u2028ple.com")
    services.deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.error.startswith("message cannot be built: recipient:")
    assert queued_retries == [] and smtp_server.received == []


def test_deliver__address_the_email_library_refuses__failed_at_once(
    tenant, smtp_server, queued_retries
):
    # Given a domain label longer than DNS allows (63): the IDNA encoder refuses it
    message = stored_email(tenant, to=f"ana@{'x' * 64}.example.com")
    # When
    services.deliver(message.id)
    # Then: permanent, with the library's reason, never retried
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.attempts == 1
    assert message.error.startswith("message cannot be built: UnicodeError")
    assert queued_retries == [] and smtp_server.received == []


def test_deliver__ordinary_message__still_sent(tenant, smtp_server, queued_retries):
    message = stored_email(tenant, subject="Crème brûlée 🍮")
    services.deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert smtp_server.received[0].subject == "Crème brûlée 🍮"


def test_deliver__recipient_refused_while_its_cc_is_taken__failed_as_the_server_said(
    tenant, smtp_server, queued_retries
):
    # Given a mail whose recipient the server refuses, with a copy to an address it accepts
    message = stored_email(tenant, to="reject-ana@example.com", cc=("copy@example.com",))
    # When the worker delivers it
    services.deliver(message.id)
    # Then the message failed with the server's refusal (the copy went, as SMTP does it)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.error_code == "550"
    assert "recipient refused" in message.error
    assert [m.rcpt_tos for m in smtp_server.received] == [["copy@example.com"]]


def test_deliver__a_copy_that_cannot_be_addressed__left_out_the_recipient_still_gets_it(
    tenant, smtp_server, queued_retries
):
    message = stored_email(tenant, cc=("copy@example..com", "ok@example.com"))
    services.deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert [m.rcpt_tos for m in smtp_server.received] == [["ana@example.com", "ok@example.com"]]
