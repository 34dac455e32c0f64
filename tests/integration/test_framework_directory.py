"""Framework additions for device providers: live directory changes (the DirectoryChange sink), one
batch applier for syncs and live upserts (partial records), field mapping in the sync, contact linking
and the contact of alert tickets; reset declined (NotResettable); reconcile scope (PollResult.covers);
a polled alert whose maintenance window ended."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertState, MaintenanceWindow
from alerts.services.pipeline import ingest_normalized
from assets.models import Asset, AssetExternalId
from integrations import sinks
from integrations.errors import NotResettable
from integrations.models import ExternalOrganization
from integrations.records import DirectoryChange, DirectoryChangeKind, ExternalOrg, PollResult
from integrations.services import devices, orgs
from integrations.services.contacts import ContactIndex, login_of, name_of
from integrations.services.polling import run_poll
from psa.models import Contact
from psa.tenancy import tenant_context
from tests.fakes import alert as fake_alert
from tests.fakes import device
from tests.helpers import committed
from tests.integration.pipeline_support import setup_fake
from tickets.models import Status, Ticket, TicketNote

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider):
    fx = setup_fake(tenant_a.tenant)  # o1 mapped to a client
    with tenant_context(fx.tenant):
        fx.sub = orgs.discover(fx.integration, "o1-sub", "Branch", parent_external_id="o1")  # inherits o1
        fx.other = orgs.discover(fx.integration, "o2", "Unmapped")
    return fx


def deliver(fx, change):
    return sinks.deliver(fx.integration, change, source="webhook")


def asset_of(fx, external_id):
    with tenant_context(fx.tenant):
        x = AssetExternalId.objects.select_related("asset").filter(provider="fake", external_id=external_id).first()
        return x.asset if x else None


# -- organizations --------------------------------------------------------------------------------
def test_org_upsert_and_delete_keep_the_mapping(fx):
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.ORG_UPSERT,
                                      organization=ExternalOrg("o3", "New group", parent_external_id="o1",
                                                               device_count=4)))
    assert out["action"] == "organization_created"
    with tenant_context(fx.tenant):
        new = ExternalOrganization.objects.get(external_id="o3")
        assert (new.parent_external_id, new.device_count, new.client_id) == ("o1", 4, None)
        assert orgs.resolve_organization(fx.integration, "o3").client == fx.client  # inherits at once
    # Renamed, moved; an event without a count keeps the last one.
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.ORG_UPSERT, organization=ExternalOrg("o1", "Renamed")))
    assert out["action"] == "organization_updated"
    with tenant_context(fx.tenant):
        fx.org.refresh_from_db()
    assert (fx.org.name, fx.org.client_id) == ("Renamed", fx.client.pk)
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.ORG_DELETE, deleted_external_id="o1"))
    assert out["action"] == "organization_missing"
    with tenant_context(fx.tenant):
        fx.org.refresh_from_db()
    assert fx.org.missing_since is not None and fx.org.client_id == fx.client.pk  # row and mapping stay
    assert deliver(fx, DirectoryChange(DirectoryChangeKind.ORG_DELETE, deleted_external_id="o1"))["action"] == (
        "directory_ignored")
    # It comes back.
    deliver(fx, DirectoryChange(DirectoryChangeKind.ORG_UPSERT, organization=ExternalOrg("o1", "Back")))
    with tenant_context(fx.tenant):
        fx.org.refresh_from_db()
    assert fx.org.missing_since is None


# -- devices ----------------------------------------------------------------------------------------
def test_device_upsert_full_then_partial_then_moved_then_deleted(fx, fake_provider):
    fake_provider.default_field_mapping = {"attr.cpu": "cpu.model", "attr.tags": "tags"}
    full = device("d1", "o1-sub", hostname="PC-1", serial_number="SN1", os="Windows 11", asset_type="server",
                  status="online", last_user="HARBOR\\mlopez", local_ips=["10.0.0.5"],
                  raw={"cpu": {"model": "i5"}, "tags": ["a"]})
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT, device=full))
    assert out["action"] == "asset_created"
    asset = asset_of(fx, "d1")
    assert (asset.client_id, asset.os, asset.asset_type, asset.status) == (fx.client.pk, "Windows 11", "server",
                                                                           "online")
    assert asset.attributes == {"cpu": "i5", "tags": ["a"]}
    # A partial record (the webhook payload alone): only what it carries changes, the org is kept.
    partial = device("d1", "", hostname="PC-1-renamed", raw={"tags": ["b"]})
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT, device=partial, partial=True))
    assert out == {**out, "action": "asset_updated", "asset": asset.pk}
    asset = asset_of(fx, "d1")
    assert (asset.hostname, asset.os, asset.asset_type, asset.status, asset.last_user, asset.local_ips) == (
        "PC-1-renamed", "Windows 11", "server", "online", "HARBOR\\mlopez", ["10.0.0.5"])
    assert asset.attributes == {"cpu": "i5", "tags": ["b"]}  # a partial record adds, never removes
    # Moved to an unmapped organization: retired, as the next full sync would.
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT, device=device("d1", "o2")))
    assert out["action"] == "asset_retired" and asset_of(fx, "d1").retired_at is not None
    # Back in a mapped one: un-retired (same asset).
    deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT, device=device("d1", "o1", hostname="PC-1")))
    assert asset_of(fx, "d1").retired_at is None and asset_of(fx, "d1").pk == asset.pk
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_DELETE, deleted_external_id="d1"))
    assert out["action"] == "asset_retired"
    with tenant_context(fx.tenant):
        assert Asset.objects.filter(pk=asset.pk, retired_at__isnull=False).exists()  # never deleted


def test_device_upsert_of_an_unknown_device_without_org_or_in_an_unmapped_org(fx):
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT, device=device("d9", ""), partial=True))
    assert out["action"] == "device_unmapped"
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT, device=device("d9", "o2")))
    assert out["action"] == "device_unmapped"
    out = deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT, device=device("d9", "never-seen")))
    assert out["action"] == "device_unmapped"
    assert asset_of(fx, "d9") is None
    assert deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_DELETE, deleted_external_id="d9"))["action"] == (
        "directory_ignored")


def test_a_live_new_device_takes_over_an_asset_with_its_serial_in_the_same_client(fx, make_asset):
    with tenant_context(fx.tenant):
        by_hand = make_asset(fx.tenant, fx.client, name="Front desk", serial_number="7XK2M93")
    deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT,
                                device=device("d2", "o1", hostname="HDG-FRONT-01", serial_number="7XK2M93")))
    assert asset_of(fx, "d2").pk == by_hand.pk


# -- field mapping and contacts in the device sync ------------------------------------------------------
def test_sync_applies_the_field_mapping_overrides_and_links_contacts(fx, fake_provider):
    fake_provider.default_field_mapping = {"attr.cpu": "cpu.model", "attr.disks": "disks"}
    with tenant_context(fx.tenant):
        maria = Contact.objects.create(client=fx.client, name="Maria Lopez", email="mlopez@harbor.example")
        john = Contact.objects.create(client=fx.client, name="John Smith", email="")
        Contact.objects.create(client=fx.client, name="Twin A", email="pat@harbor.example")
        Contact.objects.create(client=fx.client, name="Twin B", email="pat@other.example")
        fx.integration.settings = {"field_mapping": {"serial_number": "bios.serial", "attr.disks": "",
                                                     "attr.warranty": "custom.warranty"}}
        fx.integration.save()
    fake_provider.state.devices = [
        device("d1", "o1", serial_number="FROM-RECORD", last_user="HARBOR\\MLopez",
               raw={"bios": {"serial": "BIOS-1"}, "cpu": {"model": "i7"}, "disks": [1], "custom": {"warranty": "2027"}}),
        device("d2", "o1-sub", last_user="john smith", raw={}),
        device("d3", "o1", last_user="AzureAD\\pat", raw={"bios": {"serial": ""}}),  # two contacts: no link
        device("d4", "o1", last_user="nobody@harbor.example", raw={}),
    ]
    with tenant_context(fx.tenant):
        summary = devices.sync_devices(fx.integration)
    assert summary["created"] == 4
    d1, d2, d3, d4 = (asset_of(fx, f"d{i}") for i in range(1, 5))
    assert d1.serial_number == "BIOS-1" and d3.serial_number == ""  # an empty mapped value keeps the record's
    assert d1.attributes == {"cpu": "i7", "warranty": "2027"}  # attr.disks switched off
    assert (d1.contact_id, d2.contact_id, d3.contact_id, d4.contact_id) == (maria.pk, john.pk, None, None)
    # The user changes: the link follows; no user reported: the link stays.
    fake_provider.state.devices = [device("d1", "o1", last_user="jsmith", raw={}),
                                   device("d2", "o1-sub", last_user="", raw={})]
    with tenant_context(fx.tenant):
        devices.sync_devices(fx.integration, full=False)
    assert asset_of(fx, "d1").contact_id is None and asset_of(fx, "d2").contact_id == john.pk
    assert asset_of(fx, "d1").attributes == {}  # a full record: attributes are its whole truth


def test_an_alert_ticket_gets_the_contact_of_its_device(fx):
    with tenant_context(fx.tenant):
        maria = Contact.objects.create(client=fx.client, name="Maria Lopez", email="mlopez@harbor.example")
    deliver(fx, DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT,
                                device=device("d1", "o1", last_user="mlopez@harbor.example")))
    with committed():
        alert = ingest_normalized(fx.integration, fake_alert("a-1", "o1", device_external_id="d1"), source="webhook")
    with tenant_context(fx.tenant):
        ticket = Ticket.objects.get(pk=alert.ticket_id)
    assert ticket.asset_id == asset_of(fx, "d1").pk and ticket.contact_id == maria.pk


def test_contact_matching_rules(fx):
    assert login_of("HARBOR\\M.Lopez") == "m.lopez" and login_of("m.lopez@x.example") == "m.lopez"
    assert name_of("maria.lopez") == "maria lopez" and name_of("Maria  Lopez") == "maria lopez"
    assert name_of("mlopez") == ""
    with tenant_context(fx.tenant):
        other_client = type(fx.client).objects.create(name="Other")
        maria = Contact.objects.create(client=fx.client, name="Maria Lopez", email="maria.l@harbor.example")
        Contact.objects.create(client=other_client, name="Maria Lopez", email="mlopez@other.example")
        index = ContactIndex([fx.client.pk, other_client.pk, None])
    assert index.match(fx.client.pk, "HARBOR\\maria.lopez") == maria.pk  # by the name in the login
    assert index.match(fx.client.pk, "CORP\\mlopez") is None  # that login is another client's contact
    assert index.contact_for(fx.client.pk, "", maria.pk) == maria.pk
    assert index.contact_for(other_client.pk, "", maria.pk) is None  # not this client's contact


# -- reset declined, reconcile scope, ended windows -----------------------------------------------------
def test_a_declined_reset_is_skipped_with_a_note_not_failed(fx, fake_provider, tenant_a, api_a):
    fake_provider.state.reset_failures = {"a-1": NotResettable("the API key is read-only; give it write access.")}
    with committed():
        a1 = ingest_normalized(fx.integration, fake_alert("a-1", "o1"), source="webhook")
    with tenant_context(fx.tenant):
        closed = Status.objects.get(name="Closed")
    with committed():
        assert api_a.patch(f"/api/v1/tickets/{a1.ticket_id}/", {"status": closed.pk}, format="json").status_code == 200
    with tenant_context(fx.tenant):
        a1.refresh_from_db()
        bodies = list(TicketNote.objects.filter(ticket_id=a1.ticket_id).values_list("body", flat=True))
        assert Ticket.objects.get(pk=a1.ticket_id).status.is_closed
    assert (a1.reset_status, a1.reset_error) == ("skipped", "the API key is read-only; give it write access.")
    assert any("was not reset in Fake RMM: the API key is read-only" in b for b in bodies)
    assert not any("Could not reset" in b for b in bodies)


def test_reconcile_leaves_alone_what_the_snapshot_does_not_cover(fx, fake_provider):
    with committed():
        ingest_normalized(fx.integration, fake_alert("a-1", "o1"), source="webhook")
        ingest_normalized(fx.integration, fake_alert("route:x", "o1"), source="webhook")
    fake_provider.state.poll_result = PollResult(active=[], complete=True,
                                                 covers=lambda ext: not ext.startswith("route:"))
    with tenant_context(fx.tenant), committed():
        summary = run_poll(fx.integration)
    assert summary["reconciled"]["resolved"] == 1 and summary["reconciled"]["not_covered"] == 1
    with tenant_context(fx.tenant):
        states = dict(Alert.objects.values_list("external_id", "state"))
    assert states == {"a-1": "resolved", "route:x": "active"}


def test_a_polled_alert_whose_window_ended_comes_back_at_once(fx, fake_provider):
    now = timezone.now()
    with tenant_context(fx.tenant):
        window = MaintenanceWindow.objects.create(name="Patch night", scope="all", starts_at=now - dt.timedelta(hours=1),
                                                  ends_at=now + dt.timedelta(hours=1), timezone="UTC")
    with committed():
        suppressed = ingest_normalized(fx.integration, fake_alert("a-1", "o1"), source="webhook")
    assert suppressed.state == AlertState.SUPPRESSED and suppressed.ticket_id is None
    with tenant_context(fx.tenant):
        MaintenanceWindow.objects.filter(pk=window.pk).update(ends_at=now - dt.timedelta(minutes=1))
        Alert.objects.filter(pk=suppressed.pk).update(suppressed_until=now - dt.timedelta(minutes=1))
    # A webhook redelivery changes nothing; the poll (the provider still reports it) brings it back.
    with committed():
        again = ingest_normalized(fx.integration, fake_alert("a-1", "o1"), source="webhook")
    assert again.outcome["action"] == "redelivery"
    with committed():
        back = ingest_normalized(fx.integration, fake_alert("a-1", "o1"), source="poll")
    assert back.outcome["action"] == "window_ended:ticket_created"
    assert back.state == AlertState.ACTIVE and back.ticket_id is not None
