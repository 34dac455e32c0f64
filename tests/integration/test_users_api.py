"""Members through the API: admins add technicians/dispatchers and change roles; everyone reads."""

from __future__ import annotations

import pytest

from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def test_admin_adds_a_technician_who_can_then_work_tickets(api_a):
    r = api_a.post("/api/v1/users/", {"email": "Tech@Alpha.example", "name": "Tess", "role": "technician",
                                      "password": "long-enough-pw"}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["email"] == "tech@alpha.example" and body["role"] == "technician" and "password" not in body
    tech = token_client(body["api_token"])
    assert tech.get("/api/v1/tickets/").status_code == 200
    assert tech.post("/api/v1/boards/", {"name": "Nope"}, format="json").status_code == 403
    listed = {u["email"]: u for u in api_a.get("/api/v1/users/").json()["results"]}
    assert listed["tech@alpha.example"]["role"] == "technician" and "api_token" not in listed["tech@alpha.example"]


def test_technician_cannot_add_members_or_change_roles(api_a, tenant_a, make_member):
    tech = make_member(tenant_a.tenant, "technician")
    client = token_client(tech.api_token)
    assert client.post("/api/v1/users/", {"email": "x@a.example", "password": "long-enough-pw"},
                       format="json").status_code == 403
    assert client.patch(f"/api/v1/users/{tech.pk}/", {"role": "admin"}, format="json").status_code == 403


def test_role_change_and_last_admin_guard(api_a, tenant_a, make_member):
    tech = make_member(tenant_a.tenant, "technician")
    r = api_a.patch(f"/api/v1/users/{tech.pk}/", {"role": "dispatcher"}, format="json")
    assert r.status_code == 200 and r.json()["role"] == "dispatcher"
    r = api_a.patch(f"/api/v1/users/{tenant_a.user.pk}/", {"role": "technician"}, format="json")
    assert r.status_code == 400 and "last admin" in str(r.json())


def test_duplicate_email_and_missing_password_are_refused(api_a, tenant_b):
    r = api_a.post("/api/v1/users/", {"email": tenant_b.user.email, "password": "long-enough-pw"}, format="json")
    assert r.status_code == 400 and "email" in r.json()
    r = api_a.post("/api/v1/users/", {"email": "new@alpha.example"}, format="json")
    assert r.status_code == 400 and "password" in r.json()


def test_other_tenants_member_is_404(api_a, tenant_b):
    assert api_a.get(f"/api/v1/users/{tenant_b.user.pk}/").status_code == 404
    assert api_a.patch(f"/api/v1/users/{tenant_b.user.pk}/", {"role": "technician"}, format="json").status_code == 404
