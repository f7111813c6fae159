from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from notify.api import receipts, templates, unsubscribe
from notify.api.inbox import Inbox, InboxItemState, InboxReadAll
from notify.api.messages import (
    BatchDetail,
    MessageBatchCreate,
    MessageCancel,
    MessageDetail,
    MessageRetry,
    Messages,
)
from notify.api.providers import ProviderDetail, Providers
from notify.api.recipients import Preferences, Suppressions
from notify.api.webhooks import WebhookDeliveries, WebhookDetail, Webhooks

urlpatterns = [
    path("messages", Messages.as_view(), name="message-create"),
    path("messages/batch", MessageBatchCreate.as_view(), name="message-batch"),
    path("batches/<str:batch_id>", BatchDetail.as_view(), name="batch-detail"),
    path("messages/<str:message_id>", MessageDetail.as_view(), name="message-detail"),
    path("messages/<str:message_id>/retry", MessageRetry.as_view(), name="message-retry"),
    path("messages/<str:message_id>/cancel", MessageCancel.as_view(), name="message-cancel"),
    path("suppressions", Suppressions.as_view(), name="suppressions"),
    path("providers", Providers.as_view(), name="providers"),
    path("inbox/<str:recipient>", Inbox.as_view(), name="inbox"),
    path("inbox/<str:recipient>/read-all", InboxReadAll.as_view(), name="inbox-read-all"),
    path(
        "inbox/<str:recipient>/<str:message_id>",
        InboxItemState.as_view(),
        name="inbox-item",
    ),
    path("webhooks", Webhooks.as_view(), name="webhooks"),
    path("webhooks/<int:webhook_id>", WebhookDetail.as_view(), name="webhook-detail"),
    path(
        "webhooks/<int:webhook_id>/deliveries",
        WebhookDeliveries.as_view(),
        name="webhook-deliveries",
    ),
    path("providers/<int:provider_id>", ProviderDetail.as_view(), name="provider-detail"),
    path("preferences", Preferences.as_view(), name="preferences"),
    path("receipts/http/<str:channel>", receipts.http_receipt, name="receipt-http"),
    path("unsubscribe/<str:token>", unsubscribe.unsubscribe_view, name="unsubscribe"),
    path(
        "receipts/providers/<int:provider_id>", receipts.provider_receipt, name="receipt-provider"
    ),
    path("templates", templates.TemplateListCreate.as_view(), name="template-list"),
    path("templates/convert", templates.TemplateConvert.as_view(), name="template-convert"),
    path("templates/<slug:key>", templates.TemplateDetail.as_view(), name="template-detail"),
    path(
        "templates/<slug:key>/versions",
        templates.VersionListCreate.as_view(),
        name="template-versions",
    ),
    path(
        "templates/<slug:key>/versions/<int:number>",
        templates.VersionDetail.as_view(),
        name="template-version-detail",
    ),
    path(
        "templates/<slug:key>/versions/<int:number>/publish",
        templates.VersionPublish.as_view(),
        name="template-version-publish",
    ),
    path("templates/<slug:key>/rollback", templates.TemplateRollback.as_view(), name="rollback"),
    path("templates/<slug:key>/render", templates.TemplateRender.as_view(), name="render"),
    path(
        "schema",
        SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]),
        name="schema",
    ),
    path(
        "docs",
        SpectacularSwaggerView.as_view(
            url_name="schema", permission_classes=[], authentication_classes=[]
        ),
        name="docs",
    ),
]
