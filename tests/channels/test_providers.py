"""A tenant's own providers: the API (secrets write-only, another tenant's a 404), failover in
order within one attempt, the circuit breaker, a 200 carrying an error, receipts signed per
provider, and the outbound gate on the provider's URL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from notify import ratelimit
from notify.channels import breaker, send_limits
from notify.channels.http import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signature_valid
from notify.channels.models import Provider
from notify.messaging.models import DeliveryAttempt, Message, MessageStatus
from notify.messaging.services import MessageDraft, create_message
from notify.tenants.services import create_tenant

SECRET = "a-provider-secret-of-32-chars!!!"


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # (a caller that gave up on a slow answer closed its end)


class Carrier:
    """A provider of the generic HTTP protocol on loopback that checks the signature as
    documented; `mode`: ok (accepted), down (503), bad_number (200 with an error body), slow
    (accepts after 1.5 s)."""

    def __init__(self, secret: str = SECRET) -> None:
        self.mode = "ok"
        self.secret = secret
        self.received: list[dict] = []
        carrier = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not signature_valid(
                    carrier.secret,
                    self.headers.get(TIMESTAMP_HEADER, ""),
                    self.headers.get(SIGNATURE_HEADER, ""),
                    body,
                ):
                    return self._answer(401, {"error": "bad signature"})
                if carrier.mode == "down":
                    return self._answer(503, {"error": "maintenance"})
                payload = json.loads(body)
                if carrier.mode == "slow":
                    time.sleep(1.5)  # (then accepts: too late for a caller that gave up)
                if carrier.mode == "bad_number":
                    return self._answer(
                        200, {"status": "failed", "error_code": "INVALID_NUMBER", "error": "no"}
                    )
                carrier.received.append(payload)
                return self._answer(200, {"status": "accepted", "message_id": f"c-{payload['id']}"})

            def _answer(self, status: int, answer: dict) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def carriers(settings) -> Iterator[tuple[Carrier, Carrier]]:  # noqa: ANN001
    settings.ALLOW_PRIVATE_TARGETS = True
    first, second = Carrier(), Carrier()
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def two_providers(tenant, carriers) -> tuple[Provider, Provider]:  # noqa: ANN001
    from notify.channels.services import create_provider

    rows = tuple(
        create_provider(
            tenant,
            channel="sms",
            kind="http",
            name=name,
            priority=priority,
            config={"url": carrier.url},
            secrets={"secret": SECRET},
        )
        for name, priority, carrier in (("primary", 1, carriers[0]), ("backup", 2, carriers[1]))
    )
    for row in rows:
        breaker.reset(row.pk)
        ratelimit.reset(send_limits.bucket(row.pk))
    yield rows
    for row in rows:
        breaker.reset(row.pk)


def sms(tenant, recipient: str = "13912345678") -> Message:  # noqa: ANN001
    return create_message(
        tenant=tenant, draft=MessageDraft(channel="sms", recipient=recipient, body="code 1234")
    )


def attempts(message: Message) -> list[tuple[str, str, str]]:
    return list(
        DeliveryAttempt.objects.filter(message=message)
        .order_by("number")
        .values_list("outcome", "provider", "error_kind")
    )


# ---- failover ----------------------------------------------------------------------------


def test_failover__provider_slower_than_its_timeout__the_next_one_sends_in_the_same_attempt(
    tenant, two_providers, carriers, deliver
):
    from notify.channels.services import update_provider

    # Given a first provider that hangs, and which may take 0.5 s per call
    carriers[0].mode = "slow"
    update_provider(two_providers[0], timeout=0.5)
    message = sms(tenant)
    # When the message is delivered
    deliver(message.id)
    # Then the second provider sent it within the same attempt
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert attempts(message) == [("sent", "backup", "")]
    assert len(carriers[1].received) == 1


def test_failover__message_provider_tier_shorter__the_next_one_sends(
    tenant, two_providers, carriers, deliver
):
    # Given a hanging first provider with the platform's timeout, and a message whose
    # provider tier is 0.5 s
    carriers[0].mode = "slow"
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="sms", recipient="13912345678", body="code 1", params={"provider_timeout": 0.5}
        ),
    )
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert attempts(message) == [("sent", "backup", "")]


def test_failover__first_provider_down__sent_once_by_the_second_which_the_attempt_names(
    tenant, two_providers, carriers, deliver
):
    # Given the tenant's first SMS provider answering 503
    carriers[0].mode = "down"
    message = sms(tenant)
    # When the message is delivered
    deliver(message.id)
    # Then the second provider took it, within the same attempt, and only it
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert attempts(message) == [("sent", "backup", "")]
    assert [p["id"] for p in carriers[1].received] == [message.id]
    assert carriers[0].received == []


def test_failover__first_provider_misconfigured__the_next_one_sends_and_the_breaker_counts_it(
    tenant, two_providers, carriers, deliver, settings
):
    from notify.channels.services import update_provider

    # Given a first provider whose secret is wrong (its carrier refuses our signature, 401)
    update_provider(two_providers[0], secrets={"secret": "not-the-carriers-secret-0123"})
    message = sms(tenant)
    # When the message is delivered
    deliver(message.id)
    # Then the second provider sent it in the same attempt; the first counts as failing
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert attempts(message) == [("sent", "backup", "")]
    assert len(carriers[1].received) == 1
    # and, refused like that often enough, its circuit opens
    for n in range(settings.PROVIDER_BREAKER_FAILURES - 1):
        deliver(sms(tenant, f"1391234{n:04d}").id)
    assert breaker.state(two_providers[0].pk) == breaker.OPEN


def test_failover__every_provider_down__retried_later_nothing_lost(
    tenant, two_providers, carriers, deliver
):
    carriers[0].mode = carriers[1].mode = "down"
    message = sms(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.next_attempt_at is not None
    ((outcome, provider, kind),) = attempts(message)
    assert (outcome, kind) == ("temporary_failure", "provider_down")
    assert "primary" in message.error and "backup" in message.error


def test_provider__200_with_an_error_body__that_failure_kind_from_that_provider_no_failover(
    tenant, two_providers, carriers, deliver
):
    # Given a provider that answers HTTP 200 carrying a refusal
    carriers[0].mode = "bad_number"
    message = sms(tenant)
    deliver(message.id)
    # Then the refusal is the message's answer: bad recipient, from the first provider
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.error_code == "INVALID_NUMBER"
    assert attempts(message) == [("permanent_failure", "primary", "bad_recipient")]
    assert carriers[1].received == []


def test_breaker__repeated_failures__opens_skips_then_one_probe_closes_it(
    tenant, two_providers, carriers, deliver, settings
):
    settings.PROVIDER_BREAKER_FAILURES = 3
    settings.PROVIDER_BREAKER_COOLDOWN = 0.5
    primary = two_providers[0]
    carriers[0].mode = "down"
    # When the first provider fails three times, its breaker opens
    for n in range(3):
        deliver(sms(tenant, f"1391234{n:04d}").id)
    assert breaker.state(primary.pk) == breaker.OPEN
    # and the next message skips it
    skipped = sms(tenant, "13912349999")
    deliver(skipped.id)
    assert attempts(skipped) == [("sent", "backup", "")]
    # After the cool-down one probe goes to it; once it answers again, the breaker closes
    carriers[0].mode = "ok"
    time.sleep(0.6)
    assert breaker.state(primary.pk) == breaker.HALF_OPEN
    probe = sms(tenant, "13912348888")
    deliver(probe.id)
    assert attempts(probe) == [("sent", "primary", "")]
    assert breaker.state(primary.pk) == breaker.CLOSED
    assert [t["state"] for t in breaker.transitions(primary.pk)] == ["open", "half_open", "closed"]


def test_provider_url__resolves_to_loopback__refused_without_private_targets(
    tenant, two_providers, carriers, deliver, settings
):
    settings.ALLOW_PRIVATE_TARGETS = False
    message = sms(tenant)
    deliver(message.id)
    message.refresh_from_db()
    assert carriers[0].received == [] and carriers[1].received == []
    # (each provider's setup is at fault: retried, so fixing either lets the message through)
    assert message.status == MessageStatus.QUEUED
    assert message.error.count("URL refused") == 2


# ---- the API -----------------------------------------------------------------------------

NEW_PROVIDER = {
    "channel": "sms",
    "kind": "http",
    "name": "carrier",
    "config": {"url": "https://sms.example.com/send"},
    "secrets": {"secret": SECRET},
    "priority": 5,
}


def test_api__provider_timeout__kept_and_shown_bounds_refused(api_client, tenant):
    created = api_client.post("/v2/providers", {**NEW_PROVIDER, "timeout": 2.5}, format="json")
    assert created.status_code == 201 and created.json()["timeout"] == 2.5
    provider_id = created.json()["id"]
    changed = api_client.patch(f"/v2/providers/{provider_id}", {"timeout": None}, format="json")
    assert changed.status_code == 200 and changed.json()["timeout"] is None
    for refused in (0.1, 120):
        answer = api_client.patch(
            f"/v2/providers/{provider_id}", {"timeout": refused}, format="json"
        )
        assert answer.status_code == 400 and "timeout" in answer.json()["error"]["fields"]


def test_api__create_provider__secret_stored_encrypted_and_never_returned(api_client, tenant):
    created = api_client.post("/v2/providers", NEW_PROVIDER, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secrets_set"] == ["secret"] and SECRET not in json.dumps(body)
    assert body["circuit"] == "closed"
    listed = api_client.get("/v2/providers").json()
    assert [p["name"] for p in listed] == ["carrier"] and SECRET not in json.dumps(listed)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM channels_provider")
        (stored,) = cursor.fetchone()
    assert SECRET not in stored and stored.startswith("fernet:")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"config": {"url": "ftp://sms.example.com"}}, "config.url"),
        ({"secrets": {"secret": "short"}}, "secrets.secret"),
        ({"kind": "pigeon"}, "kind"),
        ({"channel": "email"}, "channel"),
        ({"config": {"url": "https://x.example.com", "extra": 1}}, "config"),
    ],
)
def test_api__bad_provider__400_naming_the_field_nothing_stored(api_client, change, field):
    answer = api_client.post("/v2/providers", {**NEW_PROVIDER, **change}, format="json")
    assert answer.status_code == 400, answer.content
    assert field in json.dumps(answer.json())
    assert not Provider.all_tenants.exists()


def test_api__patch_config_only__secrets_kept(api_client, tenant):
    created = api_client.post("/v2/providers", NEW_PROVIDER, format="json").json()
    changed = api_client.patch(
        f"/v2/providers/{created['id']}",
        {"config": {"url": "https://sms2.example.com/send"}, "enabled": False},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    row = Provider.all_tenants.get()
    assert row.config == {"url": "https://sms2.example.com/send"} and not row.enabled
    assert json.loads(row.secrets) == {"secret": SECRET}


def test_api__another_tenants_provider__404_and_unchanged(api_client, other_tenant_client):
    created = api_client.post("/v2/providers", NEW_PROVIDER, format="json").json()
    url = f"/v2/providers/{created['id']}"
    assert other_tenant_client.get(url).status_code == 404
    assert other_tenant_client.patch(url, {"enabled": False}, format="json").status_code == 404
    assert other_tenant_client.delete(url).status_code == 404
    assert other_tenant_client.get("/v2/providers").json() == []
    assert Provider.all_tenants.get().enabled


# ---- receipts ----------------------------------------------------------------------------


def post_receipt(client, provider: Provider, report: dict, secret: str = SECRET):  # noqa: ANN001, ANN201
    body = json.dumps(report).encode()
    timestamp = str(int(time.time()))
    return client.generic(
        "POST",
        f"/v2/receipts/providers/{provider.pk}",
        body,
        content_type="application/json",
        HTTP_X_NOTIFY_TIMESTAMP=timestamp,
        HTTP_X_NOTIFY_SIGNATURE=sign(secret, timestamp, body),
    )


def test_receipt__signed_by_the_provider__message_delivered(
    tenant, two_providers, carriers, deliver, client
):
    message = sms(tenant)
    deliver(message.id)
    answer = post_receipt(
        client, two_providers[0], {"message_id": f"c-{message.id}", "status": "delivered"}
    )
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


def test_receipt__bad_signature__401_nothing_changes(
    tenant, two_providers, carriers, deliver, client
):
    message = sms(tenant)
    deliver(message.id)
    answer = post_receipt(
        client,
        two_providers[0],
        {"message_id": f"c-{message.id}", "status": "delivered"},
        secret="x" * 32,
    )
    assert answer.status_code == 401
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_receipt__another_tenants_message_id__changes_nothing(
    tenant, two_providers, carriers, deliver, client
):
    # Given a message of the tenant sent through its provider
    message = sms(tenant)
    deliver(message.id)
    # When another tenant's provider, correctly signed, reports on that provider id
    other, _ = create_tenant("globex")
    from notify.channels.services import create_provider

    theirs = create_provider(
        other,
        channel="sms",
        kind="http",
        name="theirs",
        config={"url": carriers[1].url},
        secrets={"secret": SECRET},
    )
    answer = post_receipt(client, theirs, {"message_id": f"c-{message.id}", "status": "failed"})
    # Then it is acknowledged (a provider must not retry forever) and nothing changes
    assert answer.status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_admin__provider_form__secret_write_only_and_kept_when_left_empty(tenant, client):
    from django.contrib.auth import get_user_model

    admin_user = get_user_model().objects.create_superuser("root", "r@example.com", "pw-long-1")
    client.force_login(admin_user)
    form = {
        "tenant": tenant.pk,
        "channel": "sms",
        "kind": "http",
        "name": "carrier",
        "config": json.dumps({"url": "https://sms.example.com/send"}),
        "priority": 1,
        "enabled": "on",
        "new_secrets": json.dumps({"secret": SECRET}),
    }
    added = client.post("/admin/channels/provider/add/", form)
    assert added.status_code == 302, added.content.decode()[-2000:]
    provider = Provider.all_tenants.get()
    page = client.get(f"/admin/channels/provider/{provider.pk}/change/").content.decode()
    assert SECRET not in page
    changed = client.post(
        f"/admin/channels/provider/{provider.pk}/change/",
        {**form, "priority": 2, "new_secrets": ""},
    )
    assert changed.status_code == 302
    provider.refresh_from_db()
    assert provider.priority == 2 and json.loads(provider.secrets) == {"secret": SECRET}
    refused = client.post(
        "/admin/channels/provider/add/", {**form, "name": "b", "new_secrets": "{}"}
    )
    assert refused.status_code == 200 and "secrets.secret" in refused.content.decode()


@pytest.mark.parametrize(
    "url", ["https://sms.example.com:99999/send", "http://[::1/send", "ftp://sms.example.com"]
)
def test_api__unusable_provider_url__400_not_500(api_client, url):
    answer = api_client.post(
        "/v2/providers", {**NEW_PROVIDER, "config": {"url": url}}, format="json"
    )
    assert answer.status_code == 400 and "config.url" in json.dumps(answer.json())


def test_bad_recipient__v2_message__suppressed_so_the_next_one_is_not_sent(
    tenant, two_providers, carriers, deliver
):
    from notify.messaging.models import Suppression

    # Given a provider saying the number cannot receive
    carriers[0].mode = "bad_number"
    first = sms(tenant)
    deliver(first.id)
    # Then the number is on the tenant's suppression list, and the next message is not sent
    (row,) = Suppression.all_tenants.filter(tenant=tenant)
    assert row.recipient == first.recipient and "INVALID_NUMBER" in row.reason
    carriers[0].mode = "ok"
    second = sms(tenant)
    deliver(second.id)
    second.refresh_from_db()
    assert second.status == MessageStatus.SUPPRESSED and carriers[0].received == []


def test_bad_recipient__legacy_api_message__not_suppressed(
    tenant, two_providers, carriers, deliver
):
    from notify.messaging.models import Origin, Suppression

    carriers[0].mode = "bad_number"
    message = create_message(
        tenant=tenant,
        draft=MessageDraft(channel="sms", recipient="13912345678", body="code"),
        origin=Origin.LEGACY,
    )
    deliver(message.id)
    assert not Suppression.all_tenants.exists()


def test_receipt__unregistered_device__suppressed(tenant, two_providers, carriers, deliver, client):
    from notify.messaging.models import Suppression

    message = sms(tenant)
    deliver(message.id)
    post_receipt(
        client,
        two_providers[0],
        {"message_id": f"c-{message.id}", "status": "failed", "error_code": "INVALID_NUMBER"},
    )
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert Suppression.all_tenants.filter(recipient=message.recipient).exists()


def test_attempt__provider_answer__http_status_and_provider_shown_in_the_api(
    tenant, two_providers, carriers, deliver, api_client
):
    # Given a first provider answering 503 and a second taking the message
    carriers[0].mode = "down"
    message = sms(tenant)
    deliver(message.id)
    # Then the message's attempt shows who took it, with what HTTP status and id
    (attempt,) = api_client.get(f"/v2/messages/{message.id}").json()["delivery_attempts"]
    assert (attempt["provider"], attempt["http_status"]) == ("backup", 200)
    assert attempt["provider_message_id"] == f"c-{message.id}"


def test_attempt__provider_refusal__its_http_status_recorded(
    tenant, two_providers, carriers, deliver
):
    carriers[0].mode = carriers[1].mode = "down"
    message = sms(tenant)
    deliver(message.id)
    attempt = DeliveryAttempt.objects.get(message=message)
    assert (attempt.provider, attempt.http_status, attempt.error_kind) == (
        "backup",
        503,
        "provider_down",
    )


# ---- send limits -------------------------------------------------------------------------


def test_send_limit__a_burst_over_it__paced_every_message_sent_on_its_first_attempt(
    tenant, two_providers, carriers, monkeypatch
):
    from notify.channels.services import update_provider
    from notify.messaging import services

    # Given a provider limited to 2 messages a second, and 4 messages for it at once
    update_provider(two_providers[0], send_rate=2)
    waits: list[float] = []
    sleep = time.sleep
    monkeypatch.setattr(
        send_limits.time, "sleep", lambda seconds: (waits.append(seconds), sleep(seconds))
    )
    messages = [sms(tenant, f"1391234{n:04d}") for n in range(4)]
    # When one worker sends them as a chunk
    services.deliver_chunk([m.id for m in messages])
    # Then the sends over the limit waited their turn, and each went out once, first time
    assert waits and max(waits) <= send_limits.MAX_PACE_SECONDS
    assert sorted(p["id"] for p in carriers[0].received) == sorted(m.id for m in messages)
    for message in messages:
        assert attempts(message) == [("sent", "primary", "")]


def test_send_limit__next_turn_too_far__the_next_provider_sends_and_no_circuit_opens(
    tenant, two_providers, carriers, settings
):
    from notify.channels.services import update_provider
    from notify.messaging import services

    # Given a first provider allowed one message every ten seconds
    update_provider(two_providers[0], send_rate=0.1)
    first, second = sms(tenant, "13912340001"), sms(tenant, "13912340002")
    # When two messages are sent, then more than its breaker would count
    services.deliver_chunk([first.id, second.id])
    for n in range(settings.PROVIDER_BREAKER_FAILURES):
        services.deliver(sms(tenant, f"1391235{n:04d}").id)
    # Then the first went through it, the next ones through the second provider at once
    assert attempts(first) == [("sent", "primary", "")]
    assert attempts(second) == [("sent", "backup", "")]
    # and its own limit never counts against it: its circuit stays closed
    assert breaker.state(two_providers[0].pk) == breaker.CLOSED


def test_providers_api__send_rate__kept_shown_and_bounded(api_client):
    body = {**NEW_PROVIDER, "name": "limited", "send_rate": 20}
    created = api_client.post("/v2/providers", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["send_rate"] == 20
    changed = api_client.patch(
        f"/v2/providers/{created.json()['id']}", {"send_rate": None}, format="json"
    )
    assert changed.json()["send_rate"] is None
    refused = api_client.post("/v2/providers", {**body, "name": "x", "send_rate": 0}, format="json")
    assert refused.status_code == 400 and "send_rate" in refused.json()["error"]["fields"]


def test_send_limit__only_provider_over_it__queued_until_it_frees_never_dead(
    tenant, two_providers, carriers, settings
):
    from notify.channels.services import update_provider
    from notify.messaging import services

    # Given the tenant's only SMS provider allowed one message every hundred seconds
    update_provider(two_providers[0], send_rate=0.01)
    update_provider(two_providers[1], enabled=False)
    services.deliver(sms(tenant, "13912340001").id)
    waiting = sms(tenant, "13912340002")
    # When the next message is tried more times than its retries allow
    for _ in range(len(settings.NOTIFY_RETRY_DELAYS) + 2):
        Message.all_tenants.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
        services.deliver(waiting.id)
    # Then it is still waiting for the limit, sent by nobody, and none of it counted
    waiting.refresh_from_db()
    assert waiting.status == MessageStatus.QUEUED
    assert waiting.attempts - waiting.attempts_before_retry == 0
    assert waiting.next_attempt_at > timezone.now() + timedelta(seconds=50)
    assert "send limit" in waiting.error
    assert [p["to"] for p in carriers[0].received] == ["13912340001"]
