"""`manage.py check --database default`: the old gateway stays configured while any tenant can
still be routed to it, or rolled back to it within a batch's retention period."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning as CheckWarning
from django.core.checks import register
from django.db import DatabaseError


@register("rollout", "database")
def legacy_gateway_configured(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list:
    if not databases or settings.LEGACY_GATEWAY_URL:
        return []
    from notify.rollout.models import RolloutBatch
    from notify.tenants.models import Tenant

    try:
        routed = list(
            Tenant.objects.exclude(stage=Tenant.Stage.NEW)
            .exclude(app_key__isnull=True)
            .values_list("slug", flat=True)[:10]
        )
        retained = [
            b.name for b in RolloutBatch.objects.all() if b.can_roll_back and b.tenants.exists()
        ]
    except DatabaseError:
        return []  # (not migrated yet)
    problems = []
    if routed:
        problems.append(
            CheckWarning(
                "LEGACY_GATEWAY_URL is not set, yet tenants are not at stage `new`: "
                f"{', '.join(routed)}. Their legacy calls are answered by the platform.",
                hint="Set LEGACY_GATEWAY_URL to the old gateway, or move the tenants to `new`.",
                id="rollout.W001",
            )
        )
    elif retained:
        problems.append(
            CheckWarning(
                "LEGACY_GATEWAY_URL is not set while batches can still be rolled back: "
                f"{', '.join(retained[:10])}.",
                hint="Keep the old gateway configured until their retention periods end.",
                id="rollout.W002",
            )
        )
    return problems
