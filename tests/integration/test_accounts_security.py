"""Accounts (issue 15): login lockout (django-axes) per account and per address with an admin unlock,
API throttles on wrong tokens and member changes, Django's password validators (when an invitation is
accepted, and on a password change), and no way for an admin to tell whether an address has an
account in another MSP."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from rest_framework.test import APIClient

from psa.api.throttles import AccountChangeThrottle, BadTokenThrottle
from psa.models import Invitation, Membership
from tests.conftest import token_client
from tests.helpers import committed, forget_invitation_accepts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _accept_throttle_history():
    forget_invitation_accepts()


@pytest.fixture
def axes_on(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 5
    cache.clear()
    yield settings
    cache.clear()


def login(email: str, password: str, ip: str = "203.0.113.5", **extra):
    return HttpClient(REMOTE_ADDR=ip, **extra).post("/accounts/login/", {"username": email, "password": password})


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/tickets/"


def test_five_wrong_passwords_lock_the_account_from_any_address(axes_on, tenant_a):
    email, right = tenant_a.user.email, tenant_a.password
    for _ in range(4):
        assert login(email, "wrong-password-x").status_code == 200  # the form again, "Wrong email or password"
    locked = login(email, "wrong-password-x")
    assert locked.status_code == 429
    for attempt in (login(email, right), login(email.upper(), right, ip="198.51.100.7")):
        assert attempt.status_code == 429  # the right password, even from elsewhere, waits
        text = attempt.content.decode()
        assert "Too many failed sign-ins" in text and "administrator to unlock" in text
    # Another account is not affected from another address.
    other = login("someone@else.example", "nope-nope-nope", ip="198.51.100.8")
    assert other.status_code == 200


def test_wrong_passwords_for_many_accounts_lock_the_address(axes_on, tenant_a, tenant_b):
    for n in range(5):
        login(f"guess{n}@nowhere.example", "wrong-password-x", ip="203.0.113.9")
    assert login(tenant_a.user.email, tenant_a.password, ip="203.0.113.9").status_code == 429
    assert signed_in(login(tenant_a.user.email, tenant_a.password, ip="203.0.113.10"))


def test_success_resets_the_count(axes_on, tenant_a):
    email, right = tenant_a.user.email, tenant_a.password
    for _ in range(4):
        login(email, "wrong-password-x")
    assert signed_in(login(email, right))
    for _ in range(4):
        login(email, "wrong-password-x")
    assert signed_in(login(email, right))


def test_an_admin_unlocks_with_the_axes_commands_or_the_django_admin(axes_on, tenant_a):
    from axes.models import AccessAttempt
    from django.contrib import admin

    email, right = tenant_a.user.email, tenant_a.password
    for _ in range(5):
        login(email, "wrong-password-x")
    assert login(email, right, ip="198.51.100.20").status_code == 429
    assert AccessAttempt in admin.site._registry  # Django admin > Axes > Access attempts: delete to unlock
    call_command("axes_reset_username", email.lower())
    assert signed_in(login(email, right, ip="198.51.100.20"))


def test_behind_a_proxy_the_forwarded_address_counts_and_a_forged_one_does_not(axes_on, tenant_a):
    axes_on.PSA_TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for n in range(5):  # the attacker forges a leftmost entry each time; the proxy appends the real one
        login(f"g{n}@x.example", "wrong-password-x", ip=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.50")
    assert login(tenant_a.user.email, tenant_a.password, ip=proxy,
                 HTTP_X_FORWARDED_FOR="203.0.113.50").status_code == 429
    assert signed_in(login(tenant_a.user.email, tenant_a.password, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.51"))


def test_wrong_api_tokens_are_throttled_per_address(monkeypatch, tenant_a):
    monkeypatch.setattr(BadTokenThrottle, "THROTTLE_RATES", {"bad_token": "3/min"})
    cache.clear()
    bad = token_client("0" * 40)
    bad.defaults["REMOTE_ADDR"] = "203.0.113.77"
    assert [bad.get("/api/v1/tickets/").status_code for _ in range(3)] == [401, 401, 401]
    blocked = bad.get("/api/v1/tickets/")
    assert blocked.status_code == 429 and "wrong API tokens" in blocked.json()["detail"]
    assert int(blocked["Retry-After"]) > 0
    good_same_address = token_client(tenant_a.api_token)
    good_same_address.defaults["REMOTE_ADDR"] = "203.0.113.77"
    assert good_same_address.get("/api/v1/tickets/").status_code == 429
    assert token_client(tenant_a.api_token).get("/api/v1/tickets/").status_code == 200  # other address
    cache.clear()


def test_member_changes_are_throttled_reads_are_not(monkeypatch, api_a):
    monkeypatch.setattr(AccountChangeThrottle, "THROTTLE_RATES", {"accounts": "2/hour"})
    cache.clear()
    codes = [api_a.post("/api/v1/users/", {"email": f"m{n}@alpha.example"}, format="json").status_code
             for n in range(3)]
    assert codes == [202, 202, 429]
    assert all(api_a.get("/api/v1/users/").status_code == 200 for _ in range(5))
    assert Invitation.objects.unscoped().count() == 2
    cache.clear()


def invite(api, email: str) -> str:
    """Invite ``email`` and return the token of the link the invitation email carries."""
    with committed():
        r = api.post("/api/v1/users/", {"email": email}, format="json")
    assert r.status_code == 202, r.content
    sent = [m for m in mail.outbox if m.to == [email.lower()]]
    return re.search(r"/accounts/invitations/([A-Za-z0-9_-]+)/", sent[-1].body).group(1)


@pytest.mark.parametrize(("password", "message"), [
    ("password1234", "too common"),
    ("1234567890123", "entirely numeric"),
    ("short-pw", "at least 10 characters"),
    ("newtech@alpha.example", "too similar"),
])
def test_member_passwords_go_through_djangos_validators(api_a, password, message):
    """The member chooses the password when accepting the invitation: that is where it is validated."""
    token = invite(api_a, "newtech@alpha.example")
    r = APIClient().post("/api/v1/invitations/accept/", {"token": token, "password": password}, format="json")
    assert r.status_code == 400 and message in " ".join(r.json()["password"]), r.json()
    assert not get_user_model().objects.filter(email="newtech@alpha.example").exists()
    ok = APIClient().post("/api/v1/invitations/accept/", {"token": token, "password": "another-good-pw-42"},
                          format="json")
    assert ok.status_code == 201, ok.content  # a refused password does not use the link up


def test_password_change_is_validated_too(api_a, tenant_a, make_member):
    tech = make_member(tenant_a.tenant)
    r = api_a.patch(f"/api/v1/users/{tech.pk}/", {"password": "qwertyuiop"}, format="json")
    assert r.status_code == 400 and "password" in r.json()
    assert api_a.patch(f"/api/v1/users/{tech.pk}/", {"password": "another-good-pw-42"},
                       format="json").status_code == 200


def test_createtenant_refuses_a_weak_password(db):
    with pytest.raises(CommandError, match="too common"):
        call_command("createtenant", "--name", "Weak MSP", "--admin-email", "a@weak.example",
                     "--admin-password", "password123")
    call_command("createtenant", "--name", "Fine MSP", "--admin-email", "a@fine.example",
                 "--admin-password", "pw-secret-123")


def test_an_admin_cannot_tell_whether_an_address_has_an_account_in_another_tenant(api_a, tenant_b, tenant_a):
    users_before = get_user_model().objects.count()
    with committed():
        new = api_a.post("/api/v1/users/", {"email": "nobody-yet@example.org", "name": "N", "role": "technician"},
                         format="json")
        elsewhere = api_a.post("/api/v1/users/", {"email": tenant_b.user.email.upper(), "name": "N",
                                                  "role": "technician"}, format="json")
    assert new.status_code == elsewhere.status_code == 202
    a, b = new.json(), elsewhere.json()
    assert a.keys() == b.keys() and {"id", "email", "name", "role", "state", "expires_at"} <= a.keys()
    different = {k for k in a if a[k] != b[k]}
    assert different <= {"id", "email", "expires_at", "created_at", "sent_at"}, different
    assert a["state"] == b["state"] == "pending" and (a["sent_at"] is None) == (b["sent_at"] is None)
    assert b["email"] == tenant_b.user.email.lower()
    # Both addresses got the same kind of email; no account and no membership came of the taken one.
    assert sorted(m.to[0] for m in mail.outbox) == sorted(["nobody-yet@example.org", tenant_b.user.email.lower()])
    assert get_user_model().objects.count() == users_before
    assert Membership.objects.get(user=tenant_b.user).tenant_id == tenant_b.tenant.pk
    assert Membership.objects.filter(tenant=tenant_a.tenant).count() == 1
    # The list answers alike too.
    rows = {r["email"]: r for r in api_a.get("/api/v1/invitations/").json()["results"]}
    assert rows["nobody-yet@example.org"].keys() == rows[tenant_b.user.email.lower()].keys()
    assert rows["nobody-yet@example.org"]["state"] == rows[tenant_b.user.email.lower()]["state"] == "pending"
