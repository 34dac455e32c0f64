"""End-to-end harness: the product runs as real processes against the test database.

- ``live_stack`` (module: one stack per test module, stopped before the next module, so
  no live worker outlives the e2e tests and consumes another test's messages; settings
  ``tests.e2e.live_settings``, the product's with recovery timers shortened): gunicorn ``psa.wsgi:application`` (the shipped gunicorn.conf.py) and
  ``celery -A psa worker -c 2`` (no ``-Q``: every queue, as operators run it) started against
  pytest-django's test database and the test Redis db (flushed first). Logs go to
  ``test-artifacts/e2e/``; their tail is attached to every failing e2e test's report.
- ``live`` (function): the stack for one test, with ``transactional_db`` so rows the
  test's processes write are committed and visible across processes (pytest-django
  truncates the tables after each test). Teardown waits for the queues to drain so a
  late task does not race the truncation.
- ``tenant`` (function): a tenant created with the documented CLI (``createtenant``),
  with an ``api`` httpx client carrying its admin token. After that, tests speak HTTP only.

The live stack is not xdist-safe (one Redis db is flushed and shared); run e2e tests in
one process.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest

from .harness import LiveStack, WaitTimeout, flush_redis, wait_database_quiet, wait_until

_seq = itertools.count(1)
_active_stacks: list[LiveStack] = []  # for the failure report hook below


def _db_url(settings_dict: dict) -> str:
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def live_db_url(django_db_setup, django_db_blocker) -> str:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.fail("e2e tests need PostgreSQL: set TEST_DATABASE_URL (see scripts/test)")
    # Read after django_db_setup: this is the test database's real name (test_<name>).
    return _db_url(connection.settings_dict)


@pytest.fixture(scope="session")
def live_redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail("e2e tests need Redis: set TEST_REDIS_URL (see scripts/test)")
    return url


@pytest.fixture(scope="module")
def live_stack(live_db_url, live_redis_url):
    with running_stack(live_db_url, live_redis_url, label=f"e2e-{os.getpid()}",
                       extra_env={"DJANGO_SETTINGS_MODULE": "tests.e2e.live_settings"}) as stack:
        yield stack


@contextlib.contextmanager
def running_stack(db_url: str, redis_url: str, **options):
    """A started live stack (``LiveStack`` options) on a flushed Redis db; while it runs, a failing
    test's report shows its logs. A module with its own settings overrides ``live_stack`` with it."""
    flush_redis(redis_url)
    with LiveStack(db_url, redis_url, **options) as stack:
        _active_stacks.append(stack)
        try:
            yield stack
        finally:
            _active_stacks.remove(stack)


@pytest.fixture
def live(live_stack, transactional_db):
    if not live_stack.web.alive:
        pytest.fail(f"gunicorn died:\n{live_stack.logs_tail()}")
    if live_stack.worker is None or not live_stack.worker.alive:
        live_stack.start_worker()
    yield live_stack
    # Let in-flight tasks finish before pytest-django truncates the tables.
    try:
        wait_until(lambda: live_stack.queue_depth() == 0, timeout=30, what="Celery queues to drain")
    except WaitTimeout:
        pass
    wait_database_quiet()  # and the statements they started (a TRUNCATE racing one can deadlock)


@dataclass
class LiveTenant:
    tenant_id: int
    user_id: int
    api_token: str
    email: str
    password: str
    api: httpx.Client


@pytest.fixture
def tenant(live):
    n = next(_seq)
    email, password = f"admin{n}-{os.getpid()}@e2e.example", "pw-secret-123"
    created = live.create_tenant(f"E2E MSP {n} {os.getpid()}", email, password)
    client = live.api(created["api_token"])
    yield LiveTenant(created["tenant_id"], created["user_id"], created["api_token"], email, password, client)
    client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _active_stacks and "live_stack" in getattr(item, "fixturenames", ()):
        report.sections.append(("live stack logs (tail)", _active_stacks[-1].logs_tail(80)))
