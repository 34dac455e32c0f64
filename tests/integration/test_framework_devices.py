"""Device sync driver: identity upsert, serial match within a client, retire, skip unmapped, streaming."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assets.models import Asset, AssetExternalId, Software
from integrations.records import SoftwareRecord
from integrations.services import config, devices, orgs
from tests.fakes import device


@pytest.fixture
def setup(tenant_a, fake_provider, as_tenant, make_client):
    acme, globex = make_client(tenant_a.tenant, "Acme"), make_client(tenant_a.tenant, "Globex")
    with as_tenant(tenant_a.tenant):
        integration = config.get_integration("fake", create=True)
        config.update_integration(integration, credentials={"api_key": "k" * 20})
        orgs.set_mapping(orgs.discover(integration, "o-acme", "Acme"), acme)
        orgs.set_mapping(orgs.discover(integration, "o-globex", "Globex"), globex)
        orgs.discover(integration, "o-acme-site", "Acme branch", parent_external_id="o-acme")  # inherits Acme
        orgs.discover(integration, "o-unmapped", "Nobody")
    return integration, acme, globex


def _sync(tenant, as_tenant, integration):
    with as_tenant(tenant):
        return devices.sync_devices(integration)


def test_identity_upsert_creates_then_updates(setup, tenant_a, as_tenant, fake_provider):
    integration, acme, _ = setup
    seen = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
    fake_provider.state.devices = [
        device("d1", "o-acme", hostname="PC1", serial_number="SN1", asset_type="workstation", status="online",
               last_seen=seen, local_ips=["10.0.0.5"], remote_access_url="https://rmm.example/d1"),
        device("d2", "o-acme-site", serial_number="SN2", asset_type="bogus", status="weird"),
    ]
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert s == {"created": 2, "updated": 0, "matched_by_serial": 0, "unchanged": 0, "retired": 0,
                 "skipped_unmapped": 0, "total": 2}
    # The provider only gets the mapped organizations (and their inheriting children).
    assert fake_provider.state.requested_orgs[-1] == {"o-acme", "o-globex", "o-acme-site"}
    fake_provider.state.devices = [device("d1", "o-acme", name="PC1-renamed", hostname="", serial_number="SN1"),
                                   device("d2", "o-acme-site", serial_number="SN2")]
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["created"], s["updated"]) == (0, 2)
    with as_tenant(tenant_a.tenant):
        assert Asset.objects.count() == 2
        d1 = AssetExternalId.objects.get(provider="fake", external_id="d1").asset
        d2 = AssetExternalId.objects.get(provider="fake", external_id="d2").asset
    assert d1.name == "PC1-renamed" and d1.hostname == "PC1"  # an empty provider value keeps what we had
    assert d1.client == acme and d1.last_seen == seen and d1.local_ips == []
    assert (d2.client, d2.asset_type, d2.status) == (acme, "other", "unknown")


def test_serial_match_within_the_same_client_only(setup, tenant_a, as_tenant, fake_provider, make_asset):
    integration, acme, globex = setup
    manual = make_asset(tenant_a.tenant, acme, "Acme laptop", serial_number="SER-123")
    other_client = make_asset(tenant_a.tenant, globex, "Globex box", serial_number="SER-999")
    junk = make_asset(tenant_a.tenant, acme, "Junk serial", serial_number="To be filled by O.E.M.")
    fake_provider.state.devices = [
        device("d1", "o-acme", serial_number="SER-123"),       # same client, same serial -> attach
        device("d2", "o-acme", serial_number="SER-999"),       # serial exists only in another client -> new
        device("d3", "o-acme", serial_number="To be filled by O.E.M."),  # placeholder serial -> new
        device("d4", "o-acme", serial_number="SER-123"),       # a second device with that serial -> new
    ]
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["created"], s["matched_by_serial"], s["updated"]) == (3, 1, 0)
    with as_tenant(tenant_a.tenant):
        ids = {x.external_id: x.asset_id for x in AssetExternalId.objects.filter(provider="fake")}
        assert ids["d1"] == manual.pk
        assert ids["d2"] != other_client.pk and Asset.objects.get(pk=ids["d2"]).client == acme
        assert ids["d3"] != junk.pk and ids["d4"] != manual.pk
        assert Asset.objects.get(pk=other_client.pk).client == globex


def test_reinstalled_agent_attaches_to_existing_asset(setup, tenant_a, as_tenant, fake_provider):
    integration, *_ = setup
    fake_provider.state.devices = [device("agent-old", "o-acme", serial_number="SER-42")]
    _sync(tenant_a.tenant, as_tenant, integration)
    fake_provider.state.devices = [device("agent-new", "o-acme", serial_number="SER-42")]
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["created"], s["matched_by_serial"], s["retired"]) == (0, 1, 0)
    with as_tenant(tenant_a.tenant):
        assert Asset.objects.count() == 1
        asset = Asset.objects.get()
        assert set(asset.external_ids.values_list("external_id", flat=True)) == {"agent-old", "agent-new"}
        assert asset.retired_at is None


def test_missing_devices_retired_and_restored(setup, tenant_a, as_tenant, fake_provider, make_asset):
    integration, acme, _ = setup
    hand_made = make_asset(tenant_a.tenant, acme, "Printer")  # no provider identity: never retired by sync
    fake_provider.state.devices = [device("d1", "o-acme"), device("d2", "o-globex")]
    _sync(tenant_a.tenant, as_tenant, integration)
    fake_provider.state.devices = [device("d1", "o-acme")]
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert s["retired"] == 1
    with as_tenant(tenant_a.tenant):
        d2 = AssetExternalId.objects.get(external_id="d2").asset
        assert d2.retired_at is not None  # marked, not deleted
        assert Asset.objects.get(pk=hand_made.pk).retired_at is None
    fake_provider.state.devices = [device("d1", "o-acme"), device("d2", "o-globex")]
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert s["retired"] == 0 and s["updated"] == 1 and s["unchanged"] == 1  # the returning one is applied
    with as_tenant(tenant_a.tenant):
        assert AssetExternalId.objects.get(external_id="d2").asset.retired_at is None


def test_devices_of_unmapped_orgs_skipped(setup, tenant_a, as_tenant, fake_provider):
    integration, *_ = setup
    # A provider that ignores the requested org set still cannot create assets for unmapped orgs.
    fake_provider.state.filter_orgs = False
    fake_provider.state.devices = [device("d1", "o-unmapped"), device("d2", "o-unknown"), device("d3", "o-acme")]
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["skipped_unmapped"], s["created"], s["total"]) == (2, 1, 3)


def test_software_inventory_replaced_per_source(setup, tenant_a, as_tenant, fake_provider):
    integration, *_ = setup
    fake_provider.state.devices = [device("d1", "o-acme", software=[SoftwareRecord("Chrome", "120"),
                                                                    SoftwareRecord("7-Zip", "23")])]
    _sync(tenant_a.tenant, as_tenant, integration)
    with as_tenant(tenant_a.tenant):
        asset = AssetExternalId.objects.get(external_id="d1").asset
        Software.objects.create(asset=asset, name="Added by another source", source="other")
    fake_provider.state.devices = [device("d1", "o-acme", software=[SoftwareRecord("Chrome", "121")])]
    _sync(tenant_a.tenant, as_tenant, integration)
    with as_tenant(tenant_a.tenant):
        rows = set(Software.objects.filter(asset=asset).values_list("name", "version", "source"))
    assert rows == {("Chrome", "121", "fake"), ("Added by another source", "", "other")}
    # software=None means "not fetched this time": keep the inventory.
    fake_provider.state.devices = [device("d1", "o-acme")]
    _sync(tenant_a.tenant, as_tenant, integration)
    with as_tenant(tenant_a.tenant):
        assert Software.objects.filter(asset=asset, source="fake").count() == 1


def test_no_mapped_orgs_means_no_provider_call(tenant_a, fake_provider, as_tenant):
    with as_tenant(tenant_a.tenant):
        integration = config.get_integration("fake", create=True)
        s = devices.sync_devices(integration)
    assert s["total"] == 0 and "iter_devices" not in fake_provider.state.calls


def test_streaming_5000_devices_in_batched_queries(setup, tenant_a, as_tenant, fake_provider, make_asset):
    integration, acme, _ = setup
    n = 5000
    for i in range(40):  # some existing assets to match by serial
        make_asset(tenant_a.tenant, acme, f"Existing {i}", serial_number=f"SER-{i:05d}")
    written_while_streaming: list[int] = []

    def stream():
        for i in range(n):
            if i == 1200:  # the first batches are in the database before the provider is done
                written_while_streaming.append(Asset.objects.unscoped().filter(tenant=tenant_a.tenant).count())
            org = "o-acme" if i % 2 == 0 else "o-globex"
            yield device(f"dev-{i:05d}", org, serial_number=f"SER-{i:05d}",
                         software=[SoftwareRecord("Agent", "1")] if i % 10 == 0 else None)

    fake_provider.state.devices = stream
    with CaptureQueriesContext(connection) as ctx:
        s = _sync(tenant_a.tenant, as_tenant, integration)
    assert s["total"] == n and s["created"] + s["matched_by_serial"] == n
    assert s["matched_by_serial"] == 20  # the even ones among the 40 (odd serials belong to Acme's assets
    # but their devices are in Globex: never matched across clients)
    assert written_while_streaming[0] >= 1000
    assert len(ctx.captured_queries) < 150, len(ctx.captured_queries)  # ~10 per 500-device batch
    # A second full sync of the same records marks them seen in batches (nothing rewritten, none retired).
    with CaptureQueriesContext(connection) as ctx:
        s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["created"], s["updated"], s["unchanged"], s["retired"]) == (0, 0, n, 0)
    assert len(ctx.captured_queries) < 150, len(ctx.captured_queries)
    with as_tenant(tenant_a.tenant):
        assert AssetExternalId.objects.filter(provider="fake").count() == n
        assert Asset.objects.count() == n + 20  # 20 odd-serial Acme assets were never matched


def test_a_device_resolves_through_its_mapped_location_first(setup, tenant_a, as_tenant, fake_provider, make_client):
    from psa.models import ClientSite

    integration, acme, globex = setup
    with as_tenant(tenant_a.tenant):
        branch = ClientSite.objects.create(client=acme, name="Branch")
        loc = orgs.discover(integration, "loc-branch", "Branch", parent_external_id="o-acme")
        orgs.set_mapping(loc, acme, branch)
        # A location whose own row carries another client wins over its organization's mapping.
        other = orgs.discover(integration, "loc-moved", "Moved", parent_external_id="o-acme")
        orgs.set_mapping(other, globex)
    fake_provider.state.devices = [
        device("d1", "o-acme", site_external_id="loc-branch"),
        device("d2", "o-acme", site_external_id="loc-moved"),
        device("d3", "o-acme", site_external_id="loc-never-synced"),  # falls back to the organization
        device("d4", "o-unmapped", site_external_id="loc-branch"),  # a mapped location is enough
    ]
    fake_provider.state.filter_orgs = False
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["created"], s["skipped_unmapped"]) == (4, 0)
    with as_tenant(tenant_a.tenant):
        got = {x.external_id: (x.asset.client_id, x.asset.site_id)
               for x in AssetExternalId.objects.select_related("asset").filter(provider="fake")}
    assert got == {"d1": (acme.pk, branch.pk), "d2": (globex.pk, None), "d3": (acme.pk, None),
                   "d4": (acme.pk, branch.pk)}


def test_the_providers_device_sync_report_joins_the_summary(setup, tenant_a, as_tenant, fake_provider, monkeypatch):
    from tests.fakes import FakeProvider

    integration, _acme, _ = setup
    monkeypatch.setattr(FakeProvider, "device_sync_report",
                        lambda self: {"skipped_unmapped": 7, "unknown_node_classes": ["QUANTUM_TOASTER"]},
                        raising=False)
    fake_provider.state.devices = [device("d1", "o-acme"), device("d9", "o-unmapped")]
    fake_provider.state.filter_orgs = False
    s = _sync(tenant_a.tenant, as_tenant, integration)
    # 1 the framework skipped + 7 the provider never yielded; other values as they are.
    assert s["skipped_unmapped"] == 8 and s["unknown_node_classes"] == ["QUANTUM_TOASTER"] and s["created"] == 1


def test_an_unchanged_device_is_not_rewritten_until_it_or_the_settings_change(setup, tenant_a, as_tenant,
                                                                               fake_provider):
    integration, _acme, globex = setup
    fake_provider.state.devices = [device("d1", "o-acme", hostname="PC1", raw={"name": "PC1", "v": 1}),
                                   device("d2", "o-acme", hostname="PC2", raw={"name": "PC2", "v": 1})]
    assert _sync(tenant_a.tenant, as_tenant, integration)["created"] == 2
    with as_tenant(tenant_a.tenant):
        before = dict(Asset.objects.values_list("hostname", "updated_at"))
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["unchanged"], s["updated"], s["retired"]) == (2, 0, 0)  # seen (not retired), not rewritten
    with as_tenant(tenant_a.tenant):
        after = dict(Asset.objects.values_list("hostname", "updated_at"))
    assert after == before  # not a row written: seen in the sync's own table
    # One device changes at the provider: only it is written.
    fake_provider.state.devices[1] = device("d2", "o-acme", hostname="PC2-new", raw={"name": "PC2", "v": 2})
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["unchanged"], s["updated"]) == (1, 1)
    # A settings change (e.g. the field mapping) applies every device again.
    with as_tenant(tenant_a.tenant):
        config.update_integration(integration, settings={"field_mapping": {"attr.v": "v"}}, test=False)
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["unchanged"], s["updated"]) == (0, 2)
    with as_tenant(tenant_a.tenant):
        assert sorted(a["v"] for a in Asset.objects.values_list("attributes", flat=True)) == [1, 2]
    assert _sync(tenant_a.tenant, as_tenant, integration)["unchanged"] == 2
    # Devices whose organization now maps to another client are applied though their records did not change.
    with as_tenant(tenant_a.tenant):
        orgs.set_mapping(integration.organizations.get(external_id="o-acme"), globex)
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["unchanged"], s["updated"]) == (0, 2)
    with as_tenant(tenant_a.tenant):
        assert set(Asset.objects.values_list("client_id", flat=True)) == {globex.pk}


def test_a_new_device_never_takes_the_asset_of_an_unchanged_one_by_serial(setup, tenant_a, as_tenant,
                                                                             fake_provider):
    integration, *_ = setup
    fake_provider.state.devices = [device("d1", "o-acme", serial_number="SN-SAME", raw={"id": 1})]
    _sync(tenant_a.tenant, as_tenant, integration)
    # d1 is still there, unchanged; a second device with the same serial shows up (a clone, a reinstall
    # whose old record NinjaOne still lists): it gets an asset of its own, and nothing is retired.
    fake_provider.state.devices = [device("d1", "o-acme", serial_number="SN-SAME", raw={"id": 1}),
                                   device("d2", "o-acme", serial_number="SN-SAME", raw={"id": 2})]
    s = _sync(tenant_a.tenant, as_tenant, integration)
    assert (s["unchanged"], s["created"], s["matched_by_serial"], s["retired"]) == (1, 1, 0, 0)
    with as_tenant(tenant_a.tenant):
        owners = dict(AssetExternalId.objects.filter(provider="fake").values_list("external_id", "asset_id"))
        assert owners["d1"] != owners["d2"] and Asset.objects.filter(retired_at__isnull=False).count() == 0
