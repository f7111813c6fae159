"""The Celery worker's heartbeat: a bootstep that starts a thread in the worker's main process,
which writes the worker's row every NOTIFY_HEARTBEAT_INTERVAL seconds and deletes it when the
worker stops cleanly. It works with any database and broker (SQLite and the filesystem broker
included), and readiness answers from the row's age without talking to any worker.

No Django import at module level: notify/celery.py imports this before Django is set up."""

from __future__ import annotations

import logging
import threading

from celery import bootsteps

logger = logging.getLogger(__name__)


class HeartbeatWriter:
    def __init__(self, hostname: str, interval: float) -> None:
        self.hostname = hostname
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        try:
            self._in_database(lambda services: services.forget_worker(self.hostname))
        except Exception:  # the row then simply ages out
            logger.warning("heartbeat of %s not removed", self.hostname, exc_info=True)

    def _run(self) -> None:
        failing = False
        while not self._stopped.is_set():
            try:
                self._in_database(lambda services: services.record_heartbeat(self.hostname))
            except Exception:  # the database may be down: the worker keeps working, beats again
                if not failing:
                    logger.warning("heartbeat of %s not written", self.hostname, exc_info=True)
                failing = True
            else:
                if failing:
                    logger.info("heartbeat of %s written again", self.hostname)
                failing = False
            self._stopped.wait(self.interval)

    @staticmethod
    def _in_database(action) -> None:  # noqa: ANN001
        from django.db import connection

        from notify.health import services

        try:
            action(services)
        finally:
            # No connection is kept between beats: a pool process forked meanwhile must not
            # inherit an open database socket from this thread.
            connection.close()


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    label = "notify heartbeat"

    def create(self, parent) -> HeartbeatWriter:  # noqa: ANN001
        from django.conf import settings

        return HeartbeatWriter(parent.hostname, settings.NOTIFY_HEARTBEAT_INTERVAL)
