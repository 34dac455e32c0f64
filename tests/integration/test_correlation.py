"""Cross-provider correlation per device: tickets of two providers on one asset are related (API
``related_tickets``, a note on each); a rule condition ``asset_has_open_ticket`` merges instead."""

from __future__ import annotations

import pytest

from alerts.models import Alert
from alerts.services.pipeline import ingest_normalized
from integrations.models import Integration
from integrations.records import NormalizedAlert
from psa.tenancy import tenant_context
from tests.fakes import alert as fake_alert
from tests.helpers import ok
from tests.integration.pipeline_support import committed, setup_fake
from tickets.models import Ticket, TicketNote

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider, make_asset):
    setup = setup_fake(tenant_a.tenant)
    setup.asset = make_asset(setup.tenant, setup.client, name="HDG-SRV-01", provider="fake", external_id="dev-1")
    with tenant_context(setup.tenant):
        from assets.models import AssetExternalId

        AssetExternalId.objects.create(asset=setup.asset, provider="generic", external_id="gen-1")
        setup.generic = Integration.objects.create(provider="generic", status="connected")
    return setup


def fake(fx, alert_id, condition="disk", **kw):
    with committed():
        return ingest_normalized(fx.integration, fake_alert(alert_id, "o1", condition_key=condition,
                                                            device_external_id="dev-1", **kw), source="webhook")


def generic(fx, alert_id, condition="offline", **kw):
    na = NormalizedAlert(provider="generic", external_id=alert_id, condition_key=condition, event="triggered",
                         title=kw.pop("title", "Host offline"), device_external_id="gen-1", **kw)
    with committed():
        return ingest_normalized(fx.generic, na, source="webhook")


def notes(fx, ticket_id) -> list[str]:
    with tenant_context(fx.tenant):
        return list(TicketNote.objects.filter(ticket_id=ticket_id).values_list("body", flat=True))


def test_two_providers_on_one_device_relate_their_tickets_both_ways(fx, api_a):
    disk = fake(fx, "n-1", title="Disk C low")
    offline = generic(fx, "g-1")
    assert disk.ticket_id != offline.ticket_id
    first = ok(api_a.get(f"/api/v1/tickets/{disk.ticket_id}/"))
    second = ok(api_a.get(f"/api/v1/tickets/{offline.ticket_id}/"))
    assert first["related_tickets"] == [offline.ticket_id] and second["related_tickets"] == [disk.ticket_id]
    assert first["first_seen"] and first["last_seen"]
    new_number = second["number"]
    assert any(f"#{new_number}" in n and "same device" in n for n in notes(fx, disk.ticket_id))
    assert any(f"#{first['number']}" in n and "HDG-SRV-01" in n for n in notes(fx, offline.ticket_id))
    trace = ok(api_a.get(f"/api/v1/alerts/{offline.pk}/"))["trace"]
    assert trace[-1]["step"] == "dedup" and trace[-1]["decision"] == "related"
    # The list shows the links too.
    rows = {t["id"]: t for t in ok(api_a.get("/api/v1/tickets/"))["results"]}
    assert rows[disk.ticket_id]["related_tickets"] == [offline.ticket_id]


def test_same_provider_or_closed_or_other_asset_is_not_related(fx, api_a, make_asset):
    disk = fake(fx, "n-1")
    cpu = fake(fx, "n-2", condition="cpu")  # same provider, same device: not a cross-provider link
    assert ok(api_a.get(f"/api/v1/tickets/{cpu.ticket_id}/"))["related_tickets"] == []
    with tenant_context(fx.tenant):
        from tickets.models import Status

        closed = Status.objects.filter(is_closed=True).first()
        Ticket.objects.filter(pk__in=[disk.ticket_id, cpu.ticket_id]).update(status=closed)
    offline = generic(fx, "g-1")
    assert ok(api_a.get(f"/api/v1/tickets/{offline.ticket_id}/"))["related_tickets"] == []


def test_rule_condition_merges_into_the_open_ticket_of_the_device(fx, api_a):
    rule = ok(api_a.post("/api/v1/alert-rules/", {"name": "Merge by device", "conditions": {
        "providers": ["generic"], "asset_has_open_ticket": True}}, format="json"), 201)
    assert rule["conditions"] == {"providers": ["generic"], "asset_has_open_ticket": True}
    # No open ticket on the device yet: the condition does not hold and the catch-all makes one.
    lonely = generic(fx, "g-0", condition="lonely")
    assert lonely.rule_id != rule["id"]
    with tenant_context(fx.tenant):
        from tickets.models import Status

        Ticket.objects.filter(pk=lonely.ticket_id).update(status=Status.objects.filter(is_closed=True).first())
    disk = fake(fx, "n-1")
    merged = generic(fx, "g-1")
    assert merged.outcome["action"] == "occurrence" and merged.ticket_id == disk.ticket_id
    assert merged.rule_id == rule["id"]
    ticket = ok(api_a.get(f"/api/v1/tickets/{disk.ticket_id}/"))
    assert ticket["occurrence_count"] == 2 and ticket["related_tickets"] == []
    assert any("merged into this ticket" in n for n in notes(fx, disk.ticket_id))
    trace = ok(api_a.get(f"/api/v1/alerts/{merged.pk}/"))["trace"]
    assert [(e["step"], e["decision"]) for e in trace][-2:] == [("rule", "matched"), ("dedup", "merged")]
    assert "the device already has an open ticket" in trace[-2]["detail"]
    # The merged condition's next firing lands on the same ticket (its group points there).
    again = generic(fx, "g-2")
    assert again.ticket_id == disk.ticket_id
    with tenant_context(fx.tenant):
        assert Alert.objects.filter(ticket_id=disk.ticket_id).count() == 3


def test_condition_is_validated(api_a):
    r = api_a.post("/api/v1/alert-rules/", {"name": "Bad", "conditions": {"asset_has_open_ticket": "yes"}},
                   format="json")
    assert r.status_code == 400 and "asset_has_open_ticket" in str(r.json())
    r = ok(api_a.post("/api/v1/alert-rules/", {"name": "Off", "conditions": {"asset_has_open_ticket": False}},
                      format="json"), 201)
    assert r["conditions"] == {}


def test_ticket_page_shows_related_tickets_and_alerts_on_either(fx, client, tenant_a):
    disk = fake(fx, "n-1", title="Disk C low")
    offline = generic(fx, "g-1", title="Host offline")
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    for mine, other in ((disk, offline), (offline, disk)):
        html = client.get(f"/tickets/{mine.ticket_id}/").content.decode()
        assert f'href="/tickets/{other.ticket_id}/"' in html and 'data-testid="related-tickets"' in html
        assert f'href="/alerts/{mine.pk}/"' in html
