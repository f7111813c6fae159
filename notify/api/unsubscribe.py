"""`/v2/unsubscribe/<token>`: the one-click unsubscribe of a bulk email (RFC 8058). A POST
(what mail clients send: `List-Unsubscribe=One-Click`) opts the recipient out; a GET shows a
page with a button doing the same POST (a GET changes nothing: mail scanners follow links).
No API key: the signed token is the authority, for that recipient and category only."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt

from notify.api.errors import error_body
from notify.messaging import unsubscribe

MAX_TOKEN_CHARS = 2000

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Unsubscribe</h1><p>{what}</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form></main></body></html>"""
DONE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribed</title></head>
<body><main><h1>Unsubscribed</h1><p>{what} will not get these emails any more.</p></main>
</body></html>"""


@csrf_exempt
def unsubscribe_view(request: HttpRequest, token: str) -> HttpResponse:
    found = unsubscribe.read_token(token) if len(token) <= MAX_TOKEN_CHARS else None
    if found is None:
        return JsonResponse(error_body("not_found", "No such unsubscribe link."), status=404)
    what = escape(found.recipient) + (
        f" (emails of the kind “{escape(found.category)}”)" if found.category else ""
    )
    if request.method == "GET":
        return HttpResponse(PAGE.format(what=f"Stop emails to {what}?"))
    if request.method != "POST":
        response = JsonResponse(
            error_body("method_not_allowed", "GET shows the page; POST unsubscribes."), status=405
        )
        response["Allow"] = "GET, POST"
        return response
    unsubscribe.opt_out(found)
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"unsubscribed": True})
    return HttpResponse(DONE.format(what=what))
