"""The broker fails while the platform works: a broker of its own (redis-server, no
persistence) that the test stops and starts again, empty. Nothing accepted is lost, nothing is
sent twice: the database holds the work, the sweep publishes it again."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from notify.messaging.models import Message, MessageStatus
from notify.tenants.services import create_tenant
from tests.e2e.conftest import (
    Platform,
    _ready_with_worker,
    platform_env,
    spawn,
    stop,
    web_command,
    worker_command,
)
from tests.e2e.conftest import (
    test_database_url as database_url_of_test_db,
)
from tests.smtp import SmtpServer, free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


class Broker:
    """A redis-server on its own port, keeping nothing on disk: stopping it loses its queues."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import redis

                if redis.Redis.from_url(self.url).ping():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def outage_platform(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[tuple]:  # noqa: ANN001
    tmp_path = tmp_path_factory.mktemp("outage")
    with django_db_blocker.unblock():
        database_url = database_url_of_test_db()
    broker = Broker()
    broker.start()
    with SmtpServer() as smtp:
        env = platform_env(
            database_url,
            CELERY_BROKER_URL=broker.url,
            REDIS_URL=broker.url,
            EMAIL_URL=smtp.url,
            NOTIFY_SENDING_LEASE="10",
        )
        port = free_port()
        web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
        processes = []
        try:
            processes.append(spawn(web_command(port), env, web_log))
            processes.append(spawn(worker_command(tmp_path / "beat-schedule"), env, worker_log))
            platform = Platform(f"http://127.0.0.1:{port}", smtp, [web_log, worker_log])
            platform.wait_for(
                lambda: _ready_with_worker(platform.base_url), timeout=60, what="the worker"
            )
            yield platform, broker
        finally:
            stop(processes)
            broker.stop()


def test_broker_down_while_accepting_then_back_empty__all_100_delivered_once(
    transactional_db,
    outage_platform,  # noqa: ANN001
):
    platform, broker = outage_platform
    _, api_key = create_tenant("e2e-outage", name="E2E Outage")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"

    def accept(n: int) -> str:
        response = session.post(
            f"{platform.base_url}/v2/messages",
            json={
                "channel": "email",
                "to": f"user{n}@example.com",
                "subject": f"Code {n}",
                "body": f"{n}",
            },
            timeout=30,
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    # Given 30 messages accepted while the broker runs
    ids = [accept(n) for n in range(30)]
    # When the broker dies (its queues with it), 40 more are accepted, and it comes back empty
    broker.stop()
    ids += [accept(n) for n in range(30, 70)]
    broker.start()
    ids += [accept(n) for n in range(70, 100)]
    # Then all 100 are delivered
    platform.wait_for(
        lambda: (
            Message.all_tenants.filter(pk__in=ids, status=MessageStatus.DELIVERED).count() == 100
        ),
        timeout=90,
        what="all 100 messages delivered",
    )
    # And each reached the SMTP server exactly once
    received = Counter(mail.message["X-Notify-Message-Id"] for mail in platform.smtp.received)
    assert sorted(received) == sorted(ids)
    assert set(received.values()) == {1}
