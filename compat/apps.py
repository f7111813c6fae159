from django.apps import AppConfig


class CompatConfig(AppConfig):
    """The legacy `/gateway/*.do` facade (later issues)."""

    name = "compat"
