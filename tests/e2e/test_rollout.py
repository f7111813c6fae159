"""A tenant moved legacy → shadow → canary 10% → canary 50% → new → legacy while its business
service keeps calling, with real processes: the reference gateway (the old system), two web
processes of the platform in front of it, a Celery worker with its beat, and the SMS
provider's stand-in."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from compat.legacy_import import import_export
from compat.models import LegacyMessage
from notify.messaging.models import FINAL_STATUSES, Message
from notify.rollout import services
from notify.rollout.models import RolloutEvent, ShadowComparison
from notify.tenants.models import Tenant
from scripts.conformance.standins import Standins
from templates_store.legacy import LegacyExport
from tests.compat.conftest import sign
from tests.conftest import ReferenceGateway, reference_gateway_process
from tests.e2e import conftest as e2e
from tests.e2e.conftest import (
    Platform,
    platform_env,
)
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

Stage = Tenant.Stage
CODE_TEMPLATE = "SMS_100001"


@dataclass
class Rollout:
    web: list[str]  # two web processes' base URLs
    reference: ReferenceGateway
    standins: Standins
    platform: Platform


@pytest.fixture(scope="module")
def rollout_platform(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Rollout]:  # noqa: ANN001
    tmp_path = tmp_path_factory.mktemp("rollout")
    with django_db_blocker.unblock():
        database_url = e2e.test_database_url()
    ports = [free_port(), free_port()]
    with (
        reference_gateway_process(tmp_path / "outbox.jsonl") as reference,
        Standins(f"http://127.0.0.1:{ports[0]}") as standins,
    ):
        env = platform_env(
            database_url,
            **standins.platform_env(),
            ALLOW_PRIVATE_TARGETS="true",
            LEGACY_GATEWAY_URL=reference.url,
            SHADOW_RETRY_DELAYS="1,1,2",
        )
        with e2e.platform_processes(env, tmp_path, ports) as running:
            yield Rollout(
                [f"http://127.0.0.1:{port}" for port in ports], reference, standins, running
            )


@pytest.fixture
def shop(transactional_db, rollout_platform, legacy_export: LegacyExport) -> Tenant:  # noqa: ANN001
    """The shop app imported at `legacy` with its code template and a little history."""
    app = next(a for a in legacy_export.apps if a["app_key"].startswith("ak_shop_"))
    export = LegacyExport(
        apps=[app],
        templates=[t for t in legacy_export.templates if t["tpl_id"] == CODE_TEMPLATE],
        samples=[s for s in legacy_export.samples if s.get("tpl_id") == CODE_TEMPLATE],
        messages=[m for m in legacy_export.messages if m["app_key"] == app["app_key"]][:3],
    )
    assert import_export(export, stage=Stage.LEGACY).ok
    tenant = Tenant.objects.get(app_key=app["app_key"])
    tenant.secret = app["app_secret"]
    return tenant


def call(base: str, method: str, path: str, tenant: Tenant, **params: str) -> dict:
    full = {
        **params,
        "app_key": tenant.app_key,
        "timestamp": str(int(time.time() * 1000)),
        "nonce": secrets.token_hex(8),
    }
    full["sign"] = sign(full, tenant.secret)
    url = f"{base}/gateway/{path}"
    if method == "GET":
        response = requests.get(url, params=full, timeout=10)
    else:
        response = requests.post(url, data=full, timeout=10)
    return {"http": response.status_code, "text": response.text, **response.json()}


def send_code(base: str, tenant: Tenant, mobile: str, out_id: str) -> dict:
    return call(
        base,
        "POST",
        "sms/send.do",
        tenant,
        mobiles=mobile,
        tpl_id=CODE_TEMPLATE,
        tpl_params=json.dumps({"code": str(secrets.randbelow(10**6)).zfill(6), "minutes": 5}),
        out_id=out_id,
    )


@dataclass
class Client:
    """A business service sending codes without pause to a fixed set of customers, through
    both web processes in turn; every fifth call repeats an earlier call's out_id (a retry)."""

    rollout: Rollout
    tenant: Tenant
    mobiles: list[str]
    answers: list[tuple[str, str, dict]] = field(default_factory=list)  # (out_id, mobile, answer)
    retries: list[tuple[dict, dict]] = field(default_factory=list)  # (first, retry)
    failures: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            base = self.rollout.web[n % 2]
            try:
                if n % 5 == 0 and self.answers:
                    out_id, mobile, first = self.answers[-3 if len(self.answers) > 2 else -1]
                    again = send_code(base, self.tenant, mobile, out_id)
                    self.retries.append((first, again))
                else:
                    mobile = self.mobiles[n % len(self.mobiles)]
                    out_id = f"order-{n}"
                    answer = send_code(base, self.tenant, mobile, out_id)
                    if answer["code"] != 0:
                        self.failures.append(f"{out_id}: {answer['text']}")
                    else:
                        self.answers.append((out_id, mobile, answer))
            except Exception as exc:  # noqa: BLE001 - a failed call is what this test counts
                self.failures.append(f"call {n}: {exc!r}")
            time.sleep(0.01)


def compared(tenant: Tenant) -> int:
    return (
        ShadowComparison.all_tenants.filter(tenant=tenant)
        .exclude(state=ShadowComparison.State.PENDING)
        .count()
    )


def test_rollout__full_cycle_under_load__no_failed_call_each_message_sent_once_by_one_system(
    shop, rollout_platform, settings
):
    rollout = rollout_platform
    settings.ROLLOUT_MIN_SHADOW_CALLS = 5
    mobiles = [f"1371111{n:04d}" for n in range(60)]
    client = Client(rollout, shop, mobiles)
    thread = threading.Thread(target=client.run, daemon=True)
    # Given a business service calling continuously
    thread.start()
    try:
        rollout.platform.wait_for(lambda: len(client.answers) >= 10, 30, "calls at legacy")
        # When the tenant walks the whole runbook, and back
        plan = [
            (services.Target(Stage.SHADOW), "shadow"),
            (services.Target(Stage.CANARY, 10), "canary 10%"),
            (services.Target(Stage.CANARY, 50), "canary 50%"),
            (services.Target(Stage.NEW), "all in"),
            (services.Target(Stage.LEGACY), "drill: roll back"),
        ]
        for target, reason in plan:
            if target.stage == Stage.CANARY and target.percent == 10:
                # (the gate wants shadow evidence: the worker compares what was shadowed)
                rollout.platform.wait_for(lambda: compared(shop) >= 5, 60, "shadow comparisons")
            shop.refresh_from_db()
            services.move([shop], target, actor="e2e", reason=reason)
            before = len(client.answers)
            rollout.platform.wait_for(
                lambda before=before: len(client.answers) >= before + 25, 60, f"calls at {reason}"
            )
    finally:
        client.stopping.set()
        thread.join(timeout=30)
    # Then no call failed, and every retry got its first answer back
    assert client.failures == []
    assert len(client.answers) >= 125
    assert client.retries and all(first["text"] == again["text"] for first, again in client.retries)
    # every stage change is in the audit log, none refused
    changes = RolloutEvent.objects.filter(tenant_slug="shop").order_by("at", "id")
    assert [(e.to_stage, e.to_percent) for e in changes] == [
        ("shadow", 0),
        ("canary", 10),
        ("canary", 50),
        ("new", 0),
        ("legacy", 0),
    ]
    assert not any(e.override for e in changes)
    # each message was sent exactly once, by exactly one of the two systems
    issued = [a["data"]["msg_ids"][0] for _, _, a in client.answers]
    assert len(set(issued)) == len(issued)
    ours = set(Message.all_tenants.filter(tenant=shop).values_list("pk", flat=True))
    rollout.platform.wait_for(
        lambda: (
            not Message.all_tenants.filter(tenant=shop).exclude(status__in=FINAL_STATUSES).exists()
        ),
        60,
        "the platform's messages delivered",
    )
    by_platform = Counter(
        r.payload["id"]
        for r in rollout.standins.sms.requests
        if r.payload and r.payload.get("to") in mobiles
    )
    by_gateway = Counter(m["msg_id"] for m in rollout.reference.sent() if m["recipient"] in mobiles)
    assert set(by_platform) == ours  # (the platform sent nothing it did not answer for)
    assert set(by_platform) | set(by_gateway) == set(issued)
    assert not set(by_platform) & set(by_gateway)
    assert set(by_platform.values()) == {1} and set(by_gateway.values()) == {1}
    states = Counter(
        ShadowComparison.all_tenants.filter(tenant=shop).values_list("state", flat=True)
    )
    print(
        f"rollout e2e: {len(issued)} sends, {len(client.retries)} retries; platform sent "
        f"{len(by_platform)}, old gateway {len(by_gateway)}; shadow {dict(states)}"
    )
    # both systems did carry traffic, and the shadow saw no difference
    assert ours and set(by_gateway)
    assert states[ShadowComparison.State.MATCH] >= 5
    assert states[ShadowComparison.State.MISMATCH] == 0
    # and every msg_id of both eras, the imported history's included, answers its status
    history = list(LegacyMessage.all_tenants.filter(tenant=shop).values_list("pk", flat=True))
    assert history
    for n, msg_id in enumerate(issued + history):
        status = call(rollout.web[n % 2], "GET", "message/status.do", shop, msg_id=msg_id)
        assert status["code"] == 0 and status["data"]["msg_id"] == msg_id, status["text"]


def test_stage_change__second_web_process__sees_it_on_its_next_call(shop, rollout_platform):
    rollout = rollout_platform
    web_b = rollout.web[1]

    def served_here(answer: dict) -> bool:
        msg_id = answer["data"]["msg_ids"][0]
        return Message.all_tenants.filter(pk=msg_id).exists()

    # Given a tenant at legacy, served by the old gateway through web process B
    assert not served_here(send_code(web_b, shop, "13722220001", "warm-1"))
    for n, (target, expect_here) in enumerate(
        [(services.Target(Stage.NEW), True), (services.Target(Stage.LEGACY), False)] * 2
    ):
        # When the stage changes (in another process: this one)
        shop.refresh_from_db()
        # (the gates are not what this test is about)
        services.move([shop], target, actor="e2e", reason="visibility check", override=True)
        changed_at = time.monotonic()
        # Then B's very next call is routed by the new stage, well within a second
        answer = send_code(web_b, shop, f"1372222{n:04d}", f"visibility-{n}")
        elapsed = time.monotonic() - changed_at
        assert answer["code"] == 0, answer["text"]
        assert served_here(answer) is expect_here
        assert elapsed < 1.0
