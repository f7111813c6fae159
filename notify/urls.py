from anymail import urls as anymail_urls
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, include, path
from django.views.decorators.csrf import csrf_exempt

from notify.api.errors import json_404
from notify.health.metrics import metrics
from notify.health.views import livez, readyz


def anymail_tracking_patterns() -> list[URLPattern]:
    """anymail's tracking webhooks (not its inbound ones: the platform receives no mail),
    each answering only while ANYMAIL's WEBHOOK_SECRET is set: without it an ESP that does not
    sign would let anyone report on the platform's email."""

    def guarded(view):  # noqa: ANN001, ANN202
        @csrf_exempt
        def tracking(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
                return json_404(request)
            return view(request, *args, **kwargs)

        return tracking

    return [
        URLPattern(pattern.pattern, guarded(pattern.callback), pattern.default_args, pattern.name)
        for pattern in anymail_urls.urlpatterns
        if isinstance(pattern, URLPattern) and "tracking" in (pattern.name or "")
    ]


urlpatterns = [
    path("admin/", admin.site.urls),
    path("livez", livez, name="livez"),
    path("readyz", readyz, name="readyz"),
    # The name earlier deployments probe: the same answer as /readyz.
    path("healthz", readyz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("v2/", include("notify.api.urls")),
    # the platform's own ESP's tracking webhooks (EMAIL_BACKEND an anymail backend)
    path("anymail/", include((anymail_tracking_patterns(), "anymail"))),
]

handler400 = "notify.api.errors.json_400"
handler403 = "notify.api.errors.json_403"
handler404 = "notify.api.errors.json_404"
handler500 = "notify.api.errors.json_500"
