import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from notify.tenants.models import ApiKey, Tenant
from notify.tenants.services import create_tenant

DEMO_KEY_NAME = "make run"


class Command(BaseCommand):
    help = "Creates (or refreshes) the demo tenant, a fresh demo API key and the admin user."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    @transaction.atomic
    def handle(self, *args: object, base_url: str, **options: object) -> None:
        tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is None:
            tenant, _ = create_tenant("demo", name="Demo tenant")
        # The demo tenant approves its own templates, so a template made through the API can be
        # sent at once. Real tenants get this from the operator, in the admin.
        if not tenant.templates_self_approve:
            tenant.templates_self_approve = True
            tenant.save(update_fields=["templates_self_approve", "updated_at"])
        # One live demo key at a time: earlier runs' keys are revoked.
        ApiKey.objects.filter(tenant=tenant, name=DEMO_KEY_NAME, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        _, raw_key = ApiKey.generate(tenant, name=DEMO_KEY_NAME)

        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        admin, _ = user_model.objects.get_or_create(
            username="admin", defaults={"email": "admin@localhost"}
        )
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()

        self.stdout.write(
            f"""
Notify is starting.
  Admin:    {base_url}/admin/   user: admin   password: {password}
  Health:   {base_url}/readyz   (details when logged in to the admin)
  API key:  {raw_key}   (tenant "demo")

Send a test message:
  curl -s -X POST {base_url}/v2/messages \\
    -H 'Authorization: Bearer {raw_key}' -H 'Content-Type: application/json' \\
    -d '{{"channel": "email", "to": "someone@example.com", "subject": "Hi", "body": "It works."}}'
Then: curl -s -H 'Authorization: Bearer {raw_key}' {base_url}/v2/messages/<id>
"""
        )
