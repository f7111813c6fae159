import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from notify.messaging import services
from notify.messaging.signals import message_finished


@pytest.fixture
def deliver(django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """Runs the delivery service like the task does, including what it queues on commit."""

    def run(message_id: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            services.deliver(message_id)

    return run


@pytest.fixture
def deliver_then_die(django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """Runs the delivery service like the task does, and the process dies right after its
    commit: what it queued on commit (the `message_finished` receivers) never runs."""

    def run(message_id: str) -> None:
        with django_capture_on_commit_callbacks(execute=False):
            services.deliver(message_id)

    return run


@pytest.fixture
def lost() -> Callable:
    """`with lost("messaging.inbox"): …`: the block runs without that `message_finished`
    receiver (its dispatch_uid), as if it had failed; it is back afterwards."""

    @contextmanager
    def without(dispatch_uid: str) -> Iterator[None]:
        (receiver,) = [
            ref() if isinstance(ref, weakref.ReferenceType) else ref
            for key, ref, _ in message_finished.receivers
            if key[0] == dispatch_uid
        ]
        assert message_finished.disconnect(dispatch_uid=dispatch_uid)
        try:
            yield
        finally:
            message_finished.connect(receiver, dispatch_uid=dispatch_uid)

    return without


@pytest.fixture
def announced() -> Iterator[list[tuple[str, str]]]:
    """(message_id, status) of each `message_finished` sent while the test runs."""
    seen: list[tuple[str, str]] = []

    def record(sender: object, message_id: str, status: str, **kwargs: object) -> None:
        seen.append((message_id, status))

    message_finished.connect(record, dispatch_uid="tests.announced", weak=False)
    yield seen
    message_finished.disconnect(dispatch_uid="tests.announced")
