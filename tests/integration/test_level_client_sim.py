"""LevelClient and LevelProvider against the Level simulator on loopback."""

from __future__ import annotations

import json

import pytest

from integrations.base import WebhookRequest
from integrations.errors import AuthFailed, NotResettable
from integrations.level import normalize
from integrations.level.client import LevelClient
from integrations.level.provider import LevelProvider
from integrations.level.signature import verify
from integrations.level.webhook import RESOLVE_TEMPLATE, TRIGGER_TEMPLATE
from integrations.models import Integration
from tests.simulators.level import LevelSimulator, WebhookSender, gid, render_automation


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


@pytest.fixture
def sim():
    with LevelSimulator() as s:
        s.tops = s.build_tree(clients=10, depth=4, fanout=2)  # 150 groups: two pages and a half
        s.top = s.tops[0]
        s.leaf = next(g for g in s.groups.values() if g["name"].startswith("Client 1 /") and "L4-" in g["name"])
        s.front = s.add_device(s.leaf, "HDG-FRONT-01", serial_number="7XK2M93")
        s.other = s.add_device(s.tops[1], "OTHER-PC")
        yield s


def client_for(sim, key=None) -> LevelClient:
    return LevelClient(sim.read_write_key if key is None else key, sim.url + "/v2")


@pytest.fixture
def make_provider(make_tenant):
    made = []

    def _make(sim, key=None, settings=None) -> LevelProvider:
        row = Integration.objects.unscoped().create(tenant=make_tenant().tenant, provider="level",
                                                    base_url=sim.url + "/v2", settings=settings or {})
        row.set_credentials({"api_key": sim.read_write_key if key is None else key})
        row.save()
        provider = LevelProvider(row)
        made.append(provider)
        return provider

    yield _make
    for p in made:
        p.close()


def test_the_whole_group_tree_over_pages_without_parent_filter(sim):
    c = client_for(sim)
    orgs = normalize.organizations(c.groups())
    assert len(orgs) == 150
    calls = sim.calls_to("GET", "/v2/groups")
    assert len(calls) == 2 and all("parent_id" not in call.query for call in calls)
    parents = {o.external_id: o.parent_external_id for o in orgs}
    depth = {}
    for o in orgs:  # parents come first
        depth[o.external_id] = 0 if o.parent_external_id is None else depth[o.parent_external_id] + 1
    assert max(depth.values()) == 3 and sum(1 for d in depth.values() if d == 0) == 10
    assert parents[sim.leaf["id"]] is not None
    c.close()


def test_group_lists_without_child_ids(sim):
    sim.list_child_ids = False
    orgs = normalize.organizations(client_for(sim).groups())
    assert {o.external_id: o.parent_external_id for o in orgs}[sim.leaf["id"]] == sim.leaf["parent_id"]


def test_parent_id_null_would_404_here_but_is_never_sent(sim):
    c = client_for(sim)
    with pytest.raises(Exception, match="404"):
        list(c.pages("/groups", {"parent_id": "null"}))  # the simulator reads it as an id
    assert len(list(c.groups())) == 150


def test_thousands_of_devices_one_page_at_a_time(sim):
    sim.add_many_devices(sim.leaf, 2500, prefix="HDG")
    c = client_for(sim)
    seen, biggest = set(), 0
    for page in c.device_pages():
        biggest = max(biggest, len(page))
        seen.update(d["id"] for d in page)
    assert len(seen) == 2502 and biggest == 100
    assert len(sim.calls_to("GET", "/v2/devices")) == 26
    last = sim.calls_to("GET", "/v2/devices")[-1].query
    assert last["include_network_interfaces"] == "true" and last["limit"] == "100"


def test_ancestor_filter_and_device_detail(sim):
    sim.add_many_devices(sim.tops[2], 30)
    c = client_for(sim)
    under_top = [d["id"] for d in c.devices(ancestor_group_id=sim.top["id"])]
    assert under_top == [sim.front["id"]]
    detail = c.device(sim.front["id"])
    assert detail["operating_system"]["full_operating_system"] and detail["network_interfaces"]
    assert c.device(gid("Device", 999_999)) is None


def test_refused_optional_includes_keep_the_sync_going(sim):
    sim.refuse_optional_includes = True
    c = client_for(sim)
    devices = list(c.devices())
    assert {d["id"] for d in devices} == {sim.front["id"], sim.other["id"]}
    assert c.refused_includes and all("operating_system" in d and "security" not in d for d in devices)


def test_iter_devices_keeps_only_the_wanted_groups(sim, make_provider):
    sim.add_many_devices(sim.leaf, 250)
    sim.add_many_devices(sim.tops[3], 40)
    provider = make_provider(sim)
    wanted = {g for g in sim.descendants(sim.top["id"])}  # a mapped top group and its inheriting subgroups
    records = list(provider.iter_devices(wanted))
    assert len(records) == 251 and {r.organization_external_id for r in records} == {sim.leaf["id"]}
    front = next(r for r in records if r.external_id == sim.front["id"])
    assert front.serial_number == "7XK2M93" and front.os and front.mac_addresses and front.local_ips
    assert front.raw["disks"]  # inventory kept for field mapping
    assert {r.asset_type for r in records} <= {"workstation", "server"}
    # Every device listed primed the group cache: an alert needs no device lookup.
    sim.reset_calls()
    assert provider.group_of_device(sim.front["id"]) == sim.leaf["id"]
    assert not sim.calls


def test_connection_outcomes(sim, make_provider):
    ok = make_provider(sim).test_connection()
    assert ok.ok and ok.details["access"] == "read_write" and ok.details["groups"] == 150
    ro = make_provider(sim, sim.read_only_key).test_connection()
    assert ro.ok and ro.details["access"] == "read_only" and "read-only" in ro.message
    bad = make_provider(sim, "not-a-key").test_connection()
    assert not bad.ok and bad.details["code"] == "bad_key"
    bearer = make_provider(sim, "Bearer " + sim.read_write_key).test_connection()
    assert not bearer.ok and bearer.details["code"] == "bad_key"
    sim.no_access_keys.add("foreign-key")
    foreign = make_provider(sim, "foreign-key").test_connection()
    assert not foreign.ok and foreign.details["code"] == "no_access"
    sim.fail_next(10, 503)
    down = make_provider(sim).test_connection()
    assert not down.ok and down.details["code"] == "unavailable"


def test_access_probe_changes_nothing(sim):
    alert = sim.add_alert(sim.front)
    before = json.dumps(sim.alerts, sort_keys=True)
    assert client_for(sim).probe_access().access == "read_write"
    assert client_for(sim, sim.read_only_key).probe_access().access == "read_only"
    assert json.dumps(sim.alerts, sort_keys=True) == before and not alert["is_resolved"]


def test_rate_limit_honours_retry_after(sim, fast):
    sim.rate_limit(2, retry_after="3")
    assert len(list(client_for(sim).groups())) == 150
    assert fast == [3.0, 3.0]


def test_bad_key_is_access_denied(sim):
    with pytest.raises(AuthFailed, match="Access denied"):
        list(client_for(sim, "nope").groups())


def test_poll_snapshot_and_resolve(sim, make_provider):
    sim.add_many_devices(sim.leaf, 300)
    devices = list(client_for(sim).devices(group_id=sim.leaf["id"]))
    active = [sim.add_alert(d, "CPU high" if i % 2 else "Disk space low", severity="warning")
              for i, d in enumerate(devices[:230])]
    done = sim.add_alert(sim.front, "Reboot pending")
    sim.resolve_locally(done["id"])
    provider = make_provider(sim)
    sim.reset_calls()
    result = provider.poll_alerts()
    # 230 devices of unknown group: one device listing (4 pages), no lookup one by one.
    assert len(sim.calls_to("GET", "/v2/devices")) == 4
    assert not [c for c in sim.calls if c.path.startswith("/v2/devices/")]
    assert result.complete and {a.external_id for a in result.active} == {a["id"] for a in active}
    assert {a.organization_external_id for a in result.active} == {sim.leaf["id"]}
    assert {a.severity for a in result.active} == {"medium"}
    # Resolve on close: read-only refused with a message, read/write resolves.
    with pytest.raises(NotResettable, match="read-only"):
        make_provider(sim, sim.read_only_key).reset_alert(active[0]["id"])
    assert sim.alerts[active[0]["id"]]["is_resolved"] is False
    provider.reset_alert(active[0]["id"])
    assert sim.alerts[active[0]["id"]]["is_resolved"] is True
    provider.reset_alert(active[0]["id"])  # again: already resolved, nothing fails
    sim.resolve_resolved_status = 422
    provider.reset_alert(active[0]["id"])
    provider.reset_alert(gid("Alert", 5))  # gone in Level
    assert len(provider.poll_alerts().active) == 229


def test_signed_webhooks_with_retries_keep_the_event_id(sim, make_provider):
    provider = make_provider(sim)
    alert = sim.add_alert(sim.front, 'Service "Spooler" stopped — ünïcode', severity="emergency")
    answers = iter([500, 0, 202])
    received: list[tuple[bytes, dict]] = []

    def post(url, body, headers):
        received.append((body, headers))
        return next(answers)

    sender = WebhookSender(secret="wh-secret", post=post)
    envelope = sim.alert_event(alert["id"])
    assert sender.deliver("https://psa.example/webhooks/level/K/", envelope) == [500, 0, 202]
    ids = set()
    for body, headers in received:
        assert verify(body, headers["X-Level-Signature"], "wh-secret")
        request = WebhookRequest(body=body, headers={k.lower(): v for k, v in headers.items()}, query={})
        assert provider.verify_webhook_signature(request, "wh-secret") is True
        assert provider.verify_webhook_signature(request, "other") is False
        ids.add(provider.inspect_webhook(request).delivery_id)
    assert ids == {envelope["event_id"]}
    [normalized] = provider.parse_webhook(WebhookRequest(body=received[-1][0], headers={}, query={}))
    assert (normalized.external_id, normalized.severity, normalized.organization_external_id) == (
        alert["id"], "critical", sim.leaf["id"])
    assert normalized.title == 'Service "Spooler" stopped — ünïcode'
    # A manual re-run from Level's Requests log: same event id, same delivery id.
    answers = iter([202])
    assert sender.rerun("https://psa.example/webhooks/level/K/", envelope) == 202
    assert json.loads(received[-1][0])["event_id"] == envelope["event_id"]


def test_reopen_keeps_the_alert_id(sim, make_provider):
    provider = make_provider(sim)
    alert = sim.add_alert(sim.front)
    sim.resolve_locally(alert["id"])
    [resolved] = provider.parse_webhook(_req(sim.alert_event(alert["id"])))
    sim.reopen(alert["id"])
    [reopened] = provider.parse_webhook(_req(sim.alert_event(alert["id"])))
    assert (resolved.event, reopened.event) == ("resolved", "triggered")
    assert resolved.external_id == reopened.external_id and resolved.condition_key == reopened.condition_key


def test_device_and_group_events_apply_live(sim, make_provider):
    provider = make_provider(sim)
    new_group = sim.add_group('Annex "B"', sim.top)
    [group] = provider.parse_directory_changes(_req(sim.group_event("group_created", new_group["id"])))
    assert (group.organization.name, group.organization.parent_external_id) == ('Annex "B"', sim.top["id"])
    assert provider.group_of_device(sim.front["id"]) == sim.leaf["id"]
    sim.update_device(sim.front["id"], group_id=new_group["id"])
    [moved] = provider.parse_directory_changes(_req(sim.device_event("device_updated", sim.front["id"])))
    assert moved.partial is False and moved.device.organization_external_id == new_group["id"]
    assert moved.device.os  # fetched with inventory although the event carried none
    assert provider.group_of_device(sim.front["id"]) == new_group["id"]
    sim.delete_device(sim.front["id"])
    [gone] = provider.parse_directory_changes(_req(sim.device_event("device_deleted", sim.front["id"])))
    assert gone.deleted_external_id == sim.front["id"]


def test_automation_route_rendered_like_level(sim, make_provider):
    provider = make_provider(sim)
    quoted = sim.add_group('Smith & "Sons"', sim.top)
    pc = sim.add_device(quoted, "SMITH-PC")
    body = render_automation(sim, TRIGGER_TEMPLATE.replace("Name of what this automation reports (e.g. Disk space "
                                                           "low)", "Backup failed"), pc["id"])
    request = WebhookRequest(body=body, headers={}, query={})
    [alert] = provider.parse_webhook(request)
    assert request.extra.get("salvaged") is True  # the quote in the group name broke the JSON
    assert (alert.device_external_id, alert.organization_external_id, alert.title) == (
        pc["id"], quoted["id"], "Backup failed")
    assert provider.verify_webhook_signature(request, "secret") is None  # shared-secret header route
    [resolved] = provider.parse_webhook(WebhookRequest(body=render_automation(
        sim, RESOLVE_TEMPLATE.replace("Name of what this automation reports (e.g. Disk space low)", "Backup failed"),
        pc["id"]), headers={}, query={}))
    assert resolved.event == "resolved" and resolved.external_id == alert.external_id


def _req(envelope) -> WebhookRequest:
    return WebhookRequest(body=WebhookSender.body_of(envelope), headers={}, query={})
