"""Probes. `/livez`: the process answers (no dependency is touched). `/readyz` (and its alias
`/healthz`): the database and the broker answer, so this node can take traffic.

Anyone sees `{"status": "ok" | "unavailable"}` and the HTTP status (200 / 503). An operator (a
staff user's admin session, or `Authorization: Bearer <HEALTH_TOKEN>`) also sees each check."""

import hmac

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from notify.health import checks


def _has_health_token(request: HttpRequest) -> bool:
    expected = settings.HEALTH_TOKEN
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def _is_staff_session(request: HttpRequest) -> bool:
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False  # no session to look up: spares the database a query per probe
    try:
        user = request.user
        return bool(user.is_active and user.is_staff)
    except Exception:  # the session store (the database) may be the thing that is down
        return False


def is_operator(request: HttpRequest) -> bool:
    return _has_health_token(request) or _is_staff_session(request)


@never_cache
@require_safe
def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    report = checks.readiness()
    body: dict = {"status": "ok" if report.ready else "unavailable"}
    if is_operator(request):
        body["checks"] = report.checks
    return JsonResponse(body, status=200 if report.ready else 503)
