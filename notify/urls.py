from django.contrib import admin
from django.urls import include, path

from notify.health.metrics import metrics
from notify.health.views import livez, readyz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("livez", livez, name="livez"),
    path("readyz", readyz, name="readyz"),
    # The name earlier deployments probe: the same answer as /readyz.
    path("healthz", readyz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("v2/", include("notify.api.urls")),
    # the platform's own ESP's tracking webhooks (EMAIL_BACKEND an anymail backend)
    path("anymail/", include("anymail.urls")),
]

handler404 = "notify.api.errors.json_404"
handler500 = "notify.api.errors.json_500"
