"""HuntressProvider against the simulator (real Integration rows): connection test messages, organizations,
incident passes and their watermark, single reports, write-back, webhooks (signature from the
credential, delivery id, full fetch with a partial fallback)."""

from __future__ import annotations

import datetime as dt
import json
import socket

import pytest
from django.core.cache import cache

from integrations import ratelimit
from integrations.base import WebhookRequest
from integrations.errors import Unavailable
from integrations.huntress.provider import HuntressProvider
from integrations.models import Integration
from tests.simulators.huntress import HuntressSimulator, WebhookSender, new_signing_secret

LIMIT, WINDOW = 20, 0.5


@pytest.fixture(autouse=True)
def fast(fast, settings):
    settings.PSA_HUNTRESS_RATE_LIMIT = LIMIT
    settings.PSA_HUNTRESS_RATE_WINDOW = WINDOW + 0.05
    settings.PSA_HUNTRESS_MAX_WAIT = 20
    return fast


@pytest.fixture
def sim():
    with HuntressSimulator(rate_limit=LIMIT, rate_window=WINDOW, retry_after_integer=False) as s:
        s.harbor = s.add_org("Harbor Dental Group")
        s.front = s.add_agent(s.harbor["id"], "HDG-FRONT-01", "7XK2M93")
        s.cafe = s.add_org("Café “Ünïcode” & O'Brien")
        s.signing_secret = new_signing_secret()  # what the admin copies from Huntress's portal
        yield s


@pytest.fixture
def provider_for(make_tenant):
    made = []

    def _make(base_url: str, credentials: dict) -> HuntressProvider:
        tenant = make_tenant().tenant
        row = Integration.objects.unscoped().create(tenant=tenant, provider="huntress", base_url=base_url)
        row.set_credentials(credentials)
        row.save()
        cache.delete(f"huntress:portal:{row.pk}")
        provider = HuntressProvider(row)
        made.append(provider)
        return provider

    yield _make
    for p in made:
        p.close()
        ratelimit.reset(f"huntress:{p.integration.pk}")


@pytest.fixture
def provider(sim, provider_for):
    return provider_for(sim.url + "/v1", {"api_key": sim.api_key, "api_secret": sim.api_secret,
                                          "webhook_signing_secret": sim.signing_secret})


# -- connection --------------------------------------------------------------------------------------
def test_connection_ok_names_the_account(provider):
    result = provider.test_connection()
    assert result.ok and result.account_name == "Example MSP"
    assert result.message == "Connected to Huntress account Example MSP."
    assert result.details["subdomain"] == "examplemsp" and result.details["code"] == "ok"


def test_connection_bad_credentials(sim, provider_for):
    result = provider_for(sim.url + "/v1", {"api_key": sim.api_key, "api_secret": "nope"}).test_connection()
    assert not result.ok and result.details["code"] == "auth_failed" and "401" in result.message


def test_connection_disabled_account(sim, provider):
    sim.account["status"] = "disabled"
    result = provider.test_connection()
    assert not result.ok and result.details["code"] == "account_disabled"
    assert result.message.startswith("The Huntress account Example MSP is disabled")


def test_connection_huntress_down(provider_for):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = provider_for(f"http://127.0.0.1:{port}/v1", {"api_key": "k", "api_secret": "s"}).test_connection()
    assert not result.ok and result.details["code"] == "unavailable"
    assert "could not be reached" in result.message


def test_connection_server_errors(sim, provider):
    sim.fail_next(10, 503)
    result = provider.test_connection()
    assert not result.ok and result.details["code"] == "unavailable"


def test_organizations(sim, provider):
    orgs = provider.list_organizations()
    assert {(o.external_id, o.name) for o in orgs} == {
        (str(sim.harbor["id"]), "Harbor Dental Group"), (str(sim.cafe["id"]), "Café “Ünïcode” & O'Brien")}


# -- incidents ---------------------------------------------------------------------------------------
def test_full_pass_then_incremental_pass(sim, provider):
    a = sim.add_incident(sim.harbor["id"], sim.front["id"], severity="critical")
    b = sim.add_incident(sim.cafe["id"], None, severity="low", remediations=0)
    first = provider.iter_incidents(None)
    assert first.watermark is None  # nothing read yet
    records = {r.external_id: r for r in first}
    assert first.complete and first.count == 2
    assert first.watermark == max(r.updated_at for r in records.values())
    ra = records[str(a["id"])]
    assert (ra.organization_name, ra.host_name, ra.host_serial, ra.severity) == (
        "Harbor Dental Group", "HDG-FRONT-01", "7XK2M93", "critical")
    assert ra.url == f"https://examplemsp.huntress.io/org/{sim.harbor['id']}/incident_reports/{a['id']}"
    assert records[str(b["id"])].host_name == "" and records[str(b["id"])].remediations == []

    sim.set_severity(a["id"], "high")
    second = provider.iter_incidents(first.watermark, overlap=dt.timedelta(0))
    changed = list(second)
    # a changed; b sits at the old watermark itself and is read again (the router dedups it)
    assert [r.external_id for r in changed] == [str(a["id"]), str(b["id"])]
    assert changed[0].severity == "high" and second.watermark > first.watermark

    quiet = provider.iter_incidents(second.watermark, overlap=dt.timedelta(0))
    assert [r.external_id for r in quiet] == [str(a["id"])]  # the one at the watermark, re-read
    assert quiet.watermark == second.watermark


def test_failed_pass_reports_no_watermark(sim, provider):
    for _ in range(6):
        sim.add_incident(sim.harbor["id"], sim.front["id"])
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    run = provider.iter_incidents(old, page_size=2)
    seen = [next(run), next(run)]
    sim.fail_next(10, 500)  # Huntress goes down mid-pass
    with pytest.raises(Unavailable):
        list(run)
    assert len(seen) == 2 and run.complete is False and run.watermark is None


def test_single_incident_and_write_back(sim, provider_for):
    report = sim.add_incident(sim.harbor["id"], sim.front["id"], remediations=1)
    read_only = provider_for(sim.url + "/v1", {"api_key": sim.api_key, "api_secret": sim.api_secret})
    assert read_only.incident(str(report["id"])).organization_name == "Harbor Dental Group"
    refused = read_only.resolve_incident(str(report["id"]))
    assert not refused.ok and refused.code == "read_only_key" and "user-based API key" in refused.message
    writer = provider_for(sim.url + "/v1", {"api_key": sim.rw_key, "api_secret": sim.rw_secret})
    pending = writer.resolve_incident(str(report["id"]))
    assert pending.code == "remediations_pending" and pending.http_status == 409
    sim.approve_remediations(report["id"])
    done = writer.resolve_incident(str(report["id"]))
    assert done.ok and done.status == "resolved" and done.incident.is_closed
    assert writer.resolve_incident(str(report["id"])).code == "not_sent"


def test_escalation_pass(sim, provider):
    esc = sim.add_escalation([sim.harbor["id"], sim.cafe["id"]])
    run = provider.iter_escalations(None)
    records = list(run)
    assert [r.external_id for r in records] == [str(esc["id"])] and run.watermark is not None
    assert records[0].url.endswith(f"/org/{sim.harbor['id']}/escalations/{esc['id']}")


# -- webhooks ----------------------------------------------------------------------------------------
def _request(sim, payload, *, secret=None, prefix="svix"):
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = WebhookSender("http://unused", secret or sim.signing_secret, header_prefix=prefix).headers_for(
        "msg_abc123", body)
    return WebhookRequest(body=body, headers=headers, query={})


def test_signature_uses_the_huntress_signing_secret_not_ours(sim, provider):
    report = sim.add_incident(sim.harbor["id"])
    request = _request(sim, sim.incident_webhook(report["id"]))
    assert provider.verify_webhook_signature(request, "the-products-own-secret") is True
    assert provider.webhook_signing_secret("ours") == sim.signing_secret
    assert HuntressProvider.signature_scheme.verify(request, provider.webhook_signing_secret("ours")) is True
    forged = _request(sim, sim.incident_webhook(report["id"]), secret=new_signing_secret(), prefix="webhook")
    assert provider.verify_webhook_signature(forged, "x") is False
    unsigned = WebhookRequest(body=request.body, headers={}, query={})
    assert provider.verify_webhook_signature(unsigned, "x") is None


def test_without_the_credential_our_secret_is_the_key(sim, provider_for):
    provider = provider_for(sim.url + "/v1", {"api_key": sim.api_key, "api_secret": sim.api_secret})
    whsec = new_signing_secret()
    report = sim.add_incident(sim.harbor["id"])
    assert provider.verify_webhook_signature(_request(sim, sim.incident_webhook(report["id"]), secret=whsec),
                                             whsec) is True


def test_inspect_gives_the_svix_id_and_a_summary(sim, provider):
    report = sim.add_incident(sim.harbor["id"])
    envelope = provider.inspect_webhook(_request(sim, sim.incident_webhook(report["id"])))
    assert envelope.delivery_id == "msg_abc123"
    assert envelope.summary.startswith(f"incident_report.created {report['id']} HIGH - Incident on")


def test_webhook_incident_is_fetched_in_full(sim, provider):
    report = sim.add_incident(sim.harbor["id"], sim.front["id"], remediations=2)
    payload = sim.incident_webhook(report["id"], nulls=("severity", "summary", "status"))
    (record,) = provider.parse_webhook_incidents(_request(sim, payload))
    assert not record.partial and record.severity == "high" and record.status == "sent"
    assert len(record.remediations) == 2 and record.host_name == "HDG-FRONT-01"
    assert record.organization_name == "Harbor Dental Group" and record.created_at is not None
    # the organization name came from the webhook: no organization lookup was needed
    assert not sim.calls_to("GET", f"/v1/organizations/{sim.harbor['id']}")


def test_webhook_incident_falls_back_to_the_payload_when_huntress_fails(sim, provider):
    report = sim.add_incident(sim.harbor["id"], sim.front["id"])
    payload = sim.incident_webhook(report["id"], event_type="incident_report.closed", nulls=("status",))
    request = _request(sim, payload)
    sim.fail_next(20, 503)
    (record,) = provider.parse_webhook_incidents(request)
    assert record.partial and record.is_closed and record.remediations is None
    assert record.organization_name == "Harbor Dental Group"
    assert "503" in request.extra["fetch_error"]


def test_other_events_give_no_incident(sim, provider):
    esc = sim.add_escalation([sim.harbor["id"]])
    request = _request(sim, sim.escalation_webhook(esc["id"], "escalation.overdue"))
    assert provider.parse_webhook_incidents(request) == []
    (escalation,) = provider.parse_webhook_escalations(request)
    assert escalation.event_type == "escalation.overdue" and escalation.message
    unknown = _request(sim, {"event_type": "platform_action.notification", "id": 1})
    assert provider.parse_webhook_incidents(unknown) == [] and provider.parse_webhook_escalations(unknown) == []
    assert provider.inspect_webhook(_request(sim, {"event_type": "new.kind"})).summary == "new.kind (not handled)"


def test_app_config_names_the_provider():
    from django.utils.module_loading import import_string

    from integrations.huntress.apps import HuntressConfig

    assert import_string(HuntressConfig.provider) is HuntressProvider
    assert HuntressConfig.name == "integrations.huntress" and HuntressConfig.default is True


def test_hosts_listed_once_for_many_agents_then_looked_up_when_new(sim, provider):
    hosts = [sim.add_agent(sim.harbor["id"], f"PC-{i}")["id"] for i in range(6)]
    for agent_id in hosts:
        sim.add_incident(sim.harbor["id"], agent_id)
    records = list(provider.iter_incidents(None))
    assert {r.host_name for r in records} == {f"PC-{i}" for i in range(6)}
    assert len(sim.calls_to("GET", "/v1/agents")) == 1  # one list instead of six lookups
    assert not [c for c in sim.calls if c.path.startswith("/v1/agents/")]
