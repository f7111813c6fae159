from django.core.management import call_command
from django.db import connection

from notify.tenants.models import ApiKey, Tenant, hash_api_key


def test_create_tenant_command__new_slug__prints_working_key_on_last_line(db, capsys):
    # When
    call_command("create_tenant", "shop", "--name", "Shop")
    # Then
    raw_key = capsys.readouterr().out.strip().splitlines()[-1]
    key = ApiKey.objects.get(tenant__slug="shop")
    assert key.key_hash == hash_api_key(raw_key)
    assert raw_key not in (key.key_hash, key.prefix)
    assert raw_key.startswith(key.prefix)


def test_create_tenant_command__existing_slug__error(db, capsys):
    call_command("create_tenant", "shop")
    try:
        call_command("create_tenant", "shop")
    except Exception as exc:  # CommandError
        assert "already exists" in str(exc)
    else:
        raise AssertionError("second create_tenant with the same slug succeeded")
    assert Tenant.objects.filter(slug="shop").count() == 1


def test_tenant_app_secret__saved__encrypted_at_rest_and_readable(db):
    # Given
    tenant = Tenant.objects.create(slug="bank", name="Bank", app_key="ak_bank", app_secret="s3cr3t")
    # When
    with connection.cursor() as cursor:
        cursor.execute("SELECT app_secret FROM tenants_tenant WHERE id = %s", [tenant.pk])
        stored = cursor.fetchone()[0]
    # Then
    assert "s3cr3t" not in stored and stored.startswith("fernet:")
    assert Tenant.objects.get(pk=tenant.pk).app_secret == "s3cr3t"
