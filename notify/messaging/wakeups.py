"""Wake-ups for newly committed transactional messages, published by a thread of the process
that accepted them, so an API call answers without waiting for the broker.

A wake-up is never the only copy of work: the row is. If this process dies with wake-ups
still waiting here, or the broker refuses them, the rows stay queued and the beat's sweep
publishes them NOTIFY_REPUBLISH_AFTER seconds after they were accepted (notify/messaging/
services.py `sweep`), as it does for any wake-up the broker lost.
Wake-ups that pile up while one is being published leave together, as one task for up to
NOTIFY_WAKEUP_BATCH messages: under load a publish serves many accepts."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class BackgroundPublisher:
    """Hands message ids to `publish` (ids → how many were published) from one daemon thread
    per process, started on first use (after a fork too: a gunicorn or Celery child gets its
    own)."""

    def __init__(self, publish: Callable[[list[str]], int], batch: Callable[[], int]) -> None:
        self._publish = publish
        self._batch = batch
        self._waiting: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._unpublished = 0
        self._done = threading.Condition()

    def submit(self, message_ids: list[str]) -> None:
        self._ensure_thread()
        with self._done:
            self._unpublished += len(message_ids)
        for message_id in message_ids:
            self._waiting.put(message_id)

    def wait_idle(self, timeout: float) -> bool:
        """True once everything submitted so far was handed to `publish` (tests, shutdown)."""
        with self._done:
            return self._done.wait_for(lambda: self._unpublished == 0, timeout)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # a forked child inherits the queue and count but not the thread that drained them
            self._waiting = queue.SimpleQueue()
            self._unpublished = 0
            threading.Thread(target=self._run, name="wakeup-publisher", daemon=True).start()
            self._pid = os.getpid()

    def _run(self) -> None:
        waiting = self._waiting
        while True:
            ids = [waiting.get()]
            limit = max(1, self._batch())
            while len(ids) < limit:
                try:
                    ids.append(waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self._publish(ids)
            except Exception:  # noqa: BLE001 - the thread must outlive any one failure
                logger.exception("wake-ups for %d message(s) not published", len(ids))
            with self._done:
                self._unpublished -= len(ids)
                self._done.notify_all()
