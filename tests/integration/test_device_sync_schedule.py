"""Scheduled device syncs (integrations.services.schedule): due ones start, recent ones do not, the
framework's preconditions still apply, and the schedule can be turned off."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from integrations.models import Integration, IntegrationStatus, Job
from integrations.services import config, jobs, orgs
from integrations.services.schedule import dispatch_due_device_syncs
from tests.fakes import device

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(tenant_a, fake_provider, as_tenant, make_client):
    client = make_client(tenant_a.tenant, "Acme")
    fake_provider.state.devices = [device("d1", "o1", name="PC-1")]
    with as_tenant(tenant_a.tenant):
        i = config.get_integration("fake", create=True)
        config.update_integration(i, credentials={"api_key": "k" * 20})
        orgs.set_mapping(orgs.discover(i, "o1", "Acme"), client)
        i.refresh_from_db()
    assert i.status == IntegrationStatus.CONNECTED
    return i


def syncs(integration) -> list[Job]:
    return list(Job.objects.unscoped().filter(integration=integration, kind=jobs.DEVICE_SYNC).order_by("id"))


def test_a_due_sync_starts_and_a_recent_one_does_not(integration, settings, django_capture_on_commit_callbacks):
    settings.PSA_DEVICE_SYNC_HOURS = 6
    with django_capture_on_commit_callbacks(execute=True):
        started = dispatch_due_device_syncs()
    assert [j.pk for j in syncs(integration)] == started and len(started) == 1
    assert syncs(integration)[0].state == "succeeded"  # eager: the framework's device sync ran
    assert dispatch_due_device_syncs() == []  # synced just now
    # Six hours later it is due again.
    Job.objects.unscoped().filter(pk=started[0]).update(created_at=timezone.now() - dt.timedelta(hours=7))
    assert len(dispatch_due_device_syncs()) == 1 and len(syncs(integration)) == 2


def test_preconditions_and_the_off_switch(integration, settings):
    settings.PSA_DEVICE_SYNC_HOURS = 0
    assert dispatch_due_device_syncs() == []
    settings.PSA_DEVICE_SYNC_HOURS = 6
    Integration.objects.unscoped().filter(pk=integration.pk).update(status=IntegrationStatus.ERROR)
    assert dispatch_due_device_syncs() == [] and syncs(integration) == []  # not connected: not even tried
