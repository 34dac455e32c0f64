"""Members through the API: admins invite members (the person accepts the emailed link) and change
roles; everyone reads."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from rest_framework.test import APIClient

from psa.models import Invitation
from tests.conftest import token_client
from tests.helpers import committed, forget_invitation_accepts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _accept_throttle_history():
    forget_invitation_accepts()


LINK = re.compile(r"/accounts/invitations/([A-Za-z0-9_-]+)/")


def test_admin_invites_a_technician_who_accepts_and_can_then_work_tickets(api_a, tenant_a):
    with committed():
        r = api_a.post("/api/v1/users/", {"email": "Tech@Alpha.example", "name": "Tess", "role": "technician"},
                       format="json")
    assert r.status_code == 202, r.content
    body = r.json()
    assert body["email"] == "tech@alpha.example" and body["role"] == "technician" and body["state"] == "pending"
    assert "api_token" not in body and "password" not in body
    assert not get_user_model().objects.filter(email="tech@alpha.example").exists()  # nothing until accepted
    (message,) = mail.outbox
    assert message.to == ["tech@alpha.example"]
    token = LINK.search(message.body).group(1)
    accepted = APIClient().post("/api/v1/invitations/accept/", {"token": token, "password": "long-enough-pw-7"},
                                     format="json")
    assert accepted.status_code == 201, accepted.content
    tech = token_client(accepted.json()["api_token"])
    assert tech.get("/api/v1/tickets/").status_code == 200
    assert tech.post("/api/v1/boards/", {"name": "Nope"}, format="json").status_code == 403
    listed = {u["email"]: u for u in api_a.get("/api/v1/users/").json()["results"]}
    assert listed["tech@alpha.example"]["role"] == "technician" and listed["tech@alpha.example"]["name"] == "Tess"
    assert "api_token" not in listed["tech@alpha.example"]


def test_technician_cannot_invite_members_or_change_roles(api_a, tenant_a, make_member):
    tech = make_member(tenant_a.tenant, "technician")
    client = token_client(tech.api_token)
    assert client.post("/api/v1/users/", {"email": "x@a.example"}, format="json").status_code == 403
    assert client.patch(f"/api/v1/users/{tech.pk}/", {"role": "admin"}, format="json").status_code == 403
    assert not Invitation.objects.unscoped().exists() and mail.outbox == []


def test_role_change_and_last_admin_guard(api_a, tenant_a, make_member):
    tech = make_member(tenant_a.tenant, "technician")
    r = api_a.patch(f"/api/v1/users/{tech.pk}/", {"role": "dispatcher"}, format="json")
    assert r.status_code == 200 and r.json()["role"] == "dispatcher"
    r = api_a.patch(f"/api/v1/users/{tenant_a.user.pk}/", {"role": "technician"}, format="json")
    assert r.status_code == 400 and "last admin" in str(r.json())


def test_a_member_of_this_tenant_cannot_be_invited_again(api_a, tenant_a, make_member):
    ours = make_member(tenant_a.tenant)
    r = api_a.post("/api/v1/users/", {"email": ours.email.upper()}, format="json")
    assert r.status_code == 400 and "already a member" in " ".join(r.json()["email"])
    r = api_a.post("/api/v1/users/", {"name": "No address"}, format="json")
    assert r.status_code == 400 and "email" in r.json()
    assert not Invitation.objects.unscoped().exists()


def test_a_password_in_the_invitation_is_refused_not_ignored(api_a):
    with committed():
        r = api_a.post("/api/v1/users/", {"email": "new@alpha.example", "password": "long-enough-pw-7"},
                       format="json")
    assert r.status_code == 400
    assert "choose their own password when they accept the invitation" in " ".join(r.json()["password"])
    assert not Invitation.objects.unscoped().exists() and mail.outbox == []


def test_other_tenants_member_is_404(api_a, tenant_b):
    assert api_a.get(f"/api/v1/users/{tenant_b.user.pk}/").status_code == 404
    assert api_a.patch(f"/api/v1/users/{tenant_b.user.pk}/", {"role": "technician"}, format="json").status_code == 404
