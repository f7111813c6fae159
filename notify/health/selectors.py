"""Selectors read: which workers are alive."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from notify.health.models import WorkerHeartbeat


def heartbeat_max_age() -> timedelta:
    """A worker is alive while its last heartbeat is younger than three intervals: one missed
    beat (a slow database write, a busy process) does not make it look dead."""
    return timedelta(seconds=3 * settings.NOTIFY_HEARTBEAT_INTERVAL)


def live_workers(*, now: datetime | None = None) -> list[WorkerHeartbeat]:
    now = now or timezone.now()
    return list(WorkerHeartbeat.objects.filter(last_seen_at__gte=now - heartbeat_max_age()))
