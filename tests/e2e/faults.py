"""Fault injection for the e2e fault tests: things we cut and restore without touching shared services.

- ``TcpProxy``: a loopback port in front of PostgreSQL or Redis. The product under test is pointed at the
  proxy, so cutting it (every open connection closed, new ones refused) is a restart or an outage as the
  product sees it, while the real server, and every other engineer's database on it, carries on.
- ``SmtpSink``: a minimal SMTP server that keeps what it receives (by Message-ID); ``down()`` refuses
  connections like a mail server that is off.
- ``Beat``: what ``celery beat`` sends every few seconds (the sweepers), from a thread; sends that meet an
  outage are dropped, as beat's would be.
"""

from __future__ import annotations

import email
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable


class _Listener:
    """A listening socket on a fixed loopback port that can be closed (refusing) and opened again."""

    def __init__(self, port: int = 0):
        self.port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.up = False

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._sock, self.up = sock, True
        self._thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._thread.start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve_and_forget, args=(conn,), daemon=True).start()

    def _serve_and_forget(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.up = False
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


class TcpProxy(_Listener):
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        super().__init__()
        self.target = (target_host, target_port)
        self.connections = 0

    def serve(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self.target, timeout=5)
        upstream.settimeout(None)
        with self._lock:
            self._conns.add(upstream)
            self.connections += 1

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        back.start()
        pump(conn, upstream)
        back.join(timeout=5)
        with self._lock:
            self._conns.discard(upstream)
        upstream.close()

    def cut(self) -> None:
        self.close()

    def restore(self) -> None:
        self.open()


class SmtpSink(_Listener):
    """Accepts mail like a server would (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)."""

    def __init__(self):
        super().__init__()
        self.messages: list[email.message.Message] = []
        # Called with each message once it is received and before the server's "250" (a test kills the
        # sending worker there: the mail is out, the sender never heard so).
        self.on_message = None

    def message_ids(self) -> Counter:
        return Counter(m["Message-ID"] for m in self.messages)

    def serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        conn.sendall(b"220 sink ESMTP\r\n")
        while line := f.readline():
            cmd = line.strip().upper()
            if cmd.startswith((b"EHLO", b"HELO")):
                conn.sendall(b"250-sink\r\n250 8BITMIME\r\n" if cmd.startswith(b"EHLO") else b"250 sink\r\n")
            elif cmd.startswith(b"DATA"):
                conn.sendall(b"354 go ahead\r\n")
                lines = []
                while (data := f.readline()) and data not in (b".\r\n", b".\n"):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                message = email.message_from_bytes(b"".join(lines))
                self.messages.append(message)
                if self.on_message is not None:
                    self.on_message(message)
                conn.sendall(b"250 queued\r\n")
            elif cmd.startswith(b"QUIT"):
                conn.sendall(b"221 bye\r\n")
                return
            else:  # MAIL FROM, RCPT TO, RSET, NOOP
                conn.sendall(b"250 ok\r\n")

    def down(self) -> None:
        self.close()

    def restore(self) -> None:
        self.open()


class Beat:
    """Sends ``tasks`` (name, queue) every ``every`` seconds from a thread, like celery beat's schedule."""

    def __init__(self, broker_url: str, tasks: Iterable[tuple[str, str]], every: float):
        from celery import Celery

        self.app = Celery("psa-e2e-beat", broker=broker_url, set_as_current=False)  # see harness.send_task
        self.app.conf.broker_transport_options = {"max_retries": 0, "socket_connect_timeout": 1, "socket_timeout": 2}
        self.app.conf.broker_connection_retry = False
        self.tasks, self.every = list(tasks), every
        self.sent = self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()

    def tick(self) -> None:
        for name, queue in self.tasks:
            try:
                self.app.send_task(name, queue=queue, retry=False)
                self.sent += 1
            except Exception:  # noqa: BLE001 - the broker is down: this tick is lost, as beat's would be
                self.dropped += 1

    def __enter__(self) -> Beat:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.app.close()


def wait_for(check, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value {value!r}")
        time.sleep(interval)
