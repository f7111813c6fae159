import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from notify.celery import app as celery_app
from notify.tenants.models import ApiKey, Tenant
from notify.tenants.services import create_tenant
from templates_store import services as template_services
from templates_store.legacy import LegacyExport
from templates_store.models import Template
from tests.smtp import SmtpServer
from tests.webserver import WebServer, runserver

LEGACY_DATA = Path(settings.LEGACY_DATA_DIR)

# CI explores the same examples every run: a red build is then a regression, not a dice roll.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

_real_connect = socket.socket.connect


def _loopback_only_connect(self, address):  # noqa: ANN001, ANN202
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (
        host.startswith("127.") or host in ("localhost", "::1") or self.family == socket.AF_UNIX
    ):
        raise RuntimeError(f"outbound network blocked in tests: {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_outbound_network():
    socket.socket.connect = _loopback_only_connect
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(autouse=True)
def _fresh_process_state():
    # a process's unwritten call counts and cached lookups (API keys, provider rows…) belong
    # to the test that made them
    from notify import caching, ratelimit
    from notify.messaging import wakeups
    from notify.rollout import metrics

    metrics.recorder.discard()
    caching.forget_all()
    ratelimit.forget_local()  # (ids are reused after a rollback on SQLite)
    wakeups.not_pending()  # (a wake-up another test published is not this test's)
    yield
    metrics.recorder.discard()
    caching.forget_all()
    wakeups.not_pending()


@pytest.fixture(autouse=True, scope="session")
def _in_memory_broker():
    # Tests in this process publish to memory; e2e tests give their worker process the real broker.
    celery_app.conf.broker_url = "memory://"
    celery_app.conf.broker_transport_options = {}
    yield


@pytest.fixture
def tenant_with_key(db) -> tuple[Tenant, str]:  # noqa: ANN001
    return create_tenant("acme", name="Acme")


@pytest.fixture
def tenant(tenant_with_key) -> Tenant:  # noqa: ANN001
    return tenant_with_key[0]


@pytest.fixture
def api_client(tenant_with_key) -> APIClient:  # noqa: ANN001
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_with_key[1]}")
    return client


@pytest.fixture
def other_tenant_client(db) -> APIClient:  # noqa: ANN001
    """The second persona: another tenant, who must never see the first one's data."""
    _, raw_key = create_tenant("globex", name="Globex")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def smtp_server(settings):  # noqa: ANN001, ANN201
    with SmtpServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = server.port
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        yield server


@pytest.fixture
def approve_as_operator(db):  # noqa: ANN001, ANN201
    """The operator's approval (the admin action's service), for tests that send with a
    template: tenants cannot approve their own without the operator's grant."""

    def approve(key: str, tenant: Tenant | None = None) -> Template:
        templates = Template.all_tenants.filter(key=key)
        template = (templates.filter(tenant=tenant) if tenant else templates).get()
        template_services.set_status_by_operator(template, Template.Status.APPROVED)
        return template

    return approve


@pytest.fixture
def revoked_key(tenant) -> str:  # noqa: ANN001
    key, raw = ApiKey.generate(tenant, name="old")
    key.revoke()
    return raw


@pytest.fixture(scope="session")
def legacy_export() -> LegacyExport:
    if not (LEGACY_DATA / "templates.jsonl").exists():
        pytest.fail(f"legacy export not found at {LEGACY_DATA} (shared/ must sit beside the repo)")
    return LegacyExport.read(LEGACY_DATA)


@dataclass
class ReferenceGateway:
    """The old system itself (`../shared/legacy/gateway.py`), serving its data export; every
    message it sends is a line of `outbox`."""

    url: str
    outbox: Path

    def sent(self) -> list[dict[str, Any]]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text("utf-8").splitlines() if line]


@contextmanager
def reference_gateway_process(outbox: Path) -> Iterator[ReferenceGateway]:
    """`gateway.py serve` on a free port, with its data export, until the block ends."""
    legacy_dir = LEGACY_DATA.parent
    process = subprocess.Popen(
        [
            sys.executable,
            str(legacy_dir / "gateway.py"),
            "serve",
            "--data",
            str(legacy_dir / "data"),
            "--port",
            "0",
            "--outbox",
            str(outbox),
        ],
        cwd=legacy_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        pytest.fail(f"the reference gateway did not start: {line!r}")
    try:
        yield ReferenceGateway(line.split("listening on ", 1)[1].strip(), outbox)
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def reference_gateway(tmp_path_factory) -> Iterator[ReferenceGateway]:  # noqa: ANN001
    with reference_gateway_process(tmp_path_factory.mktemp("reference") / "outbox.jsonl") as gw:
        yield gw


@pytest.fixture(scope="module")
def web_server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[WebServer]:  # noqa: ANN001
    """`runserver` on the test database, started once per module; each test's data is flushed."""
    from tests.e2e import conftest as e2e

    with django_db_blocker.unblock():
        database_url = e2e.test_database_url()
    with runserver(database_url, tmp_path_factory.mktemp("web") / "web.log") as server:
        yield server
