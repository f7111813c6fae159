"""Where airspeed renders tenant templates (admin comparison, legacy import), a runaway legacy
template ends with the sandbox's limit message: a difference to review, never a hang or a
crash."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from notify.tenants.services import create_tenant
from templates_store import services
from templates_store.legacy import convert_template
from templates_store.models import Template

from .velocity.test_legacy_render import GUARD_SECONDS, RUNAWAY_LEGACY


@pytest.fixture
def admin_client(client, db):  # noqa: ANN001, ANN201
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.mark.parametrize("kind", sorted(RUNAWAY_LEGACY))
def test_admin_comparison__runaway_legacy_body__page_shows_the_limit_message(
    admin_client, kind: str
) -> None:
    # Given a version whose legacy body runs away (its new body is a plain stand-in)
    source, params = RUNAWAY_LEGACY[kind]
    tenant, _ = create_tenant("shop")
    template = Template.all_tenants.create(tenant=tenant, key="t", channel="sms", legacy_tpl_id="T")
    version = services.add_version(
        template,
        subject="",
        body="stand-in",
        legacy_body=source,
        conversion_status="needs_review",
        conversion_report={"cases": [{"origin": "sample", "ref": "", "params": params}]},
        verified_cases=1,
        mismatches=1,
    )
    started = time.monotonic()
    # When the admin opens the comparison for that case
    url = reverse("admin:templates_store_templateversion_change", args=[version.pk])
    response = admin_client.get(url + "?case=0")
    # Then the page answers, the legacy rendering being the limit it exceeded
    assert time.monotonic() - started < GUARD_SECONDS
    assert response.status_code == 200
    assert "legacy render exceeded limits: " in response.content.decode()


def test_legacy_import__runaway_template__mismatch_not_approved(db) -> None:  # noqa: ANN001
    # Given a legacy row whose body runs away on its two known cases
    source, params = RUNAWAY_LEGACY["string doubling"]
    tenant, _ = create_tenant("shop")
    row = {"tpl_id": "RUNAWAY_1", "channel": "sms", "content": source, "status": 1}
    cases = [{"origin": "sample", "ref": "", "params": params}] * 2
    started = time.monotonic()
    # When converted and verified
    outcome = convert_template(row, tenant, cases)
    # Then both cases are differences naming the limit, and nothing is approved
    assert time.monotonic() - started < GUARD_SECONDS
    assert (outcome.mismatches, outcome.approved) == (2, False)
    assert len(outcome.differences) == 2
    assert all(
        d["legacy_error"].startswith("legacy render exceeded limits: ") for d in outcome.differences
    )
