"""The Tactical RMM panel through the Django test client against the Tactical simulator:
connect (write-only credentials), test, discover, automap, device sync, webhook card, polling."""

from __future__ import annotations

import pytest

from assets.models import AssetExternalId
from integrations.models import ExternalOrganization, Integration, Job
from psa.tenancy import tenant_context
from tests.simulators.tactical import TacticalSimulator

PANEL = "/settings/integrations/rmm/tactical/"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sim():
    with TacticalSimulator() as s:
        client = s.add_client("Harbor Dental Group", ["Main Office", "Annex"])
        site = s.site_named(client["id"], "Main Office")
        s.add_agent(site["id"], "HDG-FRONT-01")
        s.add_agent(site["id"], "HDG-SRV-01", monitoring_type="server")
        s.add_client("Unmatched Ltd")
        yield s


@pytest.fixture
def admin_web(client, tenant_a):
    client.force_login(tenant_a.user)
    return client


def _connect(admin_web, sim, key=None):
    return admin_web.post(PANEL + "connection/", {"base_url": sim.url, "cred_api_key": key or sim.api_key})


def _integration(tenant) -> Integration:
    with tenant_context(tenant):
        return Integration.objects.get(provider="tactical")


def test_panel_before_connect_shows_credential_fields(admin_web):
    html = admin_web.get(PANEL).content.decode()
    for name in ("base_url", "cred_api_key", "cred_username", "cred_password", "cred_totp"):
        assert f'name="{name}"' in html
    assert 'for="id_cred_api_key"' in html  # labelled
    assert "API key or Username + Password" in html
    assert "card-devices" not in html  # unlocked by the first save


def test_connect_then_credentials_are_write_only(admin_web, tenant_a, sim):
    r = _connect(admin_web, sim)
    assert r.status_code == 302
    integration = _integration(tenant_a.tenant)
    assert integration.status == "connected" and integration.base_url == sim.url
    html = admin_web.get(PANEL).content.decode()
    assert sim.api_key not in html
    assert 'data-testid="set-cred_api_key"' in html and f"ends in {sim.api_key[-4:]}" in html
    for card in ("card-organizations", "card-devices", "card-webhook", "card-polling", "card-events"):
        assert f'id="{card}"' in html
    # Saving again with the key left blank keeps it.
    r = admin_web.post(PANEL + "connection/", {"base_url": sim.url, "cred_api_key": ""}, **HX)
    assert r.status_code == 200 and b"Tactical RMM saved" in r.content
    with tenant_context(tenant_a.tenant):
        assert _integration(tenant_a.tenant).get_credentials()["api_key"] == sim.api_key


def test_missing_base_url_error_next_to_field(admin_web, tenant_a):
    r = admin_web.post(PANEL + "connection/", {"cred_api_key": "abc"}, **HX)
    html = r.content.decode()
    assert 'id="id_base_url_error"' in html
    with tenant_context(tenant_a.tenant):
        assert not Integration.objects.filter(provider="tactical").exists()


def test_wrong_key_shows_error_and_test_button(admin_web, tenant_a, sim):
    r = _connect(admin_web, sim, key="WRONG" * 6)
    assert r.status_code == 302
    html = admin_web.get(PANEL).content.decode()
    assert "Error:" in html and "rejected" in html and "The connection test failed" in html
    # Fix the key, then Test connection shows the result inline.
    admin_web.post(PANEL + "connection/", {"base_url": sim.url, "cred_api_key": sim.api_key}, **HX)
    r = admin_web.post(PANEL + "connection/test/", **HX)
    html = r.content.decode()
    assert 'data-testid="test-result"' in html and "Connection OK" in html
    assert 'id="panel-status" hx-swap-oob="true"' in html


def test_discover_automap_and_device_sync(admin_web, tenant_a, make_client, sim, django_capture_on_commit_callbacks):
    make_client(tenant_a.tenant, "Harbor Dental Group")
    _connect(admin_web, sim)
    # Jobs are enqueued on commit (Celery runs eagerly in tests).
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_web.post(PANEL + "organizations/sync/", **HX)
    assert r.status_code == 200 and 'data-testid="job-organizations.sync"' in r.content.decode()
    # (The test transaction defers on_commit until after the response: read the card again.)
    html = admin_web.get(PANEL + "organizations/", **HX).content.decode()
    assert 'data-job-state="succeeded"' in html
    assert "Harbor Dental Group" in html and "Main Office" in html and "tree-child" in html
    r = admin_web.post(PANEL + "organizations/automap/", **HX)
    assert b"matched 1 organization" in r.content
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_web.post(PANEL + "devices/sync/", **HX)
    assert r.status_code == 200
    html = admin_web.get(PANEL).content.decode()
    assert 'data-job-state="succeeded"' in html
    assert "Created: <strong>2</strong>" in html
    with tenant_context(tenant_a.tenant):
        assert AssetExternalId.objects.filter(provider="tactical").count() == 2
        job = Job.objects.get(kind="devices.sync")
        assert job.summary["created"] == 2
    assert '<span data-testid="device-count">2</span>' in html
    tab = admin_web.get("/settings/integrations/rmm/").content.decode()
    card = tab[tab.index('data-provider="tactical"'):]
    assert '<dd data-testid="devices">2</dd>' in card[:card.index("</a>")]


def test_webhook_card_has_templates_and_hides_secret(admin_web, tenant_a, sim):
    _connect(admin_web, sim)
    integration = _integration(tenant_a.tenant)
    with tenant_context(tenant_a.tenant):
        secret = integration.get_webhook_secret()
    html = admin_web.get(PANEL).content.decode()
    assert secret not in html
    assert "PSA alert (failure): body" in html and "PSA alert (resolved): body" in html
    assert "{{alert.id}}" in html and "Headers (JSON)" in html
    revealed = admin_web.get(PANEL + "webhook/secret/", **HX).content.decode()
    assert secret in revealed and "Headers (JSON) (with the secret)" in revealed


def test_polling_interval_bounds_and_poll_now(admin_web, tenant_a, sim, django_capture_on_commit_callbacks):
    _connect(admin_web, sim)
    r = admin_web.post(PANEL + "polling/", {"poll_enabled": "on", "poll_interval_minutes": "2"}, **HX)
    assert "Choose between 5 and 60 minutes" in r.content.decode()
    r = admin_web.post(PANEL + "polling/", {"poll_enabled": "on", "poll_interval_minutes": "30"}, **HX)
    assert b"Polling settings saved" in r.content
    assert _integration(tenant_a.tenant).poll_interval_minutes == 30
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_web.post(PANEL + "polling/run/", {"mode": "poll"}, **HX)
    assert r.status_code == 200 and 'data-testid="job-alerts.poll"' in r.content.decode()
    integration = _integration(tenant_a.tenant)
    assert integration.last_poll_ok is True
    html = admin_web.get(PANEL).content.decode()
    assert '<dd data-testid="last-poll">' in html and "OK" in html[html.index('data-testid="last-poll"'):][:300]


def test_other_tenant_org_ids_404(admin_web, tenant_a, tenant_b, sim):
    _connect(admin_web, sim)
    with tenant_context(tenant_b.tenant):
        from integrations.services import config

        theirs = config.get_integration("tactical", create=True)
        org = ExternalOrganization.objects.create(integration=theirs, external_id="c1", name="B")
    assert admin_web.post(PANEL + f"organizations/{org.pk}/", {"client": ""}, **HX).status_code == 404
