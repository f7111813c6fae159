"""Per-tenant API rate limit: the tenant's `qps_limit` calls per second (the legacy gateway's
own setting, shared by every send endpoint), with bursts of one second's worth."""

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from notify import ratelimit


class TenantRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: object) -> bool:
        tenant = request.user
        rate = getattr(tenant, "qps_limit", None)
        if not rate:
            return True  # not a tenant (no limit of ours applies)
        decision = ratelimit.take(f"tenant:{tenant.pk}", rate=rate, burst=rate)
        self._wait = decision.retry_after
        return decision.allowed

    def wait(self) -> float:
        return max(self._wait, 0.001)
