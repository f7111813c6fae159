"""Services write: the workers' heartbeats."""

import os
from datetime import datetime, timedelta

from django.utils import timezone

from notify.health.models import WorkerHeartbeat

# A worker gone for this long without saying goodbye (killed, machine lost) is forgotten.
FORGET_AFTER = timedelta(days=1)


def record_heartbeat(hostname: str, *, now: datetime | None = None) -> None:
    """Marks `hostname` alive now (one UPDATE in the steady state)."""
    now = now or timezone.now()
    updated = WorkerHeartbeat.objects.filter(hostname=hostname).update(
        last_seen_at=now, pid=os.getpid()
    )
    if not updated:
        WorkerHeartbeat.objects.get_or_create(
            hostname=hostname,
            defaults={"pid": os.getpid(), "started_at": now, "last_seen_at": now},
        )
        WorkerHeartbeat.objects.filter(last_seen_at__lt=now - FORGET_AFTER).delete()


def forget_worker(hostname: str) -> None:
    """A worker stopping cleanly: it is down from now on, not after its heartbeat ages."""
    WorkerHeartbeat.objects.filter(hostname=hostname).delete()
