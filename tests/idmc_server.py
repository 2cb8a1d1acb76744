"""A local HTTP server serving IDMC-shaped JSON (the real IDMC API is unreachable in tests)."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

IDU_RECORDS: list[dict[str, Any]] = [
    {"id": 101, "country": "Afghanistan", "iso3": "AFG", "figure": 1200,
     "displacement_date": "2024-01-10", "displacement_type": "Conflict"},
    {"id": 102, "country": "Afghanistan", "iso3": "AFG", "figure": 300,
     "displacement_date": "2024-01-25", "displacement_type": "Disaster"},
    {"id": 103, "country": "Côte d'Ivoire", "iso3": "CIV", "figure": 50,
     "displacement_date": "2024-02-03", "displacement_type": "Disaster"},
    {"id": 104, "country": "DR Congo", "iso3": "COD", "figure": 4000,
     "displacement_date": "2024-02-14", "displacement_type": "Conflict"},
    {"id": 105, "country": "Atlantis", "iso3": "ATL", "figure": 10,
     "displacement_date": "2024-02-20", "displacement_type": "Disaster"},
]  # fmt: skip


class IdmcServer:
    """Answers each path from a script: a list of (status, body) used in order, the last one
    repeated. ``hits[path]`` counts the requests."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, Any]]] = {}
        self.hits: dict[str, int] = defaultdict(int)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                answers = server.script.get(path) or [(404, {"detail": "Not found."})]
                index = min(server.hits[path], len(answers) - 1)
                server.hits[path] += 1
                status, body = answers[index]
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/external-api"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, path: str, *answers: tuple[int, Any]) -> None:
        self.script["/external-api" + path] = list(answers)

    def count(self, path: str) -> int:
        return self.hits["/external-api" + path]

    def start(self) -> IdmcServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
