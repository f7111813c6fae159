"""Tenant scoping fails closed: `objects` answers only queries scoped to a tenant; crossing
tenants takes the explicit `all_tenants`."""

import pytest

from notify.messaging.models import Message, Preference, SendRequest, Suppression
from notify.messaging.services import MessageDraft, create_message
from notify.tenants.scoping import TenantScopeMissing
from templates_store.models import Template

SCOPED_MODELS = [Message, SendRequest, Suppression, Preference, Template]


@pytest.mark.parametrize("model", SCOPED_MODELS)
@pytest.mark.parametrize(
    "query",
    [
        lambda m: list(m.objects.all()),
        lambda m: m.objects.filter(pk=1).first(),
        lambda m: m.objects.count(),
        lambda m: m.objects.exists(),
        lambda m: m.objects.filter(pk=1).update(pk=1),
        lambda m: m.objects.filter(pk=1).delete(),
        lambda m: list(m.objects.values_list("pk", flat=True)),
        lambda m: m.objects.get(pk=1),
    ],
)
def test_unscoped_query__any_form__refused(db, model, query):
    with pytest.raises(TenantScopeMissing):
        query(model)


def test_scoped_query__own_rows_only__and_all_tenants_sees_every_row(
    tenant, other_tenant_client, monkeypatch
):
    # Given a message of each of two tenants
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    from notify.tenants.models import Tenant

    other = Tenant.objects.get(slug="globex")
    for owner in (tenant, other):
        create_message(
            tenant=owner,
            draft=MessageDraft(channel="email", recipient="a@example.com", subject="S", body="B"),
        )
    # Then a scoped query sees its tenant's only, chained further or not
    assert Message.objects.for_tenant(tenant).count() == 1
    assert Message.objects.for_tenant(tenant).filter(channel="email").order_by("pk").count() == 1
    # And a query without a tenant is refused, while all_tenants is explicit about crossing
    with pytest.raises(TenantScopeMissing):
        Message.objects.filter(channel="email").count()
    assert Message.all_tenants.count() == 2
    # And related managers (the admin's view of a message) still work
    message = Message.all_tenants.first()
    assert message.events.count() == 1
    assert message.tenant.messages.count() == 1


def test_for_tenant__no_tenant__refused(db):
    with pytest.raises(TenantScopeMissing):
        Message.objects.for_tenant(None)
