"""Tenant bootstrapping: the defaults every new MSP starts with."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from psa.models import Membership, Role, Tenant
from psa.tenancy import tenant_context

DEFAULT_BOARDS = ["General", "Alerts", "Security", "Triage"]
# (name, is_default, is_closed)
DEFAULT_STATUSES = [("New", True, False), ("In Progress", False, False), ("Waiting", False, False), ("Closed", False, True)]
DEFAULT_PRIORITIES = ["Low", "Medium", "High", "Critical"]


class TenantExists(ValueError):
    pass


@dataclass
class CreatedTenant:
    tenant: Tenant
    user: object
    api_token: str


@transaction.atomic
def create_tenant(name: str, admin_email: str, admin_password: str) -> CreatedTenant:
    from tickets.models import Board, Priority, Status

    name = name.strip()
    if not name:
        raise ValueError("Tenant name is required.")
    if Tenant.objects.filter(name__iexact=name).exists():
        raise TenantExists(f"A tenant named {name!r} already exists.")
    User = get_user_model()
    if User.objects.filter(email__iexact=admin_email).exists():
        raise TenantExists(f"A user with email {admin_email!r} already exists.")
    # Django's AUTH_PASSWORD_VALIDATORS (ValidationError, a ValueError for the command's caller).
    try:
        password_validation.validate_password(admin_password, user=User(email=admin_email))
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from None
    tenant = Tenant.objects.create(name=name)
    user = User.objects.create_user(admin_email, admin_password)
    Membership.objects.create(tenant=tenant, user=user, role=Role.ADMIN)
    with tenant_context(tenant):
        for board in DEFAULT_BOARDS:
            Board.objects.create(tenant=tenant, name=board)
        for pos, (status, is_default, is_closed) in enumerate(DEFAULT_STATUSES):
            Status.objects.create(tenant=tenant, name=status, is_default=is_default, is_closed=is_closed, position=pos)
        for pos, prio in enumerate(DEFAULT_PRIORITIES):
            Priority.objects.create(tenant=tenant, name=prio, position=pos)
    token = Token.objects.create(user=user)
    return CreatedTenant(tenant=tenant, user=user, api_token=token.key)


def add_member(
    tenant: Tenant, email: str, password: str, role: str = Role.TECHNICIAN, name: str = ""
) -> tuple[object, str]:
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.create_user(email, password, name=name)
        Membership.objects.create(tenant=tenant, user=user, role=role)
        token = Token.objects.create(user=user)
    return user, token.key
