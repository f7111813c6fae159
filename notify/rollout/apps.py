from django.apps import AppConfig


class RolloutConfig(AppConfig):
    """Moving tenants from the legacy gateway to this platform: stages, batches, gates, audit."""

    name = "notify.rollout"
    label = "rollout"

    def ready(self) -> None:
        from notify.rollout import checks  # noqa: F401 - registers the system checks
