"""Rows kept until a time: deleted by the sweep, oldest first, a bounded number per run."""

from __future__ import annotations

from django.db.models import Q, QuerySet


def delete_expired(rows: QuerySet, expiry: Q, order_by: str, limit: int) -> int:
    """Deletes up to `limit` of `rows` matching `expiry`, in `order_by` order (a row that no
    longer matches when it is deleted, renewed meanwhile, stays). Returns how many."""
    expired = list(rows.filter(expiry).order_by(order_by).values_list("pk", flat=True)[:limit])
    if not expired:
        return 0
    return rows.filter(expiry, pk__in=expired).delete()[0]
