"""Per-tenant rate limit on the v2 API: `qps_limit` calls per second, shared by every process
(Redis), answered 429 with Retry-After in the API's error format; other tenants unaffected."""

import time

import pytest

from notify import ratelimit, redis_client
from notify.tenants.models import Tenant


@pytest.fixture(params=["redis", "in-process"])
def limiter(request, settings):  # noqa: ANN001, ANN201
    """Both kinds of buckets: Redis (shared by all web processes) and the embedded fallback."""
    if request.param == "redis":
        settings.REDIS_URL = "redis://127.0.0.1:6379/3"
        redis_client.client().flushdb()
    else:
        settings.REDIS_URL = ""
    yield request.param


def test_api__tenant_past_its_rate__429_with_retry_after(
    limiter, api_client, other_tenant_client, tenant
):
    # Given a tenant allowed 3 calls per second
    Tenant.objects.filter(pk=tenant.pk).update(qps_limit=3)
    # When it makes 5 calls at once
    statuses = [api_client.get("/v2/messages").status_code for _ in range(5)]
    # Then the first 3 pass and the rest are told when to come back, in the API's format
    assert statuses == [200, 200, 200, 429, 429]
    refused = api_client.get("/v2/messages")
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # And another tenant is not affected
    assert other_tenant_client.get("/v2/messages").status_code == 200


def test_bucket__refills_at_its_rate(limiter):
    # Given a bucket of 5 tokens refilled at 10 per second, emptied
    key = f"refill-{limiter}"
    taken = [ratelimit.take(key, rate=10, burst=5).allowed for _ in range(5)]
    assert taken == [True] * 5
    # When one more is asked for
    refused = ratelimit.take(key, rate=10, burst=5)
    # Then it says when a token is back (within a tenth of a second), and then it is
    assert not refused.allowed and 0 < refused.retry_after <= 0.1
    time.sleep(refused.retry_after + 0.02)
    assert ratelimit.take(key, rate=10, burst=5).allowed


def test_bucket__redis_down__calls_go_through(settings):
    # Given a Redis that does not answer
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    # Then the limit is not checked, and the call is allowed
    assert ratelimit.take("down", rate=1, burst=1).allowed
    assert ratelimit.take("down", rate=1, burst=1).allowed
