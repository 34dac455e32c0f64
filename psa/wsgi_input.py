"""Chunked request bodies for Django under a WSGI server that terminates the input (gunicorn).

Django sizes ``request.body`` by CONTENT_LENGTH; a ``Transfer-Encoding: chunked`` request has
none, so Django read it as empty (a webhook stored with a 0-byte body, an API POST seen with no
fields). When the server says the input is terminated (``wsgi.input_terminated``: reading it
ends at the end of the body), this reads the body here, at most ``max_bytes`` of it, and hands
Django a sized copy. A body over the limit is refused with 413 before the app sees it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable

READ_SIZE = 64 * 1024


def _limit() -> int:
    from django.conf import settings

    # The largest body any view accepts: the API's cap, which is above the webhook limit, so
    # intake still answers an oversized webhook itself (413, logged for a proven sender).
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _too_large(start_response: Callable, limit: int) -> Iterable[bytes]:
    body = json.dumps({"detail": f"Body over the {limit}-byte limit."}).encode()
    start_response(
        "413 Request Entity Too Large",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class TerminatedInput:
    """WSGI middleware: give a chunked (unsized, terminated) body a CONTENT_LENGTH."""

    def __init__(self, app: Callable, max_bytes: Callable[[], int] = _limit):
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (
            environ.get("wsgi.input_terminated")
            and not environ.get("CONTENT_LENGTH")
            and environ.get("HTTP_TRANSFER_ENCODING")
        ):
            limit = self.max_bytes()
            body = read_bounded(environ["wsgi.input"], limit)
            if body is None:
                return _too_large(start_response, limit)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def read_bounded(stream, limit: int) -> bytes | None:
    """The whole stream, or None as soon as more than ``limit`` bytes arrived (never reads further)."""
    buf = bytearray()
    while True:
        chunk = stream.read(min(READ_SIZE, limit + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            return None
