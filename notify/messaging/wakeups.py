"""Transactional wake-ups, coalesced.

A broker message only wakes a worker; the rows are the work. A worker woken on the
transactional lane delivers its message and then every other due transactional message
(`services.deliver_due_transactional`), so while one wake-up is published and no worker has
taken it yet, publishing another adds nothing but broker traffic and CPU on the web side.
One Redis key marks a wake-up as pending: set to the number of messages it covers when one is
published (`SET NX`, so only the first caller publishes; a send to several recipients covers
them all), counted up by each message coalesced into it, taken (`GETDEL`) by the worker that
takes the wake-up (a count of 1: nothing was coalesced into it, so that worker sends its own
message only), cleared when publishing failed. It expires by itself
(NOTIFY_WAKEUP_PENDING_MS); the sweep republishes what waits longer and clears a stale mark.

Without Redis (the embedded `make run` setup), or with NOTIFY_COALESCE_WAKEUPS off, every
message gets its own wake-up, as a failure to reach Redis does."""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable

from django.conf import settings

from notify import redis_client

logger = logging.getLogger(__name__)


def _key() -> str:
    return _key_of(settings.CELERY_BROKER_URL, settings.NOTIFY_TRANSACTIONAL_QUEUE)


@functools.lru_cache(maxsize=8)
def _key_of(broker_url: str, queue: str) -> str:
    # (per broker and queue: deployments, or a benchmark's own queues, sharing one Redis
    # never hold back each other's wake-ups)
    where = hashlib.sha256(broker_url.encode()).hexdigest()[:12]
    return f"notify:wakeup-pending:{where}:{queue}"


# after Redis failed to answer, it is left alone this long (seconds): a Redis that times out
# would otherwise add its timeout to every accept and every wake-up
UNREACHABLE_PAUSE = 5.0
_unreachable_until = 0.0


def _reachable() -> bool:
    return bool(settings.REDIS_URL) and time.monotonic() >= _unreachable_until


def _failed(what: str) -> None:
    global _unreachable_until
    _unreachable_until = time.monotonic() + UNREACHABLE_PAUSE
    logger.warning("%s (Redis unavailable; not tried for %ss)", what, UNREACHABLE_PAUSE)


# set the mark to the number of messages it covers (the caller publishes: 1), or add them to
# the pending wake-up's count (0); atomic, so a mark never loses its expiry
_MARK = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) then return 1 end
redis.call('INCRBY', KEYS[1], ARGV[2])
return 0
"""


def cover(count: int = 1) -> bool | None:
    """Covers `count` newly queued messages by one wake-up. True: none was pending, so the
    caller publishes one (its worker sends the others too when `count` > 1); False: one is
    pending and its worker will find them due; None: nothing coalesces here (turned off, or
    Redis unreachable), so each message needs a wake-up of its own."""
    if not settings.NOTIFY_COALESCE_WAKEUPS or not _reachable():
        return None
    try:
        mark = redis_client.script(_MARK)
        return bool(mark(keys=[_key()], args=[settings.NOTIFY_WAKEUP_PENDING_MS, count]))
    except Exception:  # noqa: BLE001 - Redis unreachable: publish, as without coalescing
        _failed("wake-up coalescing unavailable: publishing")
        return None


def publish(send: Callable[[], object], count: int = 1) -> bool:
    """`send()` (one wake-up's publish) for `count` newly queued messages, unless one is
    pending; a publish that fails clears the mark (nothing is on its way: the next message
    publishes again) and raises. Returns False only when several messages need a wake-up
    each (nothing coalesces here) and none was sent: the caller publishes them one by one."""
    covered = cover(count)
    if covered is False:
        return True
    if covered is None and count > 1:
        return False
    try:
        send()
    except BaseException:
        not_pending()
        raise
    return True


def take() -> bool:
    """A worker takes the pending wake-up. Returns whether other messages may have been
    coalesced into it (then the worker sends the lane's due messages after its own): False
    only when the mark says none was; a missing mark (expired, cleared) or no Redis says
    maybe."""
    if not _reachable():
        return True
    try:
        count = redis_client.client().getdel(_key())
    except Exception:  # noqa: BLE001 - the mark expires by itself; the sweep clears it too
        _failed("wake-up mark not taken")
        return True
    return count is None or int(count) != 1


def not_pending() -> None:
    """A worker took the pending wake-up (or publishing it failed, or the sweep found codes
    nobody took): the next message that becomes due publishes one again. Cleared whatever
    NOTIFY_COALESCE_WAKEUPS says here: web processes configured otherwise may have set it."""
    if not _reachable():
        return
    try:
        redis_client.client().delete(_key())
    except Exception:  # noqa: BLE001 - the mark expires by itself; the sweep clears it too
        _failed("wake-up mark not cleared")
