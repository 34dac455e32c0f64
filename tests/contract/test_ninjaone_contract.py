"""NinjaOne on the contract suite, against its simulator on loopback (integrations.ninjaone is installed).

The integration points at the simulator through ``base_url`` (a region override), with client
credentials. OAuth tokens live on the integration row: ``reset_auth`` drops the stored token too,
so each generic failure case starts at the token endpoint, as a fresh connection would."""

from __future__ import annotations

import json

import pytest

from integrations.models import Integration
from tests.simulators.ninjaone import NinjaOneSimulator

from .base import (
    ConnectionContract,
    DeviceContract,
    OrganizationContract,
    PollContract,
    ResetContract,
    WebhookContract,
)

pytestmark = pytest.mark.django_db


class TestNinjaOneContract(WebhookContract, ConnectionContract, OrganizationContract, DeviceContract, PollContract,
                           ResetContract):
    slug = "ninjaone"
    many_devices = 2_500  # more than one page of 1,000 (NinjaOne pages with pageSize + after)

    def make_simulator(self):
        return NinjaOneSimulator(region="app")

    def seed(self, sim) -> None:
        sim.harbor = sim.add_org("Harbor Dental Group", ["Main Office", "Annexe"])
        sim.smith = sim.add_org("Smith & Sons", ["HQ"])
        sim.pc1 = sim.add_device(sim.harbor["id"], "HDG-FRONT-01")
        sim.pc2 = sim.add_device(sim.harbor["id"], "HDG-FRONT-02")
        sim.app = sim.add_app("cid-contract", "secret-contract-0123456789")
        sim.webhook = {"url": "https://psa.example/webhooks/ninjaone/k/", "activities": {},
                       "expand": ["device", "organization", "location"], "headers": []}
        one = sim.add_alert(sim.pc1["id"])
        two = {**one, "uid": "b3d1c2b4-77e0-4c3e-9f5a-1b2c3d4e5f61", "deviceId": sim.pc2["id"]}
        sim.alerts.pop(one["uid"])  # bodies only: the poll tests seed their own alerts
        self._bodies = [
            json.dumps(sim.activity(one, "TRIGGERED")).encode(),
            json.dumps(sim.activity(two, "TRIGGERED", severity=None, priority=None)).encode(),
            json.dumps(sim.activity(one, "RESET", integer_time=True)).encode(),
            json.dumps(sim.activity(two, "TRIGGERED", channel=True)).encode(),  # a notification channel
        ]

    @property
    def good_bodies(self):
        return self._bodies

    def credentials(self, sim):
        return {"client_id": sim.app.client_id, "client_secret": sim.app.client_secret}

    def base_url(self, sim):
        return sim.url

    def two_devices(self):
        return self._bodies[0], self._bodies[1]

    def reset_auth(self, provider) -> None:
        provider.close()
        provider._session = None
        Integration.objects.unscoped().filter(pk=provider.integration.pk).update(token_ciphertext="")
        provider.integration.token_ciphertext = ""

    # -- devices ------------------------------------------------------------------------------
    def seed_many_devices(self, sim, n: int) -> set[str]:
        org = sim.add_org("Many")
        sim.generate_devices(n, [org["id"]])
        sim.reset_calls()
        return {f"org:{org['id']}"}

    def device_page_calls(self, sim) -> int:
        return len(sim.calls_to("GET", "/v2/devices-detailed"))

    # -- alerts -------------------------------------------------------------------------------
    def seed_active_alert(self, sim) -> str:
        return sim.add_alert(sim.pc1["id"], message="CPU over 90%")["uid"]

    def seed_resolved_alert(self, sim) -> str:
        alert = sim.add_alert(sim.pc2["id"], message="Reboot pending")
        sim.alerts.pop(alert["uid"])  # NinjaOne lists active alerts only
        return alert["uid"]

    def was_reset(self, sim, external_id: str) -> bool:
        return external_id not in sim.alerts and any(uid == external_id for _, uid, _ in sim.resets)

    def missing_alert_id(self) -> str:
        return "00000000-0000-0000-0000-000000000000"
