"""Accepting an invitation under real concurrency: threads, each on its own PostgreSQL connection, accept
at the same moment. One link accepted twice at once makes one member (the invitation row is locked and
the second accept finds it used); one new address invited by two MSPs and accepted in both at once gets
one sign-in (the other is told the address has one)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from rest_framework.authtoken.models import Token

from psa.models import Invitation, Membership
from psa.services import invitations as service
from tests.helpers import run_together

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 4
ROUNDS = 3


def token_of(email: str) -> str:
    sent = [m for m in mail.outbox if m.to == [email]]
    return re.search(r"/accounts/invitations/([A-Za-z0-9_-]+)/", sent[-1].body).group(1)


def accept_together(tokens: list[str]) -> tuple[list, list[BaseException]]:
    return run_together(lambda token: service.accept(token, password="a-fine-password-42"), [(t,) for t in tokens])


def test_one_link_accepted_at_once_by_several_makes_one_member(make_tenant):
    created = make_tenant()
    for n in range(ROUNDS):
        email = f"race{n}@race.example"
        invitation = service.invite(created.tenant, email=email, invited_by=created.user)  # the email goes out
        done, errors = accept_together([token_of(email)] * THREADS)
        assert len(done) == 1, (done, errors)
        assert len(errors) == THREADS - 1
        assert all(isinstance(e, service.InvalidInvitation) and str(e) == service.NOT_VALID for e in errors), errors
        user = get_user_model().objects.get(email=email)
        assert Membership.objects.filter(user=user, tenant=created.tenant).count() == 1
        assert Token.objects.filter(user=user).count() == 1
        invitation = Invitation.objects.unscoped().get(pk=invitation.pk)
        assert invitation.user_id == user.pk and invitation.accepted_at is not None


def test_one_address_invited_by_two_msps_and_accepted_in_both_at_once_gets_one_sign_in(make_tenant):
    first, second = make_tenant(), make_tenant()
    for n in range(ROUNDS):
        email = f"both{n}@race.example"
        a = service.invite(first.tenant, email=email, invited_by=first.user)
        token_a = token_of(email)
        b = service.invite(second.tenant, email=email, invited_by=second.user)
        token_b = token_of(email)
        done, errors = accept_together([token_a, token_b])
        assert len(done) == 1 and len(errors) == 1, (done, errors)
        assert isinstance(errors[0], service.AddressTaken) and "one sign-in belongs to one MSP" in str(errors[0])
        user = get_user_model().objects.get(email=email)
        assert Membership.objects.filter(user=user).count() == 1
        winner = done[0].invitation.pk
        loser = Invitation.objects.unscoped().get(pk=(b.pk if winner == a.pk else a.pk))
        assert loser.accepted_at is None and loser.user_id is None  # still pending for its admin
