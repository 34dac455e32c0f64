"""Roles: technicians work tickets; dispatchers also manage clients; only admins change
reference data (boards, statuses, priorities, categories), settings and integrations."""

from __future__ import annotations

import pytest

from psa.models import Client, Role
from tests.conftest import token_client
from tests.integration.foundation_fixtures import fast_password_hasher  # noqa: F401
from tickets.models import Board, Status


@pytest.fixture
def people(tenant_a, make_member):
    return {
        Role.ADMIN: token_client(tenant_a.api_token),
        Role.DISPATCHER: token_client(make_member(tenant_a.tenant, Role.DISPATCHER).api_token),
        Role.TECHNICIAN: token_client(make_member(tenant_a.tenant, Role.TECHNICIAN).api_token),
    }


def _general(client) -> int:
    return next(b["id"] for b in client.get("/api/v1/boards/").json()["results"] if b["name"] == "General")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DISPATCHER, Role.TECHNICIAN])
def test_every_role_works_tickets(people, role):
    api = people[role]
    board = _general(api)
    r = api.post("/api/v1/tickets/", {"title": f"{role} ticket", "board": board}, format="json")
    assert r.status_code == 201, r.content
    tid = r.json()["id"]
    closed = next(s["id"] for s in api.get("/api/v1/statuses/").json()["results"] if s["is_closed"])
    assert api.patch(f"/api/v1/tickets/{tid}/", {"status": closed}, format="json").status_code == 200
    assert api.post(f"/api/v1/tickets/{tid}/notes/", {"body": "done"}, format="json").status_code == 201
    assert api.post(f"/api/v1/tickets/{tid}/time-entries/", {"minutes": 5}, format="json").status_code == 201
    assert api.get(f"/api/v1/tickets/{tid}/activity/").status_code == 200


REFERENCE_DATA = [
    ("/api/v1/boards/", {"name": "Projects"}),
    ("/api/v1/statuses/", {"name": "On hold"}),
    ("/api/v1/priorities/", {"name": "Urgent", "position": 9}),
    ("/api/v1/categories/", {"name": "Hardware"}),
]


@pytest.mark.parametrize(("url", "body"), REFERENCE_DATA, ids=[u for u, _ in REFERENCE_DATA])
@pytest.mark.parametrize("role", [Role.DISPATCHER, Role.TECHNICIAN])
def test_only_admins_create_reference_data(people, tenant_a, as_tenant, url, body, role):
    before = people[Role.ADMIN].get(url).json()["count"]
    r = people[role].post(url, body, format="json")
    assert r.status_code == 403 and "admin" in r.json()["detail"].lower()
    assert people[Role.ADMIN].get(url).json()["count"] == before
    assert people[role].get(url).status_code == 200  # reading is fine
    assert people[Role.ADMIN].post(url, body, format="json").status_code == 201


def test_clients_are_managed_by_admins_and_dispatchers(people, tenant_a, as_tenant):
    r = people[Role.TECHNICIAN].post("/api/v1/clients/", {"name": "Tech Co"}, format="json")
    assert r.status_code == 403
    assert people[Role.DISPATCHER].post("/api/v1/clients/", {"name": "Dispatch Co"}, format="json").status_code == 201
    assert people[Role.ADMIN].post("/api/v1/clients/", {"name": "Admin Co"}, format="json").status_code == 201
    with as_tenant(tenant_a.tenant):
        assert sorted(Client.objects.values_list("name", flat=True)) == ["Admin Co", "Dispatch Co"]


def test_only_admins_delete_tickets(people, make_ticket, tenant_a):
    t = make_ticket(tenant_a.tenant)
    for role in (Role.TECHNICIAN, Role.DISPATCHER):
        assert people[role].delete(f"/api/v1/tickets/{t.pk}/").status_code == 403
    assert people[Role.ADMIN].delete(f"/api/v1/tickets/{t.pk}/").status_code == 204
    assert people[Role.ADMIN].get(f"/api/v1/tickets/{t.pk}/").status_code == 404


@pytest.mark.parametrize("role", [Role.DISPATCHER, Role.TECHNICIAN])
def test_only_admins_change_settings_and_integrations(people, role):
    api = people[role]
    assert api.put("/api/v1/integrations/generic/", {}, format="json").status_code == 403
    rule = {"name": "Everything", "action": "ignore"}
    assert api.post("/api/v1/alert-rules/", rule, format="json").status_code == 403
    assert people[Role.ADMIN].put("/api/v1/integrations/generic/", {}, format="json").status_code == 200


def test_status_settings_stay_admin_only_after_creation(people, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        board = Board.objects.get(name="General")
        count = Status.objects.count()
    r = people[Role.TECHNICIAN].post("/api/v1/statuses/", {"name": "Sneaky", "board": board.pk, "is_closed": True}, format="json")
    assert r.status_code == 403
    with as_tenant(tenant_a.tenant):
        assert Status.objects.count() == count


def test_a_user_without_membership_gets_403_not_data(db, tenant_a):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    loner = get_user_model().objects.create_user("loner@nowhere.example", "pw-secret-123")
    api = token_client(Token.objects.create(user=loner).key)
    r = api.get("/api/v1/tickets/")
    assert r.status_code == 403 and "member" in r.json()["detail"]
