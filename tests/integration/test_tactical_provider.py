"""TacticalProvider against the Tactical simulator on loopback (real Integration rows)."""

from __future__ import annotations

import socket

import pytest

from integrations.errors import ReconnectRequired
from integrations.models import Integration
from integrations.registry import get_provider
from tests.simulators.tactical import TacticalSimulator


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


@pytest.fixture
def sim():
    with TacticalSimulator() as s:
        harbor = s.add_client("Harbor Dental Group", ["Main Office", "Annex"])
        s.harbor = harbor
        s.main = s.site_named(harbor["id"], "Main Office")
        s.annex = s.site_named(harbor["id"], "Annex")
        s.front = s.add_agent(s.main["id"], "HDG-FRONT-01", serial_number="7XK2M93")
        s.srv = s.add_agent(s.main["id"], "HDG-SRV-01", monitoring_type="server", status="offline")
        s.lab = s.add_agent(s.annex["id"], "HDG-LAB-01", plat="linux", status="overdue",
                            make_model="VMware Virtual Platform", local_ips="10.0.0.5, 10.0.0.6")
        other = s.add_client("Other Corp", ["HQ"])
        s.other = other
        s.other_pc = s.add_agent(s.site_named(other["id"], "HQ")["id"], "OC-PC-1")
        s.software[s.front.agent_id] = [
            {"name": "7-Zip 19.00 (x64)", "version": "19.00", "publisher": "Igor Pavlov",
             "install_date": "2019-06-09 00:00:00 +0000 UTC", "size": "5.2 MB", "source": "", "location": "",
             "uninstall": ""}]
        yield s


@pytest.fixture
def make_integration(make_tenant):
    def _make(base_url: str, credentials: dict, settings: dict | None = None) -> Integration:
        tenant = make_tenant().tenant  # one Tactical integration per tenant
        row = Integration.objects.unscoped().create(tenant=tenant, provider="tactical", base_url=base_url,
                                                    settings=settings or {})
        row.set_credentials(credentials)
        row.save()
        return row

    return _make


@pytest.fixture
def provider_for(make_integration):
    made = []

    def _p(base_url: str, credentials: dict, settings: dict | None = None):
        p = get_provider(make_integration(base_url, credentials, settings))
        made.append(p)
        return p

    yield _p
    for p in made:
        p.close()


# -- connection test ---------------------------------------------------------------------------
def test_connection_ok(sim, provider_for):
    result = provider_for(sim.url, {"api_key": sim.api_key}).test_connection()
    assert result.ok, result.message
    assert "2 clients, 3 sites" in result.message and result.account_name == "127.0.0.1"
    assert result.details["beta_api"] is False and result.details["auth"] == "api_key"
    assert sim.calls_to("GET", "/clients/")[0].headers["x-api-key"] == "[redacted]"  # it was sent


def test_connection_bad_key(sim, provider_for):
    result = provider_for(sim.url, {"api_key": "WRONG" * 6}).test_connection()
    assert not result.ok and "rejected" in result.message and "Invalid token." in result.message
    assert result.details["code"] == "auth_failed"


def test_connection_insufficient_permission(sim, provider_for):
    sim.forbidden.add("/clients/")
    result = provider_for(sim.url, {"api_key": sim.api_key}).test_connection()
    assert not result.ok and "lacks a permission" in result.message and "List clients" in result.message
    assert result.details["code"] == "permission_denied"


def test_connection_dashboard_host_html(sim, provider_for):
    sim.html_mode = True
    result = provider_for(sim.url, {"api_key": sim.api_key}).test_connection()
    assert not result.ok and result.message.startswith("Wrong URL") and "api.<your-domain>" in result.message
    assert result.details["code"] == "bad_response"


def test_connection_refused(provider_for):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    result = provider_for(f"http://127.0.0.1:{port}", {"api_key": "k"}).test_connection()
    assert not result.ok and "Cannot reach" in result.message and result.details["code"] == "unavailable"


def test_connection_dns_failure(provider_for, monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "api.nowhere.example":
            raise socket.gaierror(-2, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    result = provider_for("https://api.nowhere.example", {"api_key": "k"}).test_connection()
    assert not result.ok and "resolve" in result.message


def test_connection_slow_server_times_out(sim, provider_for, settings):
    settings.PSA_HTTP_TIMEOUT = 0.2
    sim.delay = 1.0
    result = provider_for(sim.url, {"api_key": sim.api_key}).test_connection()
    assert not result.ok and "did not answer in time" in result.message


def test_connection_survives_transient_500s(sim, provider_for):
    sim.fail_next(2, 500)
    result = provider_for(sim.url, {"api_key": sim.api_key}).test_connection()
    assert result.ok
    assert [c.status for c in sim.calls_to("GET", "/clients/")] == [500, 500, 200]


def test_connection_reports_beta_api(sim, provider_for):
    sim.beta_enabled = True
    assert provider_for(sim.url, {"api_key": sim.api_key}).test_connection().details["beta_api"] is True


# -- Knox logins --------------------------------------------------------------------------------
def test_login_without_two_factor_is_renewable(sim, provider_for):
    sim.users["psa"] = {"password": "pw", "totp": None}
    provider = provider_for(sim.url, {})
    stored = provider.prepare_credentials({"username": "psa", "password": "pw"}, sim.url)
    assert stored == {"username": "psa", "password": "pw"}
    p2 = provider_for(sim.url, stored)
    assert p2.test_connection().ok
    sim.revoke_tokens()  # the short checkcreds token expired: the client logs in again
    assert len(list(p2.list_organizations())) == 5
    assert len(sim.calls_to("POST", "/v2/checkcreds/")) == 3


def test_two_factor_login_stores_token_and_asks_to_reconnect_when_it_expires(sim, provider_for):
    sim.users["psa"] = {"password": "pw", "totp": "654321"}
    provider = provider_for(sim.url, {})
    stored = provider.prepare_credentials({"username": "psa", "password": "pw", "totp": "654321"}, sim.url)
    assert set(stored) == {"knox_token", "username"} and "password" not in stored
    p2 = provider_for(sim.url, stored)
    assert p2.test_connection().ok
    sim.revoke_tokens()
    result = p2.test_connection()
    assert not result.ok and "reconnect" in result.message and result.details["code"] == "reconnect_required"
    with pytest.raises(ReconnectRequired, match="reconnect"):
        list(p2.list_organizations())


# -- organizations and devices ---------------------------------------------------------------------
def test_list_organizations(sim, provider_for):
    orgs = list(provider_for(sim.url, {"api_key": sim.api_key}).list_organizations())
    assert [(o.external_id, o.name, o.parent_external_id) for o in orgs] == [
        (f"client:{sim.harbor['id']}", "Harbor Dental Group", None),
        (f"site:{sim.main['id']}", "Main Office", f"client:{sim.harbor['id']}"),
        (f"site:{sim.annex['id']}", "Annex", f"client:{sim.harbor['id']}"),
        (f"client:{sim.other['id']}", "Other Corp", None),
        (f"site:{sim.site_named(sim.other['id'], 'HQ')['id']}", "HQ", f"client:{sim.other['id']}"),
    ]


def test_devices_of_a_mapped_client_with_software_and_remote_access(sim, provider_for):
    p = provider_for(sim.url, {"api_key": sim.api_key})
    devices = {d.external_id: d for d in p.iter_devices({f"client:{sim.harbor['id']}"})}
    assert set(devices) == {sim.front.agent_id, sim.srv.agent_id, sim.lab.agent_id}  # not Other Corp's
    front, srv, lab = devices[sim.front.agent_id], devices[sim.srv.agent_id], devices[sim.lab.agent_id]
    assert front.organization_external_id == f"site:{sim.main['id']}"
    assert lab.organization_external_id == f"site:{sim.annex['id']}"
    assert (front.hostname, front.serial_number, front.asset_type, front.status) == (
        "HDG-FRONT-01", "7XK2M93", "workstation", "online")
    assert (srv.asset_type, srv.status, lab.status, lab.platform) == ("server", "offline", "overdue", "linux")
    assert lab.local_ips == ["10.0.0.5", "10.0.0.6"] and lab.make_model == "VMware Virtual Platform"
    assert [s.name for s in front.software] == ["7-Zip 19.00 (x64)"]
    assert srv.software is None  # Tactical has no inventory for it ([]): keep what we have
    assert front.remote_access_url.startswith("https://mesh.example.test/")
    # One classic list call for the client, filtered server-side.
    assert [c.query for c in sim.calls_to("GET", "/agents/")] == [{"client": str(sim.harbor["id"])}]


def test_devices_of_a_mapped_site_only(sim, provider_for):
    p = provider_for(sim.url, {"api_key": sim.api_key}, {"sync_software": False, "sync_remote_access": False})
    devices = list(p.iter_devices({f"site:{sim.annex['id']}"}))
    assert [d.hostname for d in devices] == ["HDG-LAB-01"]
    assert [c.query for c in sim.calls_to("GET", "/agents/")] == [{"site": str(sim.annex["id"])}]
    assert not sim.calls_to("GET", f"/software/{sim.lab.agent_id}/")


def test_meshcentral_failure_does_not_fail_the_sync(sim, provider_for):
    sim.mesh_fails = True
    devices = list(provider_for(sim.url, {"api_key": sim.api_key}).iter_devices({f"client:{sim.harbor['id']}"}))
    assert len(devices) == 3 and all(d.remote_access_url == "" for d in devices)


def test_thousands_of_agents_classic(sim, provider_for):
    big = sim.add_client("Big Client", ["Site A", "Site B"])
    sim.add_many_agents(sim.site_named(big["id"], "Site A")["id"], 1800, prefix="A")
    sim.add_many_agents(sim.site_named(big["id"], "Site B")["id"], 1200, prefix="B")
    p = provider_for(sim.url, {"api_key": sim.api_key}, {"sync_software": False, "sync_remote_access": False,
                                                          "agent_api": "classic"})
    orgs: dict[str, int] = {}
    types: dict[str, int] = {}
    for d in p.iter_devices({f"client:{big['id']}"}):
        orgs[d.organization_external_id] = orgs.get(d.organization_external_id, 0) + 1
        types[d.asset_type] = types.get(d.asset_type, 0) + 1
    site_a, site_b = sim.site_named(big["id"], "Site A")["id"], sim.site_named(big["id"], "Site B")["id"]
    assert orgs == {f"site:{site_a}": 1800, f"site:{site_b}": 1200}
    assert types == {"server": 300, "workstation": 2700}
    assert len(sim.calls_to("GET", "/agents/")) == 1


def test_thousands_of_agents_beta_api_streams_pages(sim, provider_for):
    sim.beta_enabled = True
    big = sim.add_client("Big Client", ["Site A"])
    site_a = sim.site_named(big["id"], "Site A")["id"]
    sim.add_many_agents(site_a, 2500)
    p = provider_for(sim.url, {"api_key": sim.api_key}, {"sync_software": False, "sync_remote_access": False})
    stream = p.iter_devices({f"client:{big['id']}"})
    first = next(stream)
    # Streaming: one page fetched so far (plus the availability probe), not all 25.
    assert len([c for c in sim.calls_to("GET", "/beta/v1/agent/") if c.query.get("client_id")]) == 1
    rest = list(stream)
    assert len(rest) + 1 == 2500
    assert first.organization_external_id == f"site:{site_a}" and first.status == "online"
    assert first.serial_number.startswith("SN") and first.make_model.startswith("Dell Inc.")
    pages = [c for c in sim.calls_to("GET", "/beta/v1/agent/") if c.query.get("client_id")]
    assert len(pages) == 25 and not sim.calls_to("GET", "/agents/")


def test_beta_setting_falls_back_to_classic_when_disabled(sim, provider_for):
    p = provider_for(sim.url, {"api_key": sim.api_key}, {"agent_api": "beta", "sync_software": False})
    assert len(list(p.iter_devices({f"client:{sim.harbor['id']}"}))) == 3
    assert sim.calls_to("GET", "/beta/v1/agent/")[0].status == 404 and sim.calls_to("GET", "/agents/")


# -- alerts -------------------------------------------------------------------------------------
def test_poll_returns_only_active_alerts(sim, provider_for):
    a1 = sim.add_alert(sim.front, check_id=803)
    a2 = sim.add_alert(sim.front, check_id=804, severity="warning", message="HDG-FRONT-01 has a cpuload check")
    a3 = sim.add_alert(sim.lab, alert_type="availability", message="HDG-LAB-01 in Harbor, Annex is overdue.")
    done = sim.add_alert(sim.srv)
    sim.resolve_locally(done["id"])
    result = provider_for(sim.url, {"api_key": sim.api_key}).poll_alerts()
    assert result.complete is True
    by_id = {a.external_id: a for a in result.active}
    assert set(by_id) == {str(a1["id"]), str(a2["id"]), str(a3["id"])}
    assert sim.calls_to("PATCH", "/alerts/")[0].body == {"resolvedFilter": False}
    assert by_id[str(a1["id"])].condition_key != by_id[str(a2["id"])].condition_key  # two checks, two conditions
    assert by_id[str(a2["id"])].severity == "medium"
    assert by_id[str(a3["id"])].organization_external_id == f"site:{sim.annex['id']}"
    assert by_id[str(a3["id"])].alert_type == "availability"


def test_reset_resolves_in_tactical_and_tolerates_gone_alerts(sim, provider_for):
    alert = sim.add_alert(sim.front)
    p = provider_for(sim.url, {"api_key": sim.api_key})
    p.reset_alert(str(alert["id"]))
    assert sim.calls_to("PUT", f"/alerts/{alert['id']}/")[0].body == {"type": "resolve"}
    assert sim.alerts[alert["id"]]["resolved"] is True
    p.reset_alert("999999")  # 404: already gone, not an error
    assert sim.calls_to("PUT", "/alerts/999999/")[0].status == 404
