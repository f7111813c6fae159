"""The legacy API's shared state: nonces seen (replay protection) and each app's sliding
one-second log of admitted sends (its `qps_limit`). Both live in Redis, so every web process
sees the same; without Redis (the embedded `make run` setup) or while it is down, each process
keeps its own, logged: a Redis outage must not take the legacy API down with it."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from django.conf import settings

from compat.protocol import NONCE_WINDOW_S
from notify import redis_client

logger = logging.getLogger(__name__)

# KEYS[1]: the app's log (a sorted set of admission times, µs); ARGV[1]: its limit.
# Redis's own clock, so web nodes with skewed clocks share one window correctly.
_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local n = redis.call('INCR', KEYS[1] .. ':n')
redis.call('PEXPIRE', KEYS[1] .. ':n', 2000)
redis.call('ZADD', KEYS[1], now, now .. ':' .. n)
redis.call('PEXPIRE', KEYS[1], 2000)
return 1
"""

_lock = threading.Lock()
_local_nonces: dict[tuple[str, str], float] = {}
_local_calls: dict[str, deque] = {}


def _redis():  # noqa: ANN202
    return redis_client.client(timeout=0.5)


def use_nonce(app_key: str, nonce: str) -> bool:
    """Records the nonce as used by the app; False if it was used within the window."""
    if settings.REDIS_URL:
        try:
            key = f"notify:legacy:nonce:{app_key}:{nonce}"
            return bool(_redis().set(key, b"1", nx=True, ex=NONCE_WINDOW_S))
        except Exception:  # noqa: BLE001 - Redis down: this process's own book
            logger.warning("legacy nonce checked in-process: Redis unavailable", exc_info=True)
    return _use_nonce_locally(app_key, nonce)


def _use_nonce_locally(app_key: str, nonce: str) -> bool:
    now = time.monotonic()
    with _lock:
        if len(_local_nonces) > 100_000:
            for key in [k for k, t in _local_nonces.items() if now - t > NONCE_WINDOW_S]:
                del _local_nonces[key]
        seen = _local_nonces.get((app_key, nonce))
        if seen is not None and now - seen <= NONCE_WINDOW_S:
            return False
        _local_nonces[(app_key, nonce)] = now
        return True


def admit(app_key: str, limit: int) -> bool:
    """Whether the app may make one more send now: fewer than `limit` sends were admitted in
    the last second. An admitted call is counted; a refused one is not."""
    if settings.REDIS_URL:
        try:
            admit_script = redis_client.script(_ADMIT, timeout=0.5)
            return bool(admit_script(keys=[f"notify:legacy:qps:{app_key}"], args=[limit]))
        except Exception:  # noqa: BLE001 - Redis down: this process's own log
            logger.warning("legacy rate limit checked in-process: Redis unavailable", exc_info=True)
    return _admit_locally(app_key, limit)


def _admit_locally(app_key: str, limit: int) -> bool:
    now = time.monotonic()
    with _lock:
        calls = _local_calls.setdefault(app_key, deque())
        while calls and now - calls[0] >= 1.0:
            calls.popleft()
        if len(calls) >= limit:
            return False
        calls.append(now)
        return True


def reset_local_state() -> None:
    """Forgets the in-process nonces and logs (tests)."""
    with _lock:
        _local_nonces.clear()
        _local_calls.clear()
