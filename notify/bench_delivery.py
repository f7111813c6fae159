"""`make bench`, delivery part: the platform's real processes on PostgreSQL and Redis (a fresh
database of its own), each figure a ratio against a baseline measured in the same run:

1. accept rate: `POST /v2/messages` against `GET /livez` (a trivial JSON view) on the same
   gunicorn server (2 sync workers), driven by the same load generator; and the floor of
   that ratio, a view that only parses, inserts one row and commits (notify/bench_floor.py);
2. bulk throughput: a 10,000-recipient batch accepted and delivered to a local SMTP sink,
   against 10,000 no-op Celery tasks, same broker, same worker command and settings;
3. isolation: the p99 of a single transactional send (accept to delivered) while another
   tenant's 10,000-recipient batch is in flight, against the p99 when idle;
4. database round trips per accepted message of a batch and per delivered message in bulk,
   counted in-process (statements, plus BEGIN and COMMIT of each transaction).

BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/notify_bench; the database is
dropped and created again) and BENCH_BROKER_URL (default redis://127.0.0.1:6379/14) say where;
without them answering, this part says so and is skipped."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.smtp import free_port  # noqa: E402 - the benchmark runs from the repository

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/notify_bench"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
BATCH_SIZE = 10_000
LOAD_SECONDS = 5.0
LOAD_CONNECTIONS = 8
LATENCY_SAMPLES = 300
NOOP_COUNTER = "notify-bench:noop-done"


class DiscardingSink:
    """The SMTP sink's handler (`python -m aiosmtpd -c notify.bench_delivery.DiscardingSink`):
    accepts every mail and keeps nothing."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def _recreate_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class Processes:
    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.running: list[subprocess.Popen] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        log = (self.directory / f"{name}.log").open("w")
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.running):
            self.stop(process)


def _wait(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise RuntimeError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- load generator


async def _one_request(port: int, raw: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()  # gunicorn's sync workers close the connection after the answer
        return int(status_line.split()[1])
    finally:
        writer.close()


async def _load(port: int, make_request: Callable[[int], bytes], seconds: float) -> dict:
    counts: dict[int, int] = {}
    sequence = iter(range(10**9))
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < stop_at:
            status = await _one_request(port, make_request(next(sequence)))
            counts[status] = counts.get(status, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(LOAD_CONNECTIONS)))
    elapsed = time.monotonic() - started
    return {"counts": counts, "elapsed": elapsed}


def request_rate(port: int, make_request: Callable[[int], bytes], expect: int) -> float:
    """Answers per second with status `expect` over LOAD_SECONDS (after a one-second warm-up)."""
    asyncio.run(_load(port, make_request, 1.0))
    result = asyncio.run(_load(port, make_request, LOAD_SECONDS))
    wrong = {status: n for status, n in result["counts"].items() if status != expect}
    if wrong:
        raise RuntimeError(f"unexpected answers during the load: {wrong}")
    return result["counts"].get(expect, 0) / result["elapsed"]


def _http(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------- round trips


class RoundTrips:
    """Counts what the Django connection sends PostgreSQL: each statement, and each
    transaction's BEGIN (psycopg sends it before the first statement) and COMMIT/ROLLBACK."""

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0

    @property
    def total(self) -> int:
        return self.statements + 2 * self.transactions

    @contextlib.contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        from django.db import connection

        def count_statement(execute, sql, params, many, context):  # noqa: ANN001, ANN202
            self.statements += 1
            return execute(sql, params, many, context)

        original_commit, original_rollback = connection.commit, connection.rollback

        def commit() -> None:
            self.transactions += 1
            original_commit()

        def rollback() -> None:
            self.transactions += 1
            original_rollback()

        connection.commit, connection.rollback = commit, rollback
        try:
            with connection.execute_wrapper(count_statement):
                yield self
        finally:
            del connection.commit, connection.rollback


# ---------------------------------------------------------------- the benchmark


def benchmark_delivery() -> dict[str, Any]:
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    broker_url = os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)
    missing = [url for url in (database_url, broker_url) if not _answers(url)]
    if missing:
        return {"skipped": f"not answering: {', '.join(missing)}"}
    _recreate_database(database_url)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="notify-bench-delivery-") as directory:
        var = Path(directory)
        smtp_port, web_port = free_port(), free_port()
        env = {
            **os.environ,
            "DEBUG": "0",
            "NOTIFY_VAR_DIR": str(var),
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "REDIS_URL": broker_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "notify.settings",
        }
        os.environ.update(env)
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        processes = Processes(var, env)
        try:
            return _run(processes, env, queue, smtp_port, web_port)
        finally:
            processes.stop_all()
            _purge(broker_url, queue)


def _purge(broker_url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(broker_url)
    for key in client.scan_iter(f"{queue}*"):
        client.delete(key)
    client.delete(NOOP_COUNTER)


def _worker(queue: str, *, concurrency: int, extra: list[str] = ()) -> list[str]:
    """The worker command both sides of a comparison run (same pool, concurrency, prefetch)."""
    return [
        str(BIN / "celery"),
        "-A",
        "notify",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "-Q",
        queue,
        "--loglevel",
        "WARNING",
        "--without-mingle",
        "--without-gossip",
        "--hostname",
        f"{queue}-{uuid.uuid4().hex[:6]}@%h",
        "-I",
        "notify.bench_tasks",
        *extra,
    ]


def _run(processes: Processes, env: dict, queue: str, smtp_port: int, web_port: int) -> dict:
    from django.conf import settings
    from django.db import connection

    from notify.bench_floor import CREATE_FLOOR_TABLE
    from notify.messaging.models import Message, MessageStatus
    from notify.tenants.services import create_tenant

    _, bulk_key = create_tenant("bench-campaign", qps_limit=1_000_000)
    _, code_key = create_tenant("bench-codes", qps_limit=1_000_000)
    processes.start(
        "smtp",
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "notify.bench_delivery.DiscardingSink",
            "-l",
            f"127.0.0.1:{smtp_port}",
        ],
    )
    processes.start(
        "web",
        [
            str(BIN / "gunicorn"),
            "notify.wsgi",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{web_port}",
            "--log-level",
            "warning",
        ],
        # the platform as it is, plus the floor's URLs (notify.bench_floor)
        {"DJANGO_SETTINGS_MODULE": "notify.bench_floor_settings"},
    )
    _wait(lambda: _answers(f"http://127.0.0.1:{web_port}"), 30, "gunicorn")
    _wait(lambda: _answers(f"http://127.0.0.1:{smtp_port}"), 30, "the SMTP sink")
    result: dict[str, Any] = {}

    # 1. accept rate against a trivial JSON view
    livez = _http("GET", "/livez")
    result["trivial_per_second"] = request_rate(web_port, lambda n: livez, 200)

    def send(n: int) -> bytes:
        body = json.dumps(
            {
                "channel": "email",
                "to": f"user{n}@example.com",
                "subject": "Your code",
                "body": f"Your code is {n % 1_000_000:06d}",
            }
        ).encode()
        return _http("POST", "/v2/messages", body, {"Authorization": f"Bearer {code_key}"})

    result["accept_per_second"] = request_rate(web_port, send, 202)

    # 1b. the floor: only parse, insert one row, commit (notify.bench_floor)
    with connection.cursor() as cursor:
        cursor.execute(CREATE_FLOOR_TABLE)
    result["floor_per_second"] = request_rate(web_port, _to(send, "/bench-floor/accept"), 202)
    result["floor_redis_per_second"] = request_rate(
        web_port, _to(send, "/bench-floor/accept-redis"), 202
    )
    # what the load left queued is not part of what follows
    Message.all_tenants.filter(status=MessageStatus.QUEUED).update(status=MessageStatus.CANCELLED)
    _purge(settings.CELERY_BROKER_URL, queue)

    # 2. bulk throughput against no-op tasks, the same worker command
    # the bulk pool at a lower CPU priority, as the README's production setup runs it (on a
    # shared machine a campaign then yields the CPU to codes); the no-op baseline runs in it too
    bulk_worker = processes.start(
        "bulk", ["nice", "-n", "10", *_worker(settings.NOTIFY_BULK_QUEUE, concurrency=2)]
    )
    _wait(lambda: _worker_ready("bulk"), 60, "the bulk worker")
    result["noop_per_second"] = _noop_rate(settings.NOTIFY_BULK_QUEUE)
    elapsed, delivered = _batch_run(web_port, bulk_key, tag="throughput")
    result["batch_per_second"] = delivered / elapsed
    result["batch_seconds"] = elapsed

    # 3. a transactional send's p99, idle and beside another tenant's batch
    processes.start("transactional", _worker(settings.NOTIFY_TRANSACTIONAL_QUEUE, concurrency=1))
    _wait(lambda: _worker_ready("transactional"), 60, "the transactional worker")
    _latencies(web_port, code_key, 10)  # warm-up
    result["idle_latencies"] = _latencies(web_port, code_key, LATENCY_SAMPLES)
    batch_started = time.monotonic()
    batch_id = _post_batch(web_port, bulk_key, "isolation")
    result["loaded_latencies"] = _latencies(web_port, code_key, LATENCY_SAMPLES)
    result["batch_left_at_end"] = Message.all_tenants.filter(
        batch_id=batch_id, status=MessageStatus.QUEUED
    ).count()
    result["loaded_window"] = time.monotonic() - batch_started
    _wait(lambda: _batch_done(batch_id), 300, "the isolation batch")
    processes.stop(bulk_worker)

    # 4. round trips, in this process: a batch accepted, then delivered chunk by chunk
    result.update(_round_trips(bulk_key))
    return result


def _to(make_request: Callable[[int], bytes], path: str) -> Callable[[int], bytes]:
    """The same requests, sent to `path` instead of `POST /v2/messages`."""
    return lambda n: make_request(n).replace(b"POST /v2/messages ", f"POST {path} ".encode(), 1)


def _worker_ready(name: str) -> bool:
    from notify.celery import app

    replies = app.control.ping(timeout=0.5) or []
    return any(name in json.dumps(reply) for reply in replies)


def _noop_rate(queue: str) -> float:
    import redis
    from django.conf import settings

    from notify.bench_tasks import noop

    counter = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    counter.delete(NOOP_COUNTER)
    noop.apply_async(queue=queue)  # warm-up
    _wait(lambda: int(counter.get(NOOP_COUNTER) or 0) == 1, 30, "the first no-op task", 0.01)
    started = time.monotonic()
    for _ in range(BATCH_SIZE):
        noop.apply_async(queue=queue)
    _wait(
        lambda: int(counter.get(NOOP_COUNTER) or 0) == BATCH_SIZE + 1,
        300,
        "the no-op tasks",
        0.01,
    )
    return BATCH_SIZE / (time.monotonic() - started)


def _post_batch(port: int, key: str, tag: str) -> str:
    import requests

    recipients = [{"to": f"{tag}-{n}@example.com"} for n in range(BATCH_SIZE)]
    answer = requests.post(
        f"http://127.0.0.1:{port}/v2/messages/batch",
        json={
            "channel": "email",
            "subject": "Our news",
            "body": "Hello, here is what is new this month.",
            "recipients": recipients,
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    if answer.status_code != 202:
        raise RuntimeError(f"batch refused: {answer.status_code} {answer.text[:300]}")
    return answer.json()["batch_id"]


def _batch_done(batch_id: str) -> bool:
    from notify.messaging.models import FINAL_STATUSES, Message

    return (
        Message.all_tenants.filter(batch_id=batch_id).exclude(status__in=FINAL_STATUSES).count()
        == 0
    )


def _batch_run(port: int, key: str, tag: str) -> tuple[float, int]:
    from notify.messaging.models import Message, MessageStatus

    started = time.monotonic()
    batch_id = _post_batch(port, key, tag)
    _wait(lambda: _batch_done(batch_id), 600, "the batch", 0.05)
    elapsed = time.monotonic() - started
    delivered = Message.all_tenants.filter(
        batch_id=batch_id, status=MessageStatus.DELIVERED
    ).count()
    if delivered != BATCH_SIZE:
        raise RuntimeError(f"only {delivered} of {BATCH_SIZE} delivered")
    return elapsed, delivered


def _latencies(port: int, key: str, samples: int) -> list[float]:
    """Seconds from sending `POST /v2/messages` to the message's recorded delivery, one send
    at a time."""
    import requests
    from django.utils import timezone

    from notify.messaging.models import Message, MessageStatus

    session = requests.Session()
    latencies = []
    for n in range(samples):
        started = timezone.now()
        answer = session.post(
            f"http://127.0.0.1:{port}/v2/messages",
            json={
                "channel": "email",
                "to": f"code-{n}@example.com",
                "subject": "Your code",
                "body": f"Your code is {n:06d}",
                "critical": True,
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        if answer.status_code != 202:
            raise RuntimeError(f"send refused: {answer.status_code} {answer.text[:300]}")
        message_id = answer.json()["id"]
        delivered = Message.all_tenants.filter(pk=message_id, status=MessageStatus.DELIVERED)
        delivered_at = _wait(
            delivered.values_list("delivered_at", flat=True).first,
            60,
            "a transactional send",
            0.002,
        )
        latencies.append((delivered_at - started).total_seconds())
    return latencies


def _round_trips(key: str) -> dict[str, float]:
    from django.conf import settings
    from django.test import Client

    from notify.messaging import services
    from notify.messaging.models import Message, MessageStatus

    client = Client()
    recipients = [{"to": f"count-{n}@example.com"} for n in range(BATCH_SIZE)]
    body = {
        "channel": "email",
        "subject": "Counted",
        "body": "Round trips, counted.",
        "recipients": recipients,
    }
    accept = RoundTrips()
    with accept.counting():
        answer = client.post(
            "/v2/messages/batch",
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
    if answer.status_code != 202:
        raise RuntimeError(f"batch refused: {answer.status_code}")
    batch_id = answer.json()["batch_id"]
    ids = list(
        Message.all_tenants.filter(batch_id=batch_id).order_by("id").values_list("pk", flat=True)
    )[:2000]
    deliver = RoundTrips()
    with deliver.counting():
        # the bulk lane's turns, as its workers take them (this batch is the lane's only work)
        for _ in range(len(ids) // settings.NOTIFY_CHUNK_SIZE):
            services.deliver_bulk()
    delivered = Message.all_tenants.filter(pk__in=ids, status=MessageStatus.DELIVERED).count()
    return {
        "accept_round_trips": accept.total / BATCH_SIZE,
        "accept_statements": accept.statements,
        "accept_transactions": accept.transactions,
        "deliver_round_trips": deliver.total / max(delivered, 1),
        "deliver_statements": deliver.statements,
        "deliver_transactions": deliver.transactions,
        "deliver_counted": delivered,
    }


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def print_delivery() -> None:
    result = benchmark_delivery()
    if "skipped" in result:
        print(f"delivery benchmark skipped: {result['skipped']}")
        return
    print("delivery through the real processes (PostgreSQL, Redis, gunicorn 2 workers):")
    accept, trivial = result["accept_per_second"], result["trivial_per_second"]
    print(
        f"  accept: POST /v2/messages {accept:,.0f}/s vs GET /livez {trivial:,.0f}/s "
        f"= {accept / trivial:.2f}x (goal >= 0.5)"
    )
    floor, floor_redis = result["floor_per_second"], result["floor_redis_per_second"]
    print(
        f"  accept floor (a view that only parses the JSON, inserts one row and commits): "
        f"{floor:,.0f}/s = {floor / trivial:.2f}x; with one Redis INCR (the least a rate limit "
        f"costs) {floor_redis:,.0f}/s = {floor_redis / trivial:.2f}x"
    )
    batch, noop = result["batch_per_second"], result["noop_per_second"]
    print(
        f"  bulk: {BATCH_SIZE:,}-recipient batch accepted and delivered to SMTP in "
        f"{result['batch_seconds']:.1f} s, {batch:,.0f}/s vs {noop:,.0f} no-op tasks/s "
        f"= {batch / noop:.2f}x (goal >= 1.0)"
    )
    idle, loaded = p99(result["idle_latencies"]), p99(result["loaded_latencies"])
    print(
        f"  isolation: transactional send p99 {loaded * 1000:.0f} ms beside another tenant's "
        f"{BATCH_SIZE:,}-recipient batch vs {idle * 1000:.0f} ms idle = {loaded / idle:.2f}x "
        f"(goal <= 2; medians {statistics.median(result['loaded_latencies']) * 1000:.0f} / "
        f"{statistics.median(result['idle_latencies']) * 1000:.0f} ms; "
        f"{result['batch_left_at_end']:,} of the batch still queued when the "
        f"{LATENCY_SAMPLES} sends were done)"
    )
    print(
        f"  round trips per accepted message in a batch: {result['accept_round_trips']:.4f} "
        f"({result['accept_statements']} statements, {result['accept_transactions']} "
        f"transactions for {BATCH_SIZE:,}; goal < 1)"
    )
    print(
        f"  round trips per delivered message in bulk: {result['deliver_round_trips']:.2f} "
        f"({result['deliver_statements']} statements, {result['deliver_transactions']} "
        f"transactions for {result['deliver_counted']:,}; goal <= 2)"
    )


if __name__ == "__main__":
    print_delivery()
