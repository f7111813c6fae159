"""Per-provider send limits: a token bucket per provider account in Redis (notify.ratelimit),
shared by every worker. A send over the limit waits for its token when that is at most
MAX_PACE_SECONDS away (the lane is paced, not failed); past that, the provider is skipped
(failover to the next), without counting against its circuit breaker (the provider did nothing
wrong). When only these limits stood in the way, the message is queued again for when a token
is back, and that try does not count among its attempts (TransportError kind KIND)."""

from __future__ import annotations

import time

from notify import ratelimit

# the longest a send waits for its provider's token before failover moves on
MAX_PACE_SECONDS = 1.0
# the TransportError kind of a send held back by the platform's own limit (not a failure)
KIND = "send_limit"


def bucket(provider_id: int) -> str:
    return f"provider:{provider_id}"


def pace(provider_id: int, rate: float | None) -> float | None:
    """Waits until the provider may take one more send (at most MAX_PACE_SECONDS). None when
    it may; else the seconds until it may."""
    if not rate:
        return None
    waited = 0.0
    while True:
        # (a burst of one second's sends, at least one)
        decision = ratelimit.take(bucket(provider_id), rate=rate, burst=max(1.0, rate))
        if decision.allowed:
            return None
        if waited + decision.retry_after > MAX_PACE_SECONDS:
            return decision.retry_after
        time.sleep(decision.retry_after)
        waited += decision.retry_after
