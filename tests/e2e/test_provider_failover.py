"""A tenant's first SMS provider goes down in the middle of a 500-message batch, with real
processes (web, a Celery worker with its beat) and two stand-ins of the generic HTTP protocol
(docs/http-providers.md, requests and signatures checked as documented): the messages fail over
to the second provider, none is lost or sent twice, and the first provider's circuit breaker
opens, half-opens and closes again once it is back."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from notify.channels import breaker
from notify.channels.models import Provider
from notify.messaging.models import FINAL_STATUSES, DeliveryAttempt, Message, MessageStatus
from notify.tenants.services import create_tenant
from scripts.conformance.standins import HttpProviderStandin
from tests.e2e import conftest as e2e
from tests.e2e.conftest import (
    Platform,
    platform_env,
)
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

BATCH = 500


class SwitchableCarrier(HttpProviderStandin):
    """The documented provider, which can be taken down (HTTP 503) and brought back; its
    delivery reports go to its tenant's provider receipt URL."""

    down = False
    receipts_path = ""

    @property
    def report_url(self) -> str:
        return f"{self.platform_url}{self.receipts_path}"

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if self.down:
            return 503, {"error": "down for maintenance"}
        return super().handle(method, path, headers, body)

    def taken(self) -> list[str]:
        return [r.payload["id"] for r in self.requests if r.status == 200 and r.payload]


@dataclass
class Setup:
    platform: Platform
    first: SwitchableCarrier
    second: SwitchableCarrier


@pytest.fixture(scope="module")
def failover_platform(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Setup]:  # noqa: ANN001
    tmp_path = tmp_path_factory.mktemp("failover")
    with django_db_blocker.unblock():
        database_url = e2e.test_database_url()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = SwitchableCarrier("sms", secrets.token_urlsafe(32), base, report_delay=0.05)
    second = SwitchableCarrier("sms", secrets.token_urlsafe(32), base, report_delay=0.05)
    env = platform_env(
        database_url,
        ALLOW_PRIVATE_TARGETS="true",
        PROVIDER_BREAKER_FAILURES="3",
        PROVIDER_BREAKER_COOLDOWN="1",
        NOTIFY_CHUNK_SIZE="20",
        # runserver answers each of the 500 delivery reports in a thread of its own: a kept
        # connection per thread would outnumber PostgreSQL's max_connections
        CONN_MAX_AGE="0",
    )
    with first, second, e2e.platform_processes(env, tmp_path, [port]) as running:
        yield Setup(running, first, second)


def test_first_sms_provider_down_mid_batch__failover_nothing_lost_or_doubled_breaker_recovers(
    transactional_db, failover_platform, settings
):
    setup = failover_platform
    settings.PROVIDER_BREAKER_COOLDOWN = 1.0
    # Given a tenant with two SMS providers, in this order
    tenant, key = create_tenant("acme")
    client = requests.Session()
    client.headers["Authorization"] = f"Bearer {key}"
    ids = {}
    for name, priority, carrier in (("primary", 1, setup.first), ("backup", 2, setup.second)):
        answer = client.post(
            f"{setup.platform.base_url}/v2/providers",
            json={
                "channel": "sms",
                "kind": "http",
                "name": name,
                "priority": priority,
                "config": {"url": carrier.url},
                "secrets": {"secret": carrier.secret},
            },
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        ids[name] = answer.json()["id"]
        carrier.receipts_path = answer.json()["receipts_url"]
        breaker.reset(ids[name])
    # When a 500-message batch is sent and the first provider goes down in the middle of it
    recipients = [{"to": f"1370000{n:04d}"} for n in range(BATCH)]
    answer = client.post(
        f"{setup.platform.base_url}/v2/messages/batch",
        json={
            "channel": "sms",
            "subject": "Parcel",
            "body": "Your parcel is on its way.",
            "recipients": recipients,
        },
        timeout=30,
    )
    assert answer.status_code in (200, 201, 202), answer.text
    setup.platform.wait_for(lambda: len(setup.first.taken()) >= 100, 60, "100 sent by the first")
    setup.first.down = True
    setup.platform.wait_for(
        lambda: breaker.state(ids["primary"]) != breaker.CLOSED, 30, "the breaker opening"
    )
    messages = Message.all_tenants.filter(tenant=tenant)
    setup.platform.wait_for(
        lambda: messages.filter(status__in=FINAL_STATUSES).count() == BATCH,
        120,
        "every message delivered",
    )
    # Then every message was delivered, each taken by exactly one provider, once
    assert set(messages.values_list("status", flat=True)) == {MessageStatus.DELIVERED}
    first, second = Counter(setup.first.taken()), Counter(setup.second.taken())
    assert not set(first) & set(second)
    assert set(first) | set(second) == set(messages.values_list("pk", flat=True))
    assert set(first.values()) == {1} and set(second.values()) == {1}
    assert 100 <= len(first) < BATCH and len(second) > 0
    # each attempt names the provider that took it
    sent_by = Counter(
        DeliveryAttempt.objects.filter(message__tenant=tenant, outcome="sent").values_list(
            "provider", flat=True
        )
    )
    assert sent_by == {"primary": len(first), "backup": len(second)}
    # When the first provider is back, the next messages probe it and close its breaker
    setup.first.down = False
    more = [{"to": f"1370001{n:04d}"} for n in range(20)]
    setup.platform.wait_for(
        lambda: breaker.state(ids["primary"]) == breaker.HALF_OPEN, 30, "the cool-down"
    )
    client.post(
        f"{setup.platform.base_url}/v2/messages/batch",
        json={"channel": "sms", "subject": "Parcel", "body": "One more thing.", "recipients": more},
        timeout=30,
    )
    setup.platform.wait_for(
        lambda: breaker.state(ids["primary"]) == breaker.CLOSED, 30, "the breaker closing"
    )
    states = [t["state"] for t in breaker.transitions(ids["primary"])]
    print(f"failover e2e: primary took {len(first)}, backup {len(second)}; breaker {states}")
    assert states[0] == "open" and states[-2:] == ["half_open", "closed"]
    setup.platform.wait_for(
        lambda: messages.filter(status__in=FINAL_STATUSES).count() == BATCH + 20,
        60,
        "the last messages delivered",
    )
    assert Provider.all_tenants.filter(tenant=tenant).count() == 2
