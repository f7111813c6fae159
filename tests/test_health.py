import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from notify.celery import app as celery_app
from notify.health import checks, services
from notify.health.heartbeat import HeartbeatWriter
from notify.health.models import WorkerHeartbeat
from tests.smtp import free_port

HEALTH_TOKEN = "health-token-for-tests-0123456789abcdef"
SECRET = "hunter2-database-password"
# Generous: only there to catch a probe that hangs (the old one blocked 1-2 s on a ping).
HANG_GUARD_SECONDS = 5


@pytest.fixture(autouse=True)
def _health_token(settings):  # noqa: ANN001, ANN202
    settings.HEALTH_TOKEN = HEALTH_TOKEN


@pytest.fixture
def operator_headers() -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {HEALTH_TOKEN}"}


@pytest.fixture
def broker_url(monkeypatch):  # noqa: ANN001, ANN201
    def use(url: str) -> None:
        monkeypatch.setattr(celery_app.conf, "broker_url", url)

    return use


class UnreachableDatabase:
    vendor = "postgresql"

    def cursor(self):  # noqa: ANN201
        raise ConnectionError(f"could not connect to postgres://notify:{SECRET}@db.internal/notify")


@pytest.fixture
def database_down(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr("notify.health.checks.connection", UnreachableDatabase())


# --- /livez -----------------------------------------------------------------------------------


def test_livez__process_up__200_ok_without_touching_the_database(client, database_down):
    # Given the database is down (and this test has no database access at all)
    # When
    response = client.get("/livez")
    # Then the process still says it is alive
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


# --- /readyz: who sees what --------------------------------------------------------------------


def test_readyz__anonymous_and_all_up__200_status_only(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz__health_token__200_with_each_check(client, db, operator_headers):
    # Given this test process's in-memory broker and no worker
    # When an operator asks
    response = client.get("/readyz", **operator_headers)
    # Then each check is listed; the missing worker is reported but does not make it unready
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "up"
    broker = body["checks"]["broker"]
    assert (broker["status"], broker["transport"]) == ("up", "memory")
    assert body["checks"]["workers"] == {"status": "down", "required": False, "workers": []}


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {HEALTH_TOKEN}x", f"Token {HEALTH_TOKEN}", "Bearer ", HEALTH_TOKEN],
)
def test_readyz__wrong_token__status_only(client, db, authorization):
    response = client.get("/readyz", HTTP_AUTHORIZATION=authorization)
    assert response.json() == {"status": "ok"}


def test_readyz__no_token_configured__bearer_empty_gets_no_details(client, db, settings):
    settings.HEALTH_TOKEN = ""
    response = client.get("/readyz", HTTP_AUTHORIZATION="Bearer ")
    assert response.json() == {"status": "ok"}


def test_readyz__staff_session__details(client, db):
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    client.force_login(staff)
    assert "checks" in client.get("/readyz").json()


def test_readyz__session_of_non_staff_user__status_only(client, db):
    user = get_user_model().objects.create_user("someone")
    client.force_login(user)
    assert client.get("/readyz").json() == {"status": "ok"}


def test_healthz__any_caller__same_answer_as_readyz(client, db, operator_headers):
    healthz = client.get("/healthz", **operator_headers).json()
    readyz = client.get("/readyz", **operator_headers).json()
    assert healthz["status"] == readyz["status"] == "ok"
    assert healthz["checks"].keys() == readyz["checks"].keys()
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz__post__405(client, db):
    assert client.post("/readyz").status_code == 405


# --- /readyz: failures ------------------------------------------------------------------------


def test_readyz__database_down__503_and_no_error_text_leaks(client, db, database_down):
    # When anyone asks
    anonymous = client.get("/readyz")
    # Then: unavailable, and nothing else
    assert anonymous.status_code == 503
    assert anonymous.json() == {"status": "unavailable"}
    # And an operator learns which check failed and how, but not the error's text
    response = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {HEALTH_TOKEN}")
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert (database["status"], database["error"]) == ("down", "ConnectionError")
    assert response.json()["checks"]["workers"]["status"] == "down"
    assert SECRET not in response.content.decode()
    assert "db.internal" not in response.content.decode()


def test_readyz__broker_refuses_connections__503_at_once(client, db, broker_url, caplog):
    # Given a Redis broker URL with a password, on a port where nothing listens
    broker_url(f"redis://:{SECRET}@127.0.0.1:{free_port()}/0")
    # When
    started = time.monotonic()
    response = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {HEALTH_TOKEN}")
    elapsed = time.monotonic() - started
    # Then
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["status"] == "down" and broker["transport"] == "redis"
    assert broker["error"] != "timeout"  # refused, not waited for
    assert response.json()["checks"]["database"]["status"] == "up"
    assert SECRET not in response.content.decode()
    assert SECRET not in caplog.text  # the log line is redacted too
    assert elapsed < HANG_GUARD_SECONDS


@pytest.fixture
def hanging_broker(monkeypatch):  # noqa: ANN001, ANN201
    """A broker connection that never completes (a black-holed host, a DNS lookup that hangs)."""
    release = threading.Event()
    monkeypatch.setattr(checks, "_reach_broker", lambda url: release.wait(30) and 0.0)
    yield
    release.set()
    attempt = checks._broker_attempt
    if attempt is not None:
        attempt.result(timeout=30)


def test_readyz__broker_hangs__503_timeout_after_the_deadline(client, db, hanging_broker):
    started = time.monotonic()
    first = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {HEALTH_TOKEN}")
    # A second probe while the first attempt still hangs waits for that one; no new thread.
    second = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert first.status_code == second.status_code == 503
    assert first.json()["checks"]["broker"]["error"] == "timeout"
    assert second.json() == {"status": "unavailable"}
    assert elapsed < HANG_GUARD_SECONDS


# --- workers' heartbeat -----------------------------------------------------------------------


def test_readyz__worker_beat_recently__listed_up(client, db, operator_headers):
    services.record_heartbeat("celery@web-1")
    workers = client.get("/readyz", **operator_headers).json()["checks"]["workers"]
    assert workers["status"] == "up"
    assert [worker["hostname"] for worker in workers["workers"]] == ["celery@web-1"]


def test_readyz__worker_heartbeat_older_than_three_intervals__down(
    client, db, operator_headers, settings
):
    # Given a worker whose last beat is just over three intervals old
    settings.NOTIFY_HEARTBEAT_INTERVAL = 5
    services.record_heartbeat("celery@gone", now=timezone.now() - timedelta(seconds=16))
    services.record_heartbeat("celery@late", now=timezone.now() - timedelta(seconds=14))
    # When
    workers = client.get("/readyz", **operator_headers).json()["checks"]["workers"]
    # Then only the other one counts
    assert [worker["hostname"] for worker in workers["workers"]] == ["celery@late"]


def test_record_heartbeat__twice__one_row_moved_forward(db):
    earlier = timezone.now() - timedelta(seconds=10)
    services.record_heartbeat("celery@w", now=earlier)
    services.record_heartbeat("celery@w")
    (row,) = WorkerHeartbeat.objects.all()
    assert row.started_at == earlier and row.last_seen_at > earlier


def test_record_heartbeat__worker_silent_for_a_day__forgotten(db):
    services.record_heartbeat("celery@old", now=timezone.now() - timedelta(days=2))
    services.record_heartbeat("celery@new")
    assert list(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == ["celery@new"]


def test_heartbeat_writer__started_then_stopped__row_written_then_removed(transactional_db):
    # Given the worker's heartbeat thread, beating fast
    writer = HeartbeatWriter("celery@thread-test", interval=0.05)
    # When it runs for a few beats
    writer.start()
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while time.monotonic() < deadline:
        row = WorkerHeartbeat.objects.filter(hostname="celery@thread-test").first()
        if row is not None and row.last_seen_at > row.started_at:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("no heartbeat written")
    # Then the worker is listed; and once stopped, it is gone at once
    writer.stop()
    assert not WorkerHeartbeat.objects.filter(hostname="celery@thread-test").exists()
