"""Approval is the operator's: tenants draft, the operator approves (or grants self-approval),
and sends refuse every template that is not approved."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from notify.messaging.models import Message
from notify.tenants.models import Tenant
from templates_store import services
from templates_store.models import Template

WELCOME = {"key": "welcome", "channel": "email", "subject": "Hi {{ name }}", "body": "<p>x</p>"}
SEND = {"channel": "email", "to": "a@example.com", "template": "welcome", "data": {"name": "A"}}


@pytest.fixture
def draft(api_client):  # noqa: ANN001, ANN201
    response = api_client.post("/v2/templates", WELCOME, format="json")
    assert response.status_code == 201, response.content
    return Template.all_tenants.get(key="welcome")


@pytest.fixture
def self_approving(tenant) -> Tenant:  # noqa: ANN001
    """The operator granted this tenant self-approval."""
    tenant.templates_self_approve = True
    tenant.save()
    return tenant


def status_of(template: Template) -> str:
    template.refresh_from_db()
    return template.status


def patch_status(client, value: str):  # noqa: ANN001, ANN201
    return client.patch("/v2/templates/welcome", {"status": value}, format="json")


# --- the tenant's side: creating and patching -------------------------------------------------


def test_create_template__no_status__draft(api_client, draft):
    assert draft.status == Template.Status.DRAFT


def test_create_template__status_approved_without_grant__403_and_nothing_created(api_client):
    # When a tenant without self-approval creates a template already approved
    response = api_client.post("/v2/templates", {**WELCOME, "status": "approved"}, format="json")
    # Then it is refused, and says who can approve
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "status_change_not_allowed"
    assert "operator" in error["message"]
    assert not Template.all_tenants.exists()


def test_create_template__status_approved_with_grant__201_approved(api_client, self_approving):
    response = api_client.post("/v2/templates", {**WELCOME, "status": "approved"}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "approved"


def test_create_template__status_rejected__403_even_with_grant(api_client, self_approving):
    response = api_client.post("/v2/templates", {**WELCOME, "status": "rejected"}, format="json")
    assert response.status_code == 403
    assert not Template.all_tenants.exists()


def test_patch_status__approved_without_grant__403_and_still_draft(api_client, draft):
    # When the tenant approves its own template
    response = patch_status(api_client, "approved")
    # Then
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "status_change_not_allowed"
    assert status_of(draft) == "draft"


def test_patch_status__approved_with_grant__200_and_sendable(api_client, draft, self_approving):
    assert patch_status(api_client, "approved").json()["status"] == "approved"
    assert api_client.post("/v2/messages", SEND, format="json").status_code == 202


def test_patch_status__approved_to_draft__allowed_and_sends_then_refused(
    api_client, draft, approve_as_operator
):
    # Given a template the operator approved
    approve_as_operator("welcome")
    # When the tenant withdraws it
    response = patch_status(api_client, "draft")
    # Then it is a draft again, and cannot be sent
    assert response.status_code == 200 and status_of(draft) == "draft"
    assert api_client.post("/v2/messages", SEND, format="json").status_code == 422


def test_patch_status__tenant_rejects__403(api_client, draft, self_approving):
    assert patch_status(api_client, "rejected").status_code == 403
    assert status_of(draft) == "draft"


@pytest.mark.parametrize("wanted", ["draft", "approved"])
def test_patch_status__operator_rejected__tenant_cannot_undo_even_with_grant(
    api_client, draft, self_approving, wanted
):
    # Given the operator rejected the template
    services.set_status_by_operator(draft, Template.Status.REJECTED)
    # When the tenant tries to move it out of rejected
    response = patch_status(api_client, wanted)
    # Then
    assert response.status_code == 403
    assert "operator rejected" in response.json()["error"]["message"]
    assert status_of(draft) == "rejected"


def test_patch_status__same_status__200_no_change(api_client, draft, approve_as_operator):
    approve_as_operator("welcome")
    assert patch_status(api_client, "approved").status_code == 200
    assert status_of(draft) == "approved"


def test_patch_name__approved_template__stays_approved(api_client, draft, approve_as_operator):
    approve_as_operator("welcome")
    response = api_client.patch("/v2/templates/welcome", {"name": "Welcome"}, format="json")
    assert response.status_code == 200 and status_of(draft) == "approved"


# --- an approval covers what the operator saw -------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        ("post", "/v2/templates/welcome/versions", {"body": "<p>new</p>", "publish": True}),
        ("patch", "/v2/templates/welcome", {"autoescape": False}),
    ],
)
def test_tenant_changes_what_is_sent__approval_withdrawn(
    api_client, draft, approve_as_operator, change
):
    # Given an approved template
    approve_as_operator("welcome")
    # When the tenant (without self-approval) changes what it sends
    method, path, payload = change
    response = getattr(api_client, method)(path, payload, format="json")
    assert response.status_code in (200, 201), response.content
    # Then the operator must approve it again
    assert status_of(draft) == "draft"
    assert api_client.post("/v2/messages", SEND, format="json").status_code == 422


def test_patch_escaping_and_status_approved_together__approval_still_withdrawn(
    api_client, draft, approve_as_operator
):
    approve_as_operator("welcome")
    response = api_client.patch(
        "/v2/templates/welcome", {"autoescape": False, "status": "approved"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "draft"
    assert status_of(draft) == "draft"


def test_tenant_publishes_then_rolls_back__each_withdraws_approval(
    api_client, draft, approve_as_operator
):
    api_client.post("/v2/templates/welcome/versions", {"body": "v2"}, format="json")
    approve_as_operator("welcome")
    assert api_client.post("/v2/templates/welcome/versions/2/publish").status_code == 200
    assert status_of(draft) == "draft"
    approve_as_operator("welcome")
    assert api_client.post("/v2/templates/welcome/rollback", {}, format="json").status_code == 200
    assert status_of(draft) == "draft"


def test_tenant_with_grant_publishes__stays_approved(api_client, draft, self_approving):
    patch_status(api_client, "approved")
    api_client.post(
        "/v2/templates/welcome/versions", {"body": "<p>new</p>", "publish": True}, format="json"
    )
    assert status_of(draft) == "approved"


def test_tenant_adds_unpublished_version__stays_approved(api_client, draft, approve_as_operator):
    approve_as_operator("welcome")
    api_client.post("/v2/templates/welcome/versions", {"body": "<p>later</p>"}, format="json")
    assert status_of(draft) == "approved"


# --- sending ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["draft", "rejected"])
def test_send__template_not_approved__422_naming_the_operator_and_nothing_stored(
    api_client, draft, status
):
    # Given a template that is not approved
    services.set_status_by_operator(draft, status)
    # When a message is sent with it
    response = api_client.post("/v2/messages", SEND, format="json")
    # Then
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_not_approved"
    assert "operator must approve" in error["message"]
    assert f"status: {status}" in error["message"]
    assert not Message.all_tenants.exists()


def test_send__draft_template_with_missing_param__not_approved_comes_first(api_client):
    # The legacy gateway's order: 20001 unknown, then 20003 not approved, then 20002 missing.
    api_client.post("/v2/templates", {**WELCOME, "key": "otp", "params": ["code"]}, format="json")
    response = api_client.post(
        "/v2/messages", {**SEND, "template": "otp", "data": {}}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "template_not_approved"


def test_send__approved_by_operator__202(api_client, draft, approve_as_operator):
    approve_as_operator("welcome")
    assert api_client.post("/v2/messages", SEND, format="json").status_code == 202


def test_template_not_approved__legacy_code_and_text__those_of_the_spec(draft):
    # The legacy facade answers from these; the contract is SPEC.md's error table.
    spec = (Path(settings.LEGACY_DATA_DIR).parent / "SPEC.md").read_text()
    code, text = re.search(r"^\| (20003) \| `([^`]+)` \|$", spec, re.M).groups()
    error = services.TemplateNotApproved(draft)
    assert (error.legacy_code, error.legacy_msg) == (code, text)


# --- the operator's side ----------------------------------------------------------------------


@pytest.fixture
def operator_client(client, db):  # noqa: ANN001, ANN201
    user = get_user_model().objects.create_superuser("operator", "op@example.com", None)
    client.force_login(user)
    return client


@pytest.mark.parametrize(("action", "status"), [("approve", "approved"), ("reject", "rejected")])
def test_admin_action__on_templates__status_set_and_operator_recorded(
    operator_client, draft, action, status
):
    # When the operator runs the action on the template
    operator_client.post(
        reverse("admin:templates_store_template_changelist"),
        {"action": action, "_selected_action": [draft.pk]},
    )
    # Then its status changed, and the admin's history says who did it
    assert status_of(draft) == status
    entry = LogEntry.objects.get(object_id=str(draft.pk))
    assert entry.user.username == "operator"
    assert status in entry.get_change_message()


def test_admin_tenant_page__self_approval__editable_by_the_operator(operator_client, tenant):
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    assert 'name="templates_self_approve"' in operator_client.get(url).content.decode()


def test_new_tenant__self_approval__off(tenant):
    assert tenant.templates_self_approve is False


def test_demo_setup__demo_tenant__approves_its_own_templates(db, capsys):
    call_command("demo_setup")
    assert Tenant.objects.get(slug="demo").templates_self_approve is True
