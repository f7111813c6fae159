"""The chat and in-app channels and tenant webhooks end to end, with real processes (web, a
Celery worker with its beat) and real local peers: a Slack-style and a DingTalk-style robot that
check the request as documented, and the tenant's webhook endpoint verifying Standard Webhooks
signatures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from notify.messaging.models import FINAL_STATUSES, Message
from notify.tenants.services import create_tenant
from tests.channels.test_chat import (
    SIGNING_SECRET,
    Robot,
    dingtalk_check,
    slack_check,
)
from tests.e2e import conftest as e2e
from tests.e2e.conftest import (
    Platform,
    platform_env,
)
from tests.messaging.test_webhooks import Endpoint
from tests.smtp import free_port

pytestmark = pytest.mark.e2e


@dataclass
class Running:
    platform: Platform
    slack: Robot
    dingtalk: Robot
    endpoint: Endpoint


@pytest.fixture(scope="module")
def channels_platform(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Running]:  # noqa: ANN001
    tmp_path = tmp_path_factory.mktemp("channels")
    with django_db_blocker.unblock():
        database_url = e2e.test_database_url()
    port = free_port()
    env = platform_env(database_url, ALLOW_PRIVATE_TARGETS="true", WEBHOOK_RETRY_DELAYS="1,1")
    slack, dingtalk, endpoint = Robot(slack_check), Robot(dingtalk_check), Endpoint()
    try:
        with e2e.platform_processes(env, tmp_path, [port]) as running:
            yield Running(running, slack, dingtalk, endpoint)
    finally:
        for server in (slack, dingtalk, endpoint):
            server.close()


def test_chat_inapp_and_webhooks__through_a_real_worker__delivered_signed_and_reported(
    transactional_db, channels_platform
):
    running = channels_platform
    base = running.platform.base_url
    tenant, key = create_tenant("acme")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {key}"
    # Given two chat robots and a webhook subscription for every event
    for name, kind, robot, path, extra in (
        ("ops-room", "slack", running.slack, "/services/T000/B000/XXXX", {}),
        (
            "cn-room",
            "dingtalk",
            running.dingtalk,
            "/robot/send?access_token=tok123",
            {"secret": SIGNING_SECRET},
        ),
    ):
        answer = api.post(
            f"{base}/v2/providers",
            json={
                "channel": "chat",
                "kind": kind,
                "name": name,
                "config": {},
                "secrets": {"webhook": robot.base + path, **extra},
            },
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
    hook = api.post(f"{base}/v2/webhooks", json={"url": running.endpoint.url}, timeout=10)
    assert hook.status_code == 201, hook.text
    running.endpoint.secret = hook.json()["secret"]
    # When the tenant sends to both rooms and to a user's inbox
    sent = {}
    for channel, to, subject in (
        ("chat", "ops-room", "Deploy"),
        ("chat", "cn-room", "发布"),
        ("inapp", "user-42", "Hi"),
    ):
        answer = api.post(
            f"{base}/v2/messages",
            json={"channel": channel, "to": to, "subject": subject, "body": "v1.2 is live"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        sent[to] = answer.json()["id"]
    messages = Message.all_tenants.filter(pk__in=sent.values())
    running.platform.wait_for(
        lambda: messages.filter(status__in=FINAL_STATUSES).count() == 3, 60, "three messages"
    )
    # Then each robot got its message as it documents it, and each message is delivered
    assert set(messages.values_list("status", flat=True)) == {"delivered"}
    assert [b["text"] for b in running.slack.received] == ["Deploy\nv1.2 is live"]
    assert [b["text"]["content"] for b in running.dingtalk.received] == ["发布\nv1.2 is live"]
    # the user's inbox holds its message, unread
    inbox = api.get(f"{base}/v2/inbox/user-42", timeout=10).json()
    assert [i["id"] for i in inbox["items"]] == [sent["user-42"]] and inbox["unread_count"] == 1
    # and the tenant's endpoint got one signed event per message
    running.platform.wait_for(
        lambda: len(running.endpoint.verified) >= 3, 60, "three webhook deliveries"
    )
    events = {(v["payload"]["type"], v["payload"]["data"]["id"]) for v in running.endpoint.verified}
    assert events == {("message.delivered", message_id) for message_id in sent.values()}
    assert running.endpoint.refused == []
    log = api.get(f"{base}/v2/webhooks/{hook.json()['id']}/deliveries", timeout=10).json()
    assert sorted(d["state"] for d in log) == ["delivered"] * 3
