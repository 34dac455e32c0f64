"""Demo data for the one-command start: idempotent, safe to run on every start."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from psa.models import Client, ClientSite, Contact, Membership, Notification, Role, Tenant
from psa.services.tenants import create_tenant
from psa.tenancy import tenant_context

DEMO_TENANT = "Demo MSP"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-1234"

CLIENTS = [
    ("Acme Dental", "Main office", ("Dana Reyes", "dana@acme-dental.example")),
    ("Globex Logistics", "Warehouse", ("Sam Okafor", "sam@globex.example")),
]
ASSETS = [
    ("Acme Dental", "ACME-FRONTDESK", "workstation", "Windows 11 Pro", "online", "SN-AC-1001"),
    ("Acme Dental", "ACME-SRV01", "server", "Windows Server 2022", "online", "SN-AC-2001"),
    ("Globex Logistics", "GLX-WH-PC3", "workstation", "Windows 10 Pro", "offline", "SN-GX-3003"),
]
TICKETS = [
    ("Front desk printer offline", "Acme Dental", "ACME-FRONTDESK", "Medium", "General"),
    ("Backup job failed on ACME-SRV01", "Acme Dental", "ACME-SRV01", "High", "Alerts"),
    ("New starter laptop for warehouse", "Globex Logistics", None, "Low", "General"),
    ("Suspicious login reported", "Globex Logistics", "GLX-WH-PC3", "Critical", "Security"),
]


@dataclass
class Demo:
    tenant: Tenant
    email: str
    password: str
    api_token: str
    created: bool


@transaction.atomic
def seed_demo(password: str = DEMO_PASSWORD) -> Demo:
    """Create (or refresh) the demo tenant; re-running changes nothing except resetting the demo password."""
    from assets.models import Asset
    from tickets.models import Board, Priority, Ticket
    from tickets.services import add_note, create_ticket

    User = get_user_model()
    tenant = Tenant.objects.filter(name=DEMO_TENANT).first()
    created = tenant is None
    if created:
        tenant = create_tenant(DEMO_TENANT, DEMO_EMAIL, password).tenant
    user = User.objects.filter(email=DEMO_EMAIL).first()
    if user is None:
        user = User.objects.create_user(DEMO_EMAIL, password)
    membership = Membership.objects.filter(user=user).first()
    if membership is None:
        Membership.objects.create(tenant=tenant, user=user, role=Role.ADMIN)
    elif membership.tenant_id != tenant.pk:
        raise ValueError(f"{DEMO_EMAIL} belongs to another tenant; refusing to move it into {DEMO_TENANT!r}.")
    # The printed login must work, so the demo password is (re)set on every run.
    user.set_password(password)
    if not user.name:
        user.name = "Demo Admin"
    user.save()
    token, _ = Token.objects.get_or_create(user=user)  # reused: the printed token stays the same

    with tenant_context(tenant):
        clients = {}
        for name, site, (contact, email) in CLIENTS:
            client, _ = Client.objects.get_or_create(name=name)
            ClientSite.objects.get_or_create(client=client, name=site)
            Contact.objects.get_or_create(client=client, name=contact, defaults={"email": email})
            clients[name] = client
        assets = {}
        for client_name, name, kind, os_name, status, serial in ASSETS:
            asset, _ = Asset.objects.get_or_create(
                client=clients[client_name], name=name,
                defaults={"hostname": name.lower(), "asset_type": kind, "os": os_name, "status": status,
                          "serial_number": serial, "last_seen": timezone.now()},
            )
            assets[name] = asset
        if not Ticket.objects.exists():
            for title, client_name, asset_name, prio, board in TICKETS:
                ticket = create_ticket(
                    actor=user, board=Board.objects.get(name=board), title=title, client=clients[client_name],
                    asset=assets.get(asset_name), priority=Priority.objects.filter(name=prio).first(),
                    description=f"Demo ticket for {client_name}.",
                )
                if asset_name:
                    add_note(ticket, body="Seeded by the demo command.", kind="system", author=None)
        if not Notification.objects.filter(user=user).exists():
            Notification.objects.create(
                user=user, title="Welcome to the PSA demo",
                body="Tickets, assets and clients are seeded. Connect an RMM under Settings > Integrations > RMM.",
                url="/tickets/",
            )
    return Demo(tenant=tenant, email=DEMO_EMAIL, password=password, api_token=token.key, created=created)
