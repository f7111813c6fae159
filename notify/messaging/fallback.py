"""Fallback channels: a message that ends `failed` or `dead` (a bad recipient, a refusal, its
retries or its deadline spent) and carries a `fallback` list goes on as a new message on the
next channel of the list, to that channel's recipient, with the same content (the text of an
HTML-only body for a channel that does not take HTML). The failed message's timeline says
where it went; the new one knows what it stands in for (`params.fallback_of`) and carries the
rest of the list."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.dispatch import receiver
from django.utils import timezone
from django.utils.html import strip_tags

from notify.channels import registry
from notify.messaging import followups
from notify.messaging.models import Message, MessageEvent, MessageStatus
from notify.messaging.services import MessageDraft, create_message, moment_of
from notify.messaging.signals import message_finished

logger = logging.getLogger(__name__)

FALLS_BACK = {MessageStatus.FAILED, MessageStatus.DEAD}
# the deadline tiers that hold for the whole message, its fallbacks included
CARRIED_PARAMS = ("final_deadline", "provider_timeout")


@receiver(message_finished, dispatch_uid="messaging.fallback")
def on_message_finished(sender: object, message_id: str, status: str, **kwargs: object) -> None:
    if status not in FALLS_BACK:
        return
    message = Message.all_tenants.filter(pk=message_id).select_related("tenant").first()
    if message is None:
        return
    if "fallback" not in (message.params or {}):
        return
    chain = message.params["fallback"]
    if not isinstance(chain, list) or not chain:
        _give_up(message, "no fallback: its fallback list is empty")
        return
    step, rest = chain[0], chain[1:]
    try:
        spec = registry.get(step["channel"])
        recipient = spec.normalise(step["to"])
    except (KeyError, TypeError, registry.UnknownChannel, registry.InvalidRecipient) as exc:
        # (claimed as given up: the sweep must not announce it again and again)
        logger.warning("message %s: fallback unusable: %s", message_id, exc)
        _give_up(message, f"no fallback: its next step is unusable ({exc})")
        return
    final = moment_of(message.params.get("final_deadline"))
    if final is not None and final <= timezone.now():
        _give_up(
            message,
            f"no fallback to {spec.name}: the message's deadline {final.isoformat()} has passed",
        )
        return
    with transaction.atomic():
        # claimed with a conditional UPDATE: announced twice, it falls back once
        claimed = Message.all_tenants.filter(pk=message_id, params__has_key="fallback").update(
            params={k: v for k, v in message.params.items() if k != "fallback"}
            | {"fell_back": step}
        )
        if claimed != 1:
            return
        body = message.body or (strip_tags(message.html) if not spec.html_bodies else "")
        html = message.html if spec.html_bodies else ""
        params = {"fallback_of": message_id}
        if rest:
            params["fallback"] = rest
        for carried in CARRIED_PARAMS:
            if carried in message.params:
                params[carried] = message.params[carried]
        successor = create_message(
            tenant=message.tenant,
            draft=MessageDraft(
                channel=spec.name,
                recipient=recipient,
                subject=message.subject,
                body=body,
                html=html,
                params=params,
                category=message.category,
                critical=message.critical,
                reference=message.reference,
            ),
            origin=message.origin,
        )
        MessageEvent.objects.create(
            message_id=message_id,
            status=message.status,
            detail=f"falling back to {spec.name}: message {successor.id}",
            created_at=timezone.now(),
        )


def _give_up(message: Message, why: str) -> None:
    """The fallback list ends here (claimed like a fallback: said once), and the timeline
    says why."""
    with transaction.atomic():
        claimed = Message.all_tenants.filter(pk=message.pk, params__has_key="fallback").update(
            params={k: v for k, v in message.params.items() if k != "fallback"}
        )
        if claimed == 1:
            MessageEvent.objects.create(
                message_id=message.pk, status=message.status, detail=why, created_at=timezone.now()
            )


# ---- the follow-up sweep (followups.py): a fallback lost between the commit and the receiver


@followups.register("messaging.fallback")
def missing_fallbacks(since: datetime, until: datetime) -> QuerySet:
    """Failed or dead messages still holding their `fallback` list: the receiver removes it
    when it claims the fallback, so only the unclaimed ones match, and the partial index
    `message_fallback_owed` holds only them."""
    return followups.finished_between(since, until, FALLS_BACK).filter(params__has_key="fallback")
