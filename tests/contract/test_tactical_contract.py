"""Tactical RMM on the contract suite, against its simulator on loopback."""

from __future__ import annotations

import json

import pytest

from tests.simulators.tactical import TacticalSimulator

from .base import (
    ConnectionContract,
    DeviceContract,
    OrganizationContract,
    PollContract,
    ResetContract,
    WebhookContract,
)

pytestmark = pytest.mark.django_db


def body(**kw) -> bytes:
    data = {"event": "trigger", "alert_id": 57, "alert_type": "check", "severity": "error",
            "message": "HDG-FRONT-01 has a diskspace check: Disk space C: < 10% that failed.",
            "agent_id": "AGENT-1", "hostname": "HDG-FRONT-01", "check_id": 803, "client_id": 1, "site_id": 2,
            "client_name": "Harbor Dental", "site_name": "Main Office", "alert_time": "2025-03-19 13:41:15.556+00:00"}
    data.update(kw)
    return json.dumps(data).encode()


class TestTacticalContract(WebhookContract, ConnectionContract, OrganizationContract, DeviceContract,
                           PollContract, ResetContract):
    slug = "tactical"
    good_bodies = [
        body(),
        body(event="resolved", alert_id="58", resolved_on="2025-03-19 14:00:00+00:00", severity="None"),
        body(alert_id=59, severity="warning", check_id="None", task_id=12, alert_type="task", message="Ünïcode"),
    ]

    def make_simulator(self):
        return TacticalSimulator()

    def seed(self, sim):
        harbor = sim.add_client("Harbor Dental Group", ["Main Office", "Annex"])
        sim.front = sim.add_agent(sim.site_named(harbor["id"], "Main Office")["id"], "HDG-FRONT-01")

    def credentials(self, sim):
        return {"api_key": sim.api_key}

    def base_url(self, sim):
        return sim.url

    def settings(self):
        return {"sync_software": False, "sync_remote_access": False}  # one page request per 100 agents

    def two_devices(self):
        return body(alert_id=1, agent_id="AGENT-1"), body(alert_id=2, agent_id="AGENT-2")

    def seed_many_devices(self, sim, n):
        sim.beta_enabled = True  # the paged API; the classic one is a single unpaged list
        big = sim.add_client("Big Client", ["Site A"])
        sim.add_many_agents(sim.site_named(big["id"], "Site A")["id"], n)
        return {f"client:{big['id']}"}

    def device_page_calls(self, sim):
        return len([c for c in sim.calls_to("GET", "/beta/v1/agent/") if c.query.get("client_id")])

    def seed_active_alert(self, sim):
        return str(sim.add_alert(sim.front)["id"])

    def seed_resolved_alert(self, sim):
        alert = sim.add_alert(sim.front, check_id=999)
        sim.resolve_locally(alert["id"])
        return str(alert["id"])

    def was_reset(self, sim, external_id):
        return sim.alerts[int(external_id)]["resolved"] is True
