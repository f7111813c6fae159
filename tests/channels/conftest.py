from tests.messaging.conftest import deliver  # noqa: F401 - the worker's delivery, in-process
