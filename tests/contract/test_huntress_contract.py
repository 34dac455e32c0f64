"""Huntress on the contract suite, against its simulator on loopback (integrations.huntress is installed).

Its webhooks carry incident reports (IncidentRecords for the incident router), so it takes the
IncidentWebhookContract instead of the alert checks; Svix signatures are timestamped."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest
from django.core.cache import cache
from svix.webhooks import Webhook

from integrations import ratelimit
from tests.simulators.huntress import HuntressSimulator

from .base import (
    ConnectionContract,
    IncidentWebhookContract,
    OrganizationContract,
    TimestampedSignatureContract,
)

pytestmark = pytest.mark.django_db

SIGNING_SECRET = "whsec_dGVzdC1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5"


@pytest.fixture(autouse=True)
def _huntress_budget(settings):
    # Every test's integration starts with an empty request budget; waits stay short.
    settings.PSA_HUNTRESS_MAX_WAIT = 10
    yield
    cache.clear()


class TestHuntressContract(IncidentWebhookContract, TimestampedSignatureContract, ConnectionContract,
                           OrganizationContract):
    slug = "huntress"
    orgs_have_parents = False

    def make_simulator(self):
        return HuntressSimulator()

    def seed(self, sim) -> None:
        harbor = sim.add_org("Harbor Dental Group")
        cafe = sim.add_org("Café “Ünïcode” & O'Brien")
        front = sim.add_agent(harbor["id"], "HDG-FRONT-01", "7XK2M93")
        one = sim.add_incident(harbor["id"], front["id"], severity="critical")
        two = sim.add_incident(cafe["id"], None, severity="low", remediations=0)
        esc = sim.add_escalation([harbor["id"], cafe["id"]])
        closed = sim.add_incident(harbor["id"], front["id"])
        sim.close_incident(closed["id"])
        self._bodies = [
            json.dumps(sim.incident_webhook(one["id"])).encode(),
            json.dumps(sim.incident_webhook(two["id"]), ensure_ascii=False).encode(),
            json.dumps(sim.incident_webhook(closed["id"], "incident_report.closed",
                                            nulls=("severity", "subject", "summary"))).encode(),
            json.dumps(sim.escalation_webhook(esc["id"])).encode(),
        ]

    @property
    def good_bodies(self):  # built from the seeded simulator (report ids are the simulator's)
        return self._bodies

    def credentials(self, sim):
        return {"api_key": sim.api_key, "api_secret": sim.api_secret, "webhook_signing_secret": SIGNING_SECRET}

    def base_url(self, sim):
        return sim.url + "/v1"

    def two_reports(self):
        return self._bodies[0], self._bodies[1]

    def sample_signing_secret(self) -> str:
        return SIGNING_SECRET

    # -- Svix signatures ------------------------------------------------------------------------
    def _svix(self, body: bytes, secret: str, when: dt.datetime) -> dict[str, str]:
        msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:24]  # one id per body: the replay test resends it
        return {"svix-id": msg_id, "svix-timestamp": str(int(when.timestamp())),
                "svix-signature": Webhook(secret).sign(msg_id, when, body)}

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        try:
            base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:  # a tampered secret: still a key to sign with, just the wrong one
            secret = "whsec_" + base64.b64encode(hashlib.sha256(secret.encode()).digest()).decode()
        return self._svix(body, secret, dt.datetime.now(dt.UTC))

    def stale_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return self._svix(body, secret, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6))

    def signing_secret(self, integration, card):
        return SIGNING_SECRET  # Huntress signs with its own whsec_ secret, stored as a credential

    def auth_headers(self, card, body):
        return {"HTTP_" + k.upper().replace("-", "_"): v for k, v in self.signed_headers(body, SIGNING_SECRET).items()}

    def reset_auth(self, provider) -> None:
        provider.close()
        ratelimit.reset(f"huntress:{provider.integration.pk}")
