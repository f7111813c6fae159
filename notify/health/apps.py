from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "notify.health"
    label = "health"
