"""Bad input: clear 4xx JSON answers and nothing half-written."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from psa.models import Client
from tests.conftest import token_client
from tests.integration.foundation_fixtures import fast_password_hasher  # noqa: F401
from tickets import services
from tickets.models import Board, Status, Ticket, TicketActivity, TicketCounter


@pytest.fixture
def ids(tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        own = Status.objects.create(name="Alerts only", board=Board.objects.get(name="Alerts"), position=7)
        return {
            "general": Board.objects.get(name="General").pk,
            "closed": Status.objects.get(name="Closed").pk,
            "alerts_only": own.pk,
        }


def _counts(tenant, as_tenant):
    with as_tenant(tenant):
        counter = TicketCounter.objects.filter(tenant=tenant).values_list("value", flat=True).first()
        return Ticket.objects.count(), TicketActivity.objects.count(), counter


def test_malformed_json_is_400_with_detail(api_a, tenant_a, as_tenant):
    before = _counts(tenant_a.tenant, as_tenant)
    r = api_a.generic("POST", "/api/v1/tickets/", '{"title": "x", ', content_type="application/json")
    assert r.status_code == 400 and r["Content-Type"].startswith("application/json")
    assert "Malformed" in r.json()["detail"]
    assert _counts(tenant_a.tenant, as_tenant) == before


def test_unknown_fields_are_refused(api_a, ids, tenant_a, as_tenant):
    before = _counts(tenant_a.tenant, as_tenant)
    r = api_a.post("/api/v1/tickets/", {"title": "x", "board": ids["general"], "urgency": "now"}, format="json")
    assert r.status_code == 400 and r.json() == {"urgency": ["Unknown field."]}
    assert _counts(tenant_a.tenant, as_tenant) == before
    r = api_a.post("/api/v1/clients/", {"name": "Acme", "colour": "red"}, format="json")
    assert r.status_code == 400 and "colour" in r.json()


@pytest.mark.parametrize("body", [
    {"title": "x", "board": "general"},
    {"title": "x", "board": [1]},
    {"title": ["x"], "board": None},
    {"title": "x", "board": 1, "assignee": "me"},
    {"title": "", "board": 1},
])
def test_wrong_types_are_400(api_a, ids, body, tenant_a, as_tenant):
    before = _counts(tenant_a.tenant, as_tenant)
    if body.get("board") == 1:
        body = {**body, "board": ids["general"]}
    r = api_a.post("/api/v1/tickets/", body, format="json")
    assert r.status_code == 400 and isinstance(r.json(), dict) and r.json()
    assert _counts(tenant_a.tenant, as_tenant) == before


def test_non_object_body_is_400(api_a):
    r = api_a.post("/api/v1/tickets/", [1, 2], format="json")
    assert r.status_code == 400 and r["Content-Type"].startswith("application/json")


def test_other_tenants_ids_are_invalid_without_saying_they_exist(api_a, tenant_b, make_client, ids, tenant_a, as_tenant):
    theirs = make_client(tenant_b.tenant, "Beta Client")
    with as_tenant(tenant_b.tenant):
        their_board = Board.objects.get(name="General").pk
    before = _counts(tenant_a.tenant, as_tenant)
    r1 = api_a.post("/api/v1/tickets/", {"title": "x", "board": their_board}, format="json")
    r2 = api_a.post("/api/v1/tickets/", {"title": "x", "board": ids["general"], "client": theirs.pk}, format="json")
    assert r1.status_code == r2.status_code == 400
    assert "object does not exist" in r1.json()["board"][0] and "object does not exist" in r2.json()["client"][0]
    assert "Beta" not in r1.content.decode() + r2.content.decode()
    assert _counts(tenant_a.tenant, as_tenant) == before


def test_invalid_status_for_board_is_400_and_writes_nothing(api_a, ids, make_ticket, tenant_a, as_tenant):
    before = _counts(tenant_a.tenant, as_tenant)
    r = api_a.post("/api/v1/tickets/", {"title": "x", "board": ids["general"], "status": ids["alerts_only"]}, format="json")
    assert r.status_code == 400 and "status" in r.json()
    assert _counts(tenant_a.tenant, as_tenant) == before
    t = make_ticket(tenant_a.tenant, title="Original")
    r = api_a.patch(f"/api/v1/tickets/{t.pk}/", {"title": "Changed", "status": ids["alerts_only"]}, format="json")
    assert r.status_code == 400 and "status" in r.json()
    after = api_a.get(f"/api/v1/tickets/{t.pk}/").json()
    assert after["title"] == "Original" and after["status"] != ids["alerts_only"]


def test_service_errors_roll_back_everything(ids, tenant_a, as_tenant):
    before = _counts(tenant_a.tenant, as_tenant)
    with as_tenant(tenant_a.tenant), pytest.raises(services.TicketError):
        services.create_ticket(board=Board.objects.get(name="General"), title="x", status=Status.objects.get(pk=ids["alerts_only"]))
    assert _counts(tenant_a.tenant, as_tenant) == before


def test_asset_of_another_client_is_refused(api_a, ids, tenant_a, make_client, make_asset):
    acme, globex = make_client(tenant_a.tenant, "Acme"), make_client(tenant_a.tenant, "Globex")
    pc = make_asset(tenant_a.tenant, acme)
    r = api_a.post("/api/v1/tickets/", {"title": "x", "board": ids["general"], "client": globex.pk, "asset": pc.pk}, format="json")
    assert r.status_code == 400 and "asset" in r.json()
    # Without a client the ticket takes the asset's client.
    r = api_a.post("/api/v1/tickets/", {"title": "x", "board": ids["general"], "asset": pc.pk}, format="json")
    assert r.status_code == 201 and r.json()["client"] == acme.pk


def test_people_cannot_write_system_notes(api_a, make_ticket, tenant_a):
    t = make_ticket(tenant_a.tenant)
    r = api_a.post(f"/api/v1/tickets/{t.pk}/notes/", {"body": "I am the system", "kind": "system"}, format="json")
    assert r.status_code == 400 and "kind" in r.json()
    r = api_a.post(f"/api/v1/tickets/{t.pk}/notes/", {"body": "   "}, format="json")
    assert r.status_code == 400 and "body" in r.json()
    assert api_a.get(f"/api/v1/tickets/{t.pk}/notes/").json()["count"] == 0


def test_duplicate_client_name_is_400_and_errors_are_json_everywhere(api_a, tenant_a, as_tenant):
    assert api_a.post("/api/v1/clients/", {"name": "Acme"}, format="json").status_code == 201
    r = api_a.post("/api/v1/clients/", {"name": "ACME"}, format="json")
    assert r.status_code == 400 and "name" in r.json()
    with as_tenant(tenant_a.tenant):
        assert Client.objects.count() == 1
    for url in ("/api/v1/nope/", "/api/v1/tickets/999999/"):
        r = api_a.get(url)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}
    r = token_client("wrong").get("/api/v1/tickets/")
    assert r.status_code in (401, 403) and "detail" in r.json()
    r = APIClient().get("/api/v1/tickets/")
    assert r.status_code in (401, 403) and "detail" in r.json()
