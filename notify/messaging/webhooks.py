"""Tenant webhooks: each message event a tenant subscribed to is a WebhookDelivery row (the
pending work), POSTed to the subscription's URL through the outbound gate, signed per the
Standard Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
HMAC-SHA256 of "id.timestamp.body">`, the `standardwebhooks` package), tried again after
WEBHOOK_RETRY_DELAYS (its recommended schedule, shortened by the settings in tests) until a 2xx,
then given up; a subscription whose deliveries gave up WEBHOOK_DISABLE_AFTER_FAILURES times in
a row is disabled, with the reason. Each try is claimed with a conditional UPDATE: a delivery
queued twice is posted once."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Cast, Concat
from django.dispatch import receiver
from django.utils import timezone
from standardwebhooks import Webhook

from notify import outbound
from notify.caching import TtlCache
from notify.messaging import followups
from notify.messaging.models import (
    Message,
    MessageStatus,
    WebhookDelivery,
    WebhookSubscription,
)
from notify.messaging.signals import message_finished

logger = logging.getLogger(__name__)

EVENT_TYPES = {
    MessageStatus.DELIVERED: "message.delivered",
    MessageStatus.FAILED: "message.failed",
    MessageStatus.DEAD: "message.failed",
    MessageStatus.SUPPRESSED: "message.suppressed",
    MessageStatus.CANCELLED: "message.cancelled",
}
ALL_EVENT_TYPES = sorted(set(EVENT_TYPES.values()))
CLAIM_LEASE_S = 60
# a due delivery no worker took within this is published again by the sweep
SWEEP_GRACE_S = 30
MAX_ERROR_CHARS = 500


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def wants(subscription: WebhookSubscription, event_type: str) -> bool:
    return not subscription.events or event_type in subscription.events


@receiver(message_finished, dispatch_uid="messaging.webhooks")
def on_message_finished(
    sender: object,
    message_id: str,
    status: str,
    tenant_id: int | None = None,
    **kwargs: object,
) -> None:
    event_type = EVENT_TYPES.get(status)
    if event_type is None:
        return
    subscriptions = _subscriptions(tenant_id) if tenant_id is not None else None
    if subscriptions == []:
        return  # (most tenants: no query on the delivery path)
    message = Message.all_tenants.filter(pk=message_id).first()
    if message is None:
        return
    if subscriptions is None:
        subscriptions = _subscriptions(message.tenant_id)
    wanted = [s for s in subscriptions if wants(s, event_type)]
    if not wanted:
        return
    payload = event_payload(event_type, message)
    created = []
    with transaction.atomic():
        for subscription in wanted:
            try:
                with transaction.atomic():
                    created.append(
                        WebhookDelivery.objects.create(
                            subscription=subscription,
                            # (a message retried by hand may finish again: a new event)
                            event_id=f"evt_{message_id}_{status}_{message.attempts}_"
                            f"{subscription.pk}",
                            event_type=event_type,
                            payload=payload,
                        )
                    )
            except IntegrityError:
                continue  # owed already
    for delivery in created:
        transaction.on_commit(lambda pk=delivery.pk: _publish(pk))


CACHE_SECONDS = 5.0
_enabled: TtlCache[list[WebhookSubscription]] = TtlCache(CACHE_SECONDS)


def _subscriptions(tenant_id: int) -> list[WebhookSubscription]:
    """The tenant's enabled subscriptions, each process keeping them CACHE_SECONDS."""
    return _enabled.get(
        tenant_id,
        lambda: list(WebhookSubscription.all_tenants.filter(tenant_id=tenant_id, enabled=True)),
    )


def forget_cached() -> None:
    _enabled.forget()


@followups.register("messaging.webhooks")
def missing_deliveries(since: datetime, until: datetime) -> QuerySet | list:
    """Finished messages of the tenants with enabled subscriptions that a subscription wanting
    the event has no delivery of (its event_id, as the receiver writes it, is unique). A
    subscription is owed only the events of messages finished since it was last saved: a new
    or re-enabled one is not sent the past (the receiver did not owe it then either)."""
    subscriptions = list(
        WebhookSubscription.all_tenants.filter(enabled=True).values_list(
            "pk", "tenant_id", "events"
        )
    )
    # the statuses wanted by the same subscriptions, together (usually one group: all of them)
    groups: dict[tuple[int, ...], list[str]] = {}
    for status, event_type in EVENT_TYPES.items():
        wanting = tuple(pk for pk, _, events in subscriptions if not events or event_type in events)
        if wanting:
            groups.setdefault(wanting, []).append(status.value)
    if not groups:
        return []
    # the event_id the receiver writes (evt_<message>_<status>_<attempts>_<subscription>), per
    # (message, subscription), in SQL
    owed_event_id = Concat(
        Value("evt_"),
        OuterRef(OuterRef("id")),
        Value("_"),
        OuterRef(OuterRef("status")),
        Value("_"),
        Cast(OuterRef(OuterRef("attempts")), CharField()),
        Value("_"),
        Cast(OuterRef("pk"), CharField()),
        output_field=CharField(),
    )
    owed = Q()
    for wanting, statuses in groups.items():
        undelivered = WebhookSubscription.all_tenants.filter(
            pk__in=wanting,
            enabled=True,
            tenant_id=OuterRef("tenant_id"),
            updated_at__lte=OuterRef("updated_at"),
        ).filter(~Exists(WebhookDelivery.objects.filter(event_id=owed_event_id)))
        # (the status first: the database tests it before it runs the subquery)
        owed |= Q(status__in=statuses) & Exists(undelivered)
    tenants = sorted({tenant_id for _, tenant_id, _ in subscriptions})
    return followups.finished_between(since, until).filter(tenant_id__in=tenants).filter(owed)


def event_payload(event_type: str, message: Message) -> dict[str, Any]:
    return {
        "type": event_type,
        "timestamp": timezone.now().isoformat(),
        "data": {
            "id": message.id,
            "channel": message.channel,
            "to": message.recipient,
            "status": message.status,
            "batch_id": message.batch_id or None,
            "error": message.error or None,
            "error_code": message.error_code or None,
            "reference": message.reference or None,
        },
    }


def _publish(delivery_id: int, countdown: float = 0) -> None:
    from notify.messaging.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async(args=[delivery_id], countdown=countdown or None)
    except Exception:  # noqa: BLE001 - the sweep publishes it again
        logger.warning("webhook delivery %s not queued; the sweep will", delivery_id)


def deliver(delivery_id: int) -> str | None:
    """One try of one delivery (claimed first). Returns its state after the try, or None when
    another worker has it or it is not due."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        state=WebhookDelivery.State.PENDING,
        next_attempt_at__lte=now,
        subscription__enabled=True,
    ).update(next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_S), attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    subscription = delivery.subscription
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
    sent_at = timezone.now()
    headers = {
        "Content-Type": "application/json",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(subscription.secret).sign(delivery.event_id, sent_at, body),
        "User-Agent": "notify-webhooks/1",
    }
    status, error = None, ""
    try:
        answer = outbound.post(
            subscription.url, body.encode("utf-8"), headers, settings.WEBHOOK_TIMEOUT
        )
        status = answer.status
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except outbound.TargetRefused as exc:
        error = f"refused: {exc}"
    except (OSError, Exception) as exc:  # noqa: BLE001 - any failure is a failed try
        error = f"{type(exc).__name__}: {exc}"
    return _record(delivery, subscription, status, error[:MAX_ERROR_CHARS])


def _record(
    delivery: WebhookDelivery, subscription: WebhookSubscription, status: int | None, error: str
) -> str:
    """The try's outcome, written only if this worker still holds the delivery (the same
    number of tries, still pending): a worker that overran its claim records nothing."""
    now = timezone.now()
    fields: dict[str, Any] = {"last_status": status, "last_error": error}
    retry_in = None
    if not error:
        fields.update(state=WebhookDelivery.State.DELIVERED, finished_at=now)
    elif delivery.attempts > len(settings.WEBHOOK_RETRY_DELAYS):
        fields.update(state=WebhookDelivery.State.FAILED, finished_at=now)
    else:
        retry_in = settings.WEBHOOK_RETRY_DELAYS[delivery.attempts - 1]
        fields["next_attempt_at"] = now + timedelta(seconds=retry_in)
    held = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=WebhookDelivery.State.PENDING, attempts=delivery.attempts
    ).update(**fields)
    if held != 1:
        return WebhookDelivery.objects.get(pk=delivery.pk).state
    if not error:
        WebhookSubscription.all_tenants.filter(pk=subscription.pk).update(failed_in_a_row=0)
    elif retry_in is None:
        _gave_up(subscription)
    else:
        _publish(delivery.pk, countdown=retry_in)
    return fields.get("state", WebhookDelivery.State.PENDING)


def _gave_up(subscription: WebhookSubscription) -> None:
    WebhookSubscription.all_tenants.filter(pk=subscription.pk).update(
        failed_in_a_row=F("failed_in_a_row") + 1
    )
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    disabled = WebhookSubscription.all_tenants.filter(
        pk=subscription.pk, enabled=True, failed_in_a_row__gte=limit
    ).update(
        enabled=False,
        disabled_reason=f"disabled on {timezone.now():%Y-%m-%d %H:%M} UTC: {limit} deliveries "
        "in a row gave up; fix the endpoint, then enable it again",
    )
    if disabled:
        logger.warning("webhook subscription %s disabled after %s failures", subscription.pk, limit)
        forget_cached()


def sweep(limit: int = 500) -> int:
    """Queues again the deliveries due for SWEEP_GRACE_S that no worker took (their wake-up was
    lost): each delivery and retry is published when it is written, so the sweep does not
    flood the queue with copies of wake-ups still waiting in it."""
    ids = list(
        WebhookDelivery.objects.filter(
            state=WebhookDelivery.State.PENDING,
            next_attempt_at__lte=timezone.now() - timedelta(seconds=SWEEP_GRACE_S),
            subscription__enabled=True,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in ids:
        _publish(delivery_id)
    return len(ids)
