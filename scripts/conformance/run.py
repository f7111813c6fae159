"""`make conformance [MODE=native|proxy] [CASES=FILE]`: the legacy gateway's conformance cases
(../shared/legacy/conformance.py) with the reference gateway on one side and the platform's
`/gateway/...` facade on the other, everything started here and stopped again:

1. the reference gateway (`--reference`); in proxy mode a second one, the platform's upstream
   (`LEGACY_GATEWAY_URL`);
2. stand-in providers (threads here, scripts/conformance/standins.py): SMTP, SMS and push;
3. a fresh database (PostgreSQL `notify_conformance_<mode>` when it answers on 127.0.0.1:5432
   or `CONFORMANCE_DATABASE_URL` names one, else SQLite in a temporary directory) and broker
   (Redis db 13 when it answers on 127.0.0.1:6379, else the embedded filesystem broker);
   `manage.py migrate`, then `manage.py import_legacy <legacy>/data --stage new|legacy`;
4. the platform: gunicorn and a Celery worker (all the project's queues, with its beat for the
   sweep), production settings (DEBUG off), until /readyz shows the worker's heartbeat;
5. the runner, its output streamed; its last line `N passed, M failed` is printed last.

  python -m scripts.conformance.run --mode native|proxy [--cases FILE] [--legacy-dir DIR]

Exit status: the runner's (0 all passed, 1 a case failed); 2 when the setup failed, 130 on
Ctrl-C. On a non-zero result the last lines of each log are printed (the logs are kept; with
`--keep-logs` also after a success).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from scripts.conformance.standins import Standins, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFAULT_LEGACY_DIR = ROOT.parent / "shared" / "legacy"
POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
REDIS_BROKER_URL = "redis://127.0.0.1:6379/13"
READY_TIMEOUT_S = 60.0
SETUP_STEP_TIMEOUT_S = 600.0
RUNNER_TIMEOUT_S = 1800.0
STOP_TIMEOUT_S = 15.0
TAIL_LINES = 60
SUMMARY = re.compile(r"^\d+ passed, \d+ failed$")
# Settings a developer's shell may hold that must not leak into the platform under test.
CLEARED_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_DEFAULT_QUEUE",
    "LEGACY_GATEWAY_URL",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
)


class SetupError(Exception):
    """Something before the runner failed; the message says what."""


def say(text: str) -> None:
    print(f"[conformance] {text}", flush=True)


def answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


class Conformance:
    """One run: what it started, where its files are, and how to stop it all."""

    def __init__(self, mode: str, legacy: Path, cases: Path, runner_timeout: float) -> None:
        self.mode = mode
        self.legacy = legacy
        self.cases = cases
        self.runner_timeout = runner_timeout
        self.work = Path(tempfile.mkdtemp(prefix=f"notify-conformance-{mode}-"))
        self.logs = Path(tempfile.mkdtemp(prefix=f"notify-conformance-{mode}-logs-"))
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.standins: Standins | None = None
        self.queue = f"conformance-{mode}-{uuid.uuid4().hex[:8]}"
        self.queues: list[str] = []
        self.broker_url = ""
        self.health_token = secrets.token_urlsafe(24)
        self.runner_started = False
        self._log_files: list[IO] = []

    # ------------------------------------------------------------------ processes

    def log(self, name: str) -> IO:
        handle = (self.logs / f"{name}.log").open("w", encoding="utf-8")
        self._log_files.append(handle)
        return handle

    def spawn(
        self, name: str, command: list[str], env: dict[str, str] | None, **kw
    ) -> subprocess.Popen:
        """A child in a session of its own, so that it and whatever it forks are stopped together
        (and a Ctrl-C in the terminal reaches only this process, which stops them)."""
        if "stdout" not in kw:
            kw["stdout"] = self.log(name)
        process = subprocess.Popen(
            command,
            cwd=kw.pop("cwd", ROOT),
            env=env,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kw,
        )
        self.processes.append((name, process))
        return process

    def stop_all(self) -> None:
        running = [(name, p) for name, p in self.processes if p.poll() is None]
        for _, process in running:
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for _, process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(process, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        # whatever they forked and left behind (a worker's beat or pool, gunicorn's workers)
        for _, process in self.processes:
            signal_group(process, signal.SIGKILL)
        self.processes.clear()

    def check_alive(self, names: tuple[str, ...]) -> None:
        for name, process in self.processes:
            if name in names and process.poll() is not None:
                raise SetupError(f"{name} exited with status {process.returncode}")

    # ------------------------------------------------------------------ 1. reference gateways

    def start_gateway(self, name: str) -> str:
        """`gateway.py serve --port 0`; its URL from the first line it prints."""
        command = [
            sys.executable,
            str(self.legacy / "gateway.py"),
            "serve",
            "--data",
            str(self.legacy / "data"),
            "--port",
            "0",
        ]
        process = self.spawn(
            name, command, None, cwd=self.legacy, stdout=subprocess.PIPE, text=True
        )
        log = self.log(name)
        first_line: queue.Queue[str] = queue.Queue()

        def pump() -> None:  # the first line to us, the rest (errors) to its log
            first = True
            for line in process.stdout:
                if first:
                    first_line.put(line)
                    first = False
                log.write(line)
                log.flush()
            if first:
                first_line.put("")

        threading.Thread(target=pump, name=f"pump-{name}", daemon=True).start()
        try:
            line = first_line.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            raise SetupError(f"{name}: nothing printed within {READY_TIMEOUT_S:.0f} s") from None
        if not line.startswith("listening on "):
            raise SetupError(f"{name} did not start: {line.strip()!r} (see {name}.log)")
        url = line.split("listening on ", 1)[1].strip()
        say(f"{name}: {url}")
        return url

    # ------------------------------------------------------------------ 3. database and broker

    def database_url(self) -> str:
        url = os.environ.get("CONFORMANCE_DATABASE_URL", "")
        if not url and answers(POSTGRES):
            url = f"postgres://postgres@{POSTGRES[0]}:{POSTGRES[1]}/notify_conformance_{self.mode}"
        if not url:
            return f"sqlite:///{self.work / 'db.sqlite3'}"
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgres"):
            raise SetupError(f"CONFORMANCE_DATABASE_URL must be postgres://..., not {url!r}")
        name = parts.path.lstrip("/") or f"notify_conformance_{self.mode}"
        self.recreate_database(url, name)
        return parts._replace(path="/" + name).geturl()

    @staticmethod
    def recreate_database(url: str, name: str) -> None:
        import psycopg
        from psycopg import sql

        admin = urlsplit(url)._replace(path="/postgres").geturl()
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise SetupError(f"could not recreate database {name}: {exc}") from None

    def platform_env(self, database_url: str, upstream: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CLEARED_SETTINGS}
        var = self.work / "var"
        var.mkdir(exist_ok=True)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "notify.settings",
                "DEBUG": "0",
                # production settings refuse to start without both keys (notify/keys.py)
                "SECRET_KEY": secrets.token_urlsafe(50),
                "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "NOTIFY_VAR_DIR": str(var),
                "DATABASE_URL": database_url,
                # a queue of its own: no task left in a shared Redis by an earlier run is taken
                "CELERY_TASK_DEFAULT_QUEUE": self.queue,
                "HEALTH_TOKEN": self.health_token,
                "NOTIFY_HEARTBEAT_INTERVAL": "1",
                "LEGACY_DATA_DIR": str(self.legacy / "data"),
                "ALLOW_PRIVATE_TARGETS": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if answers(REDIS):
            self.broker_url = REDIS_BROKER_URL
            env["REDIS_URL"] = env["CELERY_BROKER_URL"] = REDIS_BROKER_URL
        # else: no REDIS_URL, so the broker is kombu's filesystem transport under NOTIFY_VAR_DIR
        if upstream:
            env["LEGACY_GATEWAY_URL"] = upstream
        assert self.standins is not None
        env.update(self.standins.platform_env())
        return env

    def manage(self, name: str, args: list[str], env: dict[str, str]) -> None:
        say(f"manage.py {' '.join(args)}")
        process = self.spawn(name, [sys.executable, "manage.py", *args], env)
        try:
            status = process.wait(timeout=SETUP_STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            raise SetupError(
                f"manage.py {args[0]} still running after {SETUP_STEP_TIMEOUT_S:.0f} s"
            ) from None
        if status != 0:
            raise SetupError(f"manage.py {args[0]} exited with status {status} (see {name}.log)")

    def project_queues(self, env: dict[str, str]) -> list[str]:
        """Every queue the settings declare (the default queue and its lanes)."""
        code = (
            "from django.conf import settings; "
            "print(','.join(q.name for q in settings.CELERY_TASK_QUEUES))"
        )
        try:
            result = subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", code],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=READY_TIMEOUT_S,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise SetupError("reading the queue names from the settings timed out") from None
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines:
            raise SetupError(f"could not read the queue names: {result.stderr.strip()[-2000:]}")
        return lines[-1].split(",")

    # ------------------------------------------------------------------ 4. the platform

    def start_platform(self, env: dict[str, str], port: int) -> str:
        base_url = f"http://127.0.0.1:{port}"
        # Without Redis the legacy facade keeps nonces and each app's qps log per process
        # (compat/guards.py): one web process then, or a replayed nonce may reach the other.
        processes, threads = ("2", "4") if self.broker_url else ("1", "8")
        web = [
            str(BIN / "gunicorn"),
            "notify.wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            processes,
            "--threads",
            threads,
            "--graceful-timeout",
            "5",
        ]
        worker = [
            str(BIN / "celery"),
            "-A",
            "notify",
            "worker",
            "-B",  # the beat: the sweep (pending work lives in the database)
            "--schedule",
            str(self.work / "celerybeat-schedule"),
            "-Q",
            ",".join(self.queues),
            "--pool",
            "prefork",
            "--concurrency",
            "4",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{self.queue}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
        self.spawn("web", web, env)
        self.spawn("worker", worker, env)
        self.wait_ready(base_url)
        return base_url

    def wait_ready(self, base_url: str) -> None:
        """/readyz 200 with the worker's heartbeat up, within READY_TIMEOUT_S."""
        request = urllib.request.Request(
            f"{base_url}/readyz", headers={"Authorization": f"Bearer {self.health_token}"}
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive(("web", "worker"))
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    body = response.read()
                workers = json.loads(body).get("checks", {}).get("workers", {})
                if workers.get("status") == "up":
                    return
                last = body[:300].decode(errors="replace")
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
            except (OSError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise SetupError(f"the platform was not ready within {READY_TIMEOUT_S:.0f} s: {last}")

    # ------------------------------------------------------------------ 5. the runner

    def run_runner(self, reference: str, target: str) -> tuple[int, str | None]:
        command = [
            sys.executable,
            "-u",
            str(self.legacy / "conformance.py"),
            "--reference",
            reference,
            "--target",
            target,
            "--data",
            str(self.legacy / "data"),
            "--cases",
            str(self.cases),
        ]
        say(" ".join(command[2:]))
        self.runner_started = True
        process = self.spawn("runner", command, None, stdout=subprocess.PIPE, text=True, bufsize=1)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            signal_group(process, signal.SIGKILL)

        watchdog = threading.Timer(self.runner_timeout, kill)
        watchdog.daemon = True
        watchdog.start()
        summary = None
        try:
            for raw in process.stdout:
                line = raw.rstrip("\n")
                if summary is not None:  # not the last line after all
                    print(summary, flush=True)
                    summary = None
                if SUMMARY.match(line):
                    summary = line
                else:
                    print(line, flush=True)
            status = process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            watchdog.cancel()
        if timed_out.is_set():
            say(f"the runner was stopped after {self.runner_timeout:.0f} s")
            return 1, summary
        return status, summary

    # ------------------------------------------------------------------ everything

    def execute(self) -> tuple[int, str | None]:
        say(f"mode {self.mode}; logs in {self.logs}")
        reference = self.start_gateway("reference")
        upstream = self.start_gateway("upstream") if self.mode == "proxy" else None
        # the stand-ins send their reports to the platform: its port is chosen now
        port = free_port()
        self.standins = Standins(f"http://127.0.0.1:{port}").start()
        database_url = self.database_url()
        say(f"database {database_url}")
        env = self.platform_env(database_url, upstream)
        say(f"broker {env.get('CELERY_BROKER_URL', 'filesystem (embedded)')}")
        self.queues = self.project_queues(env)
        self.manage("migrate", ["migrate", "--noinput"], env)
        stage = "new" if self.mode == "native" else "legacy"
        self.manage(
            "import_legacy", ["import_legacy", str(self.legacy / "data"), "--stage", stage], env
        )
        target = self.start_platform(env, port)
        say(f"platform {target} (queues {','.join(self.queues)})")
        return self.run_runner(reference, target)

    def cleanup(self) -> None:
        self.stop_all()
        if self.standins is not None:
            self.standins.stop()
        if self.broker_url:
            self.purge_queues()
        for handle in self._log_files:
            with contextlib.suppress(OSError):
                handle.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def purge_queues(self) -> None:
        """The run's queues and their bindings out of the shared Redis (best effort)."""
        try:
            import redis

            client = redis.Redis.from_url(
                self.broker_url, socket_timeout=2, socket_connect_timeout=2
            )
            # the queues' lists and kombu's bindings of the exchange named after the queue
            # (`_kombu.binding_permanent.<queue>`)
            for key in client.scan_iter(f"*{self.queue}*"):
                client.delete(key)
        except Exception as exc:  # noqa: BLE001 - leftovers in a unique queue harm no one
            say(f"could not purge the run's queues: {exc!r}")

    def print_tails(self) -> None:
        """The end of each log: the platform's and the stand-ins' once the runner ran (the
        setup went well then), all of them after a failed setup."""
        paths = sorted(self.logs.glob("*.log"), key=lambda p: p.stat().st_mtime)
        if self.runner_started:
            paths = [p for p in paths if p.stem in ("standins", "worker", "web")]
        for path in paths:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            if not lines:
                continue
            print(f"----- last {min(len(lines), TAIL_LINES)} lines of {path}", flush=True)
            for line in lines[-TAIL_LINES:]:
                print(line, flush=True)
        say(f"logs kept in {self.logs}")


def configure_logging(logs: Path) -> None:
    """The stand-ins (and aiosmtpd) log to standins.log, not to the runner's output."""
    handler = logging.FileHandler(logs / "standins.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in ("conformance.standins", "mail.log"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.conformance.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--mode", choices=("native", "proxy"), default="native")
    parser.add_argument("--cases", help="case file (default: <legacy-dir>/cases/public.json)")
    parser.add_argument("--legacy-dir", default=str(DEFAULT_LEGACY_DIR))
    parser.add_argument(
        "--timeout",
        type=float,
        default=RUNNER_TIMEOUT_S,
        help=f"seconds the runner may take (default {RUNNER_TIMEOUT_S:.0f})",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the logs when everything passed too"
    )
    args = parser.parse_args(argv)
    legacy = Path(args.legacy_dir).resolve()
    for needed in ("gateway.py", "conformance.py", "data/apps.jsonl"):
        if not (legacy / needed).exists():
            parser.error(f"{legacy / needed} not found (--legacy-dir)")
    args.legacy_dir = legacy
    args.cases = Path(args.cases).resolve() if args.cases else legacy / "cases" / "public.json"
    if not args.cases.exists():
        parser.error(f"{args.cases} not found (--cases)")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    run = Conformance(args.mode, args.legacy_dir, args.cases, args.timeout)
    configure_logging(run.logs)
    status, summary = 2, None
    try:
        status, summary = run.execute()
    except SetupError as exc:
        say(f"setup failed: {exc}")
    except KeyboardInterrupt:
        say("interrupted")
        status = 130
    except Exception as exc:  # noqa: BLE001 - reported, and everything is stopped all the same
        say(f"failed: {exc!r}")
    finally:
        # a second Ctrl-C must not leave processes behind: cleanup is bounded anyway
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.cleanup()
        if status != 0:
            run.print_tails()
        elif args.keep_logs:
            say(f"logs kept in {run.logs}")
        else:
            shutil.rmtree(run.logs, ignore_errors=True)
        if summary is not None:
            print(summary, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
