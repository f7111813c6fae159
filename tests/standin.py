"""A provider's JSON API on loopback, for the tests that check requests as the provider
documents them: each POST goes to `respond(path, headers, raw)`, whose (status, answer, extra
headers) is sent back, the answer as JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonStandIn:
    content_type = "application/json"

    def __init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer, headers = stand_in.respond(self.path, self.headers, raw)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", stand_in.content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, path: str, headers, raw: bytes) -> tuple[int, object, dict[str, str]]:  # noqa: ANN001
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
