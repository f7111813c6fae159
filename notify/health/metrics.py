"""Prometheus metrics, read from the database at scrape time (so every web and worker process
counts, with no shared in-process state): messages by status per channel and tenant, the
queue of due messages and the age of the oldest per lane, and the latency of recent sends.
`/metrics` answers operators only (HEALTH_TOKEN or a staff session): tenant names are labels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from notify.health.views import is_operator
from notify.messaging.models import (
    AttemptOutcome,
    DeliveryAttempt,
    Message,
    MessageStatus,
    due_by,
)

LATENCY_WINDOW = timedelta(hours=1)
LATENCY_BUCKETS_MS = (10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


class DatabaseCollector:
    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        now = timezone.now()
        messages = GaugeMetricFamily(
            "notify_messages",
            "Messages by status, channel and tenant (all time)",
            labels=["status", "channel", "tenant"],
        )
        rows = (
            Message.all_tenants.values("status", "channel", "tenant__slug")
            .annotate(count=Count("id"))
            .order_by()
        )
        for row in rows:
            messages.add_metric([row["status"], row["channel"], row["tenant__slug"]], row["count"])
        yield messages

        depth = GaugeMetricFamily(
            "notify_queue_due_messages",
            "Queued messages whose time has come, per lane",
            labels=["lane"],
        )
        oldest = GaugeMetricFamily(
            "notify_queue_oldest_due_seconds",
            "How long the oldest due queued message has waited, per lane",
            labels=["lane"],
        )
        due = (
            Message.all_tenants.filter(status=MessageStatus.QUEUED)
            .filter(due_by(now))
            .values("lane")
            .annotate(count=Count("id"), since=Min("next_attempt_at"))
            .order_by()
        )
        for row in due:
            depth.add_metric([row["lane"]], row["count"])
            waited = (now - row["since"]).total_seconds() if row["since"] else 0.0
            oldest.add_metric([row["lane"]], max(waited, 0.0))
        yield depth
        yield oldest

        latency = HistogramMetricFamily(
            "notify_send_latency_seconds",
            "Provider hand-off time of the attempts finished in the last hour, per channel",
            labels=["channel"],
        )
        recent = DeliveryAttempt.objects.filter(
            finished_at__gte=now - LATENCY_WINDOW, latency_ms__isnull=False
        ).exclude(outcome=AttemptOutcome.ABANDONED)
        aggregates = {
            f"le_{bound}": Count("id", filter=Q(latency_ms__lte=bound))
            for bound in LATENCY_BUCKETS_MS
        }
        for row in (
            recent.values("message__channel")
            .annotate(total=Count("id"), latency_sum=Sum("latency_ms"), **aggregates)
            .order_by()
        ):
            buckets = [(str(bound / 1000), row[f"le_{bound}"]) for bound in LATENCY_BUCKETS_MS] + [
                ("+Inf", row["total"])
            ]
            latency.add_metric(
                [row["message__channel"]], buckets, sum_value=(row["latency_sum"] or 0) / 1000
            )
        yield latency


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if not is_operator(request):
        return HttpResponse(status=404)
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
