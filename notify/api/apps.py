from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "notify.api"
    label = "api"
