from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "notify.tenants"
    label = "tenants"

    def ready(self) -> None:
        from notify.tenants import selectors  # noqa: F401 - connects its signal receivers
