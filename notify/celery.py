"""The Celery app: `celery -A notify worker` finds it as `notify.celery:app`."""

import os

from celery import Celery

from notify.health.heartbeat import WorkerHeartbeatStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notify.settings")

app = Celery("notify")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker writes a heartbeat that /readyz reads (no ping to the workers).
app.steps["worker"].add(WorkerHeartbeatStep)
