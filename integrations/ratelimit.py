"""A request budget shared by every worker and process: a sliding-window limiter in Redis.

``acquire(key, limit, window, timeout)`` waits (sleeping) until fewer than ``limit`` requests
were granted for ``key`` in the last ``window`` seconds, records the new one and returns; after
``timeout`` seconds it raises :class:`integrations.errors.RateLimited`. ``push_back(key, seconds)``
stops every grant for ``key`` for that long (the provider answered 429 with Retry-After).

The window lives in a Redis sorted set (one member per grant, scored by Redis's own clock so
hosts with skewed clocks agree), checked and written by one Lua script, so concurrent callers
never both take the last slot. When the Django cache is not Redis (embedded mode) or Redis
fails, a process-local limiter with the same semantics stands in: better a budget per process
than no budget, and a 429 is still answered by waiting.

:class:`RateLimitedTransport` puts a limiter under an httpx client, so every request sent,
retries included, takes a slot, and every 429 pushes the window back.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
import uuid
import weakref
from dataclasses import dataclass

import httpx
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache

from .errors import RateLimited
from .http import parse_retry_after

log = logging.getLogger("integrations.ratelimit")

_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def redis_client():
    """The Redis client behind Django's RedisCache (one per cache backend instance, over
    its connection pool), or None for any other backend (local memory in development)."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if not isinstance(backend, RedisCache):
        return None
    inner = backend._cache
    client = _redis_clients.get(inner)
    if client is None:  # building a redis.Redis costs more than the round trip itself
        client = _redis_clients[inner] = inner.get_client(None, write=True)
    return client


# KEYS: the window (sorted set), the push-back mark. ARGV: limit, window (µs), member.
# Answers 0 when granted, else the microseconds to wait before asking again.
_ACQUIRE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then
  return blocked - now
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# KEYS: the push-back mark. ARGV: microseconds. Only ever moves the mark later.
_PUSH_BACK = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local until_us = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_us > current then
  redis.call('SET', KEYS[1], string.format('%d', until_us), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 0
"""

_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _script(client, name: str):
    registered = _scripts.get(client)
    if registered is None:
        registered = _scripts[client] = {
            "acquire": client.register_script(_ACQUIRE),
            "push_back": client.register_script(_PUSH_BACK),
        }
    return registered[name]


def _keys(key: str) -> tuple[str, str]:
    base = cache.make_key(f"ratelimit:{key}")
    return f"{base}:window", f"{base}:blocked"


# -- process-local stand-in -------------------------------------------------------------------
class _LocalWindow:
    def __init__(self) -> None:
        self.grants: collections.deque[float] = collections.deque()
        self.blocked_until = 0.0


_local_lock = threading.Lock()
_local: dict[str, _LocalWindow] = {}


def _local_try(key: str, limit: int, window: float) -> float:
    now = time.monotonic()
    with _local_lock:
        state = _local.setdefault(key, _LocalWindow())
        if state.blocked_until > now:
            return state.blocked_until - now
        while state.grants and state.grants[0] <= now - window:
            state.grants.popleft()
        if len(state.grants) < limit:
            state.grants.append(now)
            return 0.0
        return max(1e-6, state.grants[0] + window - now)


def _local_push_back(key: str, seconds: float) -> None:
    with _local_lock:
        state = _local.setdefault(key, _LocalWindow())
        state.blocked_until = max(state.blocked_until, time.monotonic() + seconds)


# -- the shared limiter -----------------------------------------------------------------------
def _try(key: str, limit: int, window: float) -> float:
    """0 when a slot was taken for ``key``, else the seconds to wait before asking again."""
    client = redis_client()
    if client is not None:
        try:
            window_key, blocked_key = _keys(key)
            wait_us = _script(client, "acquire")(
                keys=[window_key, blocked_key],
                args=[limit, int(window * 1_000_000), uuid.uuid4().hex],
                client=client,
            )
            return int(wait_us) / 1_000_000
        except Exception as exc:  # noqa: BLE001 - Redis down: keep a budget, per process
            log.warning("rate limiter falls back to a per-process budget: %s", type(exc).__name__)
    return _local_try(key, limit, window)


def _sleep(seconds: float) -> None:
    """Indirection so tests can observe the waits."""
    time.sleep(seconds)


def acquire(key: str, limit: int, window: float, timeout: float | None = None) -> float:
    """Take one slot of ``limit`` per ``window`` seconds for ``key``, waiting up to ``timeout``
    seconds (None: forever). Returns the seconds waited; raises RateLimited when out of time."""
    if limit < 1 or window <= 0:
        raise ValueError("a rate limit needs limit >= 1 and a positive window")
    started = time.monotonic()
    while True:
        wait = _try(key, limit, window)
        if wait <= 0:
            return time.monotonic() - started
        waited = time.monotonic() - started
        if timeout is not None and waited + wait > timeout:
            raise RateLimited(
                f"The request budget of {limit} per {window:g} s is used up; no slot within {timeout:g} s.",
                retry_after=wait,
            )
        # A little jitter so waiters of several processes do not all ask at the same instant.
        _sleep(wait + random.uniform(0, min(0.05, window / 100)))


def push_back(key: str, seconds: float) -> None:
    """No grant for ``key`` during the next ``seconds`` (a 429's Retry-After); never shortens one."""
    if seconds <= 0:
        return
    client = redis_client()
    if client is not None:
        try:
            _, blocked_key = _keys(key)
            _script(client, "push_back")(keys=[blocked_key], args=[int(seconds * 1_000_000)], client=client)
            return
        except Exception as exc:  # noqa: BLE001 - as in _try
            log.warning("rate limiter push-back kept per process: %s", type(exc).__name__)
    _local_push_back(key, seconds)


def reset(key: str) -> None:
    """Forget ``key``'s window and push-back (tests, and an admin's "try now")."""
    client = redis_client()
    if client is not None:
        try:
            client.delete(*_keys(key))
        except Exception as exc:  # noqa: BLE001 - as in _try
            log.warning("rate limiter reset failed: %s", type(exc).__name__)
    with _local_lock:
        _local.pop(key, None)


@dataclass(frozen=True)
class Limiter:
    """One budget: ``key`` (e.g. "huntress:<integration id>"), ``limit`` per ``window`` seconds,
    waiting at most ``timeout`` seconds for a slot."""

    key: str
    limit: int
    window: float
    timeout: float | None = None

    def acquire(self) -> float:
        return acquire(self.key, self.limit, self.window, self.timeout)

    def push_back(self, seconds: float) -> None:
        push_back(self.key, seconds)


class RateLimitedTransport(httpx.BaseTransport):
    """An httpx transport that takes a slot of ``limiter`` before each request it sends and pushes
    the window back when the answer is 429 (by Retry-After, else ``default_push_back`` seconds)."""

    def __init__(self, inner: httpx.BaseTransport, limiter: Limiter, default_push_back: float | None = None):
        self.inner = inner
        self.limiter = limiter
        self.default_push_back = (
            default_push_back if default_push_back is not None else limiter.window / max(1, limiter.limit) * 5
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.limiter.acquire()
        response = self.inner.handle_request(request)
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            self.limiter.push_back(retry_after if retry_after is not None else self.default_push_back)
        return response

    def close(self) -> None:
        self.inner.close()
