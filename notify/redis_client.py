"""The platform's one way to its Redis (REDIS_URL): rate limits, provider breakers, legacy
nonces and call windows, transactional wake-up marks.

One client per process, URL and timeout, kept (its pool reuses connections; redis-py opens
new ones in a forked child), and Lua scripts registered once (EVALSHA: the script's text is
sent again only after a Redis restart). Each caller keeps its own answer to Redis being
unreachable (let the call through, use this process's book, publish anyway): that is a
decision about what it guards, not about the connection."""

from __future__ import annotations

import functools

import redis
from django.conf import settings
from redis.commands.core import Script

# a short timeout: these calls sit on the request path, and each caller has an answer for
# "Redis did not reply" that is better than waiting
DEFAULT_TIMEOUT = 0.25


def client(timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
    """The client for REDIS_URL (which must be set: callers check it and fall back)."""
    return _client(settings.REDIS_URL, timeout)


def script(source: str, timeout: float = DEFAULT_TIMEOUT) -> Script:
    """`source` registered on the client for REDIS_URL; call it as
    `script(keys=[…], args=[…])`."""
    return _script(settings.REDIS_URL, timeout, source)


@functools.lru_cache(maxsize=16)
def _client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


@functools.lru_cache(maxsize=32)
def _script(url: str, timeout: float, source: str) -> Script:
    return _client(url, timeout).register_script(source)
