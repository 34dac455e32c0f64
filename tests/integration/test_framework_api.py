"""REST API of the integration framework: write-only credentials, roles, tenant isolation, jobs."""

from __future__ import annotations

import pytest

from integrations.errors import AuthFailed
from integrations.models import ExternalOrganization, Integration, Job
from integrations.records import ExternalOrg
from psa.models import Role
from tests.conftest import token_client
from tests.fakes import device

API_KEY = "fk-live-0123456789abcdefSECRET-9876"
BASE = "/api/v1/integrations"


@pytest.fixture
def connected(api_a, fake_provider):
    r = api_a.put(f"{BASE}/fake/", {"credentials": {"api_key": API_KEY}}, format="json")
    assert r.status_code == 200, r.content
    _no_secrets(r, API_KEY)
    return r.json()


def _no_secrets(response, *secrets):
    body = response.content.decode()
    for s in secrets:
        assert s not in body, f"secret leaked in {response.wsgi_request.path}"


def test_list_shows_every_registered_provider(api_a, fake_provider):
    r = api_a.get(f"{BASE}/")
    assert r.status_code == 200
    rows = {row["provider"]: row for row in r.json()["results"]}
    assert {"fake", "generic"} <= set(rows)
    assert rows["fake"]["status"] == "not_configured" and rows["fake"]["configured"] is False
    assert rows["fake"]["capabilities"]["polling"] is True
    assert rows["fake"]["credentials"]["api_key"] == {"set": False}
    assert {"connected_at", "last_error", "counts"} <= set(rows["fake"])


def test_put_stores_credentials_and_answers_hints_only(api_a, connected, tenant_a, as_tenant):
    assert connected["status"] == "connected" and connected["account_name"] == "Fake MSP"
    assert connected["credentials"]["api_key"] == {"set": True, "last4": "9876"}
    assert connected["connection_test"]["ok"] is True
    for path in ("/", "/fake/", "/fake/organizations/", "/fake/webhook/"):
        _no_secrets(api_a.get(BASE + path), API_KEY)
    _no_secrets(api_a.post(f"{BASE}/fake/test/"), API_KEY)
    # The stored value is encrypted at rest.
    with as_tenant(tenant_a.tenant):
        row = Integration.objects.get(provider="fake")
    assert API_KEY not in row.credentials_ciphertext and row.get_credentials() == {"api_key": API_KEY}


def test_put_round_trip_of_get_answer_keeps_credentials(api_a, connected, tenant_a, as_tenant):
    body = api_a.get(f"{BASE}/fake/").json()
    body["settings"] = {"note": "x"}
    r = api_a.put(f"{BASE}/fake/", body, format="json")
    assert r.status_code == 200, r.content
    with as_tenant(tenant_a.tenant):
        assert Integration.objects.get(provider="fake").get_credentials() == {"api_key": API_KEY}
    # Typed settings answer with their defaults (a device provider also has the framework's field mapping).
    assert r.json()["settings"] == {"note": "x", "x": 0, "field_mapping": {}}


def test_put_validation_errors(api_a, fake_provider, tenant_a, as_tenant):
    r = api_a.put(f"{BASE}/fake/", {"credentials": {"username": "bob"}}, format="json")
    assert r.status_code == 400 and "credentials" in r.json()
    with as_tenant(tenant_a.tenant):  # a rejected first save leaves nothing behind
        assert not Integration.objects.filter(provider="fake").exists()
    r = api_a.put(f"{BASE}/fake/", {"credentials": {"api_key": "x"}, "bogus": 1}, format="json")
    assert r.status_code == 400 and "bogus" in r.json()
    r = api_a.put(f"{BASE}/fake/", {"credentials": {"api_key": API_KEY}, "base_url": "not a url"}, format="json")
    assert r.status_code == 400 and "base_url" in r.json()


def test_failed_connection_sets_error_status(api_a, fake_provider):
    fake_provider.state.connection_error = AuthFailed("The API key was rejected.")
    r = api_a.put(f"{BASE}/fake/", {"credentials": {"api_key": API_KEY}}, format="json")
    assert r.status_code == 200
    assert r.json()["status"] == "error" and "rejected" in r.json()["last_error"]
    fake_provider.state.connection_error = None
    r = api_a.post(f"{BASE}/fake/test/")
    assert r.json() == {"ok": True, "status": "connected", "message": "OK", "account_name": "Fake MSP"}


def test_generic_enabled_by_empty_put(api_a):
    r = api_a.put(f"{BASE}/generic/", {}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "connected" and r.json()["connected_at"]
    r = api_a.put(f"{BASE}/generic/", {"credentials": {"api_key": "x"}}, format="json")
    assert r.status_code == 400


def test_unknown_provider_404(api_a):
    assert api_a.get(f"{BASE}/nope/").status_code == 404
    assert api_a.put(f"{BASE}/nope/", {}, format="json").status_code == 404
    assert api_a.get(f"{BASE}/nope/organizations/").status_code == 404
    assert api_a.post(f"{BASE}/nope/test/").status_code == 404


def test_technician_and_dispatcher_get_403(tenant_a, make_member, fake_provider, connected):
    for role in (Role.TECHNICIAN, Role.DISPATCHER):
        client = token_client(make_member(tenant_a.tenant, role).api_token)
        assert client.get(f"{BASE}/").status_code == 403
        assert client.get(f"{BASE}/fake/").status_code == 403
        assert client.put(f"{BASE}/fake/", {"credentials": {"api_key": "y" * 20}}, format="json").status_code == 403
        assert client.get(f"{BASE}/fake/webhook/").status_code == 403
        assert client.post(f"{BASE}/fake/organizations/sync/").status_code == 403
        assert client.get(f"{BASE}/fake/organizations/").status_code == 403
        assert client.get("/api/v1/jobs/").status_code == 403


def test_webhook_card_and_rotate(api_a, fake_provider, settings, connected):
    settings.PUBLIC_BASE_URL = "https://psa.example.com"
    card = api_a.get(f"{BASE}/fake/webhook/").json()
    assert card["url"].startswith("https://psa.example.com/webhooks/fake/") and card["url"].endswith("/")
    assert card["header_name"] == "X-PSA-Webhook-Secret" and len(card["secret"]) >= 32
    assert card["method"] == "POST" and "alert_id" in card["payload_template"]  # provider's extras
    rotated = api_a.post(f"{BASE}/fake/webhook/rotate/").json()
    assert rotated["secret"] != card["secret"] and rotated["url"] == card["url"]
    assert api_a.get(f"{BASE}/fake/webhook/").json()["secret"] == rotated["secret"]
    settings.PUBLIC_BASE_URL = ""
    assert api_a.get(f"{BASE}/fake/webhook/").json()["url"].startswith("http://testserver/webhooks/fake/")


def test_organizations_sync_map_filter_automap(api_a, fake_provider, connected, tenant_a, make_client,
                                               django_capture_on_commit_callbacks):
    acme = make_client(tenant_a.tenant, "Acme Corp")
    make_client(tenant_a.tenant, "Globex")
    fake_provider.state.orgs = [ExternalOrg("o1", " acme corp "), ExternalOrg("o2", "Globex"),
                                ExternalOrg("o3", "Initech")]
    with django_capture_on_commit_callbacks(execute=True):
        r = api_a.post(f"{BASE}/fake/organizations/sync/")
    assert r.status_code == 202 and r.json()["kind"] == "organizations.sync"
    job = api_a.get(f"/api/v1/jobs/{r.json()['id']}/").json()
    assert job["state"] == "succeeded" and job["summary"]["created"] == 3 and job["progress"] == 100
    orgs = {o["external_id"]: o for o in api_a.get(f"{BASE}/fake/organizations/").json()["results"]}
    assert set(orgs) == {"o1", "o2", "o3"} and all(o["mapping"] is None for o in orgs.values())
    # Manual pair first, then automap must keep it.
    r = api_a.patch(f"{BASE}/fake/organizations/{orgs['o2']['id']}/", {"client": acme.pk}, format="json")
    assert r.status_code == 200 and r.json()["mapping"] == "manual" and r.json()["client"] == acme.pk
    r = api_a.post(f"{BASE}/fake/organizations/automap/")
    assert r.json() == {"matched": 1, "already_mapped": 1, "unmatched": 1}
    mapped = api_a.get(f"{BASE}/fake/organizations/?mapped=true").json()["results"]
    assert {(o["external_id"], o["mapping"]) for o in mapped} == {("o1", "auto"), ("o2", "manual")}
    assert [o["external_id"] for o in api_a.get(f"{BASE}/fake/organizations/?mapped=false").json()["results"]] == ["o3"]
    # Unmap.
    r = api_a.patch(f"{BASE}/fake/organizations/{orgs['o2']['id']}/", {"client": None}, format="json")
    assert r.json()["mapping"] is None and r.json()["client"] is None
    listed = api_a.get(f"{BASE}/").json()["results"]
    counts = next(x for x in listed if x["provider"] == "fake")["counts"]
    assert counts["organizations"] == 3 and counts["mapped_organizations"] == 1


def test_devices_sync_and_poll_return_202_jobs(api_a, fake_provider, connected, tenant_a, make_client, as_tenant,
                                               django_capture_on_commit_callbacks):
    client = make_client(tenant_a.tenant, "Acme")
    with as_tenant(tenant_a.tenant):
        integration = Integration.objects.get(provider="fake")
        ExternalOrganization.objects.create(integration=integration, external_id="o1", name="Acme", client=client,
                                            mapping="manual")
    fake_provider.state.devices = [device("d1", "o1", serial_number="SN-1")]
    with django_capture_on_commit_callbacks(execute=True):
        r = api_a.post(f"{BASE}/fake/devices/sync/")
    assert r.status_code == 202 and r.json()["state"] == "queued"
    job = api_a.get(f"/api/v1/jobs/{r.json()['id']}/").json()
    assert job["state"] == "succeeded" and job["summary"]["created"] == 1
    r = api_a.post(f"{BASE}/fake/alerts/poll/")
    assert r.status_code == 202 and r.json()["kind"] == "alerts.poll"
    jobs = api_a.get("/api/v1/jobs/?provider=fake").json()["results"]
    assert {j["kind"] for j in jobs} == {"devices.sync", "alerts.poll"}


def test_actions_need_a_set_up_integration(api_a, fake_provider):
    assert api_a.post(f"{BASE}/fake/organizations/sync/").status_code == 400
    assert api_a.post(f"{BASE}/fake/devices/sync/").status_code == 400
    assert api_a.post(f"{BASE}/fake/test/").status_code == 400
    assert api_a.get(f"{BASE}/fake/organizations/").json()["results"] == []
    api_a.put(f"{BASE}/generic/", {}, format="json")
    r = api_a.post(f"{BASE}/generic/devices/sync/")
    assert r.status_code == 400 and "does not support" in r.json()["detail"]


def test_other_tenant_objects_are_404(api_a, api_b, fake_provider, tenant_a, tenant_b, make_client, as_tenant):
    assert api_b.put(f"{BASE}/fake/", {"credentials": {"api_key": API_KEY}}, format="json").status_code == 200
    with as_tenant(tenant_b.tenant):
        integration_b = Integration.objects.get(provider="fake")
        org_b = ExternalOrganization.objects.create(integration=integration_b, external_id="b1", name="B org")
        job_b = Job.objects.create(integration=integration_b, kind="devices.sync")
    client_b = make_client(tenant_b.tenant, "B client")
    assert api_a.get(f"{BASE}/fake/organizations/{org_b.pk}/").status_code == 404
    assert api_a.patch(f"{BASE}/fake/organizations/{org_b.pk}/", {"client": None}, format="json").status_code == 404
    assert api_a.get(f"/api/v1/jobs/{job_b.pk}/").status_code == 404
    assert api_a.get(f"{BASE}/fake/").json()["status"] == "not_configured"
    # Tenant A cannot map its own organization to tenant B's client.
    api_a.put(f"{BASE}/fake/", {"credentials": {"api_key": API_KEY}}, format="json")
    with as_tenant(tenant_a.tenant):
        integration_a = Integration.objects.get(provider="fake")
        org_a = ExternalOrganization.objects.create(integration=integration_a, external_id="a1", name="A org")
    r = api_a.patch(f"{BASE}/fake/organizations/{org_a.pk}/", {"client": client_b.pk}, format="json")
    assert r.status_code == 400 and "client" in r.json()
    with as_tenant(tenant_a.tenant):
        assert ExternalOrganization.objects.get(pk=org_a.pk).client_id is None
