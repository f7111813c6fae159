"""The floor of `make bench`'s request-rate goals: what the least possible accept costs on this
machine, measured beside the real one on the same server.

A web server started with `DJANGO_SETTINGS_MODULE=notify.bench_floor_settings` is the platform
(its settings, its URLs, unchanged) with two more URLs after its own and the legacy floor
answered where the legacy API is (LegacyFloorMiddleware). Each of their views
does only what any accept that stores its message before answering must do: parse the
request, insert one row, commit, answer. No key check, no validation, no events, no wake-up,
no delivery. Such a platform cannot accept faster than this floor on the same server, so a
goal above the floor cannot be met on this machine by any implementation in this stack. Only
the benchmarks serve this module."""

import json
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from notify.urls import handler400, handler403, handler404, handler500  # noqa: F401
from notify.urls import urlpatterns as platform_urlpatterns

FLOOR_TABLE = "bench_floor_message"
CREATE_FLOOR_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (id bigserial PRIMARY KEY, recipient text, "
    "body text, created_at timestamptz NOT NULL DEFAULT now())"
)
_INSERT = f"INSERT INTO {FLOOR_TABLE} (recipient, body) VALUES (%s, %s) RETURNING id"
_redis: redis.Redis | None = None


def _store(recipient: str, body: str) -> int:
    with connection.cursor() as cursor:  # (autocommit: the insert is its own transaction)
        cursor.execute(_INSERT, [recipient, body])
        return cursor.fetchone()[0]


@csrf_exempt
def accept_floor(request: HttpRequest) -> JsonResponse:
    """A JSON message parsed and stored."""
    data = json.loads(request.body)
    return JsonResponse({"id": _store(data["to"], data["body"]), "status": "queued"}, status=202)


@csrf_exempt
def accept_floor_with_redis(request: HttpRequest) -> JsonResponse:
    """The same after one Redis INCR: the least a per-tenant rate limit kept in Redis costs."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL)
    _redis.incr("notify-bench:floor")
    return accept_floor(request)


def legacy_send_floor(request: HttpRequest) -> JsonResponse:
    """A legacy form-encoded send parsed and stored, answered in the legacy shape."""
    ident = _store(request.POST["mobiles"], request.POST.get("tpl_params", ""))
    return JsonResponse({"code": 0, "msg": "success", "data": {"msg_id": str(ident)}})


LEGACY_FLOOR_PATH = "/bench-floor/sms/send.do"


class LegacyFloorMiddleware:
    """Answers the legacy floor where the legacy API is answered (before the platform's own
    middleware: compat.middleware), so the floor skips what a real /gateway call skips."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == LEGACY_FLOOR_PATH:
            return legacy_send_floor(request)
        return self.get_response(request)


# after the platform's own patterns, so that nothing of the platform resolves differently
urlpatterns = [
    *platform_urlpatterns,
    path("bench-floor/accept", accept_floor),
    path("bench-floor/accept-redis", accept_floor_with_redis),
]
