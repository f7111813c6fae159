"""/metrics: Prometheus text for operators only, counted from the database (every process's
work): messages by status per channel and tenant, due queue depth and oldest wait per lane,
recent send latencies."""

from datetime import timedelta

from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notify.messaging import services
from notify.messaging.models import Message
from notify.messaging.services import MessageDraft, create_batch, create_message


def _samples(text: str) -> dict:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics__operator__counts_queue_and_latency(
    client, tenant, settings, smtp_server, monkeypatch
):
    # Given a delivered message, a waiting one (due 90 s ago) and a due batch of two
    settings.HEALTH_TOKEN = "ops-token"
    monkeypatch.setattr(services, "enqueue_delivery", lambda message_id: None)
    monkeypatch.setattr(services, "publish_bulk_wakeups", lambda n: 0)
    draft = MessageDraft(channel="email", recipient="a@example.com", subject="S", body="B")
    sent = create_message(tenant=tenant, draft=draft)
    services.deliver(sent.id)
    waiting = create_message(tenant=tenant, draft=draft)
    Message.all_tenants.filter(pk=waiting.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=90)
    )
    create_batch(tenant=tenant, drafts=[draft, draft])
    # When an operator scrapes /metrics
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ops-token")
    # Then the figures are there
    assert response.status_code == 200
    samples = _samples(response.content.decode())
    by_status = {
        labels: value for (name, labels), value in samples.items() if name == "notify_messages"
    }
    assert by_status[(("channel", "email"), ("status", "delivered"), ("tenant", "acme"))] == 1
    assert by_status[(("channel", "email"), ("status", "queued"), ("tenant", "acme"))] == 3
    assert samples[("notify_queue_due_messages", (("lane", "transactional"),))] == 1
    assert samples[("notify_queue_due_messages", (("lane", "bulk"),))] == 2
    assert samples[("notify_queue_oldest_due_seconds", (("lane", "transactional"),))] >= 89
    assert samples[("notify_send_latency_seconds_count", (("channel", "email"),))] == 1


def test_metrics__anyone_else__404(client, settings):
    settings.HEALTH_TOKEN = "ops-token"
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
