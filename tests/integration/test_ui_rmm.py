"""Settings > Integrations > RMM pages through the Django test client: every page and action,
admins only, another tenant's ids 404, secrets never in a page."""

from __future__ import annotations

import pytest
from django.utils import timezone

from integrations.models import ExternalOrganization, Integration, Job
from integrations.services import config
from psa.models import Role
from psa.tenancy import tenant_context

RMM = "/settings/integrations/rmm/"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_web(client, tenant_a):
    client.force_login(tenant_a.user)
    return client


@pytest.fixture
def tech_web(client, tenant_a, make_member):
    client.force_login(make_member(tenant_a.tenant, Role.TECHNICIAN))
    return client


def _generic(tenant) -> Integration:
    with tenant_context(tenant):
        integration = config.get_integration("generic", create=True)
        return config.update_integration(integration)


def test_rmm_tab_lists_every_provider_with_empty_state(admin_web):
    from integrations import registry

    r = admin_web.get(RMM)
    assert r.status_code == 200
    html = r.content.decode()
    for cls in registry.all_providers():
        assert f'data-provider="{cls.slug}"' in html
        assert cls.name in html
    assert "Not configured" in html


def test_rmm_tab_shows_status_and_counts(admin_web, tenant_a, make_client):
    integration = _generic(tenant_a.tenant)
    acme = make_client(tenant_a.tenant, "Acme")
    ExternalOrganization.objects.unscoped().create(tenant=tenant_a.tenant, integration=integration, external_id="o1",
                                                   name="Acme", client=acme, mapping="manual")
    ExternalOrganization.objects.unscoped().create(tenant=tenant_a.tenant, integration=integration, external_id="o2",
                                                   name="Other")
    html = admin_web.get(RMM).content.decode()
    card = html[html.index('data-provider="generic"'):]
    card = card[:card.index("</a>")]
    assert "Connected since" in card
    assert '<span data-testid="mapped">1</span>' in card and '<span data-testid="unmapped">1</span>' in card


@pytest.mark.parametrize("path", [RMM, RMM + "generic/", RMM + "generic/events/"])
def test_technician_gets_403(tech_web, tenant_a, path):
    _generic(tenant_a.tenant)
    r = tech_web.get(path)
    assert r.status_code == 403
    assert b"Only tenant admins" in r.content


@pytest.mark.parametrize("path", [RMM + "generic/connection/", RMM + "generic/webhook/rotate/",
                                  RMM + "generic/organizations/automap/"])
def test_technician_cannot_post_actions(tech_web, tenant_a, path):
    integration = _generic(tenant_a.tenant)
    before = integration.webhook_secret_ciphertext
    assert tech_web.post(path).status_code == 403
    integration.refresh_from_db()
    assert integration.webhook_secret_ciphertext == before


def test_anonymous_is_sent_to_login(client):
    r = client.get(RMM)
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


def test_unknown_provider_is_404(admin_web):
    assert admin_web.get(RMM + "nosuch/").status_code == 404


def test_csrf_is_enforced(tenant_a):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(tenant_a.user)
    assert c.post(RMM + "generic/connection/").status_code == 403
    with tenant_context(tenant_a.tenant):
        assert not Integration.objects.filter(provider="generic").exists()


def test_enable_generic_then_panel_shows_cards(admin_web, tenant_a):
    r = admin_web.get(RMM + "generic/")
    assert r.status_code == 200
    assert b"Enable" in r.content and b"card-webhook" not in r.content
    r = admin_web.post(RMM + "generic/connection/")
    assert r.status_code == 302
    html = admin_web.get(RMM + "generic/").content.decode()
    for card in ("card-connection", "card-organizations", "card-webhook", "card-events"):
        assert f'id="{card}"' in html
    assert "Connected since" in html
    # Organizations of the generic provider come from events: no Discover button, a hint instead.
    assert "Discover organizations" not in html and "first webhook" in html


def test_webhook_secret_only_on_reveal_and_rotate(admin_web, tenant_a):
    integration = _generic(tenant_a.tenant)
    with tenant_context(tenant_a.tenant):
        secret = integration.get_webhook_secret()
    html = admin_web.get(RMM + "generic/").content.decode()
    assert secret not in html
    assert f"/webhooks/generic/{integration.webhook_key}/" in html
    assert "X-PSA-Webhook-Secret" in html
    revealed = admin_web.get(RMM + "generic/webhook/secret/", **HX)
    assert revealed.status_code == 200 and secret in revealed.content.decode()
    assert "no-cache" in revealed["Cache-Control"] or "no-store" in revealed["Cache-Control"]
    r = admin_web.post(RMM + "generic/webhook/rotate/", **HX)
    assert r.status_code == 200 and b"old one no longer works" in r.content
    integration.refresh_from_db()
    with tenant_context(tenant_a.tenant):
        new = integration.get_webhook_secret()
    assert new != secret and new not in r.content.decode()


def test_automap_and_manual_mapping(admin_web, tenant_a, make_client):
    integration = _generic(tenant_a.tenant)
    acme = make_client(tenant_a.tenant, "Acme Dental")
    other = make_client(tenant_a.tenant, "Other Co")
    org1 = ExternalOrganization.objects.unscoped().create(tenant=tenant_a.tenant, integration=integration,
                                                          external_id="a", name="Acme Dental")
    org2 = ExternalOrganization.objects.unscoped().create(tenant=tenant_a.tenant, integration=integration,
                                                          external_id="b", name="Nobody Inc")
    r = admin_web.post(RMM + "generic/organizations/automap/", **HX)
    assert r.status_code == 200
    assert b"matched 1 organization" in r.content
    org1.refresh_from_db()
    assert org1.client_id == acme.pk and org1.mapping == "auto"
    # Filter to unmapped shows only org2.
    html = admin_web.get(RMM + "generic/organizations/?unmapped=1", **HX).content.decode()
    assert "Nobody Inc" in html and 'data-org="a"' not in html
    r = admin_web.post(RMM + f"generic/organizations/{org2.pk}/", {"client": other.pk}, **HX)
    assert r.status_code == 200 and b'class="mapped' in r.content
    org2.refresh_from_db()
    assert org2.client_id == other.pk and org2.mapping == "manual"
    # Unmap.
    admin_web.post(RMM + f"generic/organizations/{org2.pk}/", {"client": ""}, **HX)
    org2.refresh_from_db()
    assert org2.client_id is None and org2.mapping is None


def test_mapping_refuses_other_tenants_client_and_org(admin_web, tenant_a, tenant_b, make_client):
    integration = _generic(tenant_a.tenant)
    theirs = make_client(tenant_b.tenant, "Theirs")
    org = ExternalOrganization.objects.unscoped().create(tenant=tenant_a.tenant, integration=integration,
                                                         external_id="a", name="Acme")
    r = admin_web.post(RMM + f"generic/organizations/{org.pk}/", {"client": theirs.pk}, **HX)
    assert b"Choose one of your clients" in r.content
    org.refresh_from_db()
    assert org.client_id is None
    b_integration = _generic(tenant_b.tenant)
    b_org = ExternalOrganization.objects.unscoped().create(tenant=tenant_b.tenant, integration=b_integration,
                                                           external_id="x", name="B org")
    assert admin_web.post(RMM + f"generic/organizations/{b_org.pk}/", {"client": ""}, **HX).status_code == 404


def test_other_tenants_job_is_404(admin_web, tenant_a, tenant_b):
    _generic(tenant_a.tenant)
    b_integration = _generic(tenant_b.tenant)
    job = Job.objects.unscoped().create(tenant=tenant_b.tenant, integration=b_integration, kind="devices.sync")
    assert admin_web.get(RMM + f"generic/jobs/{job.pk}/", **HX).status_code == 404


def test_job_progress_fragment_polls_until_done(admin_web, tenant_a):
    integration = _generic(tenant_a.tenant)
    job = Job.objects.unscoped().create(tenant=tenant_a.tenant, integration=integration, kind="organizations.sync",
                                        state="running", progress=40)
    r = admin_web.get(RMM + f"generic/jobs/{job.pk}/", **HX)
    html = r.content.decode()
    assert 'hx-trigger="every 1s"' in html and "40%" in html
    Job.objects.unscoped().filter(pk=job.pk).update(state="succeeded", progress=100,
                                                    summary={"total": 3, "created": 2, "updated": 1})
    r = admin_web.get(RMM + f"generic/jobs/{job.pk}/", **HX)
    html = r.content.decode()
    assert r["HX-Retarget"] == "#card-organizations"
    assert "every 1s" not in html and "Created: <strong>2</strong>" in html


def _settings_routes():
    import re

    from alerts.web import urls as alert_urls
    from integrations import urls as integration_urls

    out = []
    for pattern in integration_urls.urlpatterns + alert_urls.urlpatterns:
        route = str(pattern.pattern)
        if not route.startswith("settings/"):
            continue
        path = "/" + re.sub(r"<slug:provider>", "generic", route)
        path = re.sub(r"<str:direction>", "up", path)
        path = re.sub(r"<int:\w+>", "1", path)
        out.append(path)
    return out


def test_every_settings_route_is_admin_only(client, tenant_a, make_member):
    """Walks the URLconf, so a new settings page cannot forget the admin check."""
    _generic(tenant_a.tenant)
    client.force_login(make_member(tenant_a.tenant, Role.TECHNICIAN))
    routes = _settings_routes()
    assert len(routes) > 20
    for path in routes:
        answers = {client.get(path).status_code, client.post(path).status_code}
        # 403 for a technician; 405 where one verb does not exist (checked before the role).
        assert 403 in answers and answers <= {403, 405}, (path, answers)


def test_rmm_tab_counts_come_from_grouped_queries(admin_web, tenant_a, make_client, make_asset,
                                                  django_assert_max_num_queries):
    """Cards show the same figures as the API (an asset with two identities is one device), and the
    page's query count does not depend on how much each provider holds."""
    from alerts.models import Alert
    from assets.models import AssetExternalId
    from integrations.models import ExternalOrganization

    integration = _generic(tenant_a.tenant)
    client = make_client(tenant_a.tenant, "Acme")
    asset = make_asset(tenant_a.tenant, client, provider="generic", external_id="dev-1")
    AssetExternalId.objects.unscoped().create(tenant=tenant_a.tenant, asset=asset, provider="generic",
                                              external_id="dev-1-reinstalled")
    now = timezone.now()
    with tenant_context(tenant_a.tenant):
        ExternalOrganization.objects.create(integration=integration, external_id="o1", name="Acme", client=client)
        ExternalOrganization.objects.create(integration=integration, external_id="o2", name="Other")
        for i in range(3):
            Alert.objects.create(integration=integration, provider="generic", external_id=f"a{i}", condition_key="c",
                                 dedup_key="k", state="active" if i else "resolved", first_seen=now, last_seen=now,
                                 last_event_at=now)
    with django_assert_max_num_queries(15):
        html = admin_web.get(RMM).content.decode()
    api = admin_web.get("/api/v1/integrations/generic/").json()["counts"]
    assert api["devices"] == 1 and api["active_alerts"] == 2 and api["mapped_organizations"] == 1
    assert 'data-testid="devices">1<' in html and 'data-testid="active-alerts">2<' in html
    assert 'data-testid="mapped">1<' in html and 'data-testid="unmapped">1<' in html
