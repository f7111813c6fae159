"""Per-path call metrics, as LaunchDarkly's migration flags show them: for each tenant and
template, the calls answered by the old gateway and by the platform, their errors and latency.

Each process adds its calls up in memory and writes them to PathMetric (one row per tenant,
template, path and PERIOD_S seconds) every FLUSH_INTERVAL_S seconds, from a thread of its own
(ROLLOUT_METRICS_FLUSH_THREAD; else from the request that finds the interval passed), and at
exit: a metric never costs a call more than an in-memory update, and a crash loses at most a
few seconds of counts (metrics only: nothing routes on them but the health gates and the
automatic rollback, which judge minutes of data)."""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django import db
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from notify.rollout.models import PathMetric

logger = logging.getLogger(__name__)

# upper bounds of the latency histogram's buckets, in milliseconds (the last is open-ended)
LATENCY_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
FLUSH_INTERVAL_S = 5.0
PERIOD_S = 10


def period_of(moment: datetime) -> datetime:
    return moment.replace(second=moment.second - moment.second % PERIOD_S, microsecond=0)


class _Cell:
    __slots__ = ("calls", "errors", "total_ms", "buckets")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.total_ms = 0.0
        self.buckets = [0] * (len(LATENCY_BOUNDS_MS) + 1)


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[tuple[int, str, str, datetime], _Cell] = defaultdict(_Cell)
        self._flushed_at = time.monotonic()
        self._flusher_pid = 0
        self._stopping = threading.Event()

    def _start_flusher(self) -> None:
        """A daemon thread writing the counts every FLUSH_INTERVAL_S (one per process: a
        forked worker starts its own)."""
        with self._lock:
            if self._flusher_pid == os.getpid():
                return
            self._flusher_pid = os.getpid()
            self._stopping = threading.Event()
        threading.Thread(
            target=self._flush_forever, args=(self._stopping,), name="rollout-metrics", daemon=True
        ).start()

    def _flush_forever(self, stopping: threading.Event) -> None:
        while not stopping.wait(FLUSH_INTERVAL_S):
            try:
                self.flush()
            finally:
                db.connections.close_all()  # (this thread's own connection)

    def stop_flusher(self) -> None:
        with self._lock:
            self._stopping.set()
            self._flusher_pid = 0

    def record(self, tenant_id: int, tpl_id: str, path: str, error: bool, ms: float) -> None:
        if settings.ROLLOUT_METRICS_FLUSH_THREAD and self._flusher_pid != os.getpid():
            self._start_flusher()
        period = period_of(timezone.now())
        with self._lock:
            cell = self._cells[(tenant_id, tpl_id[:64], path, period)]
            cell.calls += 1
            cell.errors += int(error)
            cell.total_ms += ms
            cell.buckets[bisect.bisect_left(LATENCY_BOUNDS_MS, ms)] += 1
            due = time.monotonic() - self._flushed_at >= FLUSH_INTERVAL_S
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            cells, self._cells = self._cells, defaultdict(_Cell)
            self._flushed_at = time.monotonic()
        # (in key order: two processes flushing at once lock rows in the same order)
        for key, cell in sorted(cells.items()):
            try:
                _write(key, cell)
            except Exception:  # noqa: BLE001 - metrics never fail a call (a deleted tenant…)
                logger.warning("rollout metrics of tenant %s not written", key[0], exc_info=True)

    def discard(self) -> None:
        with self._lock:
            self._cells = defaultdict(_Cell)


def _write(key: tuple[int, str, str, datetime], cell: _Cell) -> None:
    tenant_id, tpl_id, path, period = key
    with transaction.atomic():
        row, _ = PathMetric.all_tenants.select_for_update().get_or_create(
            tenant_id=tenant_id,
            tpl_id=tpl_id,
            path=path,
            period=period,
            defaults={"latency_buckets": [0] * (len(LATENCY_BOUNDS_MS) + 1)},
        )
        row.calls += cell.calls
        row.errors += cell.errors
        row.latency_ms_total += cell.total_ms
        buckets = list(row.latency_buckets) + [0] * (len(cell.buckets) - len(row.latency_buckets))
        row.latency_buckets = [a + b for a, b in zip(buckets, cell.buckets, strict=False)]
        row.save(update_fields=["calls", "errors", "latency_ms_total", "latency_buckets"])


recorder = Recorder()
atexit.register(recorder.flush)


def quantile(buckets: list[int], q: float) -> float | None:
    """The q-quantile's bucket bound, in ms (None: no calls); past the last bound, the last."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank and count:
            return float(LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)])
    return float(LATENCY_BOUNDS_MS[-1])


def path_summary(tenant_ids: list[int], since: datetime, tpl_id: str | None = None) -> dict:
    """{tenant_id: {path: {"calls", "errors", "error_rate", "p50_ms", "p99_ms"}}}."""
    rows = PathMetric.all_tenants.filter(tenant_id__in=tenant_ids, period__gte=since)
    if tpl_id is not None:
        rows = rows.filter(tpl_id=tpl_id)
    summary: dict[int, dict[str, dict]] = {}
    for row in rows.values("tenant_id", "path", "calls", "errors", "latency_buckets"):
        cell = summary.setdefault(row["tenant_id"], {}).setdefault(
            row["path"], {"calls": 0, "errors": 0, "buckets": [0] * (len(LATENCY_BOUNDS_MS) + 1)}
        )
        cell["calls"] += row["calls"]
        cell["errors"] += row["errors"]
        for index, count in enumerate(row["latency_buckets"][: len(cell["buckets"])]):
            cell["buckets"][index] += count
    for paths in summary.values():
        for cell in paths.values():
            cell["error_rate"] = cell["errors"] / cell["calls"] if cell["calls"] else 0.0
            cell["p50_ms"] = quantile(cell["buckets"], 0.5)
            cell["p99_ms"] = quantile(cell["buckets"], 0.99)
    return summary


def templates_seen(tenant_id: int, since: datetime) -> list[dict]:
    return list(
        PathMetric.all_tenants.filter(tenant_id=tenant_id, period__gte=since)
        .values("tpl_id")
        .distinct()
    )


def series(tenant_ids: list[int], since: datetime, step: timedelta) -> dict[str, list]:
    """Calls and errors per path in steps of `step` since `since` (the dashboard's charts)."""
    count = max(1, int((timezone.now() - since) / step) + 1)
    out = {path: {"calls": [0] * count, "errors": [0] * count} for path in PathMetric.Path.values}
    rows = (
        PathMetric.all_tenants.filter(tenant_id__in=tenant_ids, period__gte=since)
        .values("path", "period")
        .annotate(calls=Sum("calls"), errors=Sum("errors"))
    )
    for row in rows:
        index = min(count - 1, int((row["period"] - since) / step))
        out[row["path"]]["calls"][index] += row["calls"]
        out[row["path"]]["errors"][index] += row["errors"]
    return out
