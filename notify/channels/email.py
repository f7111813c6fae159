import contextlib
import smtplib
from collections.abc import Callable
from email.utils import formataddr, parseaddr
from typing import Any

from anymail.exceptions import AnymailError
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import sanitize_address

from notify.channels.base import Envelope, SendResult, Transport, TransportError, register
from notify.headers import header_problem, header_text


class _BuiltOnce(EmailMultiAlternatives):
    """A mail whose MIME form is built once: the check before sending builds what is sent."""

    _built = None

    def message(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        if self._built is None:
            self._built = super().message(*args, **kwargs)
        return self._built


def build_check(mail: EmailMultiAlternatives) -> None:
    """Builds the whole message, headers and addresses, before any connection is made, and
    raises a permanent TransportError if it cannot be built: the same content never will be,
    so retrying would only repeat the failure for an hour. Header-bound values get the same
    check as at the API (a stored message may predate it, or come from another origin), since
    the email library lets some line-breaking characters through into the header."""
    checked = (
        ("subject", mail.subject),
        ("sender", mail.from_email),
        # (the copies are checked already: one that cannot be addressed is left out)
        *(("recipient", address) for address in mail.to),
    )
    for what, value in checked:
        problem = header_problem(value)
        if problem:
            raise TransportError(f"message cannot be built: {what}: {problem}", permanent=True)
    encoding = mail.encoding or settings.DEFAULT_CHARSET
    try:
        mail.message()
        for address in (mail.from_email, *mail.recipients()):
            sanitize_address(address, encoding)
    except Exception as exc:  # whatever the email library refuses to build, it always will
        raise TransportError(
            f"message cannot be built: {type(exc).__name__}: {exc}", permanent=True
        ) from exc


def _smtp_error(code: int, text: bytes | str, what: str) -> TransportError:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    # 5xx is the server's final word; 4xx (greylisting, full mailbox, throttling) may pass later.
    return TransportError(
        f"{what}: {code} {text}".strip(), permanent=500 <= code < 600, code=str(code)
    )


@register
class EmailTransport(Transport):
    """Mail through a Django email backend: the platform's (EMAIL_BACKEND: SMTP, or any
    anymail ESP) by default, or a tenant's ESP account (`connect`, `from_email`)."""

    channel = "email"

    def __init__(
        self,
        connect: Callable[[], Any] | None = None,
        from_email: str = "",
        label: str = "",
    ) -> None:
        # one connection for every send of this transport (a chunk), opened on first use
        self._connection = None
        self._connect = connect or (lambda: get_connection(fail_silently=False))
        self._from_email = from_email
        self._label = label

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # (a connection that died is closed already)
            with contextlib.suppress(Exception):
                connection.close()

    def send(self, envelope: Envelope) -> SendResult:
        mail = _BuiltOnce(
            # (the API refuses such a subject, but the old gateway accepted and delivered it:
            # a legacy send still goes out, its controls and line breaks as spaces)
            subject=header_text(envelope.subject),
            body=envelope.body,
            from_email=_sender(envelope.provider_hints.get("from_name", ""), self._from_email),
            to=[envelope.recipient],
            cc=_addressable(envelope.provider_hints.get("cc", ())),
            headers={**envelope.headers, "X-Notify-Message-Id": envelope.message_id},
        )
        for attachment in envelope.provider_hints.get("attachments", ()):
            mail.attach(attachment.filename, attachment.content, attachment.content_type)
        if envelope.html:
            if envelope.body:
                mail.attach_alternative(envelope.html, "text/html")
            else:
                mail.body = envelope.html
                mail.content_subtype = "html"
        build_check(mail)
        try:
            if self._connection is None:
                connection = self._connect()
                connection.open()
                self._connection = connection
            refused = _refusals_of(self._connection)
            sent = self._connection.send_messages([mail])
        except BaseException as exc:
            # whatever state the session is in now, the next send starts a new one
            self.close()
            error = _transport_error(exc)
            if error is exc:
                raise
            raise error from exc
        if sent != 1:
            raise TransportError("SMTP backend accepted no message", permanent=False)
        if refused:
            # the server took the mail for the copies (cc) and refused the recipient itself
            address = sanitize_address(
                envelope.recipient, mail.encoding or settings.DEFAULT_CHARSET
            )
            if address in refused:
                code, text = refused[address]
                raise _smtp_error(code, text, "recipient refused")
        accepted = getattr(mail, "anymail_status", None)
        if accepted is not None:
            # an ESP's API took it: its tracking webhook tells how it ends
            message_id = accepted.message_id
            if not isinstance(message_id, str):  # (one id per recipient: the `to` one's)
                status = accepted.recipients.get(envelope.recipient.lower())
                message_id = status.message_id if status is not None else ""
            label = self._label or f"{type(self._connection).__module__.split('.')[-1]} API"
            return SendResult(
                detail=f"accepted by the {label} ({', '.join(sorted(accepted.status or []))})",
                provider_message_id=str(message_id or "")[:255],
            )
        host = getattr(self._connection, "host", "")
        port = getattr(self._connection, "port", "")
        return SendResult(detail=f"accepted by SMTP server {host}:{port}", delivered=True)


def _addressable(copies: Any) -> list[str]:
    """The copies (cc) mail can be addressed to: one that cannot (`a@b..co`, a line break) is
    left out rather than failing the message to its recipient, as the old gateway, which only
    wrote the copies to its outbox, delivered it."""
    kept = []
    for address in copies:
        if header_problem(address) is None:
            try:
                sanitize_address(address, settings.DEFAULT_CHARSET)
            except Exception:  # noqa: BLE001, S112 - whatever the email library refuses
                continue
            kept.append(address)
    return kept


def _refusals_of(backend: Any) -> dict:
    """What the SMTP server will refuse of the next mail's recipients while taking it for the
    others: Django's SMTP backend drops that answer of `sendmail`, so a refused recipient
    beside an accepted cc would count as sent. Empty for a backend that is not SMTP."""
    smtp = getattr(backend, "connection", None)
    if not isinstance(smtp, smtplib.SMTP):
        return {}
    refused = getattr(smtp.sendmail, "refused", None)
    if refused is None:
        send = smtp.sendmail
        refused = {}

        def sendmail(*args: Any, **kwargs: Any) -> dict:
            refused.clear()
            answer = send(*args, **kwargs)
            refused.update(answer or {})
            return answer

        sendmail.refused = refused  # type: ignore[attr-defined]
        smtp.sendmail = sendmail
    return refused


def _sender(display_name: str, from_email: str = "") -> str:
    """`from_email` (default DEFAULT_FROM_EMAIL), under the caller's display name when it gave
    one (the legacy `from_alias`); the name is encoded by the email library, never parsed as
    an address."""
    default = from_email or settings.DEFAULT_FROM_EMAIL
    # a display name is one header line: line breaks and other controls become spaces
    display_name = header_text(display_name).strip()
    if not display_name:
        return default
    _, address = parseaddr(default)
    return formataddr((display_name, address or default))


def _transport_error(exc: BaseException) -> BaseException:
    """What a failed send means for the message (a non-SMTP error passes through)."""
    if isinstance(exc, AnymailError):
        from notify.channels.anymail_esp import send_errors

        return send_errors(exc, "the email provider's API")
    if isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPConnectError)):
        # Our side's configuration or the server's state, not this message: fixing either
        # lets the retry through.
        return TransportError(f"SMTP server refused us: {exc}", permanent=False)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return _smtp_error(code, text, "recipient refused")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _smtp_error(exc.smtp_code, exc.smtp_error, "sender refused")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _smtp_error(exc.smtp_code, exc.smtp_error, "SMTP error")
    if isinstance(exc, (TimeoutError, smtplib.SMTPException, OSError)):
        return TransportError(f"SMTP server unreachable: {exc}", permanent=False)
    return exc
