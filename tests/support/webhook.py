"""A real HTTP endpoint on 127.0.0.1 for notification tests: it keeps every POST it gets.

Apprise's ``json://127.0.0.1:PORT/PATH`` posts ``{"title": ..., "message": ..., ...}`` here.
``status`` is what it answers (set it to 500 to play a broken chat service).  The server
runs on a thread of its own, stopped and joined by the context manager.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from support.net import LOCALHOST


@dataclass
class Post:
    path: str
    body: dict[str, Any]


class Webhook:
    def __init__(self, status: int = 200):
        self.status = status
        self.posts: list[Post] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.posts.append(Post(self.path, json.loads(raw or b"{}")))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: pytest shows stderr of failures

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook",
                                       kwargs={"poll_interval": 0.05})

    def url(self, path: str = "hook") -> str:
        return f"json://{LOCALHOST}:{self.port}/{path}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "webhook thread did not stop"
