from django.contrib import admin
from django.urls import include, path

from notify.api.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("v2/", include("notify.api.urls")),
]

handler404 = "notify.api.errors.json_404"
handler500 = "notify.api.errors.json_500"
