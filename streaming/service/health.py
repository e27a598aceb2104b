"""`/metrics` (Prometheus) and `/healthz` for the stream processes that are not HTTP
services (the edge gateway, the IoT alert processor), on a background HTTP thread: each
says what healthy means through its probe."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from streaming.service.exposition import render

Probe = Callable[[], tuple[bool, dict[str, Any]]]


def serve(port: int, probe: Probe, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve both endpoints on `port` (a daemon thread); `/healthz` answers 200 when
    `probe` says healthy, 503 otherwise, with the probe's detail as JSON."""

    class Handler(BaseHTTPRequestHandler):
        """The two endpoints; anything else is 404."""

        def do_GET(self) -> None:
            """Answer /metrics or /healthz."""
            if self.path == "/metrics":
                body, content_type = render()
                status = 200
            elif self.path == "/healthz":
                healthy, detail = probe()
                body, content_type = json.dumps(detail).encode(), "application/json"
                status = 200 if healthy else 503
            else:
                body, content_type, status = b"not found\n", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            """Silent: scrapes every few seconds would flood the logs."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"health-{port}", daemon=True).start()
    return server
