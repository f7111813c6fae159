from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "notify.channels"
    label = "channels"
