from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "notify.tenants"
    label = "tenants"
