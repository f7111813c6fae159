"""Each process keeps a used API key for NOTIFY_API_KEY_CACHE_SECONDS; what changes a key or
its tenant in this process applies at once, what changes it elsewhere within that time."""

from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.utils import timezone

from notify.tenants.admin import ApiKeyAdmin
from notify.tenants.models import ApiKey

LIST = "/v2/messages"


def test_api_key__revoked_after_use__refused_at_once(api_client, tenant):
    # Given a key whose tenant is kept by this process
    assert api_client.get(LIST).status_code == 200
    # When it is revoked
    tenant.api_keys.get().revoke()
    # Then the next call is refused
    response = api_client.get(LIST)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_api_key__revoked_by_admin_action_after_use__refused_at_once(
    api_client, tenant, admin_user
):
    assert api_client.get(LIST).status_code == 200
    request = RequestFactory().post("/admin/tenants/apikey/")
    request.user = admin_user
    admin = ApiKeyAdmin(ApiKey, site)
    admin.message_user = lambda *args, **kwargs: None
    admin.revoke(request, ApiKey.objects.filter(tenant=tenant))
    assert api_client.get(LIST).status_code == 401


def test_api_key__tenant_disabled_after_use__refused_at_once(api_client, tenant):
    assert api_client.get(LIST).status_code == 200
    tenant.status = tenant.Status.DISABLED
    tenant.save()
    assert api_client.get(LIST).status_code == 401


def test_api_key__revoked_elsewhere__refused_once_the_cache_time_is_over(
    api_client, tenant, settings
):
    # Given a kept key
    settings.NOTIFY_API_KEY_CACHE_SECONDS = 60
    assert api_client.get(LIST).status_code == 200
    # When another process revokes it (no signal reaches this one)
    ApiKey.objects.filter(tenant=tenant).update(revoked_at=timezone.now())
    # Then this process still answers with its copy until that copy's time is over
    assert api_client.get(LIST).status_code == 200
    settings.NOTIFY_API_KEY_CACHE_SECONDS = 0
    assert api_client.get(LIST).status_code == 401


def test_api_key__created_after_an_unknown_key_was_tried__accepted_at_once(
    anonymous_client, tenant
):
    # a lookup that found nothing is not kept
    key, raw = ApiKey.generate(tenant, name="second")
    ApiKey.objects.filter(pk=key.pk).delete()
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anonymous_client.get(LIST).status_code == 401
    ApiKey.objects.create(tenant=tenant, name="second", prefix=key.prefix, key_hash=key.key_hash)
    assert anonymous_client.get(LIST).status_code == 200
