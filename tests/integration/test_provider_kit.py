"""The provider kit: a provider that lives only under tests/ (tests/kit_provider) uses every declared
extension point and appears in the RMM tab, the API, the webhook intake and the job runner with no
edit anywhere else (it is installed by one INSTALLED_APPS line in tests/settings.py)."""

from __future__ import annotations

import json

import pytest
from django.test import Client as WebClient

from alerts.models import Alert, InboundEvent
from integrations import registry
from integrations.models import ExternalOrganization, Integration, Job
from tests.kit_provider.provider import KitProvider

pytestmark = pytest.mark.django_db


@pytest.fixture
def kit(api_a):
    r = api_a.put("/api/v1/integrations/kit/", {"credentials": {"token": "kit-token-123456"}}, format="json")
    assert r.status_code == 200, r.content
    return r.json()


@pytest.fixture
def web_a(tenant_a):
    web = WebClient()
    web.force_login(tenant_a.user)
    return web


def test_registered_through_its_app_config_with_routes():
    assert registry.get_provider_class("kit") is KitProvider
    app = registry.provider_app("kit")
    assert app.web_urls == "tests.kit_provider.urls" and app.api_urls == "tests.kit_provider.api"
    assert registry.job_kind("kit", "kit.recount").label == "Recount organizations"
    assert registry.job_kind("kit", "alerts.poll") is not None  # the framework's kinds too
    assert registry.job_kind("tactical", "kit.recount") is None  # another provider's kind is not its own


def test_listed_in_the_api_with_its_declarations(api_a, kit):
    rows = {r["provider"]: r for r in api_a.get("/api/v1/integrations/").json()["results"]}
    row = rows["kit"]
    assert row["status"] == "connected"
    assert [f["name"] for f in row["settings_fields"]] == ["mode", "batch", "enabled_extra", "severity_map"]
    assert row["settings"] == {"mode": "fast", "batch": 10, "enabled_extra": False, "severity_map": {}}
    assert row["signature_scheme"] == "kit-hmac"
    assert "kit.recount" in [k["kind"] for k in row["job_kinds"]]
    assert row["severity_map"] == {"critical": "sev1", "high": "sev2", "medium": "sev3", "low": "sev4"}
    assert row["credentials"]["token"] == {"set": True, "last4": "3456"}
    assert "kit-token-123456" not in json.dumps(row)


def test_typed_settings_are_validated_and_merged(api_a, kit):
    r = api_a.put("/api/v1/integrations/kit/", {"settings": {"batch": 0, "mode": "slow", "nope": 1}}, format="json")
    assert r.status_code == 400
    assert set(r.json()) == {"settings.batch", "settings.mode", "settings.nope"}
    # The provider's own cross-field rule, and its severity-map check.
    r = api_a.put("/api/v1/integrations/kit/", {"settings": {"mode": "careful", "batch": 80}}, format="json")
    assert r.status_code == 400 and "50 at most" in r.json()["settings.batch"][0]
    r = api_a.put("/api/v1/integrations/kit/", {"settings": {"severity_map": {"sev9": "high"}}}, format="json")
    assert r.status_code == 400 and "sev9" in r.json()["settings.severity_map"][0]
    r = api_a.put("/api/v1/integrations/kit/", {"settings": {"mode": "careful", "severity_map": {"sev4": "high"}}},
                  format="json")
    assert r.status_code == 200, r.content
    r = api_a.put("/api/v1/integrations/kit/", {"settings": {"batch": 20}}, format="json")
    assert r.json()["settings"] == {"mode": "careful", "batch": 20, "enabled_extra": False,
                                    "severity_map": {"sev4": "high"}}
    # The webhook card shows the table the parser uses, overrides included.
    card = api_a.get("/api/v1/integrations/kit/webhook/").json()
    assert card["severity_map"]["sev4"] == "high" and card["signature"]["headers"] == ["X-Kit-Signature"]


def test_connection_hook_runs_and_its_answer_is_shown(api_a, tenant_a):
    KitProvider.connected_calls.clear()
    r = api_a.put("/api/v1/integrations/kit/", {"credentials": {"token": "kit-token-123456"}}, format="json")
    assert r.json()["connection_test"] == {"ok": True, "message": "Kit reachable. Webhook registered in Kit."}
    integration = Integration.objects.unscoped().get(tenant=tenant_a.tenant, provider="kit")
    assert KitProvider.connected_calls == [integration.pk]
    r = api_a.put("/api/v1/integrations/kit/", {"credentials": {"token": "bad"}}, format="json")
    assert r.json()["status"] == "error" and "read scope" in r.json()["last_error"]


def test_signed_webhook_through_intake_with_secret_headers_redacted(api_a, kit, tenant_a,
                                                                    django_capture_on_commit_callbacks):
    card = api_a.get("/api/v1/integrations/kit/webhook/").json()
    url, secret = card["url"], card["secret"]
    body = json.dumps({"id": "a1", "title": "Disk", "severity": "sev2", "device": "d1", "check": "disk",
                       "org": "k1", "org_name": "Kit Org"}).encode()
    web = WebClient()
    signature = KitProvider.signature_scheme.sign(body, secret)
    bad = web.post(url, body, content_type="application/json", HTTP_X_KIT_SIGNATURE="sha256=" + "0" * 64)
    assert bad.status_code == 401
    with django_capture_on_commit_callbacks(execute=True):
        ok = web.post(url, body, content_type="application/json", HTTP_X_KIT_SIGNATURE=signature,
                      HTTP_X_KIT_TOKEN="do-not-store-me")
    assert ok.status_code == 202, ok.content
    event = InboundEvent.objects.unscoped().get(pk=ok.json()["event_id"])
    assert event.headers["x-kit-token"] == "[redacted]" and event.headers["x-kit-signature"] == signature
    assert event.status == "processed", event.error
    alert = Alert.objects.unscoped().get(pk=event.result["alerts"][0])
    assert alert.severity == "high" and alert.provider == "kit" and alert.state == "unmapped"
    # Unsigned: the shared-secret header is the fallback route.
    body2 = json.dumps({"id": "a2", "org": "k1"}).encode()
    assert web.post(url, body2, content_type="application/json").status_code == 401
    assert web.post(url, body2, content_type="application/json", HTTP_X_PSA_WEBHOOK_SECRET=secret).status_code == 202


def test_declared_job_kind_runs_through_the_api_and_is_labelled(api_a, kit, tenant_a,
                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert api_a.post("/api/v1/integrations/kit/organizations/sync/").status_code == 202
    kinds = {r["kind"]: r for r in api_a.get("/api/v1/integrations/kit/jobs/").json()["results"]}
    assert kinds["kit.recount"]["available"] is True
    # Capabilities the kit lacks are refused with a reason, the same through every door.
    assert kinds["devices.sync"]["available"] is False and "does not support" in kinds["devices.sync"]["unavailable_reason"]
    r = api_a.post("/api/v1/integrations/kit/devices/sync/")
    assert r.status_code == 400 and r.json()["detail"] == kinds["devices.sync"]["unavailable_reason"]
    with django_capture_on_commit_callbacks(execute=True):
        r = api_a.post("/api/v1/integrations/kit/jobs/", {"kind": "kit.recount"}, format="json")
    assert r.status_code == 202, r.content
    job = api_a.get(f"/api/v1/jobs/{r.json()['id']}/").json()
    assert job["state"] == "succeeded" and job["summary"] == {"organizations": 2, "mode": "fast"}
    assert api_a.post("/api/v1/integrations/kit/jobs/", {"kind": "tactical.nothing"}, format="json").status_code == 400


def test_provider_routes_are_mounted_and_tenant_scoped(api_a, api_b, kit, web_a):
    r = api_a.get("/api/v1/integrations/kit/ping/")
    assert r.status_code == 200 and r.json()["status"] == "connected"
    assert api_b.get("/api/v1/integrations/kit/ping/").status_code == 404  # B has not set it up
    r = web_a.get("/integrations/kit/callback/?state=xyz")
    assert r.status_code == 200 and r.json() == {"callback": "ok", "state": "xyz"}


def test_rmm_tab_and_panel_show_the_provider_its_card_settings_and_jobs(web_a, kit, tenant_a,
                                                                       django_capture_on_commit_callbacks):
    tab = web_a.get("/settings/integrations/rmm/").content.decode()
    assert 'data-provider="kit"' in tab
    panel = web_a.get("/settings/integrations/rmm/kit/").content.decode()
    assert 'id="card-kit"' in panel and 'data-testid="kit-mode">Mode: fast' in panel
    for name in ("setting_mode", "setting_batch", "setting_enabled_extra", "settings_shown"):
        assert f'name="{name}"' in panel
    assert "setting_severity_map" not in panel  # a map is edited through the API, not the form
    assert 'data-kind="kit.recount"' in panel
    # The card's settings save through the same service (and its errors show by the field).
    r = web_a.post("/settings/integrations/rmm/kit/connection/",
                   {"settings_shown": "1", "setting_mode": "careful", "setting_batch": "80"})
    assert r.status_code == 400 and "50 at most" in r.content.decode()
    r = web_a.post("/settings/integrations/rmm/kit/connection/",
                   {"settings_shown": "1", "setting_mode": "careful", "setting_batch": "30",
                    "setting_enabled_extra": "on"})
    assert r.status_code == 302
    with_tenant = Integration.objects.unscoped().get(tenant=tenant_a.tenant, provider="kit")
    assert with_tenant.settings == {"mode": "careful", "batch": 30, "enabled_extra": True}
    # Its own job starts from the panel through jobs.start_job.
    with django_capture_on_commit_callbacks(execute=True):
        r = web_a.post("/settings/integrations/rmm/kit/jobs/start/kit.recount/", HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and 'data-testid="job-kit.recount"' in r.content.decode()
    assert Job.objects.unscoped().filter(kind="kit.recount", state="succeeded").count() == 1
    assert web_a.post("/settings/integrations/rmm/kit/jobs/start/alerts.poll/").status_code == 404


def test_org_sync_of_the_kit_uses_the_framework(api_a, kit, tenant_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert api_a.post("/api/v1/integrations/kit/organizations/sync/").status_code == 202
    orgs = ExternalOrganization.objects.unscoped().filter(integration__provider="kit", tenant=tenant_a.tenant)
    assert {(o.external_id, o.parent_external_id) for o in orgs} == {("k1", None), ("k1-a", "k1")}
