"""HTTP/1.1 spoken on a raw socket: chunked bodies with chosen chunk boundaries, and slow senders.

httpx hides framing; these tests need to control it (a chunked body cut anywhere, headers sent one
byte at a time). Loopback only.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def chunked(parts: list[bytes]) -> bytes:
    """The chunked encoding of ``parts`` (empty parts skipped), with the terminating chunk."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return out + b"0\r\n\r\n"


def head(method: str, path: str, headers: dict[str, str], port: int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket) -> RawResponse:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2 :]
        body = decoded
    return RawResponse(status, headers, body)


def send_chunked(
    port: int, method: str, path: str, headers: dict[str, str], parts: list[bytes], timeout: float = 30
) -> RawResponse:
    """One request whose body is sent with ``Transfer-Encoding: chunked`` (no Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head(method, path, {**headers, "Transfer-Encoding": "chunked"}, port))
        sock.sendall(chunked(parts))
        return read_response(sock)


def trickle(sock: socket.socket, data: bytes, every: float, stop_at: float) -> bool:
    """Send ``data`` one byte per ``every`` seconds until done or ``stop_at`` (monotonic); True if done."""
    for i in range(len(data)):
        if time.monotonic() >= stop_at:
            return False
        try:
            sock.sendall(data[i : i + 1])
        except OSError:  # the server gave up on us: that is allowed
            return False
        time.sleep(every)
    return True
