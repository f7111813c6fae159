"""A process's short-lived copies of what it looks up on every call (an API key, a tenant's
providers, its webhook subscriptions, a legacy app). Each cache keeps a value for its TTL:
a change made elsewhere reaches this process that much later, a change made in this process
is seen at once by whoever forgets the cache after writing. `forget_all()` empties every
cache of the process (tests, and writes that touch several)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")

_every_cache: weakref.WeakSet[TtlCache] = weakref.WeakSet()


class TtlCache(Generic[Value]):
    """Values by key, each kept `seconds` (a number, or a callable read at each lookup so a
    setting can change it; 0 or less: not kept at all). At most `max_entries`: a full cache
    starts again empty, which bounds memory without bookkeeping per entry. With `keep_none`
    false, a lookup that found nothing is asked again next time."""

    def __init__(
        self,
        seconds: float | Callable[[], float],
        *,
        max_entries: int = 10_000,
        keep_none: bool = True,
    ) -> None:
        self._seconds = seconds if callable(seconds) else (lambda: seconds)
        self._max_entries = max_entries
        self._keep_none = keep_none
        self._entries: dict[Hashable, tuple[float, Value]] = {}
        # (a gunicorn or Celery thread may fill while another forgets; dict operations are
        # atomic, the lock only keeps `forget` from racing a refill of the same key)
        self._lock = threading.Lock()
        _every_cache.add(self)

    def get(self, key: Hashable, load: Callable[[], Value]) -> Value:
        """The kept value, or `load()`'s (then kept)."""
        ttl = self._seconds()
        if ttl <= 0:
            return load()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if value is not None or self._keep_none:
            with self._lock:
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
                self._entries[key] = (now + ttl, value)
        return value

    def forget(self, key: Hashable | None = None) -> None:
        """Drops `key`'s value, or every value."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)


def forget_all() -> None:
    for cache in list(_every_cache):
        cache.forget()
