"""Level on the contract suite, against its simulator on loopback (integrations.level is installed)."""

from __future__ import annotations

import pytest

from integrations.level.signature import sign
from tests.simulators.level import LevelSimulator, WebhookSender

from .base import (
    ConnectionContract,
    DeviceContract,
    OrganizationContract,
    PollContract,
    ResetContract,
    SignatureContract,
)

pytestmark = pytest.mark.django_db


class TestLevelContract(SignatureContract, ConnectionContract, OrganizationContract, DeviceContract,
                        PollContract, ResetContract):
    slug = "level"

    def make_simulator(self):
        return LevelSimulator()

    def seed(self, sim) -> None:
        sim.tops = sim.build_tree(clients=2, depth=4, fanout=2)
        leaf = list(sim.groups.values())[-1]
        sim.pc1 = sim.add_device(leaf, "HDG-FRONT-01")
        sim.pc2 = sim.add_device(leaf, "HDG-FRONT-02")
        sim.alert1 = sim.add_alert(sim.pc1, "Disk space low", severity="critical")
        sim.alert2 = sim.add_alert(sim.pc2, "Disk space low", severity="information")
        self._bodies = [
            WebhookSender.body_of(sim.envelope("alert_active", dict(sim.alert1), event_id="ev-1")),
            WebhookSender.body_of(sim.envelope("alert_active", dict(sim.alert2), event_id="ev-2")),
            WebhookSender.body_of(sim.envelope("alert_resolved", {**sim.alert1, "is_resolved": True,
                                                                  "resolved_at": "2025-03-19T14:02:41Z"},
                                               event_id="ev-3")),
        ]

    @property
    def good_bodies(self):  # built from the seeded simulator (device ids are the simulator's)
        return self._bodies

    def credentials(self, sim):
        return {"api_key": sim.read_write_key}

    def base_url(self, sim):
        return sim.url + "/v2"

    def two_devices(self):
        return self._bodies[0], self._bodies[1]

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {"x-level-signature": sign(body, secret)}

    # -- devices ------------------------------------------------------------------------------
    def seed_many_devices(self, sim, n: int) -> set[str]:
        group = sim.add_group("Many", sim.tops[1])
        sim.add_many_devices(group, n)
        sim.reset_calls()
        return {group["id"]}

    def device_page_calls(self, sim) -> int:
        return len(sim.calls_to("GET", "/v2/devices"))

    # -- alerts -------------------------------------------------------------------------------
    def seed_active_alert(self, sim) -> str:
        return sim.add_alert(sim.pc1, "CPU high", severity="warning")["id"]

    def seed_resolved_alert(self, sim) -> str:
        return sim.resolve_locally(sim.add_alert(sim.pc2, "Reboot pending")["id"])["id"]

    def was_reset(self, sim, external_id: str) -> bool:
        return sim.alerts[external_id]["is_resolved"] is True

    def missing_alert_id(self) -> str:
        return "Z2lkOi8vbGV2ZWwvQWxlcnQvOTk5OTk5"

