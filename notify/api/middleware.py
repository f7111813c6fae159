"""HTTP the platform's own URLs refuse before any view (the legacy /gateway API is routed
before this, and reads bodies as the old gateway did)."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from notify.api.errors import error_body

# the methods whose body the API reads
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class LengthRequiredMiddleware:
    """A body sent in chunks without a Content-Length: Django reads a body by its length only,
    so the request would be answered as if it had none (a misleading "field required")."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and request.method in BODY_METHODS and not request.META.get("CONTENT_LENGTH"):
            return JsonResponse(
                error_body(
                    "length_required",
                    "Send the body with a Content-Length header: chunked bodies are not read.",
                ),
                status=411,
            )
        return self.get_response(request)
