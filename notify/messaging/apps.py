from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "notify.messaging"
    label = "messaging"

    def ready(self) -> None:
        # fallbacks, the inbox and tenant webhooks subscribe to message events
        from notify.messaging import fallback, inbox, receipts, webhooks  # noqa: F401
