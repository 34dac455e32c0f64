"""What the acceptance rehearsal found about API.md's public names, fixed and kept fixed.

- NinjaOne's connect registers our webhook in NinjaOne ("connect does it too") with the product run as
  the README says, PSA_PUBLIC_BASE_URL unset: the URL comes from the admin's request, as the card's does.
- PUT integrations/{provider}/ takes region and base_url beside the credentials, as API.md lists them.
- POST tickets/ without a board files the ticket on "General" (as the new-ticket form does).
- A provider base URL given as a bare host (a simulator's or a proxy's address) reaches the API under
  the provider's version path (Level /v2, Huntress /v1); a NinjaOne override pasted with /v2 is cut back.
"""

from __future__ import annotations

import pytest

from integrations.huntress.client import api_base as huntress_base
from integrations.level.client import api_base as level_base
from integrations.ninjaone.connect import base_url_for
from tests.helpers import committed, ok
from tests.simulators.huntress import HuntressSimulator
from tests.simulators.level import LevelSimulator
from tests.simulators.ninjaone import NinjaOneSimulator
from tests.simulators.tactical import TacticalSimulator
from tickets.models import Board

API = "/api/v1/integrations"

pytestmark = pytest.mark.usefixtures("fast")


@pytest.fixture(autouse=True)
def no_public_base(settings):
    settings.PUBLIC_BASE_URL = ""
    settings.PSA_PUBLIC_BASE_URL = ""


def test_ninjaone_connect_registers_the_webhook_from_the_request_without_a_public_base_url(api_a):
    with NinjaOneSimulator() as sim:
        sim.add_org("Harbor Dental Group")
        app = sim.add_app()
        data = ok(api_a.put(f"{API}/ninjaone/", {"base_url": sim.url, "credentials": {
            "client_id": app.client_id, "client_secret": app.client_secret}}, format="json"))
        assert data["status"] == "connected", data
        card = ok(api_a.get(f"{API}/ninjaone/webhook/"))
        assert card["url"].startswith("http://testserver/webhooks/ninjaone/")
        assert sim.webhook is not None, data["connection_test"]
        assert sim.webhook["url"] == card["url"]
        assert sim.webhook["headers"] == [{"name": card["header_name"], "value": card["secret"]}]
        assert "Webhook registered in NinjaOne." in data["connection_test"]["message"]
        # The connection test registers it again after it was removed in NinjaOne.
        sim.webhook = None
        assert ok(api_a.post(f"{API}/ninjaone/test/"))["ok"] is True
        assert sim.webhook["url"] == card["url"]


def test_ninjaone_webhook_card_then_register_delete_endpoints(api_a):
    with NinjaOneSimulator() as sim:
        app = sim.add_app()
        ok(api_a.put(f"{API}/ninjaone/", {"base_url": sim.url, "settings": {"register_webhook": False},
                                          "credentials": {"client_id": app.client_id,
                                                          "client_secret": app.client_secret}}, format="json"))
        assert sim.webhook is None
        with committed():
            registered = ok(api_a.post(f"{API}/ninjaone/webhook/register/"))
        assert registered["registered"] is True and sim.webhook["url"] == registered["url"]
        assert ok(api_a.delete(f"{API}/ninjaone/webhook/register/"))["registered"] is False
        assert sim.webhook is None


@pytest.mark.parametrize("suffix", ["", "/", "/v2", "/v2/", "/api/v2"])
def test_ninjaone_base_url_with_or_without_the_api_path(api_a, suffix):
    with NinjaOneSimulator() as sim:
        sim.add_org("Harbor Dental Group")
        app = sim.add_app()
        data = ok(api_a.put(f"{API}/ninjaone/", {"base_url": sim.url + suffix, "settings": {"register_webhook": False},
                                                 "credentials": {"client_id": app.client_id,
                                                                 "client_secret": app.client_secret}}, format="json"))
        assert data["status"] == "connected", data["last_error"]


@pytest.mark.parametrize("suffix", ["", "/", "/v2", "/v2/"])
def test_level_bare_host_means_its_v2(api_a, suffix):
    with LevelSimulator() as sim:
        sim.add_group("Harbor Dental Group")
        data = ok(api_a.put(f"{API}/level/", {"base_url": sim.url + suffix,
                                              "credentials": {"api_key": sim.read_write_key}}, format="json"))
        assert data["status"] == "connected", data["last_error"]
        assert sim.calls_to("GET", "/v2/groups")


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_huntress_bare_host_means_its_v1(api_a, suffix):
    with HuntressSimulator() as sim:
        sim.add_org("Harbor Dental Group")
        data = ok(api_a.put(f"{API}/huntress/", {"base_url": sim.url + suffix, "credentials": {
            "api_key": sim.rw_key, "api_secret": sim.rw_secret}}, format="json"))
        assert data["status"] == "connected", data["last_error"]
        assert data["account_name"] == "Example MSP"


def test_api_roots():
    assert level_base(None) == level_base("") == "https://api.level.io/v2"
    assert level_base("https://proxy.example/") == "https://proxy.example/v2"
    assert level_base("https://proxy.example/level/v2/") == "https://proxy.example/level/v2"
    assert level_base("https://proxy.example/level") == "https://proxy.example/level"  # a path is kept as given
    assert huntress_base(None) == "https://api.huntress.io/v1"
    assert huntress_base("http://127.0.0.1:8123") == "http://127.0.0.1:8123/v1"
    assert huntress_base("http://127.0.0.1:8123/v1/") == "http://127.0.0.1:8123/v1"
    assert base_url_for("eu", "") == "https://eu.ninjarmm.com"
    assert base_url_for("app", "https://eu.ninjarmm.com/v2/") == "https://eu.ninjarmm.com"
    assert base_url_for("app", "https://x.example/api/v2") == "https://x.example"
    assert base_url_for("app", "https://x.example/ninja") == "https://x.example/ninja"


def test_a_ticket_created_without_a_board_goes_to_general(api_a, tenant_a, make_client, as_tenant):
    acme = make_client(tenant_a.tenant, "Acme")
    boards = {b["name"]: b["id"] for b in ok(api_a.get("/api/v1/boards/"))["results"]}
    made = ok(api_a.post("/api/v1/tickets/", {"title": "Printer jam", "client": acme.pk}, format="json"), 201)
    assert made["board"] == boards["General"] and made["source"] == "manual" and made["is_closed"] is False
    chosen = ok(api_a.post("/api/v1/tickets/", {"title": "Alarm", "board": boards["Security"]}, format="json"), 201)
    assert chosen["board"] == boards["Security"]
    # The same default on a tenant whose "General" was renamed: the first board.
    with as_tenant(tenant_a.tenant):
        Board.objects.filter(pk=boards["General"]).update(name="Service desk")
    other = ok(api_a.post("/api/v1/tickets/", {"title": "Second"}, format="json"), 201)
    assert other["board"] == min(boards.values())


@pytest.mark.parametrize("missing", [("-detailed",), ("-detailed", "/locations")])
def test_ninjaone_server_without_the_detailed_routes(api_a, tenant_a, make_client, missing):
    """A NinjaOne (or a simulator of it) serving only /v2/organizations and /v2/devices still syncs."""
    harbor = make_client(tenant_a.tenant, "Harbor Dental Group")
    with NinjaOneSimulator() as sim:
        org = sim.add_org("Harbor Dental Group", ["Main Office"])
        sim.add_device(org["id"], "HDG-FRONT-01", location_id=sim.locations_of(org["id"])[0]["id"])
        sim._routes = [r for r in sim._routes if not any(m in r[1].pattern for m in missing)]
        app = sim.add_app()
        ok(api_a.put(f"{API}/ninjaone/", {"base_url": sim.url, "settings": {"register_webhook": False},
                                          "credentials": {"client_id": app.client_id,
                                                          "client_secret": app.client_secret}}, format="json"))
        with committed():
            job = ok(api_a.post(f"{API}/ninjaone/organizations/sync/"), 202)
        assert ok(api_a.get(f"/api/v1/jobs/{job['id']}/"))["state"] == "succeeded"
        names = {o["name"]: o for o in ok(api_a.get(f"{API}/ninjaone/organizations/"))["results"]}
        assert ("Main Office" in names) is ("/locations" not in missing)
        ok(api_a.patch(f"{API}/ninjaone/organizations/{names['Harbor Dental Group']['id']}/",
                       {"client": harbor.pk}, format="json"))
        with committed():
            job = ok(api_a.post(f"{API}/ninjaone/devices/sync/"), 202)
        done = ok(api_a.get(f"/api/v1/jobs/{job['id']}/"))
        assert done["state"] == "succeeded" and done["summary"]["created"] == 1, done
        assert sim.calls_to("GET", "/v2/devices") and sim.calls_to("GET", "/v2/organizations")


def test_region_and_base_url_beside_the_credentials_as_api_md_lists_them(api_a):
    """API.md: ninjaone {client_id, client_secret} (+ region or base_url); tactical (+ base_url)."""
    with TacticalSimulator() as tactical, NinjaOneSimulator() as ninja:
        tactical.add_client("Harbor Dental Group")
        data = ok(api_a.put(f"{API}/tactical/", {"credentials": {"api_key": tactical.api_key,
                                                                 "base_url": tactical.url}}, format="json"))
        assert (data["base_url"], data["status"]) == (tactical.url, "connected"), data["last_error"]
        app = ninja.add_app()
        data = ok(api_a.put(f"{API}/ninjaone/", {"credentials": {
            "client_id": app.client_id, "client_secret": app.client_secret, "region": "eu", "base_url": ninja.url},
            "settings": {"register_webhook": False}}, format="json"))
        assert (data["settings"]["region"], data["base_url"], data["status"]) == ("eu", ninja.url, "connected")
        data = ok(api_a.put(f"{API}/ninjaone/", {"region": "ca"}, format="json"))
        assert data["settings"]["region"] == "ca" and data["settings"]["register_webhook"] is False
        assert ok(api_a.put(f"{API}/ninjaone/", {"region": "ca", "settings": {"region": "oc"}},
                            format="json"))["settings"]["region"] == "oc"  # the documented name wins
        refused = api_a.put(f"{API}/level/", {"region": "eu"}, format="json")
        assert refused.status_code == 400 and refused.json() == {"region": ["Unknown field."]}
