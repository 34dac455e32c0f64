"""Organization sync, mapping and nearest-mapped-ancestor resolution."""

from __future__ import annotations

import pytest

from integrations.models import ExternalOrganization, MappingKind
from integrations.records import ExternalOrg
from integrations.services import config, orgs


@pytest.fixture
def integration(tenant_a, fake_provider, as_tenant):
    with as_tenant(tenant_a.tenant):
        i = config.get_integration("fake", create=True)
        config.update_integration(i, credentials={"api_key": "k" * 20})
    return i


def _org(external_id):
    return ExternalOrganization.objects.get(external_id=external_id)


def test_sync_marks_missing_keeps_mapping_and_unmarks_on_return(integration, fake_provider, tenant_a, as_tenant,
                                                                make_client):
    client = make_client(tenant_a.tenant, "Acme")
    fake_provider.state.orgs = [ExternalOrg("o1", "Acme"), ExternalOrg("o2", "Globex", kind="client")]
    with as_tenant(tenant_a.tenant):
        assert orgs.sync_organizations(integration)["created"] == 2
        orgs.set_mapping(_org("o1"), client)
        # o1 renamed, o2 gone.
        fake_provider.state.orgs = [ExternalOrg("o1", "Acme Inc")]
        summary = orgs.sync_organizations(integration)
        assert summary == {"total": 1, "created": 0, "updated": 1, "missing": 1, "returned": 0, "mapped": 1}
        o1, o2 = _org("o1"), _org("o2")
        assert o1.name == "Acme Inc" and o1.client == client and o1.mapping == MappingKind.MANUAL
        assert o1.missing_since is None and o2.missing_since is not None  # marked, not deleted
        first_missing = o2.missing_since
        # Still missing: the first date is kept.
        orgs.sync_organizations(integration)
        assert _org("o2").missing_since == first_missing
        fake_provider.state.orgs = [ExternalOrg("o1", "Acme Inc"), ExternalOrg("o2", "Globex")]
        summary = orgs.sync_organizations(integration)
        assert summary["returned"] == 1 and _org("o2").missing_since is None
        assert _org("o1").client == client


def test_sync_tolerates_repeated_ids_and_long_names(integration, fake_provider, tenant_a, as_tenant):
    fake_provider.state.orgs = [ExternalOrg("o1", "A"), ExternalOrg("o1", "A again"), ExternalOrg("o2", "x" * 900)]
    with as_tenant(tenant_a.tenant):
        summary = orgs.sync_organizations(integration)
        assert summary["total"] == 2 and _org("o1").name == "A again" and len(_org("o2").name) == 500


def test_automap_exact_name_never_overrides_manual(integration, tenant_a, as_tenant, make_client):
    acme, globex = make_client(tenant_a.tenant, "Acme Corp"), make_client(tenant_a.tenant, "Globex")
    make_client(tenant_a.tenant, "Initech")
    make_client(tenant_a.tenant, "Dup Name")
    make_client(tenant_a.tenant, "dup  name")  # same name once normalized: ambiguous, left alone
    with as_tenant(tenant_a.tenant):
        for ext, name in [("o1", "  ACME corp "), ("o2", "Globex"), ("o3", "Umbrella"), ("o4", "Dup Name"),
                          ("o5", "Acme")]:
            orgs.discover(integration, ext, name)
        orgs.set_mapping(_org("o2"), acme)  # manual pair to a client of another name
        summary = orgs.automap(integration)
        assert summary == {"matched": 1, "already_mapped": 1, "unmatched": 3}
        assert (_org("o1").client, _org("o1").mapping) == (acme, MappingKind.AUTO)
        assert (_org("o2").client, _org("o2").mapping) == (acme, MappingKind.MANUAL)
        assert _org("o4").client is None and _org("o5").client is None
        # Running again changes nothing; a manual unmap is not undone by a re-sync either.
        assert orgs.automap(integration) == {"matched": 0, "already_mapped": 2, "unmatched": 3}
        orgs.set_mapping(_org("o2"), None)
        assert _org("o2").mapping is None and _org("o2").client is None
        # o2 is unmapped now, so automap may pair it by name (Globex).
        assert orgs.automap(integration)["matched"] == 1
        assert (_org("o2").client, _org("o2").mapping) == (globex, MappingKind.AUTO)


def test_set_mapping_checks_site_and_tenant(integration, tenant_a, tenant_b, as_tenant, make_client):
    from psa.models import ClientSite

    a, b_client = make_client(tenant_a.tenant, "A"), make_client(tenant_b.tenant, "B")
    other = make_client(tenant_a.tenant, "Other")
    with as_tenant(tenant_a.tenant):
        site = ClientSite.objects.create(client=a, name="HQ")
        org = orgs.discover(integration, "o1", "A")
        with pytest.raises(ValueError):
            orgs.set_mapping(org, b_client)
        with pytest.raises(ValueError):
            orgs.set_mapping(org, other, site)
        orgs.set_mapping(org, a, site)
        resolved = orgs.resolve_organization(integration, "o1")
        assert (resolved.client, resolved.site) == (a, site)


def test_resolve_nearest_mapped_ancestor(integration, tenant_a, as_tenant, make_client):
    top, mid_client = make_client(tenant_a.tenant, "Top"), make_client(tenant_a.tenant, "Mid")
    with as_tenant(tenant_a.tenant):
        orgs.discover(integration, "g1", "Group 1")
        orgs.discover(integration, "g2", "Group 2", parent_external_id="g1")
        orgs.discover(integration, "g3", "Group 3", parent_external_id="g2")
        orgs.discover(integration, "g4", "Group 4", parent_external_id="g3")
        assert orgs.resolve_organization(integration, "g4") is None  # nothing mapped yet
        orgs.set_mapping(_org("g1"), top)
        r = orgs.resolve_organization(integration, "g4")
        assert r.client == top and r.organization.external_id == "g4" and r.mapped_via.external_id == "g1"
        orgs.set_mapping(_org("g2"), mid_client)  # a nearer mapping wins
        assert orgs.resolve_organization(integration, "g4").client == mid_client
        assert orgs.resolve_organization(integration, "g1").client == top
        assert orgs.resolve_organization(integration, "unknown") is None
        assert orgs.resolve_organization(integration, None) is None
        # The bulk resolution used by device sync agrees.
        assert orgs.resolution_map(integration) == {
            "g1": (top.pk, None), "g2": (mid_client.pk, None), "g3": (mid_client.pk, None),
            "g4": (mid_client.pk, None),
        }


def test_resolve_survives_parent_cycles(integration, tenant_a, as_tenant, make_client):
    with as_tenant(tenant_a.tenant):
        orgs.discover(integration, "a", "A", parent_external_id="b")
        orgs.discover(integration, "b", "B", parent_external_id="c")
        orgs.discover(integration, "c", "C", parent_external_id="a")
        orgs.discover(integration, "self", "Self", parent_external_id="self")
        assert orgs.resolve_organization(integration, "a") is None
        assert orgs.resolve_organization(integration, "self") is None
        assert orgs.resolution_map(integration) == {}
        orgs.set_mapping(_org("c"), make_client(tenant_a.tenant, "C client"))
        assert orgs.resolve_organization(integration, "a").mapped_via.external_id == "c"
        assert set(orgs.resolution_map(integration)) == {"a", "b", "c"}


def test_discover_refreshes_name_never_mapping(integration, tenant_a, as_tenant, make_client):
    client = make_client(tenant_a.tenant, "Acme")
    with as_tenant(tenant_a.tenant):
        org = orgs.discover(integration, "e1", "")
        assert org.name == "e1" and org.client is None and org.mapping is None
        orgs.set_mapping(org, client)
        again = orgs.discover(integration, "e1", "Acme from event", parent_external_id="p1")
        assert again.pk == org.pk
        row = _org("e1")
        assert (row.name, row.parent_external_id, row.client, row.mapping) == (
            "Acme from event", "p1", client, MappingKind.MANUAL)
        assert ExternalOrganization.objects.filter(external_id="e1").count() == 1


def test_sync_of_event_discovered_orgs_marks_nothing_missing(tenant_a, as_tenant):
    # generic learns organizations from events: its (empty) list must not mark them missing.
    with as_tenant(tenant_a.tenant):
        generic = config.get_integration("generic", create=True)
        orgs.discover(generic, "x1", "X")
        assert orgs.sync_organizations(generic)["missing"] == 0
        assert ExternalOrganization.objects.get(external_id="x1").missing_since is None


def test_bulk_org_changes_tell_the_pipeline_once(integration, fake_provider, tenant_a, as_tenant, make_client,
                                                 monkeypatch):
    """Bulk writes send no model signals: sync (once, however many batches) and automap (when it
    mapped something) send organizations_changed, which the pipeline's config cache listens to."""
    from integrations.signals import organizations_changed

    seen: list[int] = []

    def receiver(sender, tenant_id, **kwargs):
        seen.append(tenant_id)

    organizations_changed.connect(receiver, dispatch_uid="test.orgs_changed")
    try:
        monkeypatch.setattr(orgs, "BATCH", 2)
        make_client(tenant_a.tenant, "Org 3")
        fake_provider.state.orgs = [ExternalOrg(f"o{i}", f"Org {i}") for i in range(5)]
        with as_tenant(tenant_a.tenant):
            orgs.sync_organizations(integration)  # three batches
            assert seen == [tenant_a.tenant.pk]
            assert orgs.automap(integration)["matched"] == 1
            assert seen == [tenant_a.tenant.pk] * 2
            orgs.automap(integration)  # nothing new to map: no signal
            assert len(seen) == 2
    finally:
        organizations_changed.disconnect(dispatch_uid="test.orgs_changed")
