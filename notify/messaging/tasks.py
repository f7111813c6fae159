from celery import shared_task
from django.db import DatabaseError

from notify.messaging import followups, receipts, services, wakeups, webhooks

# A database hiccup in the worker must not drop the task: it is retried, and the conditional
# claim makes the retry harmless if the first run got further than it seemed.
DELIVERY_TASK_OPTIONS = {
    "ignore_result": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "max_retries": 10,
}


@shared_task(name="messaging.deliver_message", **DELIVERY_TASK_OPTIONS)
def deliver_message(message_id: str) -> None:
    """A transactional wake-up: its message, then, if others were coalesced into it (or that
    is not known), the lane's other due messages (wakeups.py)."""
    coalesced = wakeups.take()
    services.deliver(message_id)
    if coalesced:
        services.deliver_due_transactional()


@shared_task(name="messaging.deliver_due_transactional", **DELIVERY_TASK_OPTIONS)
def deliver_due_transactional() -> None:
    """A helper wake-up for a transactional backlog (published by a worker draining it)."""
    wakeups.take()
    services.deliver_due_transactional()


@shared_task(name="messaging.deliver_bulk", **DELIVERY_TASK_OPTIONS)
def deliver_bulk() -> None:
    """A bulk lane wake-up: the next tenant's turn. One that found work publishes its
    successor, so the lane keeps as many wake-ups in flight as it was given until it is empty."""
    if services.deliver_bulk():
        deliver_bulk.apply_async()


@shared_task(name="messaging.sweep", ignore_result=True)
def sweep() -> None:
    """Run by Celery beat (`celery -A notify worker -B`) every NOTIFY_SWEEP_INTERVAL seconds."""
    services.sweep()


@shared_task(
    name="messaging.deliver_webhook",
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=2,
    max_retries=10,
)
def deliver_webhook(delivery_id: int) -> None:
    webhooks.deliver(delivery_id)


@shared_task(name="messaging.sweep_webhooks", ignore_result=True)
def sweep_webhooks() -> None:
    """Run by Celery beat: queues the tenant webhook deliveries that are due."""
    webhooks.sweep()


@shared_task(name="messaging.sweep_follow_ups", ignore_result=True)
def sweep_follow_ups() -> None:
    """Run by Celery beat every NOTIFY_FOLLOW_UP_INTERVAL seconds: announces again the finished
    messages whose follow-up (fallback, inbox item, webhook deliveries, legacy report) is
    missing."""
    followups.reannounce_missing()


@shared_task(name="messaging.apply_early_receipts", ignore_result=True)
def apply_early_receipts() -> None:
    """Run by Celery beat: the delivery reports that arrived before their send was recorded."""
    receipts.apply_early_receipts()
