"""Device attribution by hand-written SQL (alerts/services/attribution.py): the same choices as
the ORM queries it replaced, and never another tenant's asset."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alerts.services.pipeline import ingest_normalized
from assets.models import Asset
from tests.fakes import alert as fake_alert
from tests.integration.pipeline_support import committed, setup_fake

pytestmark = pytest.mark.django_db


def ingest(fx, na):
    with committed():
        return ingest_normalized(fx.integration, na, source="webhook")


def test_a_live_asset_wins_over_a_retired_one_with_the_same_serial(tenant_a, fake_provider, make_asset):
    fx = setup_fake(tenant_a.tenant)
    retired = make_asset(fx.tenant, fx.client, name="OLD", serial_number="SN-7")
    Asset.objects.unscoped().filter(pk=retired.pk).update(retired_at=timezone.now())
    live = make_asset(fx.tenant, fx.client, name="NEW", serial_number="SN-7")
    assert ingest(fx, fake_alert("a-1", "o1", serial_number="SN-7")).asset_id == live.pk
    Asset.objects.unscoped().filter(pk=live.pk).update(retired_at=timezone.now())
    # Both retired: the one retired first, as the ORM's "retired_at ASC NULLS FIRST, id" did.
    assert ingest(fx, fake_alert("a-2", "o1", serial_number="SN-7")).asset_id == retired.pk


def test_a_device_id_known_only_in_another_tenant_is_not_used(tenant_a, tenant_b, fake_provider, make_asset):
    fx = setup_fake(tenant_a.tenant)
    other = setup_fake(tenant_b.tenant)
    make_asset(other.tenant, other.client, provider="fake", external_id="dev-9")
    a = ingest(fx, fake_alert("a-1", None, device_external_id="dev-9"))
    assert a.asset_id is None and a.client_id is None and a.outcome["action"] == "unmapped"
    mine = make_asset(fx.tenant, fx.client, provider="fake", external_id="dev-9")
    b = ingest(fx, fake_alert("a-2", None, device_external_id="dev-9"))
    assert (b.asset_id, b.client_id) == (mine.pk, fx.client.pk)


def test_a_device_id_of_another_client_falls_back_to_the_serial_within_the_mapped_client(
        tenant_a, fake_provider, make_asset, django_assert_num_queries):
    from alerts.services.attribution import attribute
    from psa.models import Client
    from psa.tenancy import tenant_context

    fx = setup_fake(tenant_a.tenant)
    with tenant_context(fx.tenant):
        elsewhere = Client.objects.create(name="Another client")
    make_asset(fx.tenant, elsewhere, provider="fake", external_id="dev-5", serial_number="SN-5")
    here = make_asset(fx.tenant, fx.client, serial_number="SN-5")
    a = ingest(fx, fake_alert("a-1", "o1", device_external_id="dev-5", serial_number="SN-5"))
    assert (a.asset_id, a.client_id) == (here.pk, fx.client.pk)
    # The device id's asset and the serial's are read in one round trip (the organization is known).
    with tenant_context(fx.tenant):
        attribute(fx.integration, fake_alert("a-2", "o1", device_external_id="dev-5", serial_number="SN-5"))
        with django_assert_num_queries(1):
            found = attribute(fx.integration, fake_alert("a-3", "o1", device_external_id="dev-5",
                                                         serial_number="SN-5"))
    assert (found.asset_id, found.asset_by) == (here.pk, "serial number")
    # Its own client's asset by device id wins over a serial match.
    mine = make_asset(fx.tenant, fx.client, provider="fake", external_id="dev-6", serial_number="SN-5")
    b = ingest(fx, fake_alert("a-4", "o1", device_external_id="dev-6", serial_number="SN-5"))
    assert b.asset_id == mine.pk
