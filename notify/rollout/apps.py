from django.apps import AppConfig


class RolloutConfig(AppConfig):
    """Per-tenant routing between the legacy gateway and this platform (later issues)."""

    name = "notify.rollout"
    label = "rollout"
