"""Every request whose path starts with /gateway (in any case) is the legacy API's, routed as
the old gateway routed it: on the path exactly as the client sent it (`send%2Edo` is not
`send.do`; leading slashes collapsed, as its HTTP server did), before the platform's own
middleware and URLs (no sessions, CSRF or JSON error pages for these callers)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse

from compat.views import gateway


def raw_path(request: HttpRequest) -> str:
    """The request target's path as sent (gunicorn's RAW_URI), else the decoded PATH_INFO; read
    as the old gateway's server read it: leading slashes collapsed, then `urlsplit` (which
    drops an absolute URI's scheme and host, the query and a `#fragment`)."""
    target = request.META.get("RAW_URI") or ""
    if not target:
        return request.path_info
    if target.startswith("//"):
        target = "/" + target.lstrip("/")
    return urlsplit(target).path


class LegacyGatewayMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = raw_path(request)
        if path[:8].lower() == "/gateway":
            return gateway(request, path)
        return self.get_response(request)
