"""Tenant scoping that fails closed: a scoped query without a tenant raises."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from notify.tenants.models import Tenant


class TenantScopeMissing(Exception):
    pass


class TenantScopedQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant | None) -> TenantScopedQuerySet:
        if tenant is None or tenant.pk is None:
            raise TenantScopeMissing(f"{self.model.__name__} queried without a tenant")
        return self.filter(tenant_id=tenant.pk)
