"""Tenant scoping that fails closed.

A tenant-owned model's `objects` answers only queries scoped to a tenant (`.for_tenant(t)`):
any other query raises TenantScopeMissing when it would touch the database, so a query that
forgets its tenant is an error, never silently global. Code that works across tenants by
design (workers, the sweep, the admin, migrations, API key lookup) says so: `all_tenants`,
which is also the model's default manager (related managers and the admin use it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from notify.tenants.models import Tenant


class TenantScopeMissing(Exception):
    pass


class TenantScopedQuerySet(models.QuerySet):
    _tenant_scoped = False

    def for_tenant(self, tenant: Tenant | None) -> TenantScopedQuerySet:
        if tenant is None or tenant.pk is None:
            raise TenantScopeMissing(f"{self.model.__name__} queried without a tenant")
        scoped = self.filter(tenant_id=tenant.pk)
        scoped._tenant_scoped = True
        return scoped

    def _clone(self) -> TenantScopedQuerySet:
        clone = super()._clone()
        clone._tenant_scoped = self._tenant_scoped
        return clone

    def _require_tenant(self) -> None:
        if not self._tenant_scoped:
            raise TenantScopeMissing(
                f"{self.model.__name__}.objects queried without .for_tenant(tenant); "
                f"use {self.model.__name__}.all_tenants where crossing tenants is intended"
            )

    def _fetch_all(self) -> None:
        if self._result_cache is None:
            self._require_tenant()
        super()._fetch_all()

    def count(self) -> int:
        self._require_tenant()
        return super().count()

    def exists(self) -> bool:
        self._require_tenant()
        return super().exists()

    def update(self, **kwargs: Any) -> int:
        self._require_tenant()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        self._require_tenant()
        return super().delete()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._require_tenant()
        return super().aggregate(*args, **kwargs)

    def iterator(self, chunk_size: int | None = None) -> Any:
        self._require_tenant()
        return super().iterator(chunk_size=chunk_size)

    def contains(self, obj: models.Model) -> bool:
        self._require_tenant()
        return super().contains(obj)


class AllTenantsQuerySet(TenantScopedQuerySet):
    """Deliberately across tenants."""

    _tenant_scoped = True


TenantScopedManager = models.Manager.from_queryset(TenantScopedQuerySet)
AllTenantsManager = models.Manager.from_queryset(AllTenantsQuerySet)
