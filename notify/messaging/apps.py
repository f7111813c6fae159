from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "notify.messaging"
    label = "messaging"

    def ready(self) -> None:
        # tenant webhooks subscribe to message events
        from notify.messaging import webhooks  # noqa: F401
