"""Delivery reports to a legacy tenant's `callback_url` (SPEC.md, "Delivery reports"): when a
message sent through the legacy API reaches a final status, the tenant's callback gets the
legacy form, signed with its app_secret; a try succeeds only on HTTP 200 with the body exactly
`SUCCESS` within LEGACY_CALLBACK_TIMEOUT seconds; the others are retried after
LEGACY_CALLBACK_DELAYS, then dropped. Each report is a row (the pending work survives a broker
outage or a worker crash), each try is claimed with a conditional UPDATE (a report delivered
twice by the broker is posted once), and every try is signed afresh.

As the old gateway's HTTP client did (urllib): every try goes to the URL the tenant had when
the message finished; a 301/302/303 answer is followed as a GET without the form (up to 10
hops, each through the outbound gate); a 307/308 is a failed try."""

from __future__ import annotations

import http.client
import logging
import secrets
import sys
import time
from datetime import datetime, timedelta
from urllib.parse import urlencode, urljoin

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.dispatch import receiver
from django.utils import timezone

from compat import native
from compat.models import LegacyCallback
from compat.protocol import compute_sign
from notify import outbound
from notify.messaging import followups
from notify.messaging.masking import mask_recipient
from notify.messaging.models import Message, Origin
from notify.messaging.signals import message_finished
from notify.tenants.models import Tenant

logger = logging.getLogger(__name__)

# a claimed try that has not ended by then (its worker died) is tried again
CLAIM_LEASE_S = 60
# what the old gateway's client (urllib) sent with each report, and followed
CLIENT_HEADERS = {
    "User-Agent": f"Python-urllib/{sys.version_info.major}.{sys.version_info.minor}",
    "Connection": "close",
}
FOLLOWED_REDIRECTS = (301, 302, 303)
MAX_REDIRECTS = 10


@receiver(message_finished, dispatch_uid="compat.callbacks")
def on_message_finished(
    sender: object, message_id: str, origin: str | None = None, **kwargs: object
) -> None:
    """A report is owed for a legacy-API message of a tenant with a callback_url."""
    if origin is not None and origin != Origin.LEGACY:
        return  # (most messages: no query on the delivery path)
    tenant_id = kwargs.get("tenant_id")
    if isinstance(tenant_id, int) and not native.lookups.get(
        ("callback_url", tenant_id),
        lambda: Tenant.objects.filter(pk=tenant_id).values_list("callback_url", flat=True).first(),
    ):
        # (most legacy tenants have none; one just set is seen LEGACY_LOOKUP_CACHE_SECONDS
        # later, and the follow-up sweep owes the report of what finished meanwhile)
        return
    message = (
        Message.all_tenants.filter(pk=message_id, origin=Origin.LEGACY)
        .select_related("tenant")
        .first()
    )
    if message is None or not message.tenant.callback_url:
        return
    if native.legacy_status(message) not in (2, 3):
        return
    try:
        with transaction.atomic():
            callback = LegacyCallback.all_tenants.create(
                message_id=message_id, tenant=message.tenant, url=message.tenant.callback_url
            )
    except IntegrityError:
        return  # owed already
    transaction.on_commit(lambda: publish(callback.pk))


@followups.register("compat.callbacks")
def missing_callbacks(since: datetime, until: datetime) -> QuerySet | list:
    """Finished legacy-API messages of the tenants with a callback_url that have no report
    (the receiver writes one per message, unique), through the index of finished messages by
    tenant (`message_finished_tenant`). Only those that finished once the URL was set: the old
    gateway reported what finished while it had one, never what finished before."""
    tenants = list(
        Tenant.objects.exclude(callback_url="")
        .order_by("pk")
        .values_list("pk", "callback_url_since")
    )
    if not tenants:
        return []
    owed = Q()
    for tenant_id, url_since in tenants:
        owed |= Q(tenant_id=tenant_id, **({"updated_at__gte": url_since} if url_since else {}))
    return (
        followups.finished_between(since, until)
        .filter(owed, origin=Origin.LEGACY)
        .filter(~Exists(LegacyCallback.all_tenants.filter(message_id=OuterRef("id"))))
    )


def publish(callback_id: int) -> None:
    from compat.tasks import deliver_callback

    try:
        deliver_callback.apply_async(args=[callback_id])
    except Exception:  # noqa: BLE001 - the row stays pending: the sweep publishes it
        logger.warning("broker unavailable: callback %s left for the sweep", callback_id)


def report_form(message: Message) -> dict[str, str]:
    """The legacy delivery report of `message`, signed (a fresh timestamp and nonce)."""
    status = native.legacy_status(message)
    form = {
        "app_key": message.tenant.app_key or "",
        "msg_id": message.id,
        "batch_id": message.batch_id,
        "out_id": native.key_from_db(message.reference),
        "recipient": message.recipient,
        "status": str(status),
        "err_code": native.legacy_err_code(message),
        "report_time": native.status_data(message)["report_time"],
        "timestamp": str(int(time.time() * 1000)),
        "nonce": secrets.token_hex(8),
    }
    form["sign"] = compute_sign(form, message.tenant.app_secret)
    return form


def deliver(callback_id: int) -> None:
    """One try of a report, if it is due and this caller claims it."""
    now = timezone.now()
    claimed = LegacyCallback.all_tenants.filter(
        pk=callback_id, state=LegacyCallback.State.PENDING, next_attempt_at__lte=now
    ).update(
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_S),
        updated_at=now,
    )
    if claimed != 1:
        return
    callback = LegacyCallback.all_tenants.select_related("tenant").get(pk=callback_id)
    message = Message.all_tenants.select_related("tenant").get(pk=callback.message_id)
    # (a row from before the URL was kept on it: the tenant's)
    url = callback.url or callback.tenant.callback_url
    error = ""
    try:
        answer = _post(url, urlencode(report_form(message)).encode("utf-8"))
        if answer.status != 200 or answer.body != b"SUCCESS":
            error = f"answered HTTP {answer.status} {answer.body[:80]!r}, not 200 SUCCESS"
    except outbound.TargetRefused as exc:
        error = f"refused: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        error = f"unreachable: {exc}"
    _record(callback, error, message)


def _post(url: str, form: bytes) -> outbound.Answer:
    """The report POSTed as urllib did: its headers; a 301/302/303 followed as a GET without
    the form (each hop through the gate)."""
    timeout = settings.LEGACY_CALLBACK_TIMEOUT
    headers = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}
    answer = outbound.post(url, form, {**headers, **CLIENT_HEADERS}, timeout)
    for _ in range(MAX_REDIRECTS):
        location = next((v for k, v in answer.headers.items() if k.lower() == "location"), None)
        if answer.status not in FOLLOWED_REDIRECTS or location is None:
            return answer
        url = urljoin(url, location.replace(" ", "%20"))
        answer = outbound.call("GET", url, b"", CLIENT_HEADERS, timeout)
    return answer


def _record(callback: LegacyCallback, error: str, message: Message) -> None:
    now = timezone.now()
    delays = settings.LEGACY_CALLBACK_DELAYS
    where = mask_recipient(message.channel, message.recipient)
    if not error:
        state, next_at = LegacyCallback.State.DONE, now
    elif callback.attempts <= len(delays):
        state = LegacyCallback.State.PENDING
        next_at = now + timedelta(seconds=delays[callback.attempts - 1])
    else:
        state, next_at = LegacyCallback.State.DROPPED, now
    LegacyCallback.all_tenants.filter(pk=callback.pk, attempts=callback.attempts).update(
        state=state, next_attempt_at=next_at, last_error=error, updated_at=now
    )
    if error:
        logger.warning(
            "legacy callback for %s (%s) try %d failed, %s: %s",
            message.id,
            where,
            callback.attempts,
            "dropped" if state == LegacyCallback.State.DROPPED else f"next at {next_at:%H:%M:%S}",
            error,
        )


def sweep(limit: int = 1000) -> int:
    """Publishes the due pending reports (retries whose time came, tries whose worker died,
    reports whose publish failed). Returns how many."""
    ids = list(
        LegacyCallback.all_tenants.filter(
            state=LegacyCallback.State.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for callback_id in ids:
        publish(callback_id)
    return len(ids)
