"""Real processes: a web server and a Celery worker, both on the test database and the real
broker (Redis when REDIS_URL is set), and an aiosmtpd server on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.smtp import SmtpServer, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The processes' HEALTH_TOKEN: readiness details (the worker's heartbeat) for these tests.
HEALTH_TOKEN = "e2e-" + uuid.uuid4().hex


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor == "postgresql":
        auth = quote(db["USER"] or "")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"])
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    raise RuntimeError(f"e2e tests do not support {connection.vendor}")


@dataclass
class Platform:
    base_url: str
    smtp: SmtpServer
    logs: list[Path]

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):  # noqa: ANN001, ANN201
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        tails = "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in self.logs)
        raise AssertionError(f"timed out waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
def running_platform(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Platform]:  # noqa: ANN001
    """Started once per module: the processes outlive each test's data, which is flushed."""
    tmp_path = tmp_path_factory.mktemp("platform")
    with django_db_blocker.unblock():
        database_url = test_database_url()
    with SmtpServer() as smtp:
        env = platform_env(database_url, EMAIL_URL=smtp.url, NOTIFY_RETRY_DELAYS="1,1")
        port = free_port()
        web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
        processes = []
        try:
            processes.append(spawn(web_command(port), env, web_log))
            processes.append(
                spawn(worker_command(tmp_path / "celerybeat-schedule"), env, worker_log)
            )
            running = Platform(f"http://127.0.0.1:{port}", smtp, [web_log, worker_log])
            running.wait_for(
                lambda: _ready_with_worker(running.base_url),
                timeout=60,
                what="/readyz 200 with the worker's heartbeat",
            )
            yield running
        finally:
            stop(processes)


def platform_env(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of the platform's processes in these tests."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        # A queue of its own, so no task left in a shared Redis by an earlier run is taken.
        "CELERY_TASK_DEFAULT_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
        "NOTIFY_VAR_DIR": str(settings.VAR_DIR),
        "DEBUG": "0",
        "HEALTH_TOKEN": HEALTH_TOKEN,
        "NOTIFY_HEARTBEAT_INTERVAL": "1",
        # the sweep (beat, in the worker): often, and quick to publish again
        "NOTIFY_SWEEP_INTERVAL": "0.5",
        "NOTIFY_REPUBLISH_AFTER": "2",
        "NOTIFY_SENDING_LEASE": "3",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


def web_command(port: int) -> list[str]:
    return [str(BIN / "python"), "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]


def worker_command(schedule: Path) -> list[str]:
    """A worker with its beat (`-B`: the sweep), one process, a name of its own."""
    return [
        str(BIN / "celery"),
        "-A",
        "notify",
        "worker",
        "-B",
        "--schedule",
        str(schedule),
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "--hostname",
        f"e2e-{uuid.uuid4().hex[:8]}@%h",
        "--without-mingle",
        "--without-gossip",
    ]


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in a session of its own, so that it and whatever it forks (a worker's beat and
    pool) are stopped or killed together."""
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_outright(process: subprocess.Popen) -> None:
    """SIGKILL to the process and everything it forked, as when its machine dies (a worker's
    embedded beat would otherwise outlive it)."""
    _signal_group(process, signal.SIGKILL)
    process.wait()


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # whatever it forked and left behind
        _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def readiness(base_url: str) -> requests.Response:
    """/readyz as an operator sees it."""
    headers = {"Authorization": f"Bearer {HEALTH_TOKEN}"}
    return requests.get(f"{base_url}/readyz", headers=headers, timeout=5)


def _ready_with_worker(base_url: str) -> bool:
    try:
        response = readiness(base_url)
    except requests.ConnectionError:
        return False
    return response.status_code == 200 and response.json()["checks"]["workers"]["status"] == "up"


@pytest.fixture(autouse=True, scope="session")
def _flush_tried_again_on_deadlock():  # noqa: ANN202
    """The data of a test is flushed (one TRUNCATE of every table) while its platform's processes
    still run: a stray wake-up's statement touching several tables can deadlock with it, and
    PostgreSQL then cancels one side. The flush is tried again; the platform's side retries on
    its own."""
    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self) -> None:  # noqa: ANN001
        for attempt in range(3):
            try:
                return original(self)
            except CommandError as exc:
                if attempt == 2 or "deadlock" not in str(exc.__cause__).lower():
                    raise
                time.sleep(0.5)
        return None

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


def wait_until_worker_idle(timeout: float = 15.0) -> None:
    """Until no message is being sent or due to be: the test's data is then flushed while the
    worker only reads (a worker still recording an outcome, which writes three tables in one
    statement, can deadlock with the flush's TRUNCATE of them all)."""
    from django.utils import timezone

    from notify.messaging.models import Message, MessageStatus, due_by

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = Message.all_tenants.filter(status=MessageStatus.SENDING).exists() or (
            Message.all_tenants.filter(status=MessageStatus.QUEUED)
            .filter(due_by(timezone.now()))
            .exists()
        )
        if not busy:
            time.sleep(0.3)  # (an outcome being committed right now)
            return
        time.sleep(0.2)


@pytest.fixture
def platform(transactional_db, running_platform) -> Iterator[Platform]:  # noqa: ANN001
    running_platform.smtp.received.clear()
    yield running_platform
    wait_until_worker_idle()


@contextlib.contextmanager
def platform_processes(
    env: dict[str, str], tmp_path: Path, web_ports: list[int]
) -> Iterator[Platform]:
    """Web processes on `web_ports` and a worker with its beat, all on `env`, until the block
    ends; yields once every web process answers ready with the worker's heartbeat."""
    logs = [tmp_path / f"web-{n}.log" for n in range(len(web_ports))] + [tmp_path / "worker.log"]
    processes = []
    try:
        for port, log in zip(web_ports, logs, strict=False):
            processes.append(spawn(web_command(port), env, log))
        processes.append(spawn(worker_command(tmp_path / "celerybeat-schedule"), env, logs[-1]))
        running = Platform(f"http://127.0.0.1:{web_ports[0]}", None, logs)
        for port in web_ports:
            base = f"http://127.0.0.1:{port}"
            running.wait_for(
                lambda base=base: _ready_with_worker(base), 60, f"{base} and the worker"
            )
        yield running
    finally:
        stop(processes)
