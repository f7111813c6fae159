import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from notify.tenants.services import create_tenant
from templates_store import services
from templates_store.models import Template, TemplateVersion


@pytest.fixture
def admin_client(client, db):  # noqa: ANN001, ANN201
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def converted_version(db) -> TemplateVersion:
    tenant, _ = create_tenant("shop")
    template = Template.all_tenants.create(
        tenant=tenant, key="sms-1", channel="sms", legacy_tpl_id="SMS_1"
    )
    return services.add_version(
        template,
        subject="",
        body="{{ code }}",
        legacy_body="Code: $code",
        conversion_status="exact",
        conversion_report={"cases": [{"origin": "sample", "ref": "", "params": {"code": "42"}}]},
        verified_cases=1,
        mismatches=1,
    )


def test_version_page__converted__shows_both_renderings_and_difference(
    admin_client, converted_version
):
    # When
    url = reverse("admin:templates_store_templateversion_change", args=[converted_version.pk])
    response = admin_client.get(url + "?case=0")
    # Then
    page = response.content.decode()
    assert response.status_code == 200
    assert "Code: $code" in page  # legacy source
    assert "Code: 42" in page  # legacy rendering
    assert "DIFFERENT" in page
    assert "diff_" in page  # highlighted diff table


def test_approve_action__mismatches_remain__refused_and_not_published(
    admin_client, converted_version
):
    # When
    admin_client.post(
        reverse("admin:templates_store_templateversion_changelist"),
        {"action": "approve_conversion", "_selected_action": [converted_version.pk]},
        follow=True,
    )
    # Then
    converted_version.refresh_from_db()
    assert converted_version.conversion_approved_at is None
    assert converted_version.published is False


def test_approve_action__no_mismatch__approved_and_published(admin_client, converted_version):
    TemplateVersion.objects.filter(pk=converted_version.pk).update(mismatches=0)
    admin_client.post(
        reverse("admin:templates_store_templateversion_changelist"),
        {"action": "approve_conversion", "_selected_action": [converted_version.pk]},
    )
    converted_version.refresh_from_db()
    assert converted_version.conversion_approved_at is not None
    assert converted_version.published is True


def test_admin_pages__messages_and_tenants__load_with_masked_recipients(admin_client, db):
    from notify.messaging.services import MessageDraft, create_message

    tenant, _ = create_tenant("acme")
    create_message(
        tenant=tenant,
        draft=MessageDraft(
            channel="email", recipient="secret.person@example.com", subject="S", body="B"
        ),
    )
    page = admin_client.get(reverse("admin:messaging_message_changelist")).content.decode()
    assert "s***@example.com" in page
    assert "secret.person@example.com" not in page
    assert admin_client.get(reverse("admin:tenants_tenant_changelist")).status_code == 200
