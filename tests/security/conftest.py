"""Fixtures of the security suite: the marker file, the secrets no output may show, and a real
server process for the hostile-traffic tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings

from notify.tenants.services import create_tenant
from tests.e2e.conftest import test_database_url as database_url_of_test_db
from tests.security.hostile import cap_server_address_space, peak_resident_bytes
from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A path only an escaped payload would create (payloads write `@MARKER@`)."""
    return tmp_path / "marker"


@pytest.fixture(scope="session")
def secrets() -> list[str]:
    """Values no rendered output may contain."""
    values = [settings.SECRET_KEY, os.environ.get("DATABASE_URL", "")]
    return [value for value in values if value]


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen
    log: Path

    def resident_high_water_mark(self) -> int:
        """The server process's peak resident memory (VmHWM), in bytes."""
        return peak_resident_bytes(self.process.pid)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _answers(base_url: str) -> bool:
    try:
        requests.get(f"{base_url}/healthz", timeout=5)  # 200 or 503: it answers
    except requests.ConnectionError:
        return False
    return True


@pytest.fixture(scope="module")
def hostile_server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Server]:  # noqa: ANN001
    """`runserver --noreload` on the test database (as tests/e2e does), started once per module;
    no worker: templates are created and rendered inside the web process."""
    with django_db_blocker.unblock():
        database_url = database_url_of_test_db()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "NOTIFY_VAR_DIR": str(settings.VAR_DIR),
        "DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    log = tmp_path_factory.mktemp("hostile-server") / "web.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            preexec_fn=cap_server_address_space,  # noqa: PLW1509 - no threads at that point
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while not _answers(server.base_url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def hostile_api_key(transactional_db) -> str:  # noqa: ANN001
    """An API key committed to the test database, so the server process sees it."""
    return create_tenant("hostile", name="Hostile")[1]
