"""A worker is SIGKILLed in the middle of a 2,000-recipient batch, then another starts: every
message reaches a final state and each mail reaches the SMTP server once, except at most one
per killed worker process (the send in flight at the instant of the kill: SMTP has no
idempotency). That message's worker held a lease; when it runs out, the sweep queues the
message again (an event says so) and it is sent again: at least once, never lost."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from notify.messaging.models import FINAL_STATUSES, Message, MessageEvent
from notify.tenants.services import create_tenant
from tests.e2e.conftest import (
    Platform,
    _ready_with_worker,
    kill_outright,
    platform_env,
    spawn,
    stop,
    web_command,
    worker_command,
)
from tests.e2e.conftest import test_database_url as database_url_of_test_db
from tests.smtp import SmtpServer, free_port

pytestmark = pytest.mark.e2e

BATCH = 2000


def test_worker_killed_mid_batch__restarted__all_final_each_mail_once_but_the_one_in_flight(
    transactional_db,
    tmp_path,  # noqa: ANN001
):
    port = free_port()
    logs = [tmp_path / "web.log", tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    schedule = tmp_path / "beat-schedule"
    with SmtpServer() as smtp:
        env = platform_env(database_url_of_test_db(), EMAIL_URL=smtp.url)
        processes = [spawn(web_command(port), env, logs[0])]
        try:
            processes.append(spawn(worker_command(schedule), env, logs[1]))
            platform = Platform(f"http://127.0.0.1:{port}", smtp, logs)
            platform.wait_for(lambda: _ready_with_worker(platform.base_url), timeout=60)
            # Given a batch of 2,000 being delivered
            _, api_key = create_tenant("e2e-killed", name="E2E Killed")
            response = requests.post(
                f"{platform.base_url}/v2/messages/batch",
                json={
                    "channel": "email",
                    "subject": "Notice",
                    "body": "Hello",
                    "recipients": [{"to": f"r{i}@example.com"} for i in range(BATCH)],
                },
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=60,
            )
            assert response.status_code == 202, response.text
            batch_id = response.json()["batch_id"]
            platform.wait_for(lambda: len(smtp.received) >= 300, timeout=120, what="300 mails")
            # When its worker is killed outright, then another one starts
            kill_outright(processes[1])
            processes.append(spawn(worker_command(schedule), env, logs[2]))
            # Then every message of the batch ends in a final state
            messages = Message.all_tenants.filter(batch_id=batch_id)
            platform.wait_for(
                lambda: messages.filter(status__in=list(FINAL_STATUSES)).count() == BATCH,
                timeout=240,
                what="every message final",
            )
            assert set(messages.values_list("status", flat=True)) == {"delivered"}
            # And the SMTP server got each once, but at most one (the send in flight)
            received = Counter(m.message["X-Notify-Message-Id"] for m in smtp.received)
            assert set(received) == set(messages.values_list("id", flat=True))
            twice = [message_id for message_id, count in received.items() if count > 1]
            assert len(twice) <= 1 and max(received.values()) <= 2
            # And a message sent again says why in its timeline
            for message_id in twice:
                assert MessageEvent.objects.filter(
                    message_id=message_id, detail__contains="lease expired"
                ).exists()
        finally:
            stop(processes)
