"""Shared fixtures: ``make_*`` factories, API clients per role, tenant context helpers.

Tests run against the real PostgreSQL named by DATABASE_URL (scripts/test sets it).
Celery runs eagerly inside tests unless a test starts real workers (tests/e2e).
"""

from __future__ import annotations

import itertools

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from psa import celery_app
from psa.models import Role
from psa.services.tenants import add_member, create_tenant
from psa.tenancy import _current_tenant, tenant_context

_seq = itertools.count(1)

# Password hashing dominates tenant creation; tests do not need a slow hasher. (Processes the
# e2e harness starts keep the default hashers; they authenticate with API tokens.)
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _celery_eager():
    # The product's app is the current one in every test: shared tasks resolve through the current app,
    # and a Celery() made by a helper (e2e senders) would otherwise take its place for the session.
    celery_app.set_current()
    old = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_always_eager = old


@pytest.fixture(autouse=True)
def _no_pending_wake():
    """A test that stubs the drain task's publish leaves the dispatcher's "a drain is on its way"
    flag behind (in production it expires in seconds); every test starts without it."""
    from django.core.cache import cache

    from alerts.services.dispatch import ARRIVALS, WAKE_FLAG

    cache.delete_many([WAKE_FLAG, ARRIVALS])
    yield


@pytest.fixture
def fast(settings, monkeypatch) -> list[float]:
    """Provider HTTP without waiting: two retries, no backoff; the retry waits are recorded instead of
    slept, in the returned list. A module that needs other limits overrides ``fast``, asking for this one."""
    from integrations import http as phttp

    settings.PSA_HTTP_RETRIES = 2
    settings.PSA_HTTP_BACKOFF = 0.0
    waits: list[float] = []
    monkeypatch.setattr(phttp, "_sleep", waits.append)
    return waits


@pytest.fixture(autouse=True)
def _reset_tenant_context():
    token = _current_tenant.set(None)
    yield
    _current_tenant.reset(token)


@pytest.fixture
def make_tenant(db):
    def _make(name: str | None = None, admin_email: str | None = None, password: str = "pw-secret-123"):
        n = next(_seq)
        created = create_tenant(name or f"MSP {n}", admin_email or f"admin{n}@msp{n}.example", password)
        created.password = password
        return created

    return _make


@pytest.fixture
def tenant_a(make_tenant):
    return make_tenant("Alpha MSP", "admin@alpha.example")


@pytest.fixture
def tenant_b(make_tenant):
    return make_tenant("Beta MSP", "admin@beta.example")


@pytest.fixture
def make_member(db):
    def _make(tenant, role: str = Role.TECHNICIAN, email: str | None = None, password: str = "pw-secret-123"):
        n = next(_seq)
        user, token = add_member(tenant, email or f"{role}{n}@member.example", password, role)
        user.api_token = token
        return user

    return _make


def token_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def api_a(tenant_a) -> APIClient:
    """Admin API client of tenant A."""
    return token_client(tenant_a.api_token)


@pytest.fixture
def api_b(tenant_b) -> APIClient:
    return token_client(tenant_b.api_token)


@pytest.fixture
def as_tenant():
    """``with as_tenant(t): ...`` runs ORM code as tenant t."""
    return tenant_context


@pytest.fixture
def make_client(db):
    from psa.models import Client

    def _make(tenant, name: str | None = None, **kw):
        return Client.objects.unscoped().create(tenant=tenant, name=name or f"Client {next(_seq)}", **kw)

    return _make


@pytest.fixture
def make_ticket(db):
    from tickets.models import Board
    from tickets.services import create_ticket

    def _make(tenant, title: str | None = None, board: str = "General", **kw):
        with tenant_context(tenant):
            b = Board.objects.get(name=board)
            return create_ticket(board=b, title=title or f"Ticket {next(_seq)}", **kw)

    return _make


@pytest.fixture
def make_asset(db):
    from assets.models import Asset, AssetExternalId

    def _make(tenant, client, name: str | None = None, provider: str | None = None, external_id: str | None = None, **kw):
        asset = Asset.objects.unscoped().create(tenant=tenant, client=client, name=name or f"PC-{next(_seq)}", **kw)
        if provider:
            AssetExternalId.objects.unscoped().create(
                tenant=tenant, asset=asset, provider=provider, external_id=external_id or asset.name
            )
        return asset

    return _make


def pytest_report_header(config):
    db = settings.DATABASES["default"]
    return f"database: {db['ENGINE']} {db.get('HOST', '')}:{db.get('PORT', '')}/{db.get('NAME')}"


@pytest.fixture
def fake_provider():
    """Registers a fresh ``fake`` provider (tests/fakes.py) for one test; configure it via ``.state``."""
    from integrations import registry
    from tests.fakes import make_fake_provider

    cls = make_fake_provider()
    with registry.registered_for_tests(cls):
        yield cls
