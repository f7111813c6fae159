"""Delivery reports: a provider's word, after it accepted a message, on how it ended
(docs/http-providers.md). A report moves a `sent` message to `delivered` or `failed` once; a
repeated, late or unknown one changes nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from anymail.signals import AnymailTrackingEvent, tracking
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.dispatch import receiver
from django.utils import timezone

from notify.channels.anymail_esp import receipt_of
from notify.channels.base import Receipt
from notify.channels.models import Provider
from notify.channels.signals import provider_renamed
from notify.messaging import delivery_sql
from notify.messaging.masking import mask_recipient
from notify.messaging.models import (
    DeliveryAttempt,
    EarlyReceipt,
    Message,
    MessageEvent,
    MessageStatus,
)
from notify.messaging.services import announce_finished, suppress_bad_recipient

logger = logging.getLogger(__name__)

REPORTED_STATUSES = frozenset({MessageStatus.DELIVERED.value, MessageStatus.FAILED.value})
# Message.error_code's length; a provider's text is kept to this
MAX_CODE_CHARS = 64
MAX_ERROR_CHARS = 1000
# early reports kept at most, per provider and in all (reports of what no one sent cannot
# fill the table or crowd out another tenant's)
MAX_EARLY_PER_PROVIDER = 1000
MAX_EARLY_RECEIPTS = 100_000
# the longest wait between two looks at an early report still matching nothing
EARLY_RECHECK_MAX_SECONDS = 120
# the providers whose early reports one run shares out its work between
MAX_SCOPES = 100


def record_receipt(
    channel: str,
    provider_message_id: str,
    status: str,
    error_code: str = "",
    error: str = "",
    *,
    tenant_id: int | None = None,
    provider: str = "",
    bad_recipient: bool = False,
) -> bool:
    """The `channel` message whose latest attempt the provider knows as `provider_message_id`
    moved from `sent` to `status` (`delivered`, or `failed` with the provider's code and text),
    with its timeline event, in one conditional UPDATE: only a message still `sent` after that
    same attempt moves. `message_finished` follows the commit. Returns whether it moved.

    A tenant's own provider (`tenant_id`, `provider`: its name) reports only on its tenant's
    messages it took; the platform's providers (no tenant) only on the messages they took.
    `bad_recipient`: the provider said the recipient can never receive (it is suppressed)."""
    if status not in REPORTED_STATUSES or not provider_message_id:
        return False
    found = delivery_sql.reported_send(channel, provider_message_id, provider, tenant_id)
    if found is None:
        logger.info(
            "delivery report for no sent %s message (provider id %r): ignored",
            channel,
            provider_message_id[:MAX_CODE_CHARS],
        )
        return False
    message_id, number, recipient, message_tenant_id, origin = found
    now = timezone.now()
    if status == MessageStatus.DELIVERED:
        detail = "delivered, said the provider's delivery report"
        fields: dict[str, object] = {"delivered_at": now}
    else:
        code = error_code[:MAX_CODE_CHARS]
        # providers quote the recipient in their errors: it must not reach logs or admin lists
        text = error.replace(recipient, mask_recipient(channel, recipient)) if recipient else error
        text = text[:MAX_ERROR_CHARS]
        detail = "the provider's delivery report: failed" + (f" {code}" if code else "")
        detail += f": {text}" if text else ""
        fields = {"failed_at": now, "error": detail, "error_code": code}
    if connection.vendor == "postgresql":
        # (one statement: atomic alone, `message_finished` follows at once unless the caller
        # holds a transaction, then after its commit)
        changed = int(delivery_sql.record_report(message_id, number, status, fields, detail, now))
        if changed == 1:
            announce_finished(message_id, status, origin, message_tenant_id, channel)
    else:
        with transaction.atomic():
            # (`attempts`: still after the attempt the provider reports on)
            changed = Message.all_tenants.filter(
                pk=message_id, status=MessageStatus.SENT, attempts=number
            ).update(status=status, updated_at=now, **fields)
            if changed == 1:
                MessageEvent.objects.create(
                    message_id=message_id, status=status, detail=detail, created_at=now
                )
                announce_finished(message_id, status, origin, message_tenant_id, channel)
    if changed == 1 and status == MessageStatus.FAILED and bad_recipient:
        suppress_bad_recipient(
            message_tenant_id, channel, recipient, origin, f"its delivery report: {error_code}"
        )
    if changed == 1:
        logger.info(
            "message %s id=%s: %s", status, message_id, detail, extra={"message_id": message_id}
        )
    return changed == 1


def record_report(
    channel: str, receipt: Receipt, *, tenant_id: int | None = None, provider: str = ""
) -> bool:
    """One report of a provider (see record_reports). Returns whether it changed anything."""
    return record_reports(channel, [receipt], tenant_id=tenant_id, provider=provider) == 1


def record_reports(
    channel: str, receipts: list[Receipt], *, tenant_id: int | None = None, provider: str = ""
) -> int:
    """A provider's reports, whatever each says: an end (`delivered`, `failed`: see
    record_receipt) or a recipient to suppress (`suppress`: a complaint, an unsubscribe; the
    message stays as it was). A report of a send the platform has not recorded yet (it
    arrived faster than the worker's commit) is kept and applied by the beat
    (apply_early_receipts): never lost. Returns how many changed something."""
    changed, unmatched = 0, []
    for receipt in receipts:
        if _apply(channel, receipt, tenant_id, provider):
            changed += 1
        else:
            unmatched.append(receipt)
    if unmatched:
        known = set(
            _attempts_of(
                channel, [r.provider_message_id for r in unmatched], tenant_id, provider
            ).values_list("provider_message_id", flat=True)
        )
        early = [r for r in unmatched if r.provider_message_id not in known]
        if early:
            _keep_early(channel, early, tenant_id, provider)
    return changed


def apply_early_receipts(now: datetime | None = None, limit: int = 500) -> int:
    """The kept early reports that are due, applied to the sends recorded since (run by the
    beat every few seconds). One whose send is recorded, or older than
    NOTIFY_EARLY_RECEIPT_TTL (a report of nothing the platform sent), is let go; one still
    matching nothing is looked at again later, less and less often (so reports of nothing
    cannot keep the others waiting). Returns how many changed a message."""
    now = now or timezone.now()
    expired_before = now - timedelta(seconds=settings.NOTIFY_EARLY_RECEIPT_TTL)
    applied = 0
    for row in _due_early(now, limit):
        receipt = Receipt(
            row.provider_message_id, row.status, row.error_code, row.error, row.bad_recipient
        )
        changed = _apply(row.channel, receipt, row.tenant_id, row.provider)
        applied += changed
        if (
            changed
            or row.created_at < expired_before
            or _attempts_of(
                row.channel, [row.provider_message_id], row.tenant_id, row.provider
            ).exists()
        ):
            EarlyReceipt.all_tenants.filter(pk=row.pk).delete()
        else:
            # (from the time of this look, not of the run's start: a long run must not make
            # the reports it pushed back due before the ones that arrived during it)
            wait = min(5 * 2**row.checks, EARLY_RECHECK_MAX_SECONDS)
            later = max(now, timezone.now()) + timedelta(seconds=wait)
            EarlyReceipt.all_tenants.filter(pk=row.pk).update(
                next_check_at=later, checks=min(row.checks + 1, 30)
            )
    return applied


def _due_early(now: datetime, limit: int) -> list[EarlyReceipt]:
    """Up to `limit` due early reports, shared out between the providers that have some (a
    provider with thousands cannot keep another's one waiting)."""
    due = EarlyReceipt.all_tenants.filter(next_check_at__lte=now)
    scopes = list(
        due.order_by().values_list("tenant_id", "provider", "channel").distinct()[:MAX_SCOPES]
    )
    share = max(1, limit // max(1, len(scopes)))
    rows: list[EarlyReceipt] = []
    for tenant_id, provider, channel in scopes:
        rows += due.filter(tenant_id=tenant_id, provider=provider, channel=channel).order_by(
            "next_check_at", "pk"
        )[:share]
    return rows


def _apply(channel: str, receipt: Receipt, tenant_id: int | None, provider: str) -> bool:
    if receipt.status != "suppress":
        return record_receipt(
            channel,
            receipt.provider_message_id,
            receipt.status,
            receipt.error_code,
            receipt.error,
            tenant_id=tenant_id,
            provider=provider,
            bad_recipient=receipt.bad_recipient,
        )
    found = (
        _attempts_of(channel, [receipt.provider_message_id], tenant_id, provider)
        .values_list("message__tenant_id", "message__recipient", "message__origin")
        .first()
    )
    if found is None:
        return False
    tenant, recipient, origin = found
    suppress_bad_recipient(tenant, channel, recipient, origin, f"its report: {receipt.error_code}")
    return True


def _attempts_of(
    channel: str, provider_message_ids: list[str], tenant_id: int | None, provider: str
) -> QuerySet:
    return DeliveryAttempt.objects.filter(
        provider_message_id__in=provider_message_ids,
        provider=provider,
        message__channel=channel,
        **({"message__tenant_id": tenant_id} if tenant_id is not None else {}),
    )


def _keep_early(
    channel: str, receipts: list[Receipt], tenant_id: int | None, provider: str
) -> None:
    """Kept, within the provider's quota (and everyone's): what does not fit is dropped,
    said in the log."""
    room = (
        MAX_EARLY_PER_PROVIDER
        - EarlyReceipt.all_tenants.filter(
            tenant_id=tenant_id, provider=provider, channel=channel
        ).count()
    )
    room = min(room, MAX_EARLY_RECEIPTS - EarlyReceipt.all_tenants.count())
    if room < len(receipts):
        logger.warning(
            "early %s reports of provider %r at their limit: %d dropped",
            channel,
            provider,
            len(receipts) - max(room, 0),
        )
    EarlyReceipt.all_tenants.bulk_create(
        EarlyReceipt(
            channel=channel,
            provider=provider,
            tenant_id=tenant_id,
            provider_message_id=receipt.provider_message_id[:255],
            status=receipt.status,
            error_code=receipt.error_code[:MAX_CODE_CHARS],
            error=receipt.error[:MAX_ERROR_CHARS],
            bad_recipient=receipt.bad_recipient,
        )
        for receipt in receipts[: max(room, 0)]
    )


@receiver(provider_renamed, dispatch_uid="messaging.receipts_follow_rename")
def follow_renamed_provider(provider: Provider, old_name: str, **kwargs: object) -> None:
    """Reports are matched by the provider's name: the sends still waiting for one (and the
    reports kept early) take the new name, so a report after the rename still finds its
    message. Finished attempts keep the name they were made under."""
    DeliveryAttempt.objects.filter(
        message__tenant_id=provider.tenant_id,
        message__channel=provider.channel,
        message__status=MessageStatus.SENT,
        provider=old_name,
    ).update(provider=provider.name)
    EarlyReceipt.all_tenants.filter(
        tenant_id=provider.tenant_id, channel=provider.channel, provider=old_name
    ).update(provider=provider.name)


@receiver(tracking, dispatch_uid="messaging.anymail_tracking")
def on_anymail_tracking(
    sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: object
) -> None:
    """The platform's own ESP (EMAIL_BACKEND an anymail backend) reports through anymail's
    tracking webhooks (`/anymail/<esp>/tracking/`, verified by anymail with ANYMAIL's
    WEBHOOK_SECRET and the ESP's signature)."""
    receipt = receipt_of(event)
    if receipt is not None:
        record_report("email", receipt)
