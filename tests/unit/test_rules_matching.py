"""Alert rules: first match by position, each condition kind, the catch-all, priorities."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import Alert, AlertRule, RuleAction
from alerts.services import rules
from psa.tenancy import tenant_context
from tickets.models import Board, Priority

pytestmark = pytest.mark.django_db


def ctx(**kw):
    base = {
        "title": "Disk C: low", "message": "4 GB free", "severity": "high", "device": "PC-1", "client": "Acme",
        "organization": "Acme Org", "provider": "generic", "alert_type": "disk", "asset_type": "server",
        "client_id": None, "asset_id": None,
    }
    base.update(kw)
    return base


def rule(name, position, conditions=None, **kw):
    return AlertRule.objects.create(name=name, position=position, conditions=conditions or {}, **kw)


def test_first_enabled_match_by_position_wins(tenant_a):
    with tenant_context(tenant_a.tenant):
        second = rule("second", 2, {"severities": ["high"]})
        first = rule("first", 1, {"providers": ["generic"]})
        rule("third", 3)
        assert rules.match_rule(ctx()) == first
        first.enabled = False
        first.save()
        assert rules.match_rule(ctx()) == second


def test_disabled_rule_is_skipped_even_when_it_matches(tenant_a):
    with tenant_context(tenant_a.tenant):
        rule("off", 1, enabled=False)
        on = rule("on", 2, {"severities": ["high"]})
        assert rules.match_rule(ctx()) == on


def test_catch_all_is_evaluated_last_whatever_its_position(tenant_a):
    with tenant_context(tenant_a.tenant):
        catch_all = rules.ensure_catch_all()
        AlertRule.objects.filter(pk=catch_all.pk).update(position=0)
        specific = rule("specific", 5, {"severities": ["high"]})
        assert rules.match_rule(ctx()) == specific
        assert rules.match_rule(ctx(severity="low")) == catch_all


def test_tenant_without_rules_gets_a_default_catch_all(tenant_a):
    with tenant_context(tenant_a.tenant):
        assert not AlertRule.objects.exists()
        got = rules.match_rule(ctx(severity="info"))
        assert got.is_catch_all and got.enabled
        assert got.action == RuleAction.CREATE_TICKET
        assert got.board == Board.objects.get(name="Alerts")
        assert got.auto_close and got.reset_on_close
        prio = {p.name: p.pk for p in Priority.objects.all()}
        assert got.priority_map == {"critical": prio["Critical"], "high": prio["High"], "medium": prio["Medium"],
                                    "low": prio["Low"], "info": prio["Low"]}
        # Idempotent: a second call returns the same row.
        assert rules.match_rule(ctx()) == got
        assert AlertRule.objects.filter(is_catch_all=True).count() == 1


def test_catch_all_is_per_tenant(tenant_a, tenant_b):
    with tenant_context(tenant_a.tenant):
        a = rules.ensure_catch_all()
    with tenant_context(tenant_b.tenant):
        b = rules.ensure_catch_all()
        assert rules.match_rule(ctx()) == b
    assert a.pk != b.pk and a.tenant_id != b.tenant_id


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_alerts_create_one_catch_all(make_tenant):
    tenant = make_tenant().tenant
    barrier = threading.Barrier(8)
    got, errors = [], []

    def worker():
        try:
            with tenant_context(tenant):
                barrier.wait()
                got.append(rules.match_rule(ctx()).pk)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(got)) == 1
    assert AlertRule.objects.unscoped().filter(tenant=tenant, is_catch_all=True).count() == 1


@pytest.mark.parametrize(
    "conditions,hit,miss",
    [
        ({"providers": ["ninjaone", "GENERIC"]}, {}, {"provider": "tactical"}),
        ({"severities": ["critical", "high"]}, {}, {"severity": "medium"}),
        ({"alert_types": ["Disk"]}, {}, {"alert_type": "cpu"}),
        ({"asset_types": ["server"]}, {}, {"asset_type": "workstation"}),
        ({"asset_types": ["server"]}, {}, {"asset_type": ""}),
        ({"text_contains": "DISK c:"}, {}, {"title": "CPU high", "message": "100%"}),
        ({"text_contains": "free"}, {"title": "x", "message": "only 4 GB FREE"}, {"message": "full"}),
        ({"text_regex": r"^disk [a-z]:"}, {}, {"title": "Low disk C:"}),
        ({"text_regex": r"\d+ gb free"}, {}, {"message": "plenty"}),
    ],
)
def test_each_condition_kind(tenant_a, conditions, hit, miss):
    cleaned = rules.clean_conditions(conditions)
    assert rules.conditions_match(cleaned, ctx(**hit))
    assert not rules.conditions_match(cleaned, ctx(**miss))


def test_client_condition_matches_ids(tenant_a, make_client):
    c1, c2 = make_client(tenant_a.tenant), make_client(tenant_a.tenant)
    cond = rules.clean_conditions({"clients": [c1.pk]})
    assert rules.conditions_match(cond, ctx(client_id=c1.pk))
    assert not rules.conditions_match(cond, ctx(client_id=c2.pk))
    assert not rules.conditions_match(cond, ctx(client_id=None))


def test_all_conditions_must_hold_and_empty_matches_everything(tenant_a):
    cond = rules.clean_conditions({"severities": ["high"], "providers": ["generic"], "text_contains": "disk"})
    assert rules.conditions_match(cond, ctx())
    assert not rules.conditions_match(cond, ctx(provider="level"))
    assert rules.conditions_match({}, ctx(title="", message="", severity="info"))
    assert rules.conditions_match(rules.clean_conditions({"severities": [], "text_regex": ""}), ctx())


@pytest.mark.parametrize(
    "raw,key",
    [
        ({"colour": ["red"]}, "colour"),
        ({"severities": ["urgent"]}, "severities"),
        ({"severities": "high"}, "severities"),
        ({"clients": ["1"]}, "clients"),
        ({"clients": [True]}, "clients"),
        ({"asset_types": ["toaster"]}, "asset_types"),
        ({"text_contains": 5}, "text_contains"),
        ({"text_regex": "disk ("}, "text_regex"),
        ({"text_regex": "x" * 501}, "text_regex"),
        ({"providers": [""]}, "providers"),
    ],
)
def test_invalid_conditions_are_rejected(raw, key, db):
    with pytest.raises(rules.ConditionError) as err:
        rules.clean_conditions(raw)
    assert key in err.value.errors


def test_non_object_conditions_are_rejected(db):
    with pytest.raises(rules.ConditionError):
        rules.clean_conditions(["severities"])


def test_catastrophic_regex_times_out_as_no_match(db, caplog):
    cond = rules.clean_conditions({"text_regex": r"(a|aa)+c"})
    # Exponential backtracking: without the timeout this search would run for ages.
    assert not rules.conditions_match(cond, ctx(title="a" * 60 + "!", message=""))
    assert "timed out" in caplog.text
    assert rules.conditions_match(cond, ctx(title="aaac", message=""))


def test_priority_for_fixed_map_and_name_fallback(tenant_a):
    with tenant_context(tenant_a.tenant):
        prio = {p.name: p for p in Priority.objects.all()}
        fixed = rule("fixed", 1, priority=prio["Low"])
        assert rules.priority_for(fixed, "critical") == prio["Low"]
        mapped = rule("mapped", 2, priority_map={"critical": prio["Medium"].pk})
        assert rules.priority_for(mapped, "critical") == prio["Medium"]
        assert rules.priority_for(mapped, "high") == prio["High"]  # not in the map: by name
        assert rules.priority_for(mapped, "info") == prio["Low"]
        Priority.objects.filter(name="Low").update(name="Minor")
        assert rules.priority_for(mapped, "low") is None
        assert rules.priority_for(mapped, "bogus") is None


def test_priority_map_never_reaches_another_tenant(tenant_a, tenant_b):
    with tenant_context(tenant_b.tenant):
        foreign = Priority.objects.get(name="Critical")
    with tenant_context(tenant_a.tenant):
        r = rule("x", 1, priority_map={"critical": foreign.pk})
        got = rules.priority_for(r, "critical")
        assert got is not None and got.tenant_id == tenant_a.tenant.pk and got.name == "Critical"


def test_alert_context_from_an_alert(tenant_a, make_client, make_asset):
    from integrations.models import ExternalOrganization, Integration

    tenant = tenant_a.tenant
    client = make_client(tenant, "Acme")
    asset = make_asset(tenant, client, "ACME-FS01", asset_type="server")
    with tenant_context(tenant):
        integ = Integration.objects.create(provider="generic")
        org = ExternalOrganization.objects.create(integration=integ, external_id="o1", name="Acme Org")
        now = timezone.now()
        alert = Alert.objects.create(
            integration=integ, provider="generic", external_id="a1", condition_key="k", dedup_key="d",
            severity="critical", title="Disk low", message="C: full", alert_type="disk", device_name="fs01",
            organization=org, asset=asset, client=client, first_seen=now, last_seen=now, last_event_at=now,
        )
        got = rules.alert_context(alert)
        assert got == {
            "title": "Disk low", "message": "C: full", "severity": "critical", "device": "ACME-FS01",
            "client": "Acme", "organization": "Acme Org", "provider": "generic", "alert_type": "disk",
            "asset_type": "server", "client_id": client.pk, "asset_id": asset.pk,
        }
        bare = Alert.objects.create(
            integration=integ, provider="generic", external_id="a2", condition_key="k2", dedup_key="d2",
            device_name="unknown-host", first_seen=now, last_seen=now, last_event_at=now,
            raw={"organization": {"id": 9, "name": "Raw Org"}},
        )
        got = rules.alert_context(bare)
        assert got["device"] == "unknown-host" and got["client"] == "" and got["organization"] == "Raw Org"
        assert got["client_id"] is None and got["asset_id"] is None and got["asset_type"] == ""
