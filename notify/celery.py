"""The Celery app: `celery -A notify worker` finds it as `notify.celery:app`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notify.settings")

app = Celery("notify")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
