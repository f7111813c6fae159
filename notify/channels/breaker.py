"""A circuit breaker per provider, shared by every worker (Redis; per process without
REDIS_URL). Closed: calls go through; PROVIDER_BREAKER_FAILURES failures within
PROVIDER_BREAKER_WINDOW seconds open it. Open: calls skip the provider for
PROVIDER_BREAKER_COOLDOWN seconds. Then half-open: one call (one worker's, by SET NX) probes
it; its success closes the breaker, its failure opens it again. Every change of state is kept
(the last TRANSITIONS_KEPT, newest first) for the admin and the tests.

A provider whose transport reaches independent services (Web Push: each browser's push
service) has one breaker per service, `circuit(provider_id, scope)`: one service down leaves
the others' calls going through."""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
import time

from django.conf import settings

from notify import redis_client

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# refusals that say the provider, not the message, is failing (they count against it)
PROVIDER_FAILURE_KINDS = frozenset({"provider_down", "temporary", "throttled"})
TRANSITIONS_KEPT = 50
_PREFIX = "notify:cb:"

_local_lock = threading.Lock()
_local: dict[str, dict] = {}


def _redis():  # noqa: ANN202
    return redis_client.client(timeout=0.5)


class _Store:
    """The breaker's few keys, in Redis or, without it, in this process."""

    def get(self, key: str) -> str | None:
        if settings.REDIS_URL:
            value = _redis().get(_PREFIX + key)
            return value.decode() if value is not None else None
        with _local_lock:
            entry = _local.get(key)
            if entry is None or (entry["until"] and entry["until"] < time.time()):
                return None
            return entry["value"]

    def set(self, key: str, value: str, ttl: float | None = None, only_new: bool = False) -> bool:
        if settings.REDIS_URL:
            return bool(
                _redis().set(_PREFIX + key, value, px=int(ttl * 1000) if ttl else None, nx=only_new)
            )
        with _local_lock:
            if only_new and self._alive(key):
                return False
            _local[key] = {"value": value, "until": time.time() + ttl if ttl else 0}
            return True

    def _alive(self, key: str) -> bool:
        entry = _local.get(key)
        return entry is not None and not (entry["until"] and entry["until"] < time.time())

    def incr(self, key: str, ttl: float) -> int:
        if settings.REDIS_URL:
            pipe = _redis().pipeline()
            pipe.incr(_PREFIX + key)
            pipe.pexpire(_PREFIX + key, int(ttl * 1000), nx=True)
            return int(pipe.execute()[0])
        with _local_lock:
            count = int(_local[key]["value"]) + 1 if self._alive(key) else 1
            until = _local[key]["until"] if self._alive(key) else time.time() + ttl
            _local[key] = {"value": str(count), "until": until}
            return count

    def delete(self, *keys: str) -> None:
        if settings.REDIS_URL:
            _redis().delete(*(_PREFIX + k for k in keys))
            return
        with _local_lock:
            for key in keys:
                _local.pop(key, None)

    def push(self, key: str, value: str, member_of: str = "") -> None:
        """`value` first in the list `key` (the newest kept); with `member_of`, `key` is also
        added to that set, in the same transaction."""
        if settings.REDIS_URL:
            pipe = _redis().pipeline()  # (MULTI/EXEC: all or nothing)
            pipe.lpush(_PREFIX + key, value)
            pipe.ltrim(_PREFIX + key, 0, TRANSITIONS_KEPT - 1)
            if member_of:
                pipe.sadd(_PREFIX + member_of, key)
            pipe.execute()
            return
        with _local_lock:
            entry = _local.setdefault(key, {"value": [], "until": 0})
            entry["value"] = [value, *entry["value"]][:TRANSITIONS_KEPT]
            if member_of:
                members = _local.setdefault(member_of, {"value": [], "until": 0})["value"]
                if key not in members:
                    members.append(key)

    def items(self, key: str) -> list[str]:
        if settings.REDIS_URL:
            return [v.decode() for v in _redis().lrange(_PREFIX + key, 0, -1)]
        with _local_lock:
            return list(_local.get(key, {}).get("value", []))

    def keys(self, pattern: str) -> list[str]:
        """Every key matching `pattern` (a scan of all of Redis: for rare admin actions only)."""
        if settings.REDIS_URL:
            return [
                key.decode().removeprefix(_PREFIX)
                for key in _redis().scan_iter(match=_PREFIX + pattern, count=1000)
            ]
        with _local_lock:
            return [key for key in _local if fnmatch.fnmatchcase(key, pattern)]

    def members(self, key: str) -> list[str]:
        if settings.REDIS_URL:
            return [member.decode() for member in _redis().smembers(_PREFIX + key)]
        with _local_lock:
            return list(_local.get(key, {}).get("value", []))


_store = _Store()


def state(provider_id: int | str) -> str:
    opened = _store.get(f"{provider_id}:open_until")
    if opened is None:
        return CLOSED
    return OPEN if float(opened) > time.time() else HALF_OPEN


def shown_state(provider_id: int | str) -> str:
    """The state for a page or an API answer: `unknown` when the store cannot be read."""
    try:
        return state(provider_id)
    except Exception:  # noqa: BLE001
        return "unknown"


def circuit(provider_id: int, scope: str = "") -> int | str:
    """The breaker a call counts against: the provider's, or its `scope`'s within it."""
    return f"{provider_id}@{scope}" if scope else provider_id


def scoped_circuits(provider_id: int) -> list[str]:
    """The provider's per-service breakers that ever changed state (for the admin)."""
    try:
        # (a set per provider, added to on a scoped breaker's first change: one read per
        # provider row, where a key pattern would scan all of Redis for each)
        return sorted(
            key.removesuffix(":transitions") for key in _store.members(f"{provider_id}:scopes")
        )
    except Exception:  # noqa: BLE001
        return []


def allow(provider_id: int | str) -> bool:
    """Whether a call may go to the provider now (half-open: only the one probe)."""
    try:
        current = state(provider_id)
        if current == CLOSED:
            return True
        if current == OPEN:
            return False
        if _store.set(f"{provider_id}:probe", "1", settings.PROVIDER_BREAKER_COOLDOWN, True):
            _transition(provider_id, HALF_OPEN)
            return True
        return False
    except Exception:  # noqa: BLE001 - without its store the breaker lets calls through
        logger.warning("circuit breaker of provider %s unavailable", provider_id, exc_info=True)
        return True


def failed(provider_id: int | str) -> None:
    try:
        current = state(provider_id)
        if current == HALF_OPEN:
            _open(provider_id)
            return
        if current == OPEN:
            return
        count = _store.incr(f"{provider_id}:failures", settings.PROVIDER_BREAKER_WINDOW)
        if count >= settings.PROVIDER_BREAKER_FAILURES:
            _open(provider_id)
    except Exception:  # noqa: BLE001
        logger.warning("circuit breaker of provider %s unavailable", provider_id, exc_info=True)


def succeeded(provider_id: int | str) -> None:
    try:
        if state(provider_id) != CLOSED:
            _store.delete(f"{provider_id}:open_until", f"{provider_id}:probe")
            _transition(provider_id, CLOSED)
        _store.delete(f"{provider_id}:failures")
    except Exception:  # noqa: BLE001
        logger.warning("circuit breaker of provider %s unavailable", provider_id, exc_info=True)


def record(provider_id: int | str, error_kind: str | None) -> bool:
    """A call's outcome for the breaker (None: it succeeded); True when it counted as the
    provider failing. An answer about the message itself (permanent, bad_recipient) proves
    the provider up."""
    if error_kind in PROVIDER_FAILURE_KINDS:
        failed(provider_id)
        return True
    succeeded(provider_id)
    return False


def _open(provider_id: int | str) -> None:
    cooldown = settings.PROVIDER_BREAKER_COOLDOWN
    # (kept past the cool-down: its expiry is what half-opens the breaker)
    _store.set(f"{provider_id}:open_until", str(time.time() + cooldown), ttl=cooldown * 100)
    _store.delete(f"{provider_id}:failures", f"{provider_id}:probe")
    _transition(provider_id, OPEN)


def _transition(provider_id: int | str, to: str) -> None:
    logger.warning("circuit breaker of provider %s: %s", provider_id, to)
    provider, scoped, _ = str(provider_id).partition("@")
    _store.push(
        f"{provider_id}:transitions",
        json.dumps({"state": to, "at": time.time()}),
        member_of=f"{provider}:scopes" if scoped else "",
    )


def transitions(provider_id: int | str) -> list[dict]:
    """The breaker's changes of state, oldest first (none when the store cannot be read)."""
    try:
        items = _store.items(f"{provider_id}:transitions")
    except Exception:  # noqa: BLE001
        return []
    return [json.loads(item) for item in reversed(items)]


def reset(provider_id: int | str) -> None:
    """The breaker closed and its history forgotten (a provider's scoped ones with it)."""
    circuits = [provider_id]
    if isinstance(provider_id, int):
        # (by a scan too, once, in this rare admin action: breakers that changed state before
        # the set of a provider's scoped breakers was kept are not in it)
        scanned = _store.keys(f"{provider_id}@*:transitions")
        circuits += sorted(
            {*scoped_circuits(provider_id), *(k.removesuffix(":transitions") for k in scanned)}
        )
    _store.delete(
        *(
            f"{circuit}:{k}"
            for circuit in circuits
            for k in ("open_until", "probe", "failures", "transitions")
        ),
        *([f"{provider_id}:scopes"] if isinstance(provider_id, int) else []),
    )
