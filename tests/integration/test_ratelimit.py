"""The shared request budget (integrations.ratelimit) against the real Redis: threads and processes
share one sliding window and never exceed it; push-back after a 429; timeout; embedded fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from integrations import ratelimit
from integrations.errors import RateLimited

ROOT = Path(__file__).resolve().parents[2]
# Grants are stamped when acquire() returns, a little after Redis granted them: judge windows a
# little shorter than the real one so that lag cannot fake a violation (nor hide one: a broken
# limiter grants everything at once).
SLACK = 0.15


def max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, t in enumerate(stamps):
        while t - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.fixture
def key():
    k = f"test:{uuid.uuid4().hex}"
    yield k
    ratelimit.reset(k)


@pytest.fixture(autouse=True)
def needs_redis():
    if ratelimit.redis_client() is None:
        pytest.skip("the cache is not Redis (set TEST_REDIS_URL)")


def test_helper_counts_windows():
    assert max_in_window([0, 0.1, 0.2, 1.5], 1.0) == 3
    assert max_in_window([0, 1.0, 2.0], 1.0) == 1


def test_sequential_grants_then_wait(key):
    for _ in range(5):
        assert ratelimit.acquire(key, 5, 0.6, timeout=0) < 0.05
    started = time.monotonic()
    waited = ratelimit.acquire(key, 5, 0.6, timeout=5)
    # The sixth had to wait for the first to leave the window.
    assert 0.3 < waited < 1.5
    assert time.monotonic() - started >= waited - 0.01


def test_timeout_raises_rate_limited_with_retry_after(key):
    for _ in range(3):
        ratelimit.acquire(key, 3, 5.0, timeout=0)
    with pytest.raises(RateLimited) as info:
        ratelimit.acquire(key, 3, 5.0, timeout=0.2)
    assert 3.0 < info.value.retry_after <= 5.0


def test_threads_share_one_budget(key):
    limit, window = 10, 1.0
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(4):
            ratelimit.acquire(key, limit, window, timeout=30)
            with lock:
                stamps.append(time.time())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 32
    assert max_in_window(stamps, window - SLACK) <= limit
    # 32 grants at 10 per second cannot finish in under ~3 windows.
    assert time.time() - started >= 2 * window


CHILD = """
import json, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psa.settings")
django.setup()
from integrations import ratelimit
key, n, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
assert ratelimit.redis_client() is not None, "child has no Redis"
time.sleep(max(0.0, start - time.time()))
stamps = []
for _ in range(n):
    ratelimit.acquire(key, 10, 2.0, timeout=60)
    stamps.append(time.time())
print(json.dumps(stamps))
"""


def test_two_processes_and_threads_share_one_budget(key):
    limit, window = 10, 2.0
    env = {**os.environ, "REDIS_URL": os.environ.get("REDIS_URL", "")}
    start = time.time() + 4.0  # both children are up (Django set up) before they contend
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, key, "12", str(start)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    local: list[float] = []

    def here():
        time.sleep(max(0.0, start - time.time()))
        for _ in range(6):
            ratelimit.acquire(key, limit, window, timeout=60)
            local.append(time.time())

    thread = threading.Thread(target=here)
    thread.start()
    outputs = [p.communicate(timeout=120) for p in procs]
    thread.join()
    stamps = list(local)
    for (out, err), proc in zip(outputs, procs, strict=True):
        assert proc.returncode == 0, err
        stamps.extend(json.loads(out.strip().splitlines()[-1]))
    assert len(stamps) == 30
    assert max_in_window(stamps, window - SLACK) <= limit
    # Each party got some of the budget (the window really was contended by all three).
    assert len(local) == 6


def test_push_back_blocks_every_caller_until_it_passes(key):
    ratelimit.acquire(key, 100, 10.0, timeout=0)
    ratelimit.push_back(key, 0.5)
    with pytest.raises(RateLimited):
        ratelimit.acquire(key, 100, 10.0, timeout=0.1)
    waited = ratelimit.acquire(key, 100, 10.0, timeout=3)
    assert 0.25 < waited < 1.5
    # A shorter push-back never shortens a longer one.
    ratelimit.push_back(key, 1.0)
    ratelimit.push_back(key, 0.01)
    with pytest.raises(RateLimited):
        ratelimit.acquire(key, 100, 10.0, timeout=0.3)


def test_keys_are_independent(key):
    other = key + ":other"
    try:
        for _ in range(2):
            ratelimit.acquire(key, 2, 10.0, timeout=0)
        with pytest.raises(RateLimited):
            ratelimit.acquire(key, 2, 10.0, timeout=0)
        assert ratelimit.acquire(other, 2, 10.0, timeout=0) == pytest.approx(0, abs=0.05)
    finally:
        ratelimit.reset(other)


def test_window_lives_in_redis(key):
    ratelimit.acquire(key, 5, 10.0, timeout=0)
    client = ratelimit.redis_client()
    window_key, _ = ratelimit._keys(key)
    assert client.zcard(window_key) == 1
    assert 0 < client.pttl(window_key) <= 11_000


def test_transport_takes_a_slot_per_request_and_pushes_back_on_429(key):
    answers = iter([httpx.Response(429, headers={"Retry-After": "0.4"}), httpx.Response(200, json={})])
    sent: list[float] = []

    def handler(request):
        sent.append(time.monotonic())
        return next(answers)

    limiter = ratelimit.Limiter(key, 50, 10.0, timeout=5)
    with httpx.Client(transport=ratelimit.RateLimitedTransport(httpx.MockTransport(handler), limiter)) as c:
        assert c.get("https://api.example.com/a").status_code == 429
        assert c.get("https://api.example.com/a").status_code == 200
    assert sent[1] - sent[0] >= 0.35  # the second request waited out Retry-After
    client = ratelimit.redis_client()
    assert client.zcard(ratelimit._keys(key)[0]) == 2


def test_local_fallback_when_cache_is_not_redis(settings, key):
    # pytest-django's settings fixture sends setting_changed: Django rebuilds its cache handlers.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ratelimit.redis_client() is None
    stamps = []
    for _ in range(6):
        ratelimit.acquire(key, 3, 0.5, timeout=5)
        stamps.append(time.time())
    assert max_in_window(stamps, 0.5 - SLACK) <= 3
    assert stamps[-1] - stamps[0] >= 0.4
    ratelimit.push_back(key, 0.3)
    with pytest.raises(RateLimited):
        ratelimit.acquire(key, 100, 0.5, timeout=0.1)
