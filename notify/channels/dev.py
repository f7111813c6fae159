"""Development transports (NOTIFY_DEV_TRANSPORT): a channel the platform has no provider for
(no SMS_HTTP_URL, no PUSH_HTTP_URL) is "sent" to the console (a log line) or to a file (one
JSON object per line in NOTIFY_DEV_OUTBOX), so that `make run` shows every message without a
provider account. They deliver at once; they never run in production (a deploy check warns)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from django.conf import settings

from notify.channels.base import Envelope, SendResult, Transport

logger = logging.getLogger("notify.outbox")
_file_lock = threading.Lock()


def _record(envelope: Envelope) -> dict:
    return {
        "id": envelope.message_id,
        "channel": envelope.channel,
        "to": envelope.recipient,
        "subject": envelope.subject,
        "body": envelope.body or envelope.html,
    }


class ConsoleTransport(Transport):
    channel = "*"

    def send(self, envelope: Envelope) -> SendResult:
        logger.info("outbox: %s", json.dumps(_record(envelope), ensure_ascii=False))
        return SendResult(detail="written to the console (development transport)", delivered=True)


class FileTransport(Transport):
    channel = "*"

    def send(self, envelope: Envelope) -> SendResult:
        path = Path(settings.NOTIFY_DEV_OUTBOX)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(_record(envelope), ensure_ascii=False) + "\n"
        with _file_lock, path.open("a", encoding="utf-8") as outbox:
            outbox.write(line)
        return SendResult(detail=f"written to {path} (development transport)", delivered=True)


DEV_TRANSPORTS = {"console": ConsoleTransport, "file": FileTransport}
