from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "notify.channels"
    label = "channels"

    def ready(self) -> None:
        from notify.channels import checks  # noqa: F401 - registers the deploy check
