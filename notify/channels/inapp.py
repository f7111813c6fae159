"""The in-app channel: the platform itself is the provider. Delivering a message puts it in
its recipient's inbox (GET /v2/inbox/<recipient>); the inbox entry is written when the delivery
is committed (notify.messaging.inbox), so the transport only says so."""

from __future__ import annotations

from notify.channels.base import Envelope, SendResult, Transport, register


@register
class InAppTransport(Transport):
    channel = "inapp"

    def send(self, envelope: Envelope) -> SendResult:
        return SendResult(detail="in the recipient's inbox", delivered=True)
