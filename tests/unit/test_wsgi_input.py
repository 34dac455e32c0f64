"""psa.wsgi_input: a chunked body is read up to the limit, never further, and sized for Django."""

from __future__ import annotations

import io

from psa.wsgi_input import TerminatedInput, read_bounded


class Stream(io.BytesIO):
    """Counts what was read, so a test can prove reading stopped at the limit."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.taken = 0

    def read(self, n=-1):
        out = super().read(n)
        self.taken += len(out)
        return out


def run(environ):
    seen, statuses = {}, []

    def app(env, start_response):
        seen["body"] = env["wsgi.input"].read(int(env.get("CONTENT_LENGTH") or 0))
        seen["length"] = env.get("CONTENT_LENGTH")
        start_response("200 OK", [])
        return [b"ok"]

    out = TerminatedInput(app, max_bytes=lambda: 10)(environ, lambda status, headers: statuses.append(status))
    return seen, statuses, b"".join(out)


def test_read_bounded_stops_one_byte_past_the_limit():
    stream = Stream(b"x" * 1000)
    assert read_bounded(stream, 10) is None
    assert stream.taken == 11
    assert read_bounded(Stream(b"abc"), 10) == b"abc"
    assert read_bounded(Stream(b"x" * 10), 10) == b"x" * 10


def test_chunked_request_gets_a_content_length():
    seen, statuses, _ = run({"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked",
                             "wsgi.input": Stream(b'{"a": 1}')})
    assert statuses == ["200 OK"] and seen == {"body": b'{"a": 1}', "length": "8"}


def test_chunked_request_over_the_limit_is_413_without_calling_the_app():
    seen, statuses, body = run({"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked",
                                "wsgi.input": Stream(b"y" * 50)})
    assert statuses == ["413 Request Entity Too Large"] and seen == {} and b"10-byte limit" in body


def test_sized_or_unterminated_requests_are_left_alone():
    # A Content-Length request is Django's business; a server that does not terminate the input
    # (reading could block past the body) is never read here.
    seen, _, _ = run({"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": "3",
                      "wsgi.input": Stream(b"abcdef")})
    assert seen == {"body": b"abc", "length": "3"}
    seen, _, _ = run({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": Stream(b"abcdef")})
    assert seen == {"body": b"", "length": None}
