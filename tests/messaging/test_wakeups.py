"""Wake-ups published from the accepting process's own thread: the call answers without
waiting for the broker, what piles up leaves together, and a broker that refuses them delays
the messages until the sweep, never loses them."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from notify.messaging import services
from notify.messaging.models import Message, MessageStatus
from notify.messaging.wakeups import BackgroundPublisher

VALID_EMAIL = {"channel": "email", "to": "ana@example.com", "subject": "Hello", "body": "Hi Ana"}


@pytest.fixture
def in_background(settings):  # noqa: ANN001, ANN201
    settings.NOTIFY_PUBLISH_IN_BACKGROUND = True
    yield
    assert services._background.wait_idle(10)


@pytest.fixture
def broker(monkeypatch) -> dict:  # noqa: ANN001
    state = {"up": True, "wake_ups": []}

    def publish(message_ids: list[str]) -> None:
        if not state["up"]:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        state["wake_ups"].append(list(message_ids))

    monkeypatch.setattr(services, "enqueue_deliveries", publish)
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: publish([message_id]))
    return state


def test_post_message__publishing_in_background__wake_up_published_after_the_answer(
    api_client, in_background, broker, django_capture_on_commit_callbacks
):
    # When
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/v2/messages", VALID_EMAIL, format="json")
    # Then the answer came first, the wake-up follows from the publisher thread
    assert response.status_code == 202
    assert services._background.wait_idle(10)
    assert broker["wake_ups"] == [[response.json()["id"]]]


def test_post_message__broker_down_in_background__202_and_the_sweep_publishes_it(
    api_client, in_background, broker, django_capture_on_commit_callbacks, settings, time_machine
):
    # Given a broker that refuses everything
    settings.NOTIFY_REPUBLISH_AFTER = 30
    time_machine.move_to(timezone.now(), tick=False)
    broker["up"] = False
    # When
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/v2/messages", VALID_EMAIL, format="json")
    assert response.status_code == 202
    assert services._background.wait_idle(10)
    # Then the message waits, queued, and the next sweep publishes it once the broker is back
    message = Message.all_tenants.get(pk=response.json()["id"])
    assert message.status == MessageStatus.QUEUED
    broker["up"] = True
    time_machine.shift(timedelta(seconds=31))
    assert services.sweep().published == 1
    assert broker["wake_ups"] == [[message.pk]]


def test_background_publisher__ids_submitted_while_publishing__leave_together_in_batches():
    # Given a publish that holds its first call until released
    started, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def publish(ids: list[str]) -> int:
        calls.append(ids)
        if len(calls) == 1:
            started.set()
            release.wait(10)
        return len(ids)

    publisher = BackgroundPublisher(publish, batch=lambda: 3)
    publisher.submit(["1"])
    assert started.wait(10)
    # When five more arrive while the first is being published
    for message_id in "23456":
        publisher.submit([message_id])
    release.set()
    # Then they leave in batches of at most three, in order
    assert publisher.wait_idle(10)
    assert calls == [["1"], ["2", "3", "4"], ["5", "6"]]


def test_background_publisher__publish_raises__later_ids_still_published():
    calls: list[list[str]] = []

    def publish(ids: list[str]) -> int:
        calls.append(ids)
        if ids == ["bad"]:
            raise RuntimeError("broker exploded")
        return len(ids)

    publisher = BackgroundPublisher(publish, batch=lambda: 10)
    publisher.submit(["bad"])
    assert publisher.wait_idle(10)
    publisher.submit(["good"])
    assert publisher.wait_idle(10)
    assert calls == [["bad"], ["good"]]
