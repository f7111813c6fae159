"""Structured logs: with LOG_FORMAT=json each line is a JSON object with the ids it is about
and the request it belongs to; the answer carries the request id."""

import json
import logging

from notify.logs import JsonFormatter, RequestIdFilter


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_message_accepted__json_line__message_tenant_and_request_ids(api_client, monkeypatch):
    # Given JSON lines captured from the messaging service
    monkeypatch.setattr("notify.messaging.services.enqueue_delivery", lambda message_id: None)
    lines = Lines()
    logger = logging.getLogger("notify.messaging.services")
    logger.addHandler(lines)
    try:
        # When a message is accepted with the caller's request id
        response = api_client.post(
            "/v2/messages",
            {"channel": "email", "to": "ana@example.com", "subject": "S", "body": "B"},
            format="json",
            HTTP_X_REQUEST_ID="req-42",
        )
    finally:
        logger.removeHandler(lines)
    # Then its line carries the ids, and the recipient only masked
    (line,) = [entry for entry in lines.lines if entry["message"].startswith("message queued")]
    assert line["message_id"] == response.json()["id"]
    assert line["tenant"] == "acme" and line["request_id"] == "req-42"
    assert "ana@example.com" not in json.dumps(line) and "a***@example.com" in line["message"]
    # And the answer carries the request id back
    assert response.headers["X-Request-Id"] == "req-42"


def test_request_id__missing_or_unusable__a_new_one(anonymous_client):
    for given in ("", "bad id with spaces\n"):
        response = anonymous_client.get("/livez", HTTP_X_REQUEST_ID=given)
        assert len(response.headers["X-Request-Id"]) == 32


def test_logging_settings__log_format_json__handler_uses_the_json_formatter_and_request_ids():
    # (what LOG_FORMAT=json selects, as settings.LOGGING wires it)
    from django.conf import settings

    assert settings.LOGGING["formatters"]["json"]["()"] == "notify.logs.JsonFormatter"
    assert settings.LOGGING["filters"]["request_id"]["()"] == "notify.logs.RequestIdFilter"
    handlers = settings.LOGGING["handlers"].values()
    assert any("request_id" in handler.get("filters", []) for handler in handlers)
