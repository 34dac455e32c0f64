"""alerts/ and integrations/{provider}/events/ endpoints."""

from __future__ import annotations

import pytest

from alerts.models import InboundEvent
from psa.models import Role
from psa.tenancy import tenant_context
from tests.conftest import token_client
from tests.integration.pipeline_support import SECRET, committed, setup_fake, trigger
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider):
    return setup_fake(tenant_a.tenant)


def test_alerts_list_detail_and_filters(fx, api_a, api_b, make_asset):
    asset = make_asset(fx.tenant, fx.client, provider="fake", external_id="dev-1")
    fx.post(trigger("a-1", condition="c1", device="dev-1"))
    fx.post(trigger("a-2", condition="c2", org="o-unknown"))
    body = api_a.get("/api/v1/alerts/").json()
    assert body["count"] == 2
    by_id = {a["external_id"]: a for a in body["results"]}
    a1 = by_id["a-1"]
    for key in (
        "id",
        "provider",
        "external_id",
        "condition_key",
        "severity",
        "title",
        "message",
        "state",
        "asset",
        "client",
        "ticket",
        "occurrence_count",
        "first_seen",
        "last_seen",
    ):
        assert key in a1
    assert (a1["provider"], a1["state"], a1["asset"], a1["client"]) == (
        "fake",
        "active",
        asset.pk,
        fx.client.pk,
    )
    assert by_id["a-2"]["state"] == "unmapped" and by_id["a-2"]["ticket"] is None

    def ids(query):
        return [a["external_id"] for a in api_a.get(f"/api/v1/alerts/?{query}").json()["results"]]

    assert ids("state=unmapped") == ["a-2"]
    assert ids(f"asset={asset.pk}") == ["a-1"]
    assert ids(f"ticket={a1['ticket']}") == ["a-1"]
    assert sorted(ids("provider=fake")) == ["a-1", "a-2"] and ids("provider=ninjaone") == []
    assert api_a.get(f"/api/v1/alerts/{a1['id']}/").json()["external_id"] == "a-1"
    # Another tenant: 404 on the object, nothing in the list, and its ids filter nothing.
    assert api_b.get(f"/api/v1/alerts/{a1['id']}/").status_code == 404
    assert api_b.get("/api/v1/alerts/").json()["count"] == 0
    assert api_b.get(f"/api/v1/alerts/?ticket={a1['ticket']}").json()["count"] == 0


def test_alerts_are_read_only(fx, api_a):
    fx.post(trigger("a-1"))
    alert_id = api_a.get("/api/v1/alerts/").json()["results"][0]["id"]
    assert api_a.patch(f"/api/v1/alerts/{alert_id}/", {"state": "resolved"}, format="json").status_code == 405
    assert api_a.delete(f"/api/v1/alerts/{alert_id}/").status_code == 405


def test_event_log_newest_first_with_status_filter_and_detail(fx, api_a):
    ok = fx.post(trigger("a-1", delivery_id="d-1"), HTTP_X_TRACE="trace-1").json()["event_id"]
    fx.post(trigger("a-1", delivery_id="d-1"))  # duplicate
    bad = fx.post(b"not json").json()["event_id"]
    body = api_a.get("/api/v1/integrations/fake/events/").json()
    assert body["count"] == 3
    rows = body["results"]
    assert rows[0]["id"] == bad and rows[-1]["id"] == ok  # newest first
    assert set(rows[0]) == {"id", "received_at", "status", "error", "summary", "salvaged", "source"}
    assert [r["status"] for r in rows] == ["failed", "duplicate", "processed"]
    failed = api_a.get("/api/v1/integrations/fake/events/?status=failed").json()["results"]
    assert [r["id"] for r in failed] == [bad] and "Body is not JSON" in failed[0]["error"]
    detail = api_a.get(f"/api/v1/integrations/fake/events/{ok}/").json()
    assert detail["headers"]["x-psa-webhook-secret"] == "[redacted]"
    assert detail["headers"]["x-trace"] == "trace-1"
    assert '"alert_id": "a-1"' in detail["body"]
    assert detail["result"]["actions"] == ["ticket_created"]
    assert SECRET not in str(detail)
    # Another provider's log does not show these; an unknown provider is 404.
    assert api_a.get("/api/v1/integrations/generic/events/").json()["count"] == 0
    assert api_a.get("/api/v1/integrations/nope/events/").status_code == 404
    assert api_a.get(f"/api/v1/integrations/generic/events/{ok}/").status_code == 404


def test_event_log_is_admin_only_and_tenant_scoped(fx, api_a, api_b, tenant_a, make_member):
    event_id = fx.post(trigger("a-1")).json()["event_id"]
    tech = make_member(fx.tenant, Role.TECHNICIAN)
    tech_api = token_client(tech.api_token)
    assert tech_api.get("/api/v1/integrations/fake/events/").status_code == 403
    assert tech_api.post(f"/api/v1/integrations/fake/events/{event_id}/replay/").status_code == 403
    assert api_b.get(f"/api/v1/integrations/fake/events/{event_id}/").status_code == 404
    assert api_b.post(f"/api/v1/integrations/fake/events/{event_id}/replay/").status_code == 404
    assert api_b.get("/api/v1/integrations/fake/events/").json()["count"] == 0


def test_replay_of_a_duplicate_row_is_refused(fx, api_a):
    fx.post(trigger("a-1", delivery_id="d-1"))
    dup = fx.post(trigger("a-1", delivery_id="d-1")).json()["event_id"]
    r = api_a.post(f"/api/v1/integrations/fake/events/{dup}/replay/")
    assert r.status_code == 400 and "duplicate" in r.json()["detail"]


def test_replay_of_a_processed_event_changes_nothing_twice(fx, api_a):
    event_id = fx.post(trigger("a-1")).json()["event_id"]
    fx.post(trigger("a-2", condition="disk-c"))
    with committed():
        assert api_a.post(f"/api/v1/integrations/fake/events/{event_id}/replay/").status_code == 202
    event = InboundEvent.objects.unscoped().get(pk=event_id)
    assert event.status == "processed" and event.result["actions"] == ["redelivery"]
    with tenant_context(fx.tenant):
        assert Ticket.objects.get().occurrence_count == 2
