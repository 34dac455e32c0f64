"""A "world": one saved object of every tenant-owned model, for one tenant.

Isolation tests build a world for tenant A and one for tenant B, then hit every API
route as A with B's ids. ``test_every_tenant_model_has_a_world_factory`` fails when a
TenantModel subclass has no factory here, so a new model cannot escape those tests:
add a ``@factory("app_label.ModelName")`` function below when you add a model.

A factory gets the World, creates exactly one row of its model (inside the world's
tenant context) and returns it. Ask ``w.get("app.Model")`` for the rows it depends on.
Put ``w.text(...)`` in text fields: the marker it carries must never appear in another
tenant's API answers.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.apps import apps
from django.db import models
from django.utils import timezone

from psa.tenancy import TenantModel, tenant_context

FACTORIES: dict[str, Callable[[World], models.Model]] = {}


def factory(label: str):
    def register(fn):
        FACTORIES[label] = fn
        return fn

    return register


def tenant_models() -> list[type[models.Model]]:
    """Every concrete tenant-owned model in the app registry."""
    return [m for m in apps.get_models() if issubclass(m, TenantModel) and not m._meta.abstract]


class World:
    def __init__(self, created, marker: str | None = None):
        self.tenant = created.tenant
        self.admin = created.user
        self.api_token = created.api_token
        self.marker = marker or f"zzworld{uuid.uuid4().hex[:10]}"
        self.objects: dict[str, models.Model] = {"psa.User": self.admin}

    def text(self, what: str) -> str:
        return f"{what} {self.marker}"

    def get(self, label: str) -> models.Model:
        if label not in self.objects:
            if label not in FACTORIES:
                raise KeyError(f"no world factory for {label}; add one in tests/world.py")
            with tenant_context(self.tenant):
                obj = FACTORIES[label](self)
            assert obj.pk is not None and obj._meta.label == label, f"factory {label} returned {obj!r}"
            self.objects[label] = obj
        return self.objects[label]

    __getitem__ = get

    def object_for_model(self, model: type[models.Model]) -> models.Model | None:
        label = model._meta.label
        return self.get(label) if label in FACTORIES or label in self.objects else None

    def snapshot(self) -> dict[str, list[dict]]:
        """Every row of every tenant model for this tenant (to prove a request changed nothing)."""
        out = {}
        for model in tenant_models():
            rows = model.objects.unscoped().filter(tenant_id=self.tenant.pk).order_by("pk").values()
            out[model._meta.label] = [{k: v for k, v in r.items() if not isinstance(v, memoryview)} for r in rows]
        return out


def build_world(created, marker: str | None = None) -> World:
    """One row of every registered factory's model for ``created`` (a CreatedTenant)."""
    w = World(created, marker)
    for label in FACTORIES:
        w.get(label)
    return w


def _model(label: str):
    return apps.get_model(label)


def _now():
    return timezone.now()


# --- psa ------------------------------------------------------------------------------


@factory("psa.Client")
def _client(w):
    return _model("psa.Client").objects.create(name=w.text("Client"), notes=w.text("notes"))


@factory("psa.ClientSite")
def _site(w):
    return _model("psa.ClientSite").objects.create(client=w.get("psa.Client"), name=w.text("Site"), address=w.text("addr"))


@factory("psa.Contact")
def _contact(w):
    return _model("psa.Contact").objects.create(
        client=w.get("psa.Client"), name=w.text("Contact"), email=f"{w.marker}@contact.example"
    )


@factory("psa.Invitation")
def _invitation(w):
    return _model("psa.Invitation").objects.create(
        email=f"{w.marker}@invited.example", name=w.text("Invitee"), role="technician", invited_by=w.admin,
        token_hash=hashlib.sha256(w.marker.encode()).hexdigest(), sends=1, expires_at=_now() + timedelta(days=7),
    )


@factory("psa.Notification")
def _notification(w):
    return _model("psa.Notification").objects.create(user=w.admin, title=w.text("Notice"), body=w.text("body"))


# --- tickets ----------------------------------------------------------------------------


@factory("tickets.Board")
def _board(w):
    return _model("tickets.Board").objects.create(name=w.text("Board"), description=w.text("desc"))


@factory("tickets.Status")
def _status(w):
    return _model("tickets.Status").objects.create(name=w.text("Status"), board=w.get("tickets.Board"), position=9)


@factory("tickets.Priority")
def _priority(w):
    return _model("tickets.Priority").objects.create(name=w.text("Priority"), position=9)


@factory("tickets.Category")
def _category(w):
    return _model("tickets.Category").objects.create(name=w.text("Category"))


@factory("tickets.Ticket")
def _ticket(w):
    from tickets.services import create_ticket

    return create_ticket(
        actor=w.admin, board=w.get("tickets.Board"), status=w.get("tickets.Status"), title=w.text("Ticket"),
        description=w.text("desc"), client=w.get("psa.Client"), site=w.get("psa.ClientSite"),
        contact=w.get("psa.Contact"), priority=w.get("tickets.Priority"), category=w.get("tickets.Category"),
        assignee=w.admin, asset=w.get("assets.Asset"),
    )


@factory("tickets.TicketNote")
def _note(w):
    from tickets.services import add_note

    return add_note(w.get("tickets.Ticket"), body=w.text("Note"), kind="internal", author=w.admin)


@factory("tickets.TicketActivity")
def _activity(w):
    from tickets.models import ActivityKind

    return _model("tickets.TicketActivity").objects.create(
        ticket=w.get("tickets.Ticket"), actor=w.admin, kind=ActivityKind.UPDATE, data={"fields": ["title"]}
    )


@factory("tickets.TimeEntry")
def _time_entry(w):
    from tickets.services import add_time_entry

    return add_time_entry(w.get("tickets.Ticket"), user=w.admin, minutes=15, note=w.text("Time"))


@factory("tickets.TicketRelation")
def _ticket_relation(w):
    from tickets.services import create_ticket

    other = create_ticket(actor=w.admin, board=w.get("tickets.Board"), status=w.get("tickets.Status"),
                          title=w.text("Related ticket"), client=w.get("psa.Client"), asset=w.get("assets.Asset"))
    return _model("tickets.TicketRelation").objects.create(
        ticket=w.get("tickets.Ticket"), related=other, reason=w.text("same device")
    )


# --- assets ------------------------------------------------------------------------------


@factory("assets.Asset")
def _asset(w):
    return _model("assets.Asset").objects.create(
        client=w.get("psa.Client"), site=w.get("psa.ClientSite"), name=w.text("Asset"), hostname=f"{w.marker}-host",
        serial_number=f"SN-{w.marker}", asset_type="server", os="Linux", status="online", last_seen=_now(),
    )


@factory("assets.AssetExternalId")
def _asset_external_id(w):
    return _model("assets.AssetExternalId").objects.create(
        asset=w.get("assets.Asset"), provider="generic", external_id=f"dev-{w.marker}"
    )


@factory("assets.Software")
def _software(w):
    return _model("assets.Software").objects.create(asset=w.get("assets.Asset"), name=w.text("Software"), version="1.0")


@factory("assets.Patch")
def _patch(w):
    return _model("assets.Patch").objects.create(
        asset=w.get("assets.Asset"), external_id=f"patch-{w.marker}", title=w.text("Patch"), source="generic"
    )


@factory("assets.InventoryFingerprint")
def _inventory_fingerprint(w):
    return _model("assets.InventoryFingerprint").objects.create(
        asset=w.get("assets.Asset"), source="generic", kind="software", digest="0" * 64, synced_at=_now()
    )


# --- integrations ------------------------------------------------------------------------


@factory("integrations.Integration")
def _integration(w):
    return _model("integrations.Integration").objects.create(provider="generic", account_name=w.text("Account"))


@factory("integrations.ExternalOrganization")
def _external_org(w):
    return _model("integrations.ExternalOrganization").objects.create(
        integration=w.get("integrations.Integration"), external_id=f"org-{w.marker}", name=w.text("Org"),
        client=w.get("psa.Client"), mapping="manual",
    )


@factory("integrations.Job")
def _job(w):
    return _model("integrations.Job").objects.create(
        kind="devices_sync", integration=w.get("integrations.Integration"), state="succeeded", created_by=w.admin,
        summary={"note": w.marker},
    )


# --- alerts ----------------------------------------------------------------------------------


def _dedup(w) -> str:
    return hashlib.sha256(f"v1|generic|{w.marker}".encode()).hexdigest()


@factory("alerts.InboundEvent")
def _inbound_event(w):
    return _model("alerts.InboundEvent").objects.create(
        integration=w.get("integrations.Integration"), provider="generic", delivery_id=f"evt-{w.marker}",
        status="processed", summary=w.text("Event"), body=b"{}", size=2,
    )


@factory("alerts.AlertGroup")
def _alert_group(w):
    now = _now()
    return _model("alerts.AlertGroup").objects.create(
        dedup_key=_dedup(w), condition_key=f"cond-{w.marker}", provider="generic", ticket=w.get("tickets.Ticket"),
        rule=w.get("alerts.AlertRule"), first_seen=now, last_seen=now,
    )


@factory("alerts.Alert")
def _alert(w):
    now = _now()
    return _model("alerts.Alert").objects.create(
        integration=w.get("integrations.Integration"), provider="generic", external_id=f"alert-{w.marker}",
        condition_key=f"cond-{w.marker}", dedup_key=_dedup(w), severity="high", title=w.text("Alert"),
        message=w.text("msg"), organization=w.get("integrations.ExternalOrganization"),
        organization_external_id=f"org-{w.marker}", device_external_id=f"dev-{w.marker}",
        asset=w.get("assets.Asset"), client=w.get("psa.Client"), group=w.get("alerts.AlertGroup"),
        ticket=w.get("tickets.Ticket"), rule=w.get("alerts.AlertRule"), first_seen=now, last_seen=now,
        last_event_at=now,
    )


@factory("alerts.AlertStorm")
def _alert_storm(w):
    now = _now()
    storm = _model("alerts.AlertStorm").objects.create(
        integration=w.get("integrations.Integration"), client=w.get("psa.Client"), ticket=w.get("tickets.Ticket"),
        alert_count=3, started_at=now, last_alert_at=now)
    _model("alerts.AlertGroup").objects.filter(pk=w.get("alerts.AlertGroup").pk).update(storm=storm)
    return storm


@factory("alerts.AlertRule")
def _alert_rule(w):
    rule = _model("alerts.AlertRule").objects.create(
        name=w.text("Rule"), position=1, conditions={"text_contains": w.marker}, board=w.get("tickets.Board"),
        priority=w.get("tickets.Priority"), category=w.get("tickets.Category"), assignee=w.admin,
        title_template=w.text("{{ title }}"),
    )
    rule.notify_users.add(w.admin)
    return rule


@factory("alerts.MaintenanceWindow")
def _maintenance_window(w):
    start = _now() + timedelta(days=30)
    return _model("alerts.MaintenanceWindow").objects.create(
        name=w.text("Window"), scope="client", client=w.get("psa.Client"), starts_at=start,
        ends_at=start + timedelta(hours=2),
    )


# --- incidents (the incident router) -------------------------------------------------------------


def _huntress_integration(w):
    """A second integration of the world: incident routes live under /integrations/huntress/."""
    found = _model("integrations.Integration").objects.filter(provider="huntress").first()
    return found or _model("integrations.Integration").objects.create(
        provider="huntress", account_name=w.text("Huntress account"))


@factory("incidents.IncidentRouting")
def _incident_routing(w):
    return _model("incidents.IncidentRouting").objects.create(
        integration=_huntress_integration(w), security_board=w.get("tickets.Board"),
        category=w.get("tickets.Category"), fallback_client=w.get("psa.Client"), fallback_board=w.get("tickets.Board"),
        priority_critical=w.get("tickets.Priority"), priority_high=w.get("tickets.Priority"),
        priority_low=w.get("tickets.Priority"),
    )


@factory("incidents.Incident")
def _incident(w):
    return _model("incidents.Incident").objects.create(
        integration=_huntress_integration(w), provider="huntress", external_id=f"inc-{w.marker}",
        ticket=w.get("tickets.Ticket"), subject=w.text("Incident"), organization_name=w.text("Org"),
        severity="high", status="sent", state={"severity": "high", "status": "sent", "is_closed": False},
    )


@factory("incidents.Escalation")
def _escalation(w):
    return _model("incidents.Escalation").objects.create(
        integration=_huntress_integration(w), provider="huntress", external_id=f"esc-{w.marker}",
        subject=w.text("Escalation"), organizations=[{"id": "1", "name": w.text("Org")}], status="open",
    )


@factory("incidents.IncidentChange")
def _incident_change(w):
    return _model("incidents.IncidentChange").objects.create(
        incident=w.get("incidents.Incident"), key=f"severity:high@{w.marker}", detail=w.text("change"),
        source="poll", note=w.get("tickets.TicketNote"),
    )


# --- outbox (side effects) -----------------------------------------------------------------------


@factory("outbox.SideEffect")
def _side_effect(w):
    now = _now()
    return _model("outbox.SideEffect").objects.create(
        kind="alert.reset", key=f"alert:world:{w.marker}", label=w.text("Reset in Fake"), state="failed",
        attempts=3, last_error=w.text("RMM is down"), ticket=w.get("tickets.Ticket"), alert=w.get("alerts.Alert"),
        integration=w.get("integrations.Integration"), created_at=now, next_attempt_at=now,
        give_up_at=now + timedelta(hours=6), done_at=now,
    )
