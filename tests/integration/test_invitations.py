"""Invitations (issue 15): an admin invites an address, the holder of the mailbox accepts the emailed
link (web page or API) and chooses a password. Expired, withdrawn and used links; an address that
already has a sign-in with another MSP (nothing leaks to the admin, a plain answer to the holder);
roles, tenant isolation, throttling, and the token kept out of answers and logs."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import runpy
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client as WebClient
from django.utils import timezone
from rest_framework.test import APIClient

from outbox import services as outbox
from outbox.models import SideEffect
from psa.api.throttles import InvitationAcceptThrottle
from psa.models import Invitation, Membership
from psa.services import invitations as service
from tests.conftest import token_client
from tests.helpers import committed, forget_invitation_accepts

pytestmark = pytest.mark.django_db

LINK = re.compile(r"(\S*)/accounts/invitations/([A-Za-z0-9_-]+)/")
ANSWER_KEYS = {"id", "email", "name", "role", "state", "expires_at"}


@pytest.fixture(autouse=True)
def _accept_throttle_history():
    forget_invitation_accepts()


def invite(api, email: str, **body) -> tuple[dict, str]:
    """POST users/ (its email goes out as after a real commit); the answer and the token in the link."""
    sent_before = len(mail.outbox)
    with committed():
        r = api.post("/api/v1/users/", {"email": email, **body}, format="json")
    assert r.status_code == 202, r.content
    new_mail = mail.outbox[sent_before:]
    assert [m.to for m in new_mail] == [[email.lower()]]
    return r.json(), LINK.search(new_mail[0].body).group(2)


def accept_api(token: str, password: str = "a-fine-password-42", **extra):
    return APIClient().post("/api/v1/invitations/accept/", {"token": token, "password": password, **extra},
                            format="json")


def row(api, invitation_id: int) -> dict:
    r = api.get(f"/api/v1/invitations/{invitation_id}/")
    assert r.status_code == 200, r.content
    return r.json()


# --- the whole way: invite, email, accept ------------------------------------------------------------


def test_invite_email_and_accept_on_the_web_page(api_a, tenant_a, settings):
    settings.PUBLIC_BASE_URL = "https://psa.example.com"
    body, token = invite(api_a, "Dana@Example.org", name="Dana", role="dispatcher")
    assert ANSWER_KEYS <= body.keys() and body["state"] == "pending" and body["email"] == "dana@example.org"
    assert body["role"] == "dispatcher" and body["invited_by"] == tenant_a.user.pk
    message = mail.outbox[-1]
    assert "Alpha MSP" in message.subject and "Alpha MSP" in message.body
    base, _ = LINK.search(message.body).groups()
    assert base == "https://psa.example.com"  # an absolute link
    assert row(api_a, body["id"])["sent_at"] is not None  # the email went out

    web = WebClient()
    page = web.get(f"/accounts/invitations/{token}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Join Alpha MSP" in text and "dana@example.org" in text and 'name="password1"' in text
    assert page["Referrer-Policy"] == "no-referrer" and "no-store" in page["Cache-Control"]
    differ = web.post(f"/accounts/invitations/{token}/",
                      {"name": "Dana", "password1": "a-fine-password-42", "password2": "another-one-42"})
    assert differ.status_code == 200 and "The two passwords differ" in differ.content.decode()
    weak = web.post(f"/accounts/invitations/{token}/", {"name": "Dana", "password1": "password1234",
                                                      "password2": "password1234"})
    assert weak.status_code == 200 and "too common" in weak.content.decode()
    assert not get_user_model().objects.filter(email="dana@example.org").exists()

    done = web.post(f"/accounts/invitations/{token}/",
                    {"name": "Dana Scully", "password1": "a-fine-password-42", "password2": "a-fine-password-42"})
    assert done.status_code == 302 and done["Location"] == "/tickets/"
    home = web.get("/tickets/")
    assert home.status_code == 200 and "Dana Scully" in home.content.decode()  # signed in

    user = get_user_model().objects.get(email="dana@example.org")
    assert user.name == "Dana Scully" and user.check_password("a-fine-password-42")
    membership = Membership.objects.get(user=user)
    assert membership.tenant_id == tenant_a.tenant.pk and membership.role == "dispatcher"
    api = token_client(user.auth_token.key)
    assert api.get("/api/v1/tickets/").status_code == 200
    assert api.post("/api/v1/clients/", {"name": "Dana's client"}, format="json").status_code == 201  # dispatcher
    assert api.post("/api/v1/boards/", {"name": "Nope"}, format="json").status_code == 403  # not admin
    signin = WebClient().post("/accounts/login/", {"username": "dana@example.org", "password": "a-fine-password-42"})
    assert signin.status_code == 302 and signin["Location"] == "/tickets/"

    listed = row(api_a, body["id"])
    assert listed["state"] == "accepted" and listed["user"] == user.pk and listed["accepted_at"]
    again = WebClient().get(f"/accounts/invitations/{token}/")
    assert again.status_code == 400 and service.NOT_VALID in again.content.decode()
    assert 'name="password1"' not in again.content.decode()


def test_accept_through_the_api(api_a, tenant_a):
    body, token = invite(api_a, "tess@alpha.example", name="Tess")
    # PSA_PUBLIC_BASE_URL unset: the link is made absolute with the address the admin's request came to.
    assert LINK.search(mail.outbox[-1].body).group(1) == "http://testserver"
    r = accept_api(token)
    assert r.status_code == 201, r.content
    answer = r.json()
    assert answer.keys() == {"user_id", "tenant_id", "email", "role", "api_token"}
    assert answer["tenant_id"] == tenant_a.tenant.pk and answer["email"] == "tess@alpha.example"
    assert answer["role"] == "technician"
    user = get_user_model().objects.get(pk=answer["user_id"])
    assert user.name == "Tess" and user.auth_token.key == answer["api_token"]
    assert token_client(answer["api_token"]).get("/api/v1/tickets/").status_code == 200
    signin = WebClient().post("/accounts/login/", {"username": "tess@alpha.example", "password": "a-fine-password-42"})
    assert signin.status_code == 302
    # Used: the same answer as a link that never existed; nothing more is created.
    reused, unknown = accept_api(token), accept_api("x" * 43)
    assert reused.status_code == unknown.status_code == 400
    assert reused.json() == unknown.json() == {"detail": service.NOT_VALID}
    assert get_user_model().objects.filter(email="tess@alpha.example").count() == 1
    assert row(api_a, body["id"])["state"] == "accepted"


def test_a_refused_password_and_a_wrong_body_leave_the_link_usable(api_a):
    _, token = invite(api_a, "kim@alpha.example", name="Kim")
    assert accept_api(token, "kim@alpha.example").json()["password"]  # too similar to the address
    assert accept_api(token, extra="x").status_code == 400  # unknown field
    assert APIClient().post("/api/v1/invitations/accept/", {"token": token}, format="json").status_code == 400
    assert accept_api(token).status_code == 201


# --- expired, withdrawn, sent again -----------------------------------------------------------------


def test_an_expired_link_is_refused_and_a_resend_brings_a_new_one(api_a, tenant_a, settings):
    settings.PSA_INVITATION_DAYS = 2
    body, old_token = invite(api_a, "late@alpha.example")
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert dt.timedelta(days=2) - dt.timedelta(minutes=1) < expires - timezone.now() <= dt.timedelta(days=2)
    Invitation.objects.unscoped().filter(pk=body["id"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    r = accept_api(old_token)
    assert r.status_code == 400 and r.json()["detail"] == service.EXPIRED
    page = WebClient().get(f"/accounts/invitations/{old_token}/")
    assert page.status_code == 400 and "expired" in page.content.decode()
    assert row(api_a, body["id"])["state"] == "expired"
    assert [i["id"] for i in api_a.get("/api/v1/invitations/", {"state": "expired"}).json()["results"]] == [body["id"]]
    assert api_a.get("/api/v1/invitations/", {"state": "pending"}).json()["count"] == 0

    with committed():
        resent = api_a.post(f"/api/v1/invitations/{body['id']}/resend/")
    assert resent.status_code == 202 and resent.json()["state"] == "pending" and resent.json()["id"] == body["id"]
    assert dt.datetime.fromisoformat(resent.json()["expires_at"]) > timezone.now() + dt.timedelta(days=1)
    new_token = LINK.search(mail.outbox[-1].body).group(2)
    assert new_token != old_token and len(mail.outbox) == 2
    assert accept_api(old_token).json()["detail"] == service.NOT_VALID  # the older link died with the resend
    assert accept_api(new_token).status_code == 201


def test_a_withdrawn_link_is_refused(api_a):
    body, token = invite(api_a, "gone@alpha.example")
    assert api_a.delete(f"/api/v1/invitations/{body['id']}/").status_code == 204
    assert row(api_a, body["id"])["state"] == "revoked"
    r = accept_api(token)
    assert r.status_code == 400 and r.json()["detail"] == service.REVOKED
    page = WebClient().get(f"/accounts/invitations/{token}/")
    assert page.status_code == 400 and "withdrawn" in page.content.decode()
    assert not get_user_model().objects.filter(email="gone@alpha.example").exists()
    assert api_a.delete(f"/api/v1/invitations/{body['id']}/").status_code == 204  # twice is harmless
    assert api_a.post(f"/api/v1/invitations/{body['id']}/resend/").status_code == 409
    # Inviting the address again is a new invitation, which works.
    again, new_token = invite(api_a, "gone@alpha.example")
    assert again["id"] != body["id"] and accept_api(new_token).status_code == 201
    assert api_a.delete(f"/api/v1/invitations/{again['id']}/").status_code == 409  # accepted: not withdrawable


def test_inviting_a_pending_address_again_refreshes_the_same_invitation(api_a):
    first, old_token = invite(api_a, "twice@alpha.example", name="Old", role="technician")
    second, new_token = invite(api_a, "TWICE@alpha.example", name="New", role="dispatcher")
    assert second["id"] == first["id"] and second["name"] == "New" and second["role"] == "dispatcher"
    assert Invitation.objects.unscoped().filter(email="twice@alpha.example").count() == 1
    assert accept_api(old_token).json()["detail"] == service.NOT_VALID
    r = accept_api(new_token)
    assert r.status_code == 201 and r.json()["role"] == "dispatcher"


def test_an_email_replaced_by_a_resend_is_not_sent(api_a, tenant_a):
    r = api_a.post("/api/v1/users/", {"email": "slow@alpha.example"}, format="json")  # its email not yet out
    assert r.status_code == 202
    with committed():
        assert api_a.post(f"/api/v1/invitations/{r.json()['id']}/resend/").status_code == 202
    assert len(mail.outbox) == 1
    first = SideEffect.objects.unscoped().get(kind=service.EMAIL_KIND, key=f"invitation:{r.json()['id']}:send:1")
    assert outbox.run_for_tenant(tenant_a.tenant.pk, first.pk) == "skipped"  # the first email, delivered late
    assert len(mail.outbox) == 1
    assert accept_api(LINK.search(mail.outbox[0].body).group(2)).status_code == 201


# --- an address that already has a sign-in with another MSP ------------------------------------------


def test_an_address_of_another_msp_learns_why_and_the_admin_learns_nothing(api_a, tenant_a, tenant_b):
    taken = tenant_b.user.email
    body, token = invite(api_a, taken, name="Bea")
    unanswered, _ = invite(api_a, "nobody@example.org", name="Bea")
    users = get_user_model().objects.count()

    r = accept_api(token)
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "one sign-in belongs to one MSP" in detail and "Alpha MSP" in detail
    assert "admin+alphamsp@beta.example" in detail  # a plus-address of theirs to give instead
    page = WebClient().get(f"/accounts/invitations/{token}/")
    assert page.status_code == 409 and "one sign-in belongs to one MSP" in page.content.decode()
    assert 'name="password1"' not in page.content.decode()
    posted = WebClient().post(f"/accounts/invitations/{token}/",
                              {"password1": "a-fine-password-42", "password2": "a-fine-password-42"})
    assert posted.status_code == 409

    # Nothing was created or changed: the other MSP's account is as it was.
    assert get_user_model().objects.count() == users
    tenant_b.user.refresh_from_db()
    assert tenant_b.user.check_password(tenant_b.password) and tenant_b.user.name == ""
    assert Membership.objects.get(user=tenant_b.user).tenant_id == tenant_b.tenant.pk
    assert not Membership.objects.filter(tenant=tenant_a.tenant, user=tenant_b.user).exists()
    # The inviting admin sees an invitation like any one nobody answered.
    seen, plain = row(api_a, body["id"]), row(api_a, unanswered["id"])
    assert seen["state"] == plain["state"] == "pending"
    assert {k for k, v in seen.items() if v is None} == {k for k, v in plain.items() if v is None}


def test_the_same_person_joins_a_second_msp_with_a_plus_address(api_a, tenant_b):
    plus = tenant_b.user.email.replace("@", "+alpha@")
    _, token = invite(api_a, plus)
    r = accept_api(token)
    assert r.status_code == 201 and r.json()["email"] == plus
    assert Membership.objects.get(user=tenant_b.user).tenant_id == tenant_b.tenant.pk  # the first one is untouched


# --- who may, and whose ------------------------------------------------------------------------------


def test_only_admins_invite_and_manage_invitations(api_a, tenant_a, make_member):
    body, _ = invite(api_a, "x@alpha.example")
    for role in ("technician", "dispatcher"):
        member = token_client(make_member(tenant_a.tenant, role).api_token)
        assert member.post("/api/v1/users/", {"email": "y@alpha.example"}, format="json").status_code == 403
        assert member.get("/api/v1/invitations/").status_code == 403
        assert member.get(f"/api/v1/invitations/{body['id']}/").status_code == 403
        assert member.delete(f"/api/v1/invitations/{body['id']}/").status_code == 403
        assert member.post(f"/api/v1/invitations/{body['id']}/resend/").status_code == 403
    assert row(api_a, body["id"])["state"] == "pending" and len(mail.outbox) == 1
    assert not Invitation.objects.unscoped().filter(email="y@alpha.example").exists()


def test_another_tenants_admin_cannot_see_withdraw_or_resend(api_a, api_b):
    body, token = invite(api_a, "mine@alpha.example")
    assert api_b.get("/api/v1/invitations/").json()["count"] == 0
    for r in (api_b.get(f"/api/v1/invitations/{body['id']}/"), api_b.delete(f"/api/v1/invitations/{body['id']}/"),
              api_b.post(f"/api/v1/invitations/{body['id']}/resend/")):
        assert r.status_code == 404 and "mine@alpha.example" not in r.content.decode()
    assert len(mail.outbox) == 1
    assert row(api_a, body["id"])["state"] == "pending"
    assert accept_api(token).status_code == 201  # still the same, working link


def test_the_list_is_paginated_and_searchable(api_a):
    for n in range(3):
        api_a.post("/api/v1/users/", {"email": f"p{n}@alpha.example", "name": f"Person {n}"}, format="json")
    page = api_a.get("/api/v1/invitations/", {"page_size": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert [i["email"] for i in api_a.get("/api/v1/invitations/", {"q": "person 1"}).json()["results"]] == [
        "p1@alpha.example"]


def test_accepting_is_throttled_per_address(monkeypatch, api_a):
    monkeypatch.setattr(InvitationAcceptThrottle, "THROTTLE_RATES", {"invitation_accept": "2/min"})
    _, token = invite(api_a, "slowpoke@alpha.example")
    assert [accept_api("y" * 43).status_code for _ in range(2)] == [400, 400]
    blocked = accept_api(token)
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    web = WebClient().post(f"/accounts/invitations/{token}/",
                           {"password1": "a-fine-password-42", "password2": "a-fine-password-42"})
    assert web.status_code == 429
    elsewhere = APIClient(REMOTE_ADDR="198.51.100.9").post(
        "/api/v1/invitations/accept/", {"token": token, "password": "a-fine-password-42"}, format="json")
    assert elsewhere.status_code == 201
    forget_invitation_accepts("198.51.100.9")


# --- the token stays secret ----------------------------------------------------------------------------


def test_the_token_is_stored_as_a_hash_and_never_answered(api_a, tenant_a):
    body, token = invite(api_a, "secret@alpha.example")
    invitation = Invitation.objects.unscoped().get(pk=body["id"])
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 40  # secrets.token_urlsafe(32)
    answers = [api_a.get("/api/v1/invitations/").content, api_a.get(f"/api/v1/invitations/{body['id']}/").content,
               api_a.get("/api/v1/side-effects/").content]
    with committed():
        answers.append(api_a.post(f"/api/v1/invitations/{body['id']}/resend/").content)
    new_token = LINK.search(mail.outbox[-1].body).group(2)
    for answer in answers:
        text = answer.decode()
        for secret in (token, new_token, invitation.token_hash):
            assert secret not in text
    effect = SideEffect.objects.unscoped().filter(kind=service.EMAIL_KIND).first()
    assert token not in str(effect.payload) and "secret@alpha.example" not in effect.label


def test_log_lines_and_access_logs_never_show_a_link_token():
    from psa.redact import RedactSecrets

    path = "/accounts/invitations/Zx81_secretTOKEN-value/"
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Bad Request: %s", (path,), None)
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == "Bad Request: /accounts/invitations/[redacted]/"
    # Configured on the handlers that write: the root logger's and runserver's request lines.
    for name in ("", "django.server"):
        assert any(isinstance(f, RedactSecrets) for h in logging.getLogger(name).handlers for f in h.filters), name

    namespace = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("logger_class", namespace["logger_class"])
    logger = cfg.logger_class(cfg)

    class Answer:
        status, sent, headers = "200 OK", 10, []

    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_REFERER": f"https://psa.example.com{path}"}
    atoms = logger.atoms(Answer(), [], environ, dt.timedelta(seconds=1))
    assert "secretTOKEN" not in "".join(str(v) for v in atoms.values())
    assert atoms["r"] == "GET /accounts/invitations/[redacted]/ HTTP/1.1"
