"""A small real HTTP server on 127.0.0.1 for sources' tests: fixed documents by path, every request recorded."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class Documents:
    """What the server answers: path (percent-decoded, query kept apart) → (content type, body)."""

    def __init__(self, routes: Mapping[str, tuple[str, bytes | str]] | None = None) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.paths: list[str] = []
        self.origin = ""
        self.lock = threading.Lock()
        for path, (kind, body) in (routes or {}).items():
            self.put(path, kind, body)

    def put(self, path: str, kind: str, body: bytes | str) -> None:
        self.routes[path] = (kind, body.encode() if isinstance(body, str) else body)

    def take(self) -> list[str]:
        """The paths asked for since the last call."""
        with self.lock:
            paths, self.paths = self.paths, []
        return paths


@contextmanager
def serving(documents: Documents) -> Iterator[Documents]:
    """Serve ``documents`` on a free port of 127.0.0.1 while the block runs; ``documents.origin`` is its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            with documents.lock:
                documents.paths.append(path)
            found = documents.routes.get(path)
            status, kind, body = (200, *found) if found else (404, "text/plain", b"not found")
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with listening(Handler) as origin:
        documents.origin = origin
        yield documents


@contextmanager
def listening(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threading HTTP server with ``handler`` on a free port of 127.0.0.1 while the block runs; yields its
    origin (``http://127.0.0.1:PORT``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        server.server_close()
        thread.join()
