"""A device sync whose every provider call the SSRF guard refused fails with the guard's message
(issue 15), even when the provider carries on past each failed call, and retires nothing."""

from __future__ import annotations

import pytest

from assets.models import Asset
from integrations.errors import ProviderError
from integrations.http import build_client
from integrations.models import Job
from integrations.services import config, jobs, orgs
from tests.helpers import committed
from tests.simulators.base import Reply, SimulatorServer

pytestmark = pytest.mark.usefixtures("fast")


class Devices(SimulatorServer):
    """An RMM that lists no devices for any organization."""

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", "/orgs/{org}/devices", lambda request: Reply(200, []))


def tolerant_walk(base_url: str, orgs_wanted: set[str]):
    """Like a provider that lists devices per organization and skips an organization that fails."""
    http = build_client(base_url, provider_name="Fake RMM")
    try:
        for org in sorted(orgs_wanted):
            try:
                yield from http.request("GET", f"/orgs/{org}/devices")
            except ProviderError:
                continue
    finally:
        http.close()


@pytest.fixture
def setup(tenant_a, fake_provider, as_tenant, make_client, make_asset):
    acme = make_client(tenant_a.tenant, "Acme")
    with as_tenant(tenant_a.tenant):
        integration = config.get_integration("fake", create=True)
        config.update_integration(integration, credentials={"api_key": "k" * 20})
        orgs.set_mapping(orgs.discover(integration, "o-acme", "Acme"), acme)
        orgs.set_mapping(orgs.discover(integration, "o-acme-2", "Acme 2"), acme)
    old = make_asset(tenant_a.tenant, acme, "PC-OLD", provider="fake", external_id="d-old")
    return integration, old


def run_sync(tenant, as_tenant, integration) -> Job:
    with as_tenant(tenant), committed():
        job = jobs.start_job(integration, jobs.DEVICE_SYNC)
    with as_tenant(tenant):
        return Job.objects.get(pk=job.pk)


def test_all_calls_refused_by_the_guard_fails_the_job(settings, setup, tenant_a, as_tenant, fake_provider):
    integration, old = setup
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = False
    with Devices() as sim:
        # "localhost" passes the URL check (no resolving there); the guard refuses at connect time.
        url = sim.url.replace("127.0.0.1", "localhost")
        fake_provider.state.devices = lambda: tolerant_walk(url, {"o-acme", "o-acme-2"})
        job = run_sync(tenant_a.tenant, as_tenant, integration)
        assert sim.calls == []
    assert job.state == "failed", job.summary
    assert "Refusing to connect to localhost" in job.error and "PSA_ALLOW_PRIVATE_PROVIDER_URLS" in job.error
    with as_tenant(tenant_a.tenant):
        assert Asset.objects.get(pk=old.pk).retired_at is None  # nothing retired on a sync that saw nothing


def test_answered_calls_with_no_devices_still_succeed(settings, setup, tenant_a, as_tenant, fake_provider):
    integration, old = setup
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = True
    with Devices() as sim:
        fake_provider.state.devices = lambda: tolerant_walk(sim.url, {"o-acme", "o-acme-2"})
        job = run_sync(tenant_a.tenant, as_tenant, integration)
        assert len(sim.calls) == 2
    assert job.state == "succeeded" and job.summary["total"] == 0
    with as_tenant(tenant_a.tenant):
        assert Asset.objects.get(pk=old.pk).retired_at is not None  # a real empty listing retires
