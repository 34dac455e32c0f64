"""NinjaOne client, OAuth and provider against the NinjaOne simulator on loopback, with real Integration
rows (the token lives in the encrypted credentials; renewal locks the row)."""

from __future__ import annotations

import threading
import tracemalloc

import httpx
import pytest
from django.core import mail
from django.db import connection

from integrations import http as phttp
from integrations.base import WebhookRequest
from integrations.errors import PermissionDenied, ReconnectRequired, WebhookParseError
from integrations.models import Integration
from integrations.ninjaone import connect
from integrations.ninjaone.client import NinjaOneClient
from integrations.ninjaone.provider import NinjaOneProvider
from integrations.oauth import IntegrationTokenStore
from integrations.records import AlertEventKind
from psa.models import Notification
from tests.helpers import committed
from tests.simulators.ninjaone import DIFFERENT_PSA, FORBIDDEN_ADMIN, NinjaOneSimulator

REDIRECT = "https://psa.example/integrations/ninjaone/callback/"


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


def populate(sim: NinjaOneSimulator) -> NinjaOneSimulator:
    sim.harbor = sim.add_org("Harbor Dental Group", ["Main Office", "Annexe «Nord»"])
    sim.main, sim.annex = sim.locations_of(sim.harbor["id"])
    sim.other = sim.add_org('Smith "&" Sons', ["HQ"])
    sim.front = sim.add_device(sim.harbor["id"], "HDG-FRONT-01", system={
        "manufacturer": "Dell Inc.", "model": "OptiPlex 7010", "serialNumber": "7XK2M93"})
    sim.srv = sim.add_device(sim.harbor["id"], "HDG-SRV-01", location_id=sim.annex["id"], nodeClass="WINDOWS_SERVER",
                             offline=True, lastContact=1742412252)
    sim.esx = sim.add_device(sim.harbor["id"], "esx01", nodeClass="VMWARE_VM_HOST", os=None, system=None,
                             vendor="Dell Inc.", model="PowerEdge R640", serviceTag="9ZX8Y7W",
                             releaseName="VMware ESXi 7.0.3", deviceType="VMHost")
    sim.odd = sim.add_device(sim.other["id"], "SS-PC-1", nodeClass="QUANTUM_TOASTER")
    sim.app = sim.add_app("cid-harbor", "secret-harbor")
    return sim


@pytest.fixture
def sim():
    with NinjaOneSimulator(region="app") as s:
        yield populate(s)


@pytest.fixture
def make_integration(make_tenant):
    def _make(credentials: dict, *, base_url: str = "", settings: dict | None = None) -> Integration:
        row = Integration.objects.unscoped().create(tenant=make_tenant().tenant, provider="ninjaone",
                                                    base_url=base_url, settings=settings or {})
        row.set_credentials(credentials)
        row.set_webhook_secret("whsec-ninja")
        row.save()
        return row

    return _make


@pytest.fixture
def provider_for(make_integration):
    made: list[NinjaOneProvider] = []

    def _p(credentials: dict, **kw) -> NinjaOneProvider:
        p = NinjaOneProvider(make_integration(credentials, **kw))
        made.append(p)
        return p

    yield _p
    for p in made:
        p.close()


def creds(app) -> dict:
    return {"client_id": app.client_id, "client_secret": app.client_secret}


# -- connection test ------------------------------------------------------------------------------------
def test_connection_ok_stores_the_token_encrypted(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url)
    result = p.test_connection()
    assert result.ok, result.message
    assert "2 organizations, 3 locations" in result.message
    assert result.details["scopes"] == ["control", "management", "monitoring"]
    row = Integration.objects.unscoped().get(pk=p.integration.pk)
    token = row.get_token()
    assert token["access_token"] in sim.access_tokens and token["client_id"] == "cid-harbor"
    assert token["access_token"] not in row.token_ciphertext and "oauth_token" not in row.get_credentials()
    assert sim.grants("client_credentials")[0]["form"]["scope"] == "monitoring management control"


def test_second_provider_instance_reuses_the_stored_token(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url)
    p.list_organizations()
    again = NinjaOneProvider(Integration.objects.unscoped().get(pk=p.integration.pk))
    try:
        again.list_organizations()
    finally:
        again.close()
    assert len(sim.grants("client_credentials")) == 1


@pytest.fixture
def regions(monkeypatch):
    """Two more simulator 'regions'; the others unreachable."""
    with NinjaOneSimulator(region="eu") as eu, NinjaOneSimulator(region="ca") as ca:
        urls = {r: "http://127.0.0.1:9" for r in connect.REGION_URLS}
        urls.update(eu=eu.url, ca=ca.url)
        yield {"eu": eu, "ca": ca}, urls


def test_wrong_region_names_the_region_to_use(sim, regions, provider_for, monkeypatch):
    region_sims, urls = regions
    urls["app"] = sim.url
    monkeypatch.setattr(connect, "REGION_URLS", urls)
    app = region_sims["ca"].add_app("cid-canada", "secret-canada")
    result = provider_for(creds(app), settings={"region": "eu"}).test_connection()
    assert not result.ok and result.details["code"] == "wrong_region"
    assert result.details["regions_to_try"] == ["ca"] and "Set the region to ca" in result.message
    assert region_sims["eu"].grants(outcome="invalid_client")  # asked where configured, refused


def test_wrong_secret_is_told_apart_from_a_wrong_region(sim, regions, provider_for, monkeypatch):
    region_sims, urls = regions
    urls["app"] = sim.url
    monkeypatch.setattr(connect, "REGION_URLS", urls)
    result = provider_for({"client_id": "cid-harbor", "client_secret": "wrong"}, settings={"region": "app"}
                          ).test_connection()
    assert not result.ok and result.details["code"] == "invalid_client"
    assert result.message.startswith("Wrong client id or secret")
    assert sorted(result.details["regions_to_try"]) == ["fed", "oc", "us2"]  # unreachable ones, still to try
    assert region_sims["eu"].grants(outcome="invalid_client") and region_sims["ca"].grants(outcome="invalid_client")


def test_refused_at_a_base_url_override_lists_the_regions(sim, provider_for):
    result = provider_for({"client_id": "nope", "client_secret": "x"}, base_url=sim.url).test_connection()
    assert not result.ok and "try app, us2, eu, ca, oc, fed" in result.message


def test_missing_scope_at_the_token_endpoint(sim, provider_for):
    app = sim.add_app("cid-mon", "s", scopes={"monitoring"})
    result = provider_for(creds(app), base_url=sim.url).test_connection()
    assert not result.ok and result.details["code"] == "missing_scope" and "Missing scope" in result.message


def test_missing_scope_on_the_api(sim, provider_for):
    sim.grant_fewer_scopes = {"monitoring"}
    result = provider_for(creds(sim.app), base_url=sim.url).test_connection()
    assert not result.ok and result.details["code"] == "missing_scope"
    assert result.details["missing_scopes"] == ["monitoring"]


def test_ninjaone_down(sim, provider_for):
    sim.fail_next(20, 503)
    result = provider_for(creds(sim.app), base_url=sim.url).test_connection()
    assert not result.ok and result.details["code"] == "unavailable" and "down or unreachable" in result.message


def test_ninjaone_unreachable(provider_for):
    result = provider_for({"client_id": "a", "client_secret": "b"}, base_url="http://127.0.0.1:9").test_connection()
    assert not result.ok and result.details["code"] == "unavailable"


def test_authorization_code_not_yet_authorized(sim, provider_for):
    result = provider_for(creds(sim.app), base_url=sim.url, settings={"auth_flow": "authorization_code"}
                          ).test_connection()
    assert not result.ok and result.details["code"] == "not_authorized"
    assert sim.token_log == []


# -- authorization code, refresh, revocation ---------------------------------------------------------------
def test_authorization_code_flow_refresh_rotation_and_revocation(sim, provider_for):
    web = sim.add_app("cid-web", "secret-web", kind="web", redirect_uris=(REDIRECT,))
    p = provider_for(creds(web), base_url=sim.url, settings={"auth_flow": "authorization_code"})
    request = p.authorization_request(REDIRECT)
    callback = sim.authorize(request.url)
    assert callback["state"] == request.state and callback["code"]
    p.complete_authorization(redirect_uri=REDIRECT, code=callback["code"], state=callback["state"],
                             expected_state=request.state, code_verifier=request.code_verifier)
    stored = IntegrationTokenStore(Integration.objects.unscoped().get(pk=p.integration.pk)).load()
    first_rt = stored["refresh_token"]
    assert p.test_connection().ok
    assert sim.grants("authorization_code")[0]["form"]["code_verifier"] == request.code_verifier

    sim.expire_access_tokens()  # mid-work expiry: the next call refreshes transparently
    assert len(p.list_organizations()) == 5
    stored = IntegrationTokenStore(Integration.objects.unscoped().get(pk=p.integration.pk)).load()
    assert stored["refresh_token"] != first_rt and sim.refresh_tokens[stored["refresh_token"]]["alive"]
    assert len(sim.grants("refresh_token")) == 1

    sim.revoke_refresh_tokens()
    sim.expire_access_tokens()
    p.integration.status = "connected"
    p.integration.save(update_fields=["status"])
    with committed(), pytest.raises(ReconnectRequired, match="Reconnect"):
        p.list_organizations()
    assert len(sim.grants("refresh_token", outcome="invalid_token")) == 1
    # The refusal turns the integration to error and tells its admins, in the app and by email, once.
    row = Integration.objects.unscoped().get(pk=p.integration.pk)
    assert row.status == "error" and row.last_error.startswith("Reconnect required")
    notes = list(Notification.objects.unscoped().filter(tenant_id=row.tenant_id))
    assert [n.title for n in notes] == ["NinjaOne: reconnect required"]
    assert notes[0].url == "/settings/integrations/rmm/ninjaone/" and "revoked" in notes[0].body
    assert len(mail.outbox) == 1 and mail.outbox[0].subject == "NinjaOne: reconnect required"
    for _ in range(3):  # other workers: no further token request, no retry storm
        other = NinjaOneProvider(Integration.objects.unscoped().get(pk=p.integration.pk))
        with pytest.raises(ReconnectRequired):
            other.list_organizations()
        other.close()
        assert not other.test_connection().ok
    assert len(sim.grants("refresh_token", outcome=None)) == 2
    assert Notification.objects.unscoped().filter(tenant_id=row.tenant_id).count() == 1 and len(mail.outbox) == 1


def test_pkce_mismatch_is_refused(sim, provider_for):
    web = sim.add_app("cid-web", "secret-web", kind="web", redirect_uris=(REDIRECT,))
    p = provider_for(creds(web), base_url=sim.url, settings={"auth_flow": "authorization_code"})
    request = p.authorization_request(REDIRECT)
    callback = sim.authorize(request.url)
    with pytest.raises(Exception, match="authorization code"):
        p.complete_authorization(redirect_uri=REDIRECT, code=callback["code"], state=callback["state"],
                                 expected_state=request.state, code_verifier="x" * 64)


@pytest.mark.django_db(transaction=True)
def test_two_workers_refresh_once_through_the_row_lock(sim, make_integration):
    web = sim.add_app("cid-web", "secret-web", kind="web", redirect_uris=(REDIRECT,))
    row = make_integration(creds(web), base_url=sim.url, settings={"auth_flow": "authorization_code"})
    first = NinjaOneProvider(row)
    request = first.authorization_request(REDIRECT)
    callback = sim.authorize(request.url)
    first.complete_authorization(redirect_uri=REDIRECT, code=callback["code"], state=callback["state"],
                                 expected_state=request.state, code_verifier=request.code_verifier)
    sim.expire_access_tokens()
    sim.delay = 0.3  # the refresh is slow: the second worker arrives while the first holds the lock
    results, errors = [], []

    def worker():
        p = NinjaOneProvider(Integration.objects.unscoped().get(pk=row.pk))
        try:
            results.append(len(p.client.alerts()))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            p.close()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == [] and results == [0, 0]
    assert len(sim.grants("refresh_token", outcome=None)) == 1  # a rotated token used twice would be dead


# -- organizations and devices --------------------------------------------------------------------------------
def test_list_organizations(sim, provider_for):
    orgs = provider_for(creds(sim.app), base_url=sim.url).list_organizations()
    assert [(o.external_id, o.name, o.parent_external_id) for o in orgs] == [
        (f"org:{sim.harbor['id']}", "Harbor Dental Group", None),
        (f"loc:{sim.main['id']}", "Main Office", f"org:{sim.harbor['id']}"),
        (f"loc:{sim.annex['id']}", "Annexe «Nord»", f"org:{sim.harbor['id']}"),
        (f"org:{sim.other['id']}", 'Smith "&" Sons', None),
        (f"loc:{sim.locations_of(sim.other['id'])[0]['id']}", "HQ", f"org:{sim.other['id']}"),
    ]


def walks(sim):
    """The first page request of each device walk (a small account costs one more, empty, page)."""
    return [c for c in sim.calls_to("GET", "/v2/devices-detailed") if "after" not in c.query]


def test_iter_devices_of_a_mapped_organization(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url)
    devices = {d.name: d for d in p.iter_devices({f"org:{sim.harbor['id']}"})}
    assert set(devices) == {"HDG-FRONT-01", "HDG-SRV-01", "esx01"}
    front, srv, esx = devices["HDG-FRONT-01"], devices["HDG-SRV-01"], devices["esx01"]
    assert front.serial_number == "7XK2M93" and front.site_external_id == f"loc:{sim.main['id']}"
    assert srv.asset_type == "server" and srv.status == "offline" and srv.site_external_id == f"loc:{sim.annex['id']}"
    assert esx.serial_number == "9ZX8Y7W" and esx.os == "VMware ESXi 7.0.3"
    # One walk of every device (no filter): the other organization's device is skipped and counted.
    assert ["df" in c.query for c in walks(sim)] == [False]
    assert p.device_sync_report() == {"skipped_unmapped": 1, "unknown_node_classes": ["QUANTUM_TOASTER"]}


def test_iter_devices_by_mapped_location_and_unknown_node_classes(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url)
    other_loc = sim.locations_of(sim.other["id"])[0]["id"]
    names = [d.name for d in p.iter_devices({f"loc:{sim.annex['id']}", f"loc:{other_loc}"})]
    assert sorted(names) == ["HDG-SRV-01", "SS-PC-1"]
    assert p.unknown_node_classes == {"QUANTUM_TOASTER"} and p.skipped_unmapped == 2


def test_mapped_walk_asks_the_organizations_concerned_only(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url, settings={"device_walk": "mapped"})
    other_loc = sim.locations_of(sim.other["id"])[0]["id"]
    names = [d.name for d in p.iter_devices({f"loc:{sim.annex['id']}", f"loc:{other_loc}"})]
    assert sorted(names) == ["HDG-SRV-01", "SS-PC-1"]
    assert sorted(c.query["df"] for c in walks(sim)) == [
        f"org = {sim.harbor['id']}", f"org = {sim.other['id']}"]
    sim.reset_calls()
    wanted = {f"org:{sim.harbor['id']}", f"loc:{sim.main['id']}", f"loc:{sim.annex['id']}"}  # as resolution_map
    assert len(list(p.iter_devices(wanted))) == 3
    assert [c.query["df"] for c in walks(sim)] == [f"org = {sim.harbor['id']}"]
    sim.reset_calls()
    # A location whose organization NinjaOne does not list: everything is walked once.
    assert len(list(p.iter_devices({"loc:424242", f"org:{sim.other['id']}"}))) == 1
    assert ["df" in c.query for c in walks(sim)] == [False]


def test_many_devices_are_streamed_page_by_page(sim, provider_for):
    sim.generate_devices(20_000, [sim.harbor["id"], sim.other["id"]])
    p = provider_for(creds(sim.app), base_url=sim.url)
    p._client = NinjaOneClient(p.base_url, p.session, page_size=500)
    orgs = {f"org:{sim.harbor['id']}", f"org:{sim.other['id']}"}
    stream = p.iter_devices(orgs)
    next(stream)
    assert len(sim.calls_to("GET", "/v2/devices-detailed")) == 1  # one page fetched so far
    tracemalloc.start()
    count = 1 + sum(1 for _ in stream)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 20_004
    assert len(sim.calls_to("GET", "/v2/devices-detailed")) == 20_005 // 500 + 1  # 20,005 devices in all
    assert peak < 40 * 1024 * 1024  # a few pages at most, never the whole list


def test_token_expiring_mid_sync_is_renewed_transparently(sim, provider_for):
    sim.generate_devices(1_500, [sim.harbor["id"]])
    p = provider_for(creds(sim.app), base_url=sim.url)
    stream = p.iter_devices({f"org:{sim.harbor['id']}"})
    first = [next(stream) for _ in range(10)]
    sim.expire_access_tokens()
    rest = list(stream)
    assert len(first) + len(rest) == 1_503
    assert len(sim.grants("client_credentials")) == 2


def test_rate_limit_and_server_errors_are_retried(sim, provider_for, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(phttp, "_sleep", waits.append)
    p = provider_for(creds(sim.app), base_url=sim.url)
    p.session.access_token()
    sim.rate_limit_next(1, retry_after="2")
    sim.fail_next(1, 502)
    assert len(p.list_organizations()) == 5
    assert waits[0] == 2.0


def test_device_detail_dashboard_link_and_last_user(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url)
    assert p.device_detail(str(sim.front["id"])).organization_external_id == f"org:{sim.harbor['id']}"
    assert p.device_detail("999999") is None
    link = p.dashboard_url(str(sim.front["id"]))
    assert f"/deviceDashboard/{sim.front['id']}/" in link["url"] and link["expires"] is not None
    assert p.client.last_logged_on_user(sim.front["id"])["userName"] == "EXAMPLE\\jdoe"


def test_api_prefix_is_served_too(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url)
    token = p.session.access_token()
    response = httpx.get(sim.url + "/api/v2/organizations", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and len(response.json()) == 2


# -- inventory ----------------------------------------------------------------------------------------------
def test_software_and_patches_per_device_with_an_expiring_cursor(sim, provider_for):
    sim.generate_devices(30, [sim.harbor["id"]], software_per_device=3, patches_per_device=2)
    sim.software[sim.front["id"]] = [{"name": "7-Zip 23.01 (x64)", "version": "23.01", "publisher": "Igor Pavlov",
                                      "installDate": "2024-01-05T00:00:00Z", "size": 5341184}]
    sim.patch_installs[sim.front["id"]] = [{"id": "inst-1", "name": "KB5053598", "status": "INSTALLED",
                                            "installedAt": 1742300000.5, "kbNumber": "KB5053598"}]
    p = provider_for(creds(sim.app), base_url=sim.url)
    p._client = NinjaOneClient(p.base_url, p.session, query_page_size=20)
    sim.expire_cursors_after_pages = 2
    software = dict(p.iter_software({f"org:{sim.harbor['id']}"}))
    assert len(software) == 31 and [s.name for s in software[str(sim.front["id"])]] == ["7-Zip 23.01 (x64)"]
    assert all(len(rows) == 3 for key, rows in software.items() if key != str(sim.front["id"]))
    starts = [c for c in sim.calls_to("GET", "/v2/queries/software") if "cursor" not in c.query]
    assert len(starts) == 2  # the walk restarted once, and nothing was counted twice
    patches = dict(p.iter_patches({f"org:{sim.harbor['id']}"}))
    assert [(x.external_id, x.state) for x in patches[str(sim.front["id"])]] == [("inst-1", "installed")]
    assert {x.state for rows in patches.values() for x in rows} == {"pending", "installed"}


# -- alerts, reset, webhooks --------------------------------------------------------------------------------
def test_poll_alerts_with_and_without_device(sim, provider_for):
    a1 = sim.add_alert(sim.front["id"])
    sim.add_alert(sim.srv["id"], source_name="", subject="41", message="Event 41 logged", source_type="CONDITION_WINDOWS_EVENT_LOG_TRIGGERED")
    p = provider_for(creds(sim.app), base_url=sim.url)
    result = p.poll_alerts()
    assert result.complete and {a.external_id for a in result.active} == set(sim.alerts)
    first = next(a for a in result.active if a.external_id == a1["uid"])
    assert first.organization_external_id is None and first.device_external_id == str(sim.front["id"])
    sim.alerts_include_device = True
    first = next(a for a in p.poll_alerts().active if a.external_id == a1["uid"])
    assert first.organization_external_id == f"org:{sim.harbor['id']}"


@pytest.mark.parametrize(("method", "call"), [("delete", "DELETE"), ("post", "POST")])
def test_reset_alert_and_already_gone(sim, provider_for, method, call):
    alert = sim.add_alert(sim.front["id"])
    p = provider_for(creds(sim.app), base_url=sim.url, settings={"reset_method": method})
    p.reset_alert(alert["uid"])
    p.reset_alert(alert["uid"])  # 404 the second time: already gone, no error
    assert [(m, u) for m, u, _ in sim.resets] == [(call, alert["uid"]), (call, alert["uid"])]
    assert alert["uid"] not in sim.alerts


def test_register_webhook_then_parse_what_ninjaone_sends(sim, provider_for, settings):
    settings.PSA_PUBLIC_BASE_URL = "https://psa.example"
    p = provider_for(creds(sim.app), base_url=sim.url)
    assert p.on_connected() == "Webhook registered in NinjaOne."
    registered = sim.webhook
    assert registered["url"] == f"https://psa.example/webhooks/ninjaone/{p.integration.webhook_key}/"
    assert registered["headers"] == [{"name": "X-PSA-Webhook-Secret", "value": "whsec-ninja"}]
    assert set(registered["activities"]) == {"CONDITION", "CONDITION_ACTIONSET"}
    assert "TRIGGERED" in registered["activities"]["CONDITION"] and registered["expand"][0] == "device"

    alert = sim.add_alert(sim.front["id"])
    for body, kind in ((sim.activity(alert), AlertEventKind.TRIGGERED),
                       (sim.activity(alert, "RESET", severity=None, priority=None, integer_time=True),
                        AlertEventKind.RESOLVED)):
        _url, headers, raw = sim.render_webhook(body)
        assert headers["X-PSA-Webhook-Secret"] == "whsec-ninja"
        request = WebhookRequest(body=raw, headers={k.lower(): v for k, v in headers.items()}, query={})
        envelope = p.inspect_webhook(request)
        [parsed] = p.parse_webhook(request)
        assert envelope.delivery_id == f"activity:{body['id']}" and parsed.event == kind
        assert parsed.external_id == alert["uid"] and parsed.organization_external_id == f"org:{sim.harbor['id']}"
        assert parsed.organization_name == "Harbor Dental Group"

    p.reset_alert(alert["uid"])
    [reset_activity] = sim.outbox
    [parsed] = p.parse_webhook(WebhookRequest(body=sim.render_webhook(reset_activity)[2], headers={}, query={}))
    assert parsed.event == AlertEventKind.RESOLVED and reset_activity["statusCode"] == "RESET_BY_PSA_TICKET_CALLBACK"

    assert p.unregister_webhook() is True and sim.webhook is None


def test_channel_webhook_without_device_still_parses(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url)
    alert = sim.add_alert(sim.front["id"])
    card = p.webhook_card("https://psa.example/webhooks/ninjaone/k/", "whsec-ninja")
    url, headers, raw = sim.render_webhook(sim.activity(alert, channel=True), channel_url=card["notification_channel_url"])
    assert "secret=whsec-ninja" in url and "X-PSA-Webhook-Secret" not in headers
    [parsed] = p.parse_webhook(WebhookRequest(body=raw, headers={}, query={"secret": "whsec-ninja"}))
    assert parsed.device_external_id == str(sim.front["id"]) and parsed.organization_external_id is None


@pytest.mark.parametrize(("knob", "text"), [("other_psa", DIFFERENT_PSA), ("not_admin", FORBIDDEN_ADMIN)])
def test_webhook_refusals_keep_ninjaones_text(sim, provider_for, knob, text):
    if knob == "other_psa":
        sim.other_psa = True
    else:
        sim.webhook_admin = False
    p = provider_for(creds(sim.app), base_url=sim.url)
    with pytest.raises(PermissionDenied) as info:
        p.register_webhook("https://psa.example/webhooks/ninjaone/k/", "s")
    assert text in str(info.value)
    if knob == "other_psa":
        with pytest.raises(PermissionDenied, match=DIFFERENT_PSA):
            p.unregister_webhook()


# -- provider settings and credentials -------------------------------------------------------------------
def test_client_credentials_never_ask_offline_access_which_eu_refuses(provider_for):
    with NinjaOneSimulator(region="eu") as eu:
        populate(eu)
        result = provider_for(creds(eu.app), base_url=eu.url).test_connection()
        assert result.ok, result.message
        assert "offline_access" not in eu.grants("client_credentials")[0]["form"]["scope"]


def test_changed_client_secret_drops_the_stored_token(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url)
    first = p.session.access_token()
    row = Integration.objects.unscoped().get(pk=p.integration.pk)
    assert row.get_token()["access_token"] == first
    # The admin types a new secret (the framework's credential edit): the old token is not used again.
    sim.apps["cid-harbor"].client_secret = "new-secret"
    row.set_credentials({**row.get_credentials(), "client_secret": "new-secret"})
    row.save()
    again = NinjaOneProvider(Integration.objects.unscoped().get(pk=row.pk))
    try:
        assert again.session.current() is None
        assert again.session.access_token() != first
    finally:
        again.close()
    assert len(sim.grants("client_credentials")) == 2


def test_a_token_renewal_and_a_credential_edit_do_not_overwrite_each_other(sim, provider_for):
    p = provider_for(creds(sim.app), base_url=sim.url, settings={"region": "app"})
    stale = Integration.objects.unscoped().get(pk=p.integration.pk)  # an admin's form, read before the renewal
    p.session.access_token()
    stale.set_credentials({**stale.get_credentials(), "client_id": "cid-harbor"})
    stale.save(update_fields=["credentials_ciphertext"])
    row = Integration.objects.unscoped().get(pk=p.integration.pk)
    assert row.get_token()["access_token"] in sim.access_tokens
    assert row.get_credentials()["client_secret"] == "secret-harbor"


def test_settings_checks_and_region_resolution(provider_for):
    p = provider_for({"client_id": "a", "client_secret": "b"}, settings={"region": "eu"})
    assert p.base_url == "https://eu.ninjarmm.com" and p.region == "eu"
    assert p.session.config.token_url == "https://eu.ninjarmm.com/ws/oauth/token"
    assert p.clean_settings({"node_class_map": {"NMS_SWITCH": "toaster"}, "severity_map": {"major": "huge"}}
                            ).keys() == {"settings.node_class_map", "settings.severity_map"}
    assert p.clean_settings({"node_class_map": {"NMS_SWITCH": "server"}, "severity_map": {}}) == {}
    assert p.validate_credentials({"client_id": "a"}, "") == {"credentials": ["Provide {client_id, client_secret}."]}
    overridden = provider_for({"client_id": "a", "client_secret": "b"}, base_url="https://ninja.example",
                              settings={"region": "eu"})
    assert overridden.base_url == "https://ninja.example" and overridden.region is None


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe"])
def test_unreadable_webhook_bodies_are_parse_errors(provider_for, body):
    p = provider_for({"client_id": "a", "client_secret": "b"})
    with pytest.raises(WebhookParseError):
        p.inspect_webhook(WebhookRequest(body=body, headers={}, query={}))


def test_other_activities_are_stored_without_ticket_action(provider_for):
    p = provider_for({"client_id": "a", "client_secret": "b"})
    body = b'{"id": 5, "activityType": "SYSTEM", "statusCode": "NODE_CREATED", "deviceId": 3}'
    request = WebhookRequest(body=b"\xef\xbb\xbf" + body, headers={}, query={})
    envelope = p.inspect_webhook(request)
    assert envelope.delivery_id == "activity:5" and "no ticket action" in envelope.summary
    assert p.parse_webhook(request) == []


def test_disconnect_removes_the_webhook_and_revokes_the_refresh_token(sim, provider_for):
    web = sim.add_app("cid-web", "secret-web", kind="web", redirect_uris=(REDIRECT,))
    p = provider_for(creds(web), base_url=sim.url, settings={"auth_flow": "authorization_code"})
    request = p.authorization_request(REDIRECT)
    callback = sim.authorize(request.url)
    token = p.complete_authorization(redirect_uri=REDIRECT, code=callback["code"], state=callback["state"],
                                     expected_state=request.state, code_verifier=request.code_verifier)
    assert p.token_expires_at().timestamp() == pytest.approx(token["expires_at"])
    p.register_webhook("https://psa.example/webhooks/ninjaone/k/", "s")
    p.on_disconnect()
    assert sim.webhook is None and sim.refresh_tokens[token["refresh_token"]]["alive"] is False


def test_a_hundred_thousand_generated_devices_cost_nothing_until_asked(sim, provider_for):
    from tests.simulators.ninjaone import GENERATED_START

    sim.generate_devices(100_000, [sim.harbor["id"]])
    p = provider_for(creds(sim.app), base_url=sim.url)
    page = p.client.request("GET", "/v2/devices-detailed",
                            params={"pageSize": 1000, "after": GENERATED_START + 99_990})
    assert [d["id"] for d in page] == list(range(GENERATED_START + 99_991, GENERATED_START + 100_000))
    assert len(sim.devices) == 4
