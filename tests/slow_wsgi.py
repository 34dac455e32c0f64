"""A WSGI app for the web worker's fairness test: every request sleeps ``?ms=`` milliseconds and
answers its own path (stands in for busy request threads without a database)."""

import time
from urllib.parse import parse_qs


def app(environ, start_response):
    ms = int(parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["0"])[0])
    time.sleep(ms / 1000)
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
