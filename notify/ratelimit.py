"""Rate limits: token buckets, atomic in Redis (one Lua script: read, refill, take, write) so
that every web process shares one count per tenant; without Redis (the embedded `make run`
setup) each process keeps its own buckets. A limit that cannot be checked (Redis down) lets
the call through, logged: rate limiting must not take the API down with it."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from notify import redis_client

logger = logging.getLogger(__name__)

# KEYS[1]: the bucket; ARGV: rate (tokens/s), burst (tokens), cost. The clock is Redis's own, so
# web nodes with skewed clocks share one bucket correctly. Returns {allowed, retry_after_ms}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until `cost` tokens are back (0 when allowed)


class _LocalBuckets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: float, burst: float, cost: float) -> Decision:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - at) * rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return Decision(True, 0.0)
            self._buckets[key] = (tokens, now)
            return Decision(False, (cost - tokens) / rate)

    def forget(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)


_local = _LocalBuckets()


def forget_local() -> None:
    """Empties this process's own buckets (the ones kept without Redis)."""
    global _local
    _local = _LocalBuckets()


def take(key: str, rate: float, burst: float, cost: float = 1.0) -> Decision:
    """Takes `cost` tokens from the bucket `key` (refilled at `rate` per second, holding at
    most `burst`), or says how long until they are there."""
    if rate <= 0:
        return Decision(False, math.inf)
    if not settings.REDIS_URL:
        return _local.take(key, rate, burst, cost)
    try:
        allowed, wait_ms = redis_client.script(_TAKE)(
            keys=[f"notify:rl:{key}"], args=[rate, burst, cost]
        )
    except Exception:  # noqa: BLE001 - any Redis failure: the call goes through, logged
        logger.warning("rate limit %s not checked: Redis unavailable", key, exc_info=True)
        return Decision(True, 0.0)
    return Decision(bool(allowed), int(wait_ms) / 1000)


def reset(key: str) -> None:
    """The bucket `key` full again (an operator's reset, a test's clean start)."""
    _local.forget(key)
    if settings.REDIS_URL:
        redis_client.client().delete(f"notify:rl:{key}")
