"""Settings > Alert rules and Settings > Maintenance windows through the Django test client."""

from __future__ import annotations

import datetime as dt

import pytest

from alerts.models import AlertRule, MaintenanceWindow
from psa.models import Role
from psa.tenancy import tenant_context

RULES = "/settings/alert-rules/"
WINDOWS = "/settings/maintenance-windows/"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_web(client, tenant_a):
    client.force_login(tenant_a.user)
    return client


@pytest.fixture
def tech_web(client, tenant_a, make_member):
    client.force_login(make_member(tenant_a.tenant, Role.TECHNICIAN))
    return client


def _rules(tenant):
    with tenant_context(tenant):
        return list(AlertRule.objects.order_by("is_catch_all", "position", "id"))


def _board(tenant, name="Alerts"):
    from tickets.models import Board

    with tenant_context(tenant):
        return Board.objects.get(name=name)


def _create(admin_web, name, **extra):
    data = {"name": name, "enabled": "on", "action": "create_ticket", "auto_close": "on", "reset_on_close": "on"}
    data.update(extra)
    return admin_web.post(RULES + "new/", data)


def test_empty_tenant_sees_catch_all_and_hint(admin_web, tenant_a):
    r = admin_web.get(RULES)
    assert r.status_code == 200
    html = r.content.decode()
    assert "No rules of your own yet" in html and "catch-all" in html
    assert [r.is_catch_all for r in _rules(tenant_a.tenant)] == [True]


def test_create_rule_with_conditions_and_priority_map(admin_web, tenant_a):
    from tickets.models import Priority

    with tenant_context(tenant_a.tenant):
        high = Priority.objects.get(name="High")
    board = _board(tenant_a.tenant, "Security")
    r = _create(admin_web, "Disk alerts", severities=["critical", "high"], providers=["generic"],
                text_regex=r"disk (space|full)", alert_types="check, availability", board=board.pk,
                pmap_critical=high.pk, title_template="[{{ severity }}] {{ title }}")
    assert r.status_code == 302, r.content.decode()[-2000:]
    rule = next(x for x in _rules(tenant_a.tenant) if x.name == "Disk alerts")
    assert rule.conditions == {"severities": ["critical", "high"], "providers": ["generic"],
                               "text_regex": r"disk (space|full)", "alert_types": ["availability", "check"]}
    assert rule.board_id == board.pk and rule.priority_map == {"critical": high.pk} and rule.position == 1
    html = admin_web.get(RULES).content.decode()
    assert html.index("Disk alerts") < html.index("every other alert")  # catch-all shown last


def test_invalid_regex_error_next_to_field(admin_web, tenant_a):
    r = _create(admin_web, "Broken", text_regex="disk (")
    assert r.status_code == 400
    html = r.content.decode()
    assert "Invalid regular expression" in html
    # The error sits inside the regex field's block.
    field = html[html.index('id="id_text_regex"'):]
    assert field.index("Invalid regular expression") < field.index('class="field"')
    assert not any(x.name == "Broken" for x in _rules(tenant_a.tenant))


def test_unknown_template_field_is_rejected(admin_web, tenant_a):
    r = _create(admin_web, "Bad template", title_template="{{ nope }}")
    assert r.status_code == 400 and b"Unknown field" in r.content


def test_reorder_toggle_delete(admin_web, tenant_a):
    for name in ("First", "Second"):
        assert _create(admin_web, name).status_code == 302
    first, second = [x for x in _rules(tenant_a.tenant) if not x.is_catch_all]
    r = admin_web.post(RULES + f"{second.pk}/move/up/", **HX)
    assert r.status_code == 200 and b'id="rules-table"' in r.content
    assert [x.name for x in _rules(tenant_a.tenant)][:2] == ["Second", "First"]
    admin_web.post(RULES + f"{second.pk}/toggle/", **HX)
    assert not next(x for x in _rules(tenant_a.tenant) if x.pk == second.pk).enabled
    catch_all = _rules(tenant_a.tenant)[-1]
    assert admin_web.post(RULES + f"{catch_all.pk}/delete/", **HX).status_code == 400
    r = admin_web.post(RULES + f"{first.pk}/delete/")
    assert r.status_code == 302
    names = [x.name for x in _rules(tenant_a.tenant)]
    assert "First" not in names and names[-1] == catch_all.name


def test_edit_catch_all_has_no_conditions(admin_web, tenant_a):
    admin_web.get(RULES)
    catch_all = _rules(tenant_a.tenant)[-1]
    r = admin_web.get(RULES + f"{catch_all.pk}/")
    assert r.status_code == 200 and b'name="text_regex"' not in r.content
    r = admin_web.post(RULES + f"{catch_all.pk}/", {"name": "Everything else", "action": "ignore"})
    assert r.status_code == 302
    catch_all = _rules(tenant_a.tenant)[-1]
    assert catch_all.name == "Everything else" and catch_all.action == "ignore" and catch_all.enabled


def test_rules_permissions_and_tenancy(tech_web, tenant_a, tenant_b):
    with tenant_context(tenant_b.tenant):
        from alerts.services.rules import ensure_catch_all

        theirs = ensure_catch_all()
    assert tech_web.get(RULES).status_code == 403
    assert tech_web.post(RULES + "new/", {"name": "x", "action": "ignore"}).status_code == 403
    assert not any(x.name == "x" for x in _rules(tenant_a.tenant))
    tech_web.force_login(tenant_a.user)
    for path in (f"{theirs.pk}/", f"{theirs.pk}/toggle/", f"{theirs.pk}/move/up/", f"{theirs.pk}/delete/"):
        method = tech_web.get if path.count("/") == 1 else tech_web.post
        assert method(RULES + path).status_code == 404


# -- maintenance windows --------------------------------------------------------------------------------


def test_windows_empty_state(admin_web):
    r = admin_web.get(WINDOWS)
    assert r.status_code == 200 and b"No maintenance windows" in r.content


def test_create_recurring_window_in_time_zone(admin_web, tenant_a, make_client):
    acme = make_client(tenant_a.tenant, "Acme")
    r = admin_web.post(WINDOWS + "new/", {
        "name": "Patch night", "enabled": "on", "scope": "client", "client": acme.pk,
        "starts_at": "2026-01-03T22:00", "ends_at": "2026-01-04T02:00", "timezone": "Europe/Berlin",
        "repeat": "weekly", "weekdays": ["SA"],
    })
    assert r.status_code == 302, r.content.decode()[-2000:]
    with tenant_context(tenant_a.tenant):
        w = MaintenanceWindow.objects.get(name="Patch night")
    assert w.rrule == "FREQ=WEEKLY;BYDAY=SA" and w.client_id == acme.pk and w.timezone == "Europe/Berlin"
    assert w.starts_at == dt.datetime(2026, 1, 3, 21, 0, tzinfo=dt.UTC)  # 22:00 CET
    html = admin_web.get(WINDOWS).content.decode()
    assert "every week on Sa" in html and "Client: Acme" in html and "Next start" in html
    # Edit shows the local wall-clock time back.
    html = admin_web.get(WINDOWS + f"{w.pk}/").content.decode()
    assert 'value="2026-01-03T22:00"' in html


def test_active_now_window(admin_web, tenant_a):
    now = dt.datetime.now(dt.UTC)
    with tenant_context(tenant_a.tenant):
        MaintenanceWindow.objects.create(name="Now", scope="all", starts_at=now - dt.timedelta(hours=1),
                                         ends_at=now + dt.timedelta(hours=1), timezone="UTC")
    html = admin_web.get(WINDOWS).content.decode()
    assert "active now" in html


@pytest.mark.parametrize("data,field,message", [
    ({"scope": "client"}, "client", "Required for scope"),
    ({"timezone": "Mars/Olympus"}, "timezone", "Unknown time zone"),
    ({"ends_at": "2026-01-03T21:00"}, "ends_at", "after"),
    ({"repeat": "custom", "rrule": "FREQ=HOURLY"}, "rrule", "not supported"),
])
def test_window_errors_next_to_fields(admin_web, tenant_a, data, field, message):
    payload = {"name": "W", "enabled": "on", "scope": "all", "starts_at": "2026-01-03T22:00",
               "ends_at": "2026-01-04T02:00", "timezone": "UTC", "repeat": ""}
    payload.update(data)
    r = admin_web.post(WINDOWS + "new/", payload)
    assert r.status_code == 400
    html = r.content.decode()
    block = html[html.index(f'id="id_{field}"'):]
    assert message in block[:block.index('class="field"') if 'class="field"' in block else None]
    with tenant_context(tenant_a.tenant):
        assert not MaintenanceWindow.objects.exists()


def test_windows_permissions_and_tenancy(tech_web, tenant_a, tenant_b):
    now = dt.datetime.now(dt.UTC)
    with tenant_context(tenant_b.tenant):
        theirs = MaintenanceWindow.objects.create(name="B", starts_at=now, ends_at=now + dt.timedelta(hours=1))
    assert tech_web.get(WINDOWS).status_code == 403
    tech_web.force_login(tenant_a.user)
    assert tech_web.get(WINDOWS + f"{theirs.pk}/").status_code == 404
    assert tech_web.post(WINDOWS + f"{theirs.pk}/delete/").status_code == 404
    with tenant_context(tenant_b.tenant):
        assert MaintenanceWindow.objects.filter(pk=theirs.pk).exists()
