from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """One row per running Celery worker, touched every few seconds by the worker itself
    (notify/health/heartbeat.py): readiness reads its age instead of pinging workers."""

    hostname = models.CharField(max_length=255, unique=True)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname
