"""`make bench`, hostile part: a real server process (runserver, production settings, a fresh
SQLite database in a temporary directory) answers every hostile request of the security suite
(tests/security/hostile.py: the corpus payloads, the runaway templates, 200 kB conversions).
Reports the slowest request, the answers by status and the server's peak resident memory."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0


def benchmark_hostile() -> dict[str, Any]:
    """Start the server, send the hostile requests, stop it. Returns {"requests", "statuses",
    "slowest": (name, status, seconds), "peak_bytes", "marker_created"}."""
    from tests.security.hostile import (
        cap_server_address_space,
        peak_resident_bytes,
        run_hostile_requests,
    )
    from tests.smtp import free_port

    with tempfile.TemporaryDirectory(prefix="notify-bench-") as directory:
        var = Path(directory)
        env = {
            **os.environ,
            "DEBUG": "0",
            "NOTIFY_VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'bench.sqlite3'}",
            # throwaway keys: this server lives for the benchmark only
            "SECRET_KEY": secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "PYTHONUNBUFFERED": "1",
        }
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        created = subprocess.run(
            [*manage, "create_tenant", "bench-hostile", "--name", "Bench hostile"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        api_key = created.stdout.strip().splitlines()[-1]
        port = free_port()
        log = (var / "web.log").open("w")
        process = subprocess.Popen(
            [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # the security suite's cap: a regressed payload must not take the machine
            preexec_fn=cap_server_address_space,  # noqa: PLW1509 - no threads at that point
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(base_url, process)
            marker = var / "hostile-marker"
            timings = run_hostile_requests(base_url, api_key, marker_path=marker)
            peak = peak_resident_bytes(process.pid)
            marker_created = marker.exists()
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
    return {
        "requests": len(timings),
        "statuses": Counter(status for _, status, _ in timings),
        "slowest": max(timings, key=lambda timing: timing[2]),
        "peak_bytes": peak,
        "marker_created": marker_created,
    }


def _wait_until_up(base_url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            requests.get(f"{base_url}/livez", timeout=5)
            return
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark's server did not start") from None
            time.sleep(0.2)
