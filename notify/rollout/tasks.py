from celery import shared_task

from notify.rollout import services


@shared_task(name="rollout.evaluate", ignore_result=True)
def evaluate() -> None:
    """Run by Celery beat: automatic rollbacks and batch completion."""
    services.evaluate()
