"""The operators' Django admin lists integrations across tenants without showing secrets."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client as WebClient

from integrations.services import config

API_KEY = "fk-admin-visible-NEVER-1234"


def test_admin_pages_hide_ciphertext_and_secrets(db, tenant_a, fake_provider, as_tenant):
    with as_tenant(tenant_a.tenant):
        integration = config.get_integration("fake", create=True)
        config.update_integration(integration, credentials={"api_key": API_KEY})
        secret = integration.get_webhook_secret()
    operator = get_user_model().objects.create_superuser("ops@example.com", "pw-ops-123")
    web = WebClient()
    web.force_login(operator)
    for url in ("/admin/integrations/integration/", f"/admin/integrations/integration/{integration.pk}/change/",
                "/admin/integrations/externalorganization/", "/admin/integrations/job/"):
        r = web.get(url)
        assert r.status_code == 200, url
        body = r.content.decode()
        for leaked in (API_KEY, secret, integration.credentials_ciphertext[:40]):
            assert leaked not in body, url
    assert "1234" in web.get(f"/admin/integrations/integration/{integration.pk}/change/").content.decode()  # hint
