"""alert-rules/dry-run/ and maintenance-windows/dry-run/: what an unsaved rule or window would do to the
last N alerts, through the API and the settings forms (htmx). Nothing is saved."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertRule, MaintenanceWindow
from alerts.services.pipeline import ingest_normalized
from psa.models import Role
from psa.tenancy import tenant_context
from tests.conftest import token_client
from tests.fakes import alert as fake_alert
from tests.helpers import ok
from tests.integration.pipeline_support import committed, setup_fake
from tickets.models import Board, Priority

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider, make_asset):
    setup = setup_fake(tenant_a.tenant)
    setup.asset = make_asset(setup.tenant, setup.client, name="HDG-SRV-01", provider="fake", external_id="dev-1")

    def ingest(alert_id, **kw):
        with committed():
            return ingest_normalized(setup.integration, fake_alert(alert_id, kw.pop("org", "o1"), **kw),
                                     source=kw.pop("source", "webhook"))

    setup.ingest = ingest
    setup.alerts = {
        "disk-high": ingest("a-1", severity="high", title="Disk C low", device_external_id="dev-1"),
        "cpu-high": ingest("a-2", severity="high", title="CPU busy"),
        "disk-low": ingest("a-3", severity="low", title="Disk D low"),
        "unmapped": ingest("a-4", org="o-unknown", severity="high", title="Disk low elsewhere"),
    }
    with tenant_context(setup.tenant):
        setup.board = Board.objects.get(name="Triage")
        setup.priorities = {p.name: p.pk for p in Priority.objects.all()}
    return setup


def run(api, rule, **extra):
    return api.post("/api/v1/alert-rules/dry-run/", {"rule": rule, **extra}, format="json")


def test_new_rule_dry_run_lists_matches_with_current_rule_board_and_priority(fx, api_a):
    with tenant_context(fx.tenant):
        rules_before = AlertRule.objects.count()
    body = ok(run(api_a, {"conditions": {"severities": ["high"]}, "board": fx.board.pk,
                          "priority": fx.priorities["Critical"]}))
    assert body["checked"] == 4  # the unmapped alert is checked but never reaches the rules
    by_alert = {m["alert"]: m for m in body["matches"]}
    assert set(by_alert) == {fx.alerts["disk-high"].pk, fx.alerts["cpu-high"].pk}
    m = by_alert[fx.alerts["disk-high"].pk]
    with tenant_context(fx.tenant):
        catch_all = AlertRule.objects.get(is_catch_all=True)
        assert AlertRule.objects.count() == rules_before  # nothing saved
    assert m["current_rule"] == catch_all.pk and m["current_rule_name"] == "Catch-all"
    assert (m["board"], m["priority"], m["would_apply"]) == (fx.board.pk, fx.priorities["Critical"], True)
    assert m["device"] == "HDG-SRV-01" and m["client"] == fx.client.pk


def test_an_earlier_rule_wins_and_the_priority_map_follows_severity(fx, api_a):
    with tenant_context(fx.tenant):
        disk = AlertRule.objects.create(name="Disk", position=1, conditions={"text_contains": "disk"})
    body = ok(run(api_a, {"conditions": {"text_contains": "low"},
                          "priority_map": {"high": fx.priorities["High"], "low": fx.priorities["Low"]}}))
    matches = {m["alert"]: m for m in body["matches"]}
    assert set(matches) == {fx.alerts["disk-high"].pk, fx.alerts["disk-low"].pk}
    assert all(m["current_rule"] == disk.pk and m["would_apply"] is False for m in matches.values())
    assert matches[fx.alerts["disk-high"].pk]["priority"] == fx.priorities["High"]
    assert matches[fx.alerts["disk-low"].pk]["priority"] == fx.priorities["Low"]
    assert body["would_apply"] == 0
    # Placed first, it wins.
    first = ok(run(api_a, {"conditions": {"text_contains": "low"}, "position": 1}))
    assert first["would_apply"] == 2 and all(m["would_apply"] for m in first["matches"])


def test_editing_a_rule_runs_the_edit_in_its_place(fx, api_a):
    with tenant_context(fx.tenant):
        rule = AlertRule.objects.create(name="Disk", position=1, conditions={"text_contains": "disk"}, action="ignore")
    body = ok(run(api_a, {"conditions": {"text_contains": "cpu"}, "action": "create_ticket"}, rule_id=rule.pk))
    [m] = body["matches"]
    assert m["alert"] == fx.alerts["cpu-high"].pk and m["would_apply"] is True and m["action"] == "create_ticket"
    with tenant_context(fx.tenant):
        rule.refresh_from_db()
    assert rule.conditions == {"text_contains": "disk"} and rule.action == "ignore"  # unchanged
    ignoring = ok(run(api_a, {"action": "ignore"}, rule_id=rule.pk))
    assert {m["board"] for m in ignoring["matches"]} == {None}
    assert {m["current_rule"] for m in ignoring["matches"]} == {rule.pk}


def test_limit_and_refusals(fx, api_a, tenant_b, make_member):
    assert ok(run(api_a, {}, limit=2))["checked"] == 2
    for bad in (0, "x", 10**6, True):
        assert run(api_a, {}, limit=bad).status_code == 400
    assert api_a.post("/api/v1/alert-rules/dry-run/", {"limit": 5}, format="json").status_code == 400
    r = run(api_a, {"conditions": {"text_regex": "("}})
    assert r.status_code == 400 and "text_regex" in str(r.json())
    with tenant_context(tenant_b.tenant):
        other_board = Board.objects.get(name="Alerts").pk
        other_rule = AlertRule.objects.create(name="B rule", position=1)
    r = run(api_a, {"board": other_board})
    assert r.status_code == 400 and "board" in r.json()
    assert run(api_a, {}, rule_id=other_rule.pk).status_code == 404
    tech = make_member(fx.tenant, Role.TECHNICIAN)
    assert run(token_client(tech.api_token), {}).status_code == 403
    # Another tenant's alerts are never checked.
    assert ok(run(token_client(tenant_b.api_token), {}))["checked"] == 0


def test_test_alerts_are_left_out(fx, api_a):
    with tenant_context(fx.tenant):
        Alert.objects.filter(pk=fx.alerts["cpu-high"].pk).update(is_test=True)
    body = ok(run(api_a, {"conditions": {"severities": ["high"]}}))
    assert body["checked"] == 3 and [m["alert"] for m in body["matches"]] == [fx.alerts["disk-high"].pk]


def test_open_ticket_condition_is_judged_with_the_devices_open_tickets(fx, api_a):
    body = ok(run(api_a, {"conditions": {"asset_has_open_ticket": True}}))
    assert [m["alert"] for m in body["matches"]] == [fx.alerts["disk-high"].pk]


def window_body(**kw):
    now = timezone.now()
    return {"scope": "all", "starts_at": (now - dt.timedelta(hours=1)).isoformat(),
            "ends_at": (now + dt.timedelta(hours=1)).isoformat(), **kw}


def test_window_dry_run_by_scope_and_time(fx, api_a, make_client):
    def matched(**kw):
        body = ok(api_a.post("/api/v1/maintenance-windows/dry-run/", {"window": window_body(**kw)}, format="json"))
        return body["checked"], sorted(m["alert"] for m in body["matches"])

    mapped = sorted(a.pk for k, a in fx.alerts.items() if k != "unmapped")
    assert matched() == (4, mapped)
    assert matched(scope="asset", asset=fx.asset.pk) == (4, [fx.alerts["disk-high"].pk])
    assert matched(scope="integration", integration="generic")[1] == []
    other = make_client(fx.tenant, "Other Co")
    assert matched(scope="client", client=other.pk)[1] == []
    later = timezone.now() + dt.timedelta(days=1)
    assert matched(starts_at=later.isoformat(), ends_at=(later + dt.timedelta(hours=2)).isoformat())[1] == []
    # A daily window that started days ago covers today's alerts at the same hour.
    start = timezone.now() - dt.timedelta(days=3, minutes=30)
    assert matched(starts_at=start.isoformat(), ends_at=(start + dt.timedelta(hours=1)).isoformat(),
                   rrule="FREQ=DAILY")[1] == mapped
    with tenant_context(fx.tenant):
        assert MaintenanceWindow.objects.count() == 0
    r = api_a.post("/api/v1/maintenance-windows/dry-run/", {"window": window_body(scope="client")}, format="json")
    assert r.status_code == 400 and "client" in r.json()


def test_rule_form_dry_run_renders_the_matches(fx, client, tenant_a):
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    form = {"name": "", "action": "create_ticket", "severities": ["high"], "board": fx.board.pk,
            "dry_run_limit": "1000"}
    page = client.post("/settings/alert-rules/dry-run/", form, HTTP_HX_REQUEST="true")
    html = page.content.decode()
    assert page.status_code == 200 and 'data-testid="dry-run-matched">2<' in html
    assert f'href="/alerts/{fx.alerts["disk-high"].pk}/"' in html and "Catch-all" in html and "Triage" in html
    bad = client.post("/settings/alert-rules/dry-run/", {**form, "text_regex": "("}, HTTP_HX_REQUEST="true")
    assert "Invalid regular expression" in bad.content.decode()


def test_window_form_dry_run_renders_the_matches(fx, client, tenant_a):
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    now = timezone.now()
    form = {"name": "Tonight", "scope": "asset", "asset": fx.asset.pk, "timezone": "UTC",
            "starts_at": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (now + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), "dry_run_limit": "50"}
    html = client.post("/settings/maintenance-windows/dry-run/", form, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="dry-run-matched">1<' in html and f'/alerts/{fx.alerts["disk-high"].pk}/' in html
