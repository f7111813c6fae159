from django.apps import AppConfig


class TemplatesStoreConfig(AppConfig):
    name = "templates_store"
    verbose_name = "Templates"
