"""gunicorn's threaded worker with a fair queue: waiting requests are served round-robin by URL path.

gunicorn's gthread worker hands every readable connection to a ``ThreadPoolExecutor``, whose queue is
first-in first-out. When one RMM posts a storm over 32 connections, every other sender's webhook
waits behind the whole queue of the storm's requests (measured: a quiet tenant's webhook answered in
~80 ms during a storm against ~9 ms idle, before its alert had even been stored). Here the pool keeps
one queue per request path, and a free thread takes the next path in turn. A webhook's path holds its
integration's key (``/api/v1/webhooks/<provider>/<key>/``), so this is round-robin per integration:
a storm's requests still use every idle thread, and another integration's request waits for at most
one request per other busy path, never for the storm's queue. Nothing is refused or dropped.

The path is read with ``MSG_PEEK`` (the bytes stay in the socket for gunicorn's parser). A connection
whose request has not arrived yet when it is queued (a fresh connection, accepted before its first
bytes) waits in a queue of its own, and is looked at again whenever a thread takes the next request:
once its bytes are there it moves to its path's queue; if it comes up first, it is served as is
(gunicorn then waits for its request as usual). A connection that
cannot be peeked (TLS terminated by gunicorn itself, an error) shares one queue, in order, as before.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future

from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger(__name__)

PEEK_BYTES = 1024
MAX_PEEKS = 64  # connections looked at again per pick, at most
UNKNOWN = ""  # the queue of connections whose request path is not known


def request_path(sock) -> str | None:
    """The path of the request waiting on ``sock`` (without its query), peeked without consuming it;
    ``UNKNOWN`` when it cannot be read, None when no bytes have arrived yet."""
    try:
        head = sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except (OSError, ValueError):  # ValueError: an SSL socket takes no flags
        return UNKNOWN
    if not head:
        return UNKNOWN  # the peer closed: gunicorn handles that, in order
    parts = head.split(b" ", 2)
    if len(parts) < 3:
        return None if len(head) < PEEK_BYTES and b"\n" not in head else UNKNOWN
    return parts[1].split(b"?", 1)[0].decode("latin-1")


class _Task:
    __slots__ = ("args", "fn", "future", "key", "looked_again")

    def __init__(self, fn, args, future, key: str | None):
        self.fn, self.args, self.future = fn, args, future
        self.key = UNKNOWN if key is None else key
        self.looked_again = key is not None  # True: its queue is settled


class FairThreadPool:
    """The part of ``ThreadPoolExecutor`` gunicorn uses (``submit``, ``shutdown``), with one queue
    per key served round-robin. ``key_of(args)`` names a task's queue; None means "not known yet":
    such a task waits in the unknown queue and is looked at again before each pick."""

    def __init__(self, max_workers: int, key_of):
        self._key_of = key_of
        self._queues: OrderedDict[str, deque[_Task]] = OrderedDict()
        self._cond = threading.Condition()
        self._shutdown = False
        self._threads = [threading.Thread(target=self._work, name=f"fair-pool-{i}", daemon=True)
                         for i in range(max_workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        task = _Task(fn, args, future, self._classify(args))
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queues.setdefault(task.key, deque()).append(task)
            self._cond.notify()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                for queue in self._queues.values():
                    for task in queue:
                        task.future.cancel()
                self._queues.clear()
            self._cond.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()

    def waiting(self) -> dict[str, int]:
        """Tasks waiting per key (for tests and debugging)."""
        with self._cond:
            return {key: len(queue) for key, queue in self._queues.items()}

    def _classify(self, args) -> str | None:
        try:
            return self._key_of(args)
        except Exception:  # classification is an optimisation: never lose the request
            log.exception("could not classify a request; it is served in order")
            return UNKNOWN

    def _next(self) -> _Task | None:
        """The next task, round-robin over keys (under the lock); None once shut down and empty."""
        while not self._queues:
            if self._shutdown:
                return None
            self._cond.wait()
        self._place_arrived()
        key, queue = next(iter(self._queues.items()))
        task = queue.popleft()
        if queue:
            self._queues.move_to_end(key)  # this key had its turn
        else:
            del self._queues[key]
        return task

    def _place_arrived(self) -> None:
        """Move every task queued before its request arrived, whose request has arrived since, to the
        queue of its path (in order). A peek is one non-blocking system call per such task."""
        unknown = self._queues.get(UNKNOWN)
        if not unknown or all(task.looked_again for task in unknown):
            return
        stay: deque[_Task] = deque()
        peeks = 0
        for task in unknown:
            # Bounded work under the lock: many idle fresh connections (slow clients) cost at most
            # MAX_PEEKS system calls per pick; the oldest are looked at first, as they are served first.
            if not task.looked_again and peeks >= MAX_PEEKS:
                stay.append(task)
                continue
            peeks += not task.looked_again
            key = None if task.looked_again else self._classify(task.args)
            if key is None or key == UNKNOWN:
                task.looked_again = task.looked_again or key == UNKNOWN
                stay.append(task)
                continue
            task.looked_again = True
            task.key = key
            self._queues.setdefault(key, deque()).append(task)
        if stay:
            self._queues[UNKNOWN] = stay
        else:
            del self._queues[UNKNOWN]

    def _work(self) -> None:
        while True:
            with self._cond:
                task = self._next()
            if task is None:
                return
            if not task.future.set_running_or_notify_cancel():
                continue
            try:
                result = task.fn(*task.args)
            except BaseException as exc:  # noqa: BLE001 - handed to the future, as the executor does
                task.future.set_exception(exc)
            else:
                task.future.set_result(result)


def _connection_path(args) -> str | None:
    conn = args[0]
    return request_path(conn.sock)


class FairThreadWorker(ThreadWorker):
    """gunicorn's gthread worker whose thread pool serves waiting requests round-robin by path
    (``worker_class`` in gunicorn.conf.py)."""

    def get_thread_pool(self):
        return FairThreadPool(self.cfg.threads, _connection_path)
