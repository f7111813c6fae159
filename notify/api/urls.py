from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from notify.api.messages import MessageCreate, MessageDetail

urlpatterns = [
    path("messages", MessageCreate.as_view(), name="message-create"),
    path("messages/<str:message_id>", MessageDetail.as_view(), name="message-detail"),
    path(
        "schema",
        SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]),
        name="schema",
    ),
]
