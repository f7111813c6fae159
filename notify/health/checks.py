"""Readiness checks. Each one answers quickly, never raises, and reports what failed by kind only
(the exception's class name, a timeout): an error's text can carry a host name, a user name or a
URL with a password, so it goes to the log, redacted, and never into an answer."""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

import redis
from django.db import connection
from django.utils import timezone
from kombu.transport import resolve_transport
from redis.backoff import NoBackoff
from redis.retry import Retry

from notify.celery import app as celery_app
from notify.health import selectors

logger = logging.getLogger(__name__)

# A healthy broker answers in a few milliseconds; a broker that does not answer within this is
# reported down instead of holding the probe (and a web server thread) for seconds.
BROKER_DEADLINE = 0.5
BROKER_SOCKET_TIMEOUT = 0.25

_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def redact(text: str) -> str:
    """`redis://user:secret@host` → `redis://***@host`, for log lines."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


@dataclass
class CheckResult:
    up: bool
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"status": "up" if self.up else "down", **self.details}


def _failed(name: str, exc: BaseException, started: float) -> CheckResult:
    logger.warning("readiness: %s down: %s: %s", name, type(exc).__name__, redact(str(exc)))
    return CheckResult(False, {"error": type(exc).__name__, "ms": _elapsed_ms(started)})


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def database() -> CheckResult:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # down is an answer, not an error
        return _failed("database", exc, started)
    return CheckResult(True, {"vendor": connection.vendor, "ms": _elapsed_ms(started)})


@lru_cache(maxsize=8)
def _load_transport(scheme: str) -> None:
    """Imports the transport's modules (kombu's, redis-py) once, outside the deadline: the
    first probe after a start must not be counted down for the time an import takes."""
    resolve_transport(scheme)


@lru_cache(maxsize=4)
def _redis_client(url: str) -> redis.Redis:
    """One client per broker URL, kept: its pooled connection answers a PING in well under a
    millisecond, where a new connection costs a handshake every probe. One retry, at once: a
    pooled connection that died with a Redis restart is replaced without a false "down"."""
    return redis.Redis.from_url(
        url,
        socket_timeout=BROKER_SOCKET_TIMEOUT,
        socket_connect_timeout=BROKER_SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )


def _reach_broker(url: str) -> float:
    """Reaches the broker once; returns how long that took, in ms."""
    started = time.monotonic()
    if urlsplit(url).scheme in ("redis", "rediss"):
        _redis_client(url).ping()
        return _elapsed_ms(started)
    # Any other transport (AMQP, the filesystem one): one connection attempt through kombu.
    with celery_app.connection_for_write(
        connect_timeout=BROKER_SOCKET_TIMEOUT,
        transport_options={
            "socket_timeout": BROKER_SOCKET_TIMEOUT,
            "socket_connect_timeout": BROKER_SOCKET_TIMEOUT,
        },
    ) as conn:
        conn.ensure_connection(max_retries=0)
    return _elapsed_ms(started)


_broker_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz-broker")
_broker_lock = threading.Lock()
_broker_attempt: Future | None = None


@dataclass
class PendingBrokerCheck:
    started: float
    transport: str
    attempt: Future | None = None
    result: CheckResult | None = None


def start_broker_check() -> PendingBrokerCheck:
    """Starts reaching the broker in a helper thread, so the database is checked meanwhile.
    Socket timeouts bound the attempt; `finish_broker_check`'s deadline bounds the rest (a DNS
    lookup that hangs). Concurrent probes share the attempt in flight instead of piling up
    threads."""
    global _broker_attempt
    url = str(celery_app.conf.broker_url)
    pending = PendingBrokerCheck(time.monotonic(), urlsplit(url).scheme)
    try:
        _load_transport(pending.transport)
    except Exception as exc:  # an unknown scheme: misconfigured, so down
        pending.result = _failed("broker", exc, pending.started)
        return pending
    with _broker_lock:
        if _broker_attempt is None or _broker_attempt.done():
            _broker_attempt = _broker_executor.submit(_reach_broker, url)
        pending.attempt = _broker_attempt
    return pending


def finish_broker_check(pending: PendingBrokerCheck) -> CheckResult:
    result = pending.result
    if result is None:
        remaining = BROKER_DEADLINE - (time.monotonic() - pending.started)
        try:
            took_ms = pending.attempt.result(timeout=max(remaining, 0))
        except FutureTimeout:
            logger.warning("readiness: broker down: no answer within %ss", BROKER_DEADLINE)
            result = CheckResult(False, {"error": "timeout", "ms": _elapsed_ms(pending.started)})
        except Exception as exc:
            result = _failed("broker", exc, pending.started)
        else:
            result = CheckResult(True, {"ms": took_ms})
    result.details["transport"] = pending.transport
    return result


def workers(*, database_up: bool) -> CheckResult:
    """Up when at least one worker wrote its heartbeat recently. Reported, not required: a web
    node can accept messages (they wait in the broker) while no worker runs."""
    if not database_up:
        return CheckResult(False, {"required": False, "error": "database unavailable"})
    now = timezone.now()
    try:
        alive = selectors.live_workers(now=now)
    except Exception as exc:
        result = _failed("workers", exc, time.monotonic())
        result.details["required"] = False
        return result
    listed = [
        {
            "hostname": worker.hostname,
            "last_seen_s": round((now - worker.last_seen_at).total_seconds(), 1),
        }
        for worker in alive
    ]
    return CheckResult(bool(alive), {"required": False, "workers": listed})


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, dict]


def readiness() -> Readiness:
    """Ready when the database and the broker answer; the workers are reported alongside."""
    pending_broker = start_broker_check()
    database_result = database()
    workers_result = workers(database_up=database_result.up)
    broker_result = finish_broker_check(pending_broker)
    return Readiness(
        ready=database_result.up and broker_result.up,
        checks={
            "database": database_result.as_dict(),
            "broker": broker_result.as_dict(),
            "workers": workers_result.as_dict(),
        },
    )
