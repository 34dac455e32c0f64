"""A small threaded HTTP server on loopback for provider simulators.

A simulator subclasses :class:`SimulatorServer`, registers routes with :meth:`route`
and keeps its state in plain attributes. Shared knobs: ``delay`` (seconds before each
answer), ``fail_next(n, status)`` (the next n requests answer an error), ``html_mode``
(every path answers a web page, like a dashboard host), and a call log so a test can
assert what the product sent (``calls``, ``calls_to``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

SENSITIVE = ("authorization", "x-api-key", "cookie")


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    status: int = 0


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes/str sent as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    params: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Reply]
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Dashboard</title></head>"
    "<body><div id='q-app'></div><script src='/js/app.js'></script></body></html>"
)


class SimulatorServer:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._lock = threading.RLock()
        self.calls: list[Call] = []
        self.delay = 0.0
        self.html_mode = False
        self._fail: list[tuple[int, Any, dict[str, str]]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routing --------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """``pattern`` uses ``{name}`` for one path segment, e.g. ``/alerts/{pk}/``."""
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self._routes.append((method.upper(), re.compile(regex), handler))

    def not_found(self, request: Request) -> Reply:
        return Reply(404, "<h1>Not Found</h1><p>The requested resource was not found on this server.</p>",
                     content_type="text/html")

    # -- knobs ----------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, body: Any = None, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._fail.extend([(status, body, headers or {})] * n)

    def calls_to(self, method: str, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method.upper() and c.path == path]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- dispatch -------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            failure = self._fail.pop(0) if self._fail else None
        if failure is not None:
            status, body, headers = failure
            return Reply(status, body if body is not None else "<h1>Server Error (500)</h1>", headers=headers,
                         content_type="application/json" if body is not None else "text/html")
        if self.html_mode:
            return Reply(200, HTML_PAGE, content_type="text/html; charset=utf-8")
        allowed: list[str] = []
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.params = match.groupdict()
            return handler(request)
        if allowed:
            return Reply(405, {"detail": f'Method "{request.method}" not allowed.'})
        return self.not_found(request)

    # -- server ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "simulator not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimulatorServer:
        sim = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the client's delayed ACK holds
            # every keep-alive answer back ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                request = Request(self.command, parts.path, query, headers, body, raw)
                try:
                    reply = sim.dispatch(request)
                except Exception as exc:  # noqa: BLE001 - a simulator bug must be visible, not a hang
                    reply = Reply(500, {"detail": f"simulator error: {exc!r}"})
                call = Call(self.command, parts.path, query, body,
                            {k: ("[redacted]" if k in SENSITIVE else v) for k, v in headers.items()}, reply.status)
                with sim._lock:
                    sim.calls.append(call)
                if isinstance(reply.body, bytes):
                    payload = reply.body
                elif isinstance(reply.body, str) and not reply.content_type.startswith("application/json"):
                    payload = reply.body.encode()
                else:
                    payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
