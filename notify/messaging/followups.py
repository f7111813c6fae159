"""Follow-ups of finished messages, made sure of. When a message reaches its final status the
`message_finished` receivers write its follow-up rows right after the commit: the next channel's
message (fallback.py), an inbox item (inbox.py), webhook deliveries (webhooks.py), a legacy
delivery report (compat/callbacks.py). A process that dies between that commit and its receivers,
or a receiver that fails (a database error), would lose them: each receiver's module registers
here a check that lists the messages finished in a window whose follow-up row is missing, and
the beat's sweep (`messaging.sweep_follow_ups`) announces those again. Every receiver is
idempotent (its follow-up is claimed with a conditional UPDATE or unique per message), so a
message announced twice, or by the sweep while its first announcement is still running, gets
each follow-up once.

A check is `(since, until) -> iterable of (message_id, status, origin, tenant_id, channel)`:
messages whose last change (`updated_at`: when they reached their final status) is in
[since, until), oldest first; a QuerySet is cut to the run's bound in SQL. A check must be cheap
on a large messages table: it reads an index whose rows are the finished messages that can owe
its follow-up (Message.Meta.indexes), not the table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from itertools import islice, zip_longest

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from notify.messaging.models import FINAL_STATUSES, Message
from notify.messaging.services import send_finished

logger = logging.getLogger(__name__)

# (message_id, status, origin, tenant_id, channel): what message_finished carries
Finished = tuple[str, str, str, int, str]
Check = Callable[[datetime, datetime], Iterable[Finished]]
FINISHED_FIELDS = ("id", "status", "origin", "tenant_id", "channel")

_checks: dict[str, Check] = {}


def register(name: str) -> Callable[[Check], Check]:
    """Decorator: `check` lists the messages whose follow-up `name` (its receiver's
    dispatch_uid) is missing. Registered again under the same name, it replaces the first."""

    def add(check: Check) -> Check:
        _checks[name] = check
        return check

    return add


def registered() -> dict[str, Check]:
    return dict(_checks)


def finished_between(
    since: datetime, until: datetime, statuses: Iterable[str] = FINAL_STATUSES
) -> QuerySet:
    """Messages that reached one of `statuses` in [since, until), oldest first, as check rows."""
    return (
        Message.all_tenants.filter(
            status__in=sorted(str(s) for s in statuses), updated_at__gte=since, updated_at__lt=until
        )
        .order_by("updated_at")
        .values_list(*FINISHED_FIELDS)
    )


def reannounce_missing(now: datetime | None = None) -> int:
    """`message_finished` again for the messages finished between NOTIFY_FOLLOW_UP_WINDOW and
    NOTIFY_FOLLOW_UP_GRACE seconds before `now` that a registered check finds without their
    follow-up, at most NOTIFY_FOLLOW_UP_BATCH messages (taken from each check in turn, oldest
    first; one missing several follow-ups is announced once). Returns how many."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.NOTIFY_FOLLOW_UP_WINDOW)
    until = now - timedelta(seconds=settings.NOTIFY_FOLLOW_UP_GRACE)
    limit = settings.NOTIFY_FOLLOW_UP_BATCH
    found: dict[str, list[Finished]] = {}
    for name, check in registered().items():
        try:
            rows = check(since, until)
            rows = rows[:limit] if isinstance(rows, QuerySet) else islice(rows, limit)
            found[name] = [tuple(row) for row in rows]
        except Exception:  # noqa: BLE001 - one check's failure must not stop the others
            logger.exception("follow-up check %s failed; the next sweep tries again", name)
    owed: dict[str, Finished] = {}
    for turn in zip_longest(*found.values()):
        for row in turn:
            if row is not None and len(owed) < limit:
                owed.setdefault(row[0], row)
    for row in owed.values():
        send_finished(*row)
    if owed:
        logger.warning(
            "follow-up sweep: %d finished message(s) announced again, a follow-up missing (%s)",
            len(owed),
            ", ".join(f"{name}: {len(rows)}" for name, rows in found.items() if rows),
        )
    return len(owed)
