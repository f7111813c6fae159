"""One out_id, one send, whichever system it reaches (SPEC: "Idempotency") while a tenant's
sends move between the old gateway and the platform.

The platform's send requests (notify.messaging.requests) hold every out_id either system
answered for the tenant:

- the platform's own sends: claimed (`processing`) while answered, then the first answer;
- sends forwarded to the old gateway: a row *held by the old gateway* (`completed`, status
  HELD_BY_LEGACY, no body) written **before** the call is forwarded; it becomes the old
  gateway's successful answer once known, and is deleted when the old gateway refused the
  call (it keeps only successes, so it sent nothing under that out_id).

A call whose out_id the platform answered is replayed by the platform; one whose out_id the old
gateway holds is forwarded to it, whatever the stage (the old gateway's own out_id table then
decides); one whose out_id the old gateway answered is forwarded to it while the call's route
is the old gateway (its nonce book and rate limit count the retry, as they always did), and
replayed by the platform once the route is the platform's; one whose out_id the platform is
answering waits for that answer. When the old gateway's outcome is unknown (no answer, a timeout,
a 5xx, or `nonce reused` from a call that may have reached it before), the out_id stays held by
the old gateway: a retry never sends from the platform what the old gateway may have sent."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compat import native
from notify.messaging.models import Origin, SendRequest

HELD_BY_LEGACY = native.HELD_BY_LEGACY
ANSWERED_BY_LEGACY = native.ANSWERED_BY_LEGACY
FREE, ANSWERED, HELD, BUSY = "free", "answered", "held", "busy"
# answered by the old gateway (the platform can replay its answer)
ANSWERED_THERE = "answered_there"
# how long a call waits for the platform's concurrent answer to the same out_id
WAIT_S = native.IN_FLIGHT_WAIT_S
# answers that prove the old gateway did not send (anything else: it may have)
_UNKNOWN_OUTCOME = {None, 50000, 10005}


def keepable(out_id: str) -> bool:
    return 0 < len(out_id) <= 64 and native.storable(out_id)


def _row(tenant_id: int, endpoint: str, out_id: str) -> SendRequest | None:
    return (
        SendRequest.all_tenants.filter(
            tenant_id=tenant_id,
            endpoint=endpoint,
            idempotency_key=native.key_to_db(out_id),
            expires_at__gt=timezone.now(),
        )
        .only("state", "response_status")
        .first()
    )


def state(tenant_id: int, endpoint: str, out_id: str, wait_s: float | None = None) -> str:
    """FREE, ANSWERED (the platform answered it), ANSWERED_THERE (the old gateway did; its
    answer is kept), HELD (the old gateway's, its answer unknown), or BUSY (the platform is
    still answering it after `wait_s`, default WAIT_S)."""
    deadline = time.monotonic() + (WAIT_S if wait_s is None else wait_s)
    while True:
        row = _row(tenant_id, endpoint, out_id)
        if row is None:
            return FREE
        if row.state == SendRequest.State.COMPLETED:
            return _COMPLETED_STATES.get(row.response_status, ANSWERED)
        if time.monotonic() >= deadline:
            return BUSY
        time.sleep(0.02)


_COMPLETED_STATES = {HELD_BY_LEGACY: HELD, ANSWERED_BY_LEGACY: ANSWERED_THERE}


def hold(tenant_id: int, endpoint: str, out_id: str) -> str:
    """Marks a free out_id as the old gateway's before its call is forwarded: HELD when done
    (or it was held already), else the state another call gave it meanwhile."""
    now = timezone.now()
    try:
        with transaction.atomic():
            SendRequest.all_tenants.create(
                tenant_id=tenant_id,
                origin=Origin.LEGACY,
                endpoint=endpoint,
                idempotency_key=native.key_to_db(out_id),
                fingerprint="legacy",
                state=SendRequest.State.COMPLETED,
                response_status=HELD_BY_LEGACY,
                response_body=None,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.NOTIFY_IDEMPOTENCY_TTL),
            )
    except IntegrityError:
        return state(tenant_id, endpoint, out_id)
    return HELD


def settle(tenant_id: int, endpoint: str, out_id: str, code: int | None, answer: bytes) -> None:
    """What the old gateway answered a call whose out_id it holds."""
    held = SendRequest.all_tenants.filter(
        tenant_id=tenant_id,
        endpoint=endpoint,
        idempotency_key=native.key_to_db(out_id),
        state=SendRequest.State.COMPLETED,
        response_status=HELD_BY_LEGACY,
    )
    if code == 0:
        held.update(
            response_status=ANSWERED_BY_LEGACY, response_body=answer.decode("utf-8", "replace")
        )
    elif code not in _UNKNOWN_OUTCOME:
        held.delete()
