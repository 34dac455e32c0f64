"""integrations.http against a server that silently drops kept-alive connections.

Real servers (Tactical RMM behind nginx/uvicorn, load balancers) close an idle keep-alive
connection when their timer fires, without a ``Connection: close`` on the last answer. When our
next request crosses that close on the wire it fails before any answer (httpx ReadError or
RemoteProtocolError). The shared layer sends an idempotent request once more on a fresh
connection and never replays a POST or PATCH the server may have acted on.

The loopback server below answers the first request of every connection with keep-alive, then
treats the connection as timed out: the next request on it is read and the socket closed with no
answer (FIN, or a reset). That is the race made deterministic.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Self

import httpx
import pytest
import respx

from integrations import http as phttp
from integrations.errors import Unavailable


@dataclass
class Seen:
    connection: int
    method: str
    path: str
    body: bytes
    answered: bool


class IdleClosingServer:
    """HTTP/1.1 on loopback: ``answers_per_connection`` answers, then drops the connection.

    ``drop``: "close" (orderly FIN: the client sees the server disconnect without an answer) or
    "reset" (RST: the client's read fails). ``answers_per_connection=0`` drops every request.
    """

    def __init__(self, *, answers_per_connection: int = 1, drop: str = "close", answer_delay: float = 0.0):
        self.answers_per_connection = answers_per_connection
        self.drop = drop
        self.answer_delay = answer_delay
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._connections += 1
                number = self._connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket, buffer: bytes) -> tuple[str, str, bytes, bytes] | None:
        while b"\r\n\r\n" not in buffer:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return method, path, rest[:length], rest[length:]

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(10)
        answered, buffer = 0, b""
        try:
            while True:
                request = self._read_request(conn, buffer)
                if request is None:
                    return  # the client closed its side
                method, path, body, buffer = request
                answer = answered < self.answers_per_connection
                with self._lock:
                    self.seen.append(Seen(number, method, path, body, answer))
                if not answer:
                    if self.drop == "reset":  # RST instead of FIN
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return  # idle timer fired: close without a word (finally closes)
                if self.answer_delay:
                    time.sleep(self.answer_delay)
                payload = json.dumps({"connection": number, "path": path}).encode()
                # Keep-alive, and no "Connection: close": the client has no warning of the close to come.
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + (b"" if method == "HEAD" else payload)
                )
                answered += 1
        except OSError:
            return
        finally:
            conn.close()


@pytest.fixture(autouse=True)
def loopback_allowed(settings, monkeypatch):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = True
    settings.PSA_HTTP_RETRIES = 2
    settings.PSA_HTTP_BACKOFF = 0.01
    monkeypatch.setattr(phttp, "_sleep", lambda seconds: None)


def _client(server: IdleClosingServer) -> phttp.ProviderHTTP:
    return phttp.build_client(server.url, provider_name="Test RMM", timeout=5)


@pytest.mark.parametrize("drop", ["close", "reset"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_idempotent_request_on_a_silently_closed_connection_is_sent_again_on_a_fresh_one(method, drop):
    with IdleClosingServer(drop=drop) as server, _client(server) as client:
        assert client.get("/warm/") == {"connection": 1, "path": "/warm/"}  # leaves connection 1 pooled
        answer = client.request(method, "/again/", json={"x": 1} if method == "PUT" else None)
        if method != "HEAD":
            assert answer == {"connection": 2, "path": "/again/"}
    assert [(s.connection, s.method, s.answered) for s in server.seen] == [
        (1, "GET", True),
        (1, method, False),  # crossed the server's close on the pooled connection
        (2, method, True),  # sent once more, on a new connection
    ]


@pytest.mark.parametrize("drop", ["close", "reset"])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_post_and_patch_are_never_replayed(method, drop):
    with IdleClosingServer(drop=drop) as server, _client(server) as client:
        client.get("/warm/")
        with pytest.raises(Unavailable, match="Connection to Test RMM failed"):
            client.request(method, "/orders/", json={"amount": 10})
    sent = [s for s in server.seen if s.method == method]
    assert len(sent) == 1 and sent[0].body == b'{"amount":10}'  # the server got it once; we did not repeat it


def test_a_post_the_caller_marks_idempotent_is_replayed():
    with IdleClosingServer() as server, _client(server) as client:
        client.get("/warm/")
        answer = client.post("/search/", json={"q": "x"}, idempotent=True)
    assert answer == {"connection": 2, "path": "/search/"}
    assert [(s.connection, s.method) for s in server.seen if s.method == "POST"] == [(1, "POST"), (2, "POST")]


def test_a_get_can_be_marked_not_idempotent():
    with IdleClosingServer() as server, _client(server) as client:
        client.get("/warm/")
        with pytest.raises(Unavailable):
            client.get("/one-shot/", idempotent=False)
    assert [s.path for s in server.seen] == ["/warm/", "/one-shot/"]


def test_only_one_extra_attempt_when_every_connection_dies():
    with (
        IdleClosingServer(answers_per_connection=0) as server,
        _client(server) as client,
        pytest.raises(Unavailable, match="RemoteProtocolError"),
    ):
        client.get("/x/")
    assert [(s.connection, s.answered) for s in server.seen] == [(1, False), (2, False)]


def test_the_replay_does_not_reuse_other_idle_pooled_connections():
    """Two connections idle in the pool, both closed by the server's timer: the replay dials anew."""
    with IdleClosingServer(answer_delay=0.3) as server, _client(server) as client:
        # Two requests in flight at once (the server is slow to answer) open two pooled connections.
        barrier = threading.Barrier(2)

        def warm(path: str) -> None:
            barrier.wait(5)
            client.get(path)

        threads = [threading.Thread(target=warm, args=(f"/warm-{i}/",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted((s.connection, s.answered) for s in server.seen) == [(1, True), (2, True)]
        answer = client.get("/after/")
    # One request hit a dead pooled connection; the replay dialled a third instead of trying the other.
    assert [(s.connection in (1, 2), s.answered) for s in server.seen if s.path == "/after/"] == [
        (True, False), (False, True)]
    assert answer["connection"] == 3


# -- respx: the decision alone, without sockets -------------------------------------------------------
BASE = "https://api.rmm.example.com"


@respx.mock
@pytest.mark.parametrize("error", [
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.ReadError("[Errno 104] Connection reset by peer"),
    httpx.WriteError("[Errno 32] Broken pipe"),
])
def test_post_is_not_replayed_after_a_connection_error(error):
    route = respx.post(f"{BASE}/alerts/1/resolve").mock(side_effect=[error, httpx.Response(200, json={})])
    with phttp.build_client(BASE, provider_name="Test RMM") as client, pytest.raises(Unavailable):
        client.post("/alerts/1/resolve")
    assert route.call_count == 1


@respx.mock
def test_get_is_replayed_once_after_a_connection_error():
    route = respx.get(f"{BASE}/alerts/").mock(
        side_effect=[httpx.ReadError("[Errno 104] Connection reset by peer"), httpx.Response(200, json=[1])]
    )
    with phttp.build_client(BASE, provider_name="Test RMM") as client:
        assert client.get("/alerts/") == [1]
    assert route.call_count == 2


@respx.mock
def test_timeouts_are_not_replayed_as_dead_connections():
    # A read timeout means a slow server, not a dead connection: sending it again would double the wait.
    route = respx.get(f"{BASE}/slow/").mock(side_effect=[httpx.ReadTimeout("timed out"), httpx.Response(200)])
    client = phttp.build_client(BASE, provider_name="Test RMM")
    with client, pytest.raises(Unavailable, match="in time"):
        client.get("/slow/")
    assert route.call_count == 1
