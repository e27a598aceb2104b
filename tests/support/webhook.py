"""A real local HTTP receiver for the alert webhook: it records every POST it accepts and
can be taken down (503 for every request) and brought back, to test delivery through an
outage. Shared by the alert tests and the alert benchmark."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tests.support.net import free_port


class WebhookReceiver:
    """Collects alert records POSTed to `url` with their `Idempotency-Key`; `down` makes it
    answer 503 and keep nothing."""

    def __init__(self) -> None:
        self.port = free_port()
        self.records: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self.received_at: list[float] = []
        self.refused = 0
        self.down = False
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    if receiver.down:
                        receiver.refused += 1
                        self.send_response(503)
                    else:
                        receiver.records.append(orjson.loads(body))
                        receiver.keys.append(self.headers.get("Idempotency-Key", ""))
                        receiver.received_at.append(time.time())
                        self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where the processor should POST."""
        return f"http://127.0.0.1:{self.port}/alerts"

    def start(self) -> WebhookReceiver:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def event_ids(self) -> list[str]:
        """The event ids received, in arrival order (duplicates kept)."""
        with self._lock:
            return [str(record["event_id"]) for record in self.records]
