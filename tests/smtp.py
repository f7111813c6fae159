"""A real SMTP server on loopback (aiosmtpd) that records what it accepts.

Recipients whose local part starts with `reject` are refused permanently (550), those starting
with `quote-reject` too, quoting the address as real servers do, and those starting with `busy`
temporarily (451)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    # the SMTP connection it came over (the client's port: one per connection)
    session: int = 0

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


@dataclass
class RecordingHandler:
    received: list[ReceivedMail] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        local = address.split("@", 1)[0]
        if local.startswith("quote-reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        if local.startswith("reject"):
            return "550 5.1.1 mailbox does not exist"
        if local.startswith("busy"):
            return "451 4.3.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), parsed, session.peer[1])
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    def __init__(self) -> None:
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
