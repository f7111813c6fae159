"""gunicorn's settings for this project (gunicorn reads ./gunicorn.conf.py on start).

The legacy API must answer like the old gateway's HTTP server, which took any method name
(`get`, `GE`: an empty 405) and request lines up to 64 KB (a long `msg_id` in a query gets the
legacy JSON answer, not an HTML 400). gunicorn's own limits would answer those itself."""

# any method token reaches the view, as written (the legacy view answers 405 to it)
permit_unconventional_http_method = True
casefold_http_method = False
# no request-line limit below the old gateway's (gunicorn allows at most 8190 or none);
# bodies are bounded by the application (LEGACY_MAX_BODY_BYTES, DATA_UPLOAD_MAX_MEMORY_SIZE)
limit_request_line = 0
