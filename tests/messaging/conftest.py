import pytest

from notify.messaging import services


@pytest.fixture
def deliver(django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """Runs the delivery service like the task does, including what it queues on commit."""

    def run(message_id: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            services.deliver(message_id)

    return run
