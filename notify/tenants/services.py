from django.db import transaction
from django.utils.text import slugify

from notify.tenants.models import ApiKey, Tenant


@transaction.atomic
def create_tenant(slug: str, name: str = "", **fields: object) -> tuple[Tenant, str]:
    """Creates a tenant with one API key; returns the tenant and the raw key."""
    slug = slugify(slug)
    if not slug:
        raise ValueError("slug must contain letters or digits")
    if len(slug) > 64:
        raise ValueError("slug must be at most 64 characters")
    if Tenant.objects.filter(slug=slug).exists():
        raise ValueError(f"tenant {slug!r} already exists")
    tenant = Tenant.objects.create(slug=slug, name=name or slug, **fields)
    _, raw_key = ApiKey.generate(tenant)
    return tenant, raw_key
