from celery import shared_task
from django.db import DatabaseError

from compat import callbacks, shadow


@shared_task(
    name="compat.deliver_callback",
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=2,
    max_retries=10,
)
def deliver_callback(callback_id: int) -> None:
    callbacks.deliver(callback_id)


@shared_task(name="compat.sweep_callbacks", ignore_result=True)
def sweep_callbacks() -> None:
    """Run by Celery beat: publishes the legacy delivery reports that are due."""
    callbacks.sweep()


@shared_task(
    name="compat.compare_shadow",
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=2,
    max_retries=10,
)
def compare_shadow(comparison_id: int) -> None:
    shadow.compare(comparison_id)


@shared_task(name="compat.sweep_shadow", ignore_result=True)
def sweep_shadow() -> None:
    """Run by Celery beat: queues the shadow comparisons that are due."""
    shadow.sweep()
