"""createtenant and demo management commands."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from psa.models import Membership, Role, Tenant
from tests.conftest import token_client
from tests.integration.foundation_fixtures import fast_password_hasher  # noqa: F401
from tickets.models import Board, Priority, Status, Ticket


def _run(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_createtenant_prints_json_and_seeds_defaults(db, as_tenant):
    lines = _run("createtenant", "--name", "Acme MSP", "--admin-email", "Boss@Acme.example", "--admin-password", "s3cret-pass")
    info = json.loads(lines[-1])
    assert set(info) == {"tenant_id", "user_id", "api_token"}
    tenant = Tenant.objects.get(pk=info["tenant_id"])
    m = Membership.objects.get(user_id=info["user_id"])
    assert m.tenant == tenant and m.role == Role.ADMIN and m.user.email == "boss@acme.example"
    with as_tenant(tenant):
        assert sorted(Board.objects.values_list("name", flat=True)) == ["Alerts", "General", "Security", "Triage"]
        statuses = {s.name: s for s in Status.objects.all()}
        assert {"New", "In Progress", "Closed"} <= set(statuses)
        assert statuses["New"].is_default and not statuses["New"].is_closed and statuses["Closed"].is_closed
        assert [s.name for s in Status.objects.filter(is_default=True)] == ["New"]
        assert list(Priority.objects.values_list("name", flat=True)) == ["Low", "Medium", "High", "Critical"]
    api = token_client(info["api_token"])
    general = next(b["id"] for b in api.get("/api/v1/boards/").json()["results"] if b["name"] == "General")
    r = api.post("/api/v1/tickets/", {"title": "First", "board": general}, format="json")
    assert r.status_code == 201 and r.json()["status"] == statuses["New"].pk
    assert api.get("/api/v1/tickets/").json()["count"] == 1


def test_createtenant_twice_fails_clearly_without_duplicates(db):
    _run("createtenant", "--name", "Acme MSP", "--admin-email", "a@acme.example", "--admin-password", "pw-12345678")
    with pytest.raises(CommandError, match="already exists"):
        _run("createtenant", "--name", "acme msp", "--admin-email", "b@acme.example", "--admin-password", "pw-12345678")
    with pytest.raises(CommandError, match="already exists"):
        _run("createtenant", "--name", "Other MSP", "--admin-email", "A@acme.example", "--admin-password", "pw-12345678")
    assert Tenant.objects.count() == 1
    assert not Tenant.objects.filter(name="Other MSP").exists()


def test_createtenant_refuses_blank_name(db):
    with pytest.raises(CommandError):
        _run("createtenant", "--name", "  ", "--admin-email", "x@x.example", "--admin-password", "pw-12345678")
    assert Tenant.objects.count() == 0


def test_demo_is_idempotent_and_its_login_and_token_work(db, client, as_tenant):
    first = json.loads(_run("demo", "--url", "http://127.0.0.1:9999/")[-1])
    again = json.loads(_run("demo")[-1])
    assert again["api_token"] == first["api_token"]  # stable across re-runs
    assert Tenant.objects.filter(name="Demo MSP").count() == 1
    tenant = Tenant.objects.get(name="Demo MSP")
    with as_tenant(tenant):
        assert Ticket.objects.count() >= 3
        numbers = list(Ticket.objects.values_list("number", flat=True))
    assert len(numbers) == len(set(numbers))
    api = token_client(first["api_token"])
    assert api.get("/api/v1/tickets/").json()["count"] == len(numbers)
    assert first["url"] == "http://127.0.0.1:9999/" and first["email"] == "demo@example.com"
    r = client.post("/accounts/login/", {"username": first["email"], "password": first["password"]})
    assert r.status_code == 302 and r["Location"] == "/tickets/"
