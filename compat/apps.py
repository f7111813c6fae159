from django.apps import AppConfig


class CompatConfig(AppConfig):
    """The old world: the legacy `/gateway/*.do` API (native and proxy), its delivery reports
    and the legacy import."""

    name = "compat"

    def ready(self) -> None:
        # the legacy delivery reports subscribe to message events
        from compat import callbacks  # noqa: F401
