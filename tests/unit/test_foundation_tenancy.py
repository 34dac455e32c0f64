"""Fail-closed tenancy and production settings guards (no database needed: the guards fire first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from psa.models import Client
from psa.tenancy import NoTenantError, get_current_tenant_id, tenant_context
from tickets.models import Ticket

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("use", [
    lambda: list(Client.objects.all()),
    lambda: Client.objects.count(),
    lambda: Client.objects.exists(),
    lambda: Client.objects.filter(name="x").first(),
    lambda: Client.objects.get(pk=1),
    lambda: Client.objects.update(name="x"),
    lambda: Client.objects.all().delete(),
    lambda: list(Client.objects.iterator()),
    lambda: list(Client.objects.values_list("name", flat=True)),
    lambda: Client.objects.aggregate(n=__import__("django.db.models", fromlist=["Count"]).Count("id")),
    lambda: Client.objects.create(name="x"),
    lambda: Client(name="x").save(),
], ids=["list", "count", "exists", "first", "get", "update", "delete", "iterator", "values", "aggregate", "create", "save"])
def test_no_tenant_in_context_raises(use):
    assert get_current_tenant_id() is None
    with pytest.raises(NoTenantError):
        use()


def test_scoped_queries_filter_on_the_current_tenant():
    with tenant_context(42):
        sql = str(Ticket.objects.filter(title="x").query)
    assert '"tenant_id" = 42' in sql
    with tenant_context(7):
        assert '"tenant_id" = 7' in str(Client.objects.all().query)
    where = str(Client.objects.unscoped().filter(name="x").query).split("WHERE", 1)[1]
    assert "tenant_id" not in where  # the explicit escape really is unscoped


def test_tenant_context_nests_and_restores():
    with tenant_context(1):
        with tenant_context(2):
            assert get_current_tenant_id() == 2
        assert get_current_tenant_id() == 1
    assert get_current_tenant_id() is None


def _settings_import(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "PSA_PRODUCTION", "PSA_CREDENTIAL_KEYS")}
    return subprocess.run(
        [sys.executable, "-c", "import psa.settings"], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True,
        timeout=60, check=False,
    )


def test_production_refuses_the_development_secret_key():
    r = _settings_import(PSA_PRODUCTION="1")
    assert r.returncode != 0 and "SECRET_KEY" in r.stderr


def test_production_needs_credential_keys():
    r = _settings_import(PSA_PRODUCTION="1", SECRET_KEY="a-real-secret-key-0123456789")
    assert r.returncode != 0 and "PSA_CREDENTIAL_KEYS" in r.stderr
    ok = _settings_import(
        PSA_PRODUCTION="1", SECRET_KEY="a-real-secret-key-0123456789",
        PSA_CREDENTIAL_KEYS="kQ8v9bY1-8bQJ3w2h3mJ0Xq3cQ2eH1mJcW6w7x8y9z0=",
    )
    assert ok.returncode == 0, ok.stderr
