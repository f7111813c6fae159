"""The smaller holes the security issue named, each as its payload through the API: a lone
surrogate in template data, a line-breaking character in a subject, a tenant approving its
own template, and /healthz telling anyone the raw error behind a failed check. Each answers
in the API's own format, stores nothing, and tells an anonymous caller nothing more than up
or down. (The fuller cases live beside the code they exercise: tests/api/test_input_hygiene.py,
tests/api/test_template_approval.py, tests/test_health.py.)"""

import pytest

from notify.celery import app as celery_app
from notify.messaging.models import Message
from templates_store.models import Template
from tests.smtp import free_port

TEMPLATE = {"key": "welcome", "channel": "email", "subject": "Hi {{ name }}", "body": "x"}
SEND_TEMPLATE = '{"channel": "email", "to": "a@example.com", "template": "welcome", "data": %s}'
SEND = {"channel": "email", "to": "a@example.com", "body": "Your code"}


@pytest.fixture
def approved_template(api_client, approve_as_operator):  # noqa: ANN001, ANN201
    assert api_client.post("/v2/templates", TEMPLATE, format="json").status_code == 201
    return approve_as_operator("welcome")


@pytest.mark.parametrize("data", ['{"name": "\\ud800"}', '{"\\udfff": 1}'])
def test_payload__lone_surrogate_in_template_data__400_not_500_nothing_stored(
    api_client, approved_template, data
):
    response = api_client.generic(
        "POST", "/v2/messages", SEND_TEMPLATE % data, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert not Message.all_tenants.exists()


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\r", "\n", "\x85", "\u2028"])
def test_payload__line_breaking_character_in_subject__400_at_accept_nothing_stored(
    api_client, char
):
    response = api_client.post(
        "/v2/messages", {**SEND, "subject": f"Hi{char}Bcc: x"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"subject"}
    assert not Message.all_tenants.exists()


@pytest.mark.parametrize("how", ["create", "patch"])
def test_payload__tenant_approves_its_own_template__403_and_not_approved(api_client, how):
    if how == "create":
        response = api_client.post(
            "/v2/templates", {**TEMPLATE, "status": "approved"}, format="json"
        )
    else:
        assert api_client.post("/v2/templates", TEMPLATE, format="json").status_code == 201
        response = api_client.patch("/v2/templates/welcome", {"status": "approved"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "status_change_not_allowed"
    assert not Template.all_tenants.filter(key="welcome", status="approved").exists()


def test_payload__healthz_with_the_broker_down__anonymous_caller_gets_status_only(
    client, db, monkeypatch
):
    # Given a broker whose URL carries a password, refusing connections
    secret = "s3cr3t-broker-password"
    monkeypatch.setattr(
        celery_app.conf, "broker_url", f"redis://:{secret}@127.0.0.1:{free_port()}/0"
    )
    # When anyone asks
    response = client.get("/healthz")
    # Then: down, and nothing about why
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert secret not in response.content.decode()
