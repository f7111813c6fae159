from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "notify.messaging"
    label = "messaging"
