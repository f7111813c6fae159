import contextlib
import smtplib
from email.utils import formataddr, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import sanitize_address

from notify.channels.base import Envelope, SendResult, Transport, TransportError, register
from notify.headers import header_problem


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
        *(("recipient", address) for address in (*mail.to, *mail.cc)),
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
    channel = "email"

    def __init__(self) -> None:
        # one SMTP connection for every send of this transport (a chunk), opened on first use
        self._connection = None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # (a connection that died is closed already)
            with contextlib.suppress(Exception):
                connection.close()

    def send(self, envelope: Envelope) -> SendResult:
        mail = _BuiltOnce(
            subject=envelope.subject,
            body=envelope.body,
            from_email=_sender(envelope.provider_hints.get("from_name", "")),
            to=[envelope.recipient],
            cc=list(envelope.provider_hints.get("cc", ())),
            headers={**envelope.headers, "X-Notify-Message-Id": envelope.message_id},
        )
        if envelope.html:
            if envelope.body:
                mail.attach_alternative(envelope.html, "text/html")
            else:
                mail.body = envelope.html
                mail.content_subtype = "html"
        build_check(mail)
        try:
            if self._connection is None:
                connection = get_connection(fail_silently=False)
                connection.open()
                self._connection = connection
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
        host = getattr(self._connection, "host", "")
        port = getattr(self._connection, "port", "")
        return SendResult(detail=f"accepted by SMTP server {host}:{port}", delivered=True)


def _sender(display_name: str) -> str:
    """DEFAULT_FROM_EMAIL, under the caller's display name when it gave one (the legacy
    `from_alias`); the name is encoded by the email library, never parsed as an address."""
    # a display name is one header line: line breaks and other controls become spaces
    display_name = "".join(
        " " if ord(char) < 32 or char in "\x7f\x85\u2028\u2029" else char for char in display_name
    ).strip()
    if not display_name:
        return settings.DEFAULT_FROM_EMAIL
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return formataddr((display_name, address or settings.DEFAULT_FROM_EMAIL))


def _transport_error(exc: BaseException) -> BaseException:
    """What a failed send means for the message (a non-SMTP error passes through)."""
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
