"""The web's fair thread pool (psa.gunicorn_worker): waiting requests are served round-robin by path,
so one sender's storm of requests does not queue another sender's request behind it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from psa.gunicorn_worker import UNKNOWN, FairThreadPool, request_path
from tests.e2e.harness import WaitTimeout, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


# -- reading the path -------------------------------------------------------------------------------
@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_path_is_peeked_without_its_query_and_the_bytes_stay_for_the_parser(pair):
    ours, theirs = pair
    request = b"POST /api/v1/webhooks/generic/k\xc3\xa9y/?token=s HTTP/1.1\r\nHost: x\r\n\r\n{}"
    theirs.sendall(request)
    assert request_path(ours) == "/api/v1/webhooks/generic/k\xc3\xa9y/"
    assert ours.recv(4096) == request  # nothing was consumed


def test_no_bytes_yet_means_not_known_yet(pair):
    ours, theirs = pair
    assert request_path(ours) is None
    theirs.sendall(b"PO")  # a request line still on its way
    assert request_path(ours) is None
    theirs.sendall(b"ST /a HTTP/1.1\r\n")
    assert request_path(ours) == "/a"


def test_unreadable_heads_share_the_unknown_queue(pair):
    ours, theirs = pair
    theirs.sendall(b"\x16\x03\x01" + b"x" * 2000)  # e.g. a TLS hello: no request line
    assert request_path(ours) == UNKNOWN
    theirs.close()
    other, gone = socket.socketpair()
    gone.close()
    assert request_path(other) == UNKNOWN  # the peer closed before sending anything
    other.close()


# -- the pool's order -------------------------------------------------------------------------------
def _pool_with_blocked_thread(keys_of=lambda args: args[0]):
    """A one-thread pool whose thread is held by a first task until the returned event is set."""
    pool = FairThreadPool(1, keys_of)
    release, started = threading.Event(), threading.Event()
    pool.submit(lambda key: (started.set(), release.wait(5)), "storm")
    assert started.wait(5)
    return pool, release


def test_a_quiet_key_is_served_after_at_most_one_request_of_a_busy_key():
    pool, release = _pool_with_blocked_thread()
    order: list[str] = []
    futures = [pool.submit(order.append, "storm") for _ in range(10)]
    futures.append(pool.submit(order.append, "quiet"))
    assert pool.waiting() == {"storm": 10, "quiet": 1}
    release.set()
    for future in futures:
        future.result(5)
    assert order.index("quiet") <= 1
    assert order.count("storm") == 10  # the storm loses nothing
    pool.shutdown()


def test_three_keys_take_turns():
    pool, release = _pool_with_blocked_thread()
    order: list[str] = []
    futures = [pool.submit(order.append, key) for key in ["a"] * 3 + ["b"] * 3 + ["c"] * 3]
    release.set()
    for future in futures:
        future.result(5)
    assert order == ["a", "b", "c"] * 3
    pool.shutdown()


def test_a_request_not_arrived_when_queued_is_placed_by_its_path_when_its_turn_comes():
    looks: dict[str, int] = {}

    def key_of(args):
        name = args[0]
        looks[name] = looks.get(name, 0) + 1
        if name.startswith("late") and looks[name] == 1:
            return None  # accepted before its first bytes
        return name.split("-")[0]

    pool, release = _pool_with_blocked_thread(key_of)
    order: list[str] = []
    futures = [pool.submit(order.append, name) for name in
               ["late-1", "storm-1", "storm-2", "storm-3", "storm-4", "quiet-1"]]
    assert pool.waiting() == {UNKNOWN: 1, "storm": 4, "quiet": 1}
    release.set()
    for future in futures:
        future.result(5)
    # "late" was looked at again before the next pick: its path was "late", a queue of its own.
    assert looks["late-1"] == 2 and sorted(order) == sorted(["late-1", "storm-1", "storm-2", "storm-3",
                                                              "storm-4", "quiet-1"])
    assert order.index("quiet-1") <= 2
    pool.shutdown()


def test_fresh_connections_are_placed_by_path_before_each_pick_not_one_at_a_time():
    """Every connection accepted before its bytes arrived: the quiet one must not wait for the storm's
    connections to be looked at one per pick."""
    looked: set[str] = set()

    def key_of(args):
        name = args[0]
        if name not in looked:
            looked.add(name)
            return None  # not arrived when accepted
        return name.split("-")[0]

    pool, release = _pool_with_blocked_thread(key_of)
    order: list[str] = []
    names = [f"storm-{i}" for i in range(10)] + ["quiet-1"]
    futures = [pool.submit(order.append, name) for name in names]
    assert pool.waiting() == {UNKNOWN: 11}
    release.set()
    for future in futures:
        future.result(5)
    assert order.index("quiet-1") <= 1
    assert [n for n in order if n.startswith("storm")] == names[:10]  # in order within the path
    pool.shutdown()


def test_looking_again_is_bounded_per_pick(monkeypatch):
    """Many idle fresh connections (slow clients) cost at most MAX_PEEKS peeks per pick."""
    from psa import gunicorn_worker

    monkeypatch.setattr(gunicorn_worker, "MAX_PEEKS", 3)
    peeks: list[str] = []

    def key_of(args) -> str | None:
        peeks.append(args[0])
        return None  # never arrives

    pool, release = _pool_with_blocked_thread(key_of)
    peeks.clear()
    order: list[str] = []
    futures = [pool.submit(order.append, f"idle-{i}") for i in range(10)]
    assert len(peeks) == 10  # each looked at once when queued
    peeks.clear()
    release.set()
    for future in futures:
        future.result(5)
    assert order == [f"idle-{i}" for i in range(10)]  # still served, in order
    # Ten picks, at most three looks each.
    assert 0 < len(peeks) <= 3 * 10  # without the bound: 10 + 9 + ... + 1 = 55
    assert "idle-9" not in peeks[:3]  # the oldest are looked at first
    pool.shutdown()


def test_errors_reach_the_future_and_a_failing_classifier_never_loses_the_request():
    def key_of(args):
        raise RuntimeError("cannot classify")

    pool = FairThreadPool(2, key_of)
    assert pool.submit(lambda: 42).result(5) == 42

    def boom():
        raise ValueError("inside the request")

    with pytest.raises(ValueError, match="inside the request"):
        pool.submit(boom).result(5)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: 1)


def test_shutdown_lets_queued_requests_finish():
    pool, release = _pool_with_blocked_thread()
    futures = [pool.submit(lambda: "done") for _ in range(3)]
    pool.shutdown(wait=False)
    release.set()
    assert [f.result(5) for f in futures] == ["done"] * 3


# -- real gunicorn ----------------------------------------------------------------------------------
def _gunicorn(port: int, worker_class: str | None) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
           "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"]
    if worker_class:
        cmd += ["--worker-class", worker_class]
    env = {**os.environ, "GUNICORN_ACCESSLOG": ""}
    proc = subprocess.Popen(cmd + ["tests.slow_wsgi:app"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/up", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 20, 0.1, "gunicorn to answer")
    except WaitTimeout:
        proc.kill()
        raise
    return proc


def _storm_then_quiet(port: int) -> int:
    """20 requests of 200 ms on one path from 20 connections, then one on another path: how many of
    the storm's requests were answered after the quiet one was sent and before it was answered."""
    done: list[str] = []
    lock = threading.Lock()

    def get(path: str) -> None:
        with httpx.Client(timeout=30) as client:
            client.get(f"http://127.0.0.1:{port}{path}?ms=200").raise_for_status()
        with lock:
            done.append(path)

    with ThreadPoolExecutor(21) as pool:
        storm = [pool.submit(get, "/storm/") for _ in range(20)]
        time.sleep(0.5)  # the storm is queued in gunicorn (2 threads: about 14 requests wait)
        with lock:
            answered_before = len(done)
        quiet = pool.submit(get, "/quiet/")
        for future in storm + [quiet]:
            future.result(30)
    return done.index("/quiet/") - answered_before


@pytest.mark.parametrize("worker_class, fair", [(None, True), ("gthread", False)],
                         ids=["shipped-config", "plain-gthread"])
def test_gunicorn_serves_a_quiet_path_beside_a_storm(worker_class, fair):
    port = free_port()
    proc = _gunicorn(port, worker_class)
    try:
        overtaken_by = _storm_then_quiet(port)
    finally:
        proc.terminate()
        proc.wait(20)
    if fair:
        # The shipped worker: the quiet request waits for the two requests in hand and at most one
        # more per thread, not for the storm's queue.
        assert overtaken_by <= 4
    else:
        # The plain FIFO pool (the control that shows this test can fail): behind the whole queue.
        assert overtaken_by >= 10
