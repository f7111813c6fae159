"""A real `runserver` on the test database, for the browser tests (the admin as a browser
lays it out and drives it)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.e2e import conftest as e2e
from tests.smtp import free_port


@dataclass
class WebServer:
    base_url: str
    log: Path


@contextmanager
def runserver(database_url: str, log: Path) -> Iterator[WebServer]:
    """`runserver` on `database_url` until the block ends."""
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "0", "PYTHONUNBUFFERED": "1"}
    port = free_port()
    # --insecure: the layout under test comes from the admin's CSS, which runserver serves
    # without DEBUG only when told to.
    command = [str(e2e.BIN / "python"), "manage.py", "runserver", "--noreload", "--insecure"]
    with log.open("w") as handle:
        process = subprocess.Popen(
            [*command, f"127.0.0.1:{port}"],
            cwd=e2e.ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    server = WebServer(f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_serving(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(server: WebServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60  # a guard against a hang, not a speed requirement
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{server.base_url}/admin/login/", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"runserver did not serve /admin/login/\n{server.log.read_text()[-3000:]}")
