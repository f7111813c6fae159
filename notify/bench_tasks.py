"""The no-op task of `make bench`'s baseline (loaded by the bench's workers with `-I`, never by
the platform's): it only counts itself, so the bench knows when all have run."""

import redis
from celery import shared_task
from django.conf import settings

_counter: redis.Redis | None = None


@shared_task(name="bench.noop", ignore_result=True)
def noop() -> None:
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    _counter.incr("notify-bench:noop-done")
