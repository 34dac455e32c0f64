"""Plain helpers shared by the test modules (fixtures live in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

from django.test import TestCase


def committed():
    """Run on_commit callbacks (enqueue, jobs, notifications, the ticket-closed signal) at the end of
    the block, as a real commit would, in tests that run inside one transaction. In autocommit mode
    (transactional tests, threads) callbacks already run immediately and this is a no-op."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def ok(response, *codes: int) -> Any:
    """Assert the status (200 by default) of a Django test or httpx response; return its JSON body."""
    expected = codes or (200,)
    assert response.status_code in expected, f"{response.status_code}: {response.content[:500]!r}"
    return response.json() if response.content else None


def forget_invitation_accepts(ip: str = "127.0.0.1") -> None:
    """Tests accept invitations from the test client's one address: start each with an empty history of
    the per-address accept throttle (psa.api.throttles.InvitationAcceptThrottle)."""
    from django.core.cache import cache

    from psa.api.throttles import InvitationAcceptThrottle

    cache.delete(InvitationAcceptThrottle.cache_format % {"scope": InvitationAcceptThrottle.scope, "ident": ip})


def run_together(fn, args_per_thread: list) -> tuple[list, list[BaseException]]:
    """Call ``fn(*args)`` for each args tuple on its own thread (its own database connection), all
    released at once by a barrier; returns (the results, the exceptions raised)."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(args_per_thread))
    lock = threading.Lock()
    results: list = []
    errors: list[BaseException] = []

    def worker(args):
        try:
            barrier.wait()
            result = fn(*args)
            with lock:
                results.append(result)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(a,)) for a in args_per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors
