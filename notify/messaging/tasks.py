from celery import shared_task

from notify.messaging import services


@shared_task(name="messaging.deliver_message", ignore_result=True)
def deliver_message(message_id: str) -> None:
    services.deliver(message_id)
