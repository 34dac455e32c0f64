"""1,000 incident reports across 50 organizations in one poll, within the account's rate limit (a shrunk
window: 60 requests per second instead of per minute), while another tool spends part of the same budget:
every 429 is answered by waiting, the poll succeeds, and every report has its ticket."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from incidents.models import Incident
from incidents.services import routing as routing_service
from integrations import http as phttp
from integrations import ratelimit
from integrations.models import Integration, IntegrationStatus
from integrations.services import polling
from psa.models import Client
from psa.tenancy import tenant_context
from tests.simulators.huntress import HuntressSimulator
from tickets.models import Board, Priority, Ticket

LIMIT, WINDOW = 60, 1.0
ORGS, REPORTS = 50, 1000
LONG_PLANS = 8  # every 8th report has 12 remediations: the rest are fetched from its remediations list

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(settings, monkeypatch):
    settings.PSA_HTTP_RETRIES = 2
    settings.PSA_HTTP_BACKOFF = 0.0
    settings.PSA_HUNTRESS_RATE_LIMIT = LIMIT
    settings.PSA_HUNTRESS_RATE_WINDOW = WINDOW + 0.05  # ours is a little longer than theirs, as in production
    settings.PSA_HUNTRESS_MAX_WAIT = 30
    monkeypatch.setattr(phttp, "_sleep", lambda s: None)
    with HuntressSimulator(rate_limit=LIMIT, rate_window=WINDOW, retry_after_integer=False) as s:
        s.populate(ORGS, 0)
        orgs = list(s.orgs)
        agents: dict[int, list[int]] = {}
        for agent in s.agents.values():
            agents.setdefault(agent["organization_id"], []).append(agent["id"])
        for i in range(REPORTS):
            org = orgs[i % ORGS]
            s.add_incident(org, agents[org][i % 2], severity=("low", "high", "critical")[i % 3],
                           remediations=12 if i % LONG_PLANS == 0 else 1)
        yield s


def test_a_thousand_reports_in_one_poll_within_the_rate_limit(sim, make_tenant):
    tenant = make_tenant().tenant
    with tenant_context(tenant):
        integration = Integration.objects.create(provider="huntress", base_url=sim.url + "/v1",
                                                 status=IntegrationStatus.CONNECTED)
        integration.set_credentials({"api_key": sim.api_key, "api_secret": sim.api_secret})
        integration.save()
        cache.delete(f"huntress:portal:{integration.pk}")
        ratelimit.reset(f"huntress:{integration.pk}")
        prio = {p.name: p for p in Priority.objects.all()}
        mapped = Client.objects.create(name="Org 000 “Ünïcode” & Sons")
        routing_service.save(integration, {
            "security_board": Board.objects.get(name="Security"), "fallback_board": Board.objects.get(name="Triage"),
            "fallback_client": Client.objects.create(name="Security Triage"), "priority_critical": prio["Critical"],
            "priority_high": prio["High"], "priority_low": prio["Low"],
        })
        from integrations.services import orgs

        orgs.sync_organizations(integration)
        assert orgs.automap(integration)["matched"] == 1
        sim.reset_calls()
        sim.granted.clear()
        sim.consume(LIMIT - 5)  # another tool on the same account: our limiter cannot know, Huntress answers 429
        started = time.monotonic()
        summary = polling.run_poll(Integration.objects.get(pk=integration.pk))
        elapsed = time.monotonic() - started

        assert summary["received"] == REPORTS and summary["failed"] == 0, summary
        assert Incident.objects.count() == REPORTS and Incident.objects.filter(ticket__isnull=True).count() == 0
        assert Ticket.objects.filter(source="huntress").count() == REPORTS
        on_security = Ticket.objects.filter(board__name="Security", client=mapped).count()
        assert on_security == REPORTS // ORGS  # the one mapped organization; the rest on triage
        assert {str(i) for i in sim.incidents} == set(Incident.objects.values_list("external_id", flat=True))
        assert Integration.objects.get(pk=integration.pk).last_poll_ok is True
        long_plan = Incident.objects.get(external_id=str(next(iter(sim.incidents))))
        assert len(long_plan.state["remediations"]) == 12
    requests = len(sim.granted)
    assert requests > 2 * LIMIT, "the run must need several windows to prove the pacing"
    assert sim.throttled >= 1, "the other tool's usage must have made Huntress answer 429"
    assert sim.max_in_window(WINDOW) <= LIMIT
    # Paced, not stalled: about one window per LIMIT requests, plus the ticket writes.
    assert elapsed < requests / LIMIT * (WINDOW + 0.05) + 60
