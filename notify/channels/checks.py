"""`manage.py check --deploy`: development transports are not for production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning as CheckWarning
from django.core.checks import register


@register("channels", deploy=True)
def no_development_transport(app_configs: Any = None, **kwargs: Any) -> list:
    if not settings.NOTIFY_DEV_TRANSPORT:
        return []
    return [
        CheckWarning(
            f"NOTIFY_DEV_TRANSPORT={settings.NOTIFY_DEV_TRANSPORT}: SMS and push without a "
            "provider are written to a file or the log and counted as delivered.",
            hint="Unset NOTIFY_DEV_TRANSPORT and configure SMS_HTTP_URL / PUSH_HTTP_URL or the "
            "tenants' providers.",
            id="channels.W001",
        )
    ]
