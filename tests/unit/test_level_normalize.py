"""Level payloads -> records: the group tree, devices, alerts, the automation route, directory changes."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from integrations.level import normalize as n
from integrations.level.webhook import RESOLVE_TEMPLATE, TRIGGER_TEMPLATE
from integrations.records import DirectoryChangeKind

UTC = dt.UTC

# The facts file's examples (../shared/providers/level.md, section 3.4).
DEVICE = {
    "id": "Z2lkOi8vbGV2ZWwvRGV2aWNlLzk4NzY1", "hostname": "HDG-FRONT-01", "nickname": "Front desk",
    "role": "workstation", "group_id": "Z2lkOi8vbGV2ZWwvR3JvdXAvMTIzNDY", "tags": ["dental", "windows"],
    "flag": None, "maintenance_mode": False, "online": True, "manufacturer": "Dell Inc.", "model": "OptiPlex 7010",
    "architecture": "x64", "serial_number": "7XK2M93", "total_memory": 17179869184, "memory_slots": 2,
    "cpu_cores": 12, "last_logged_in_user": "HARBOR\\mlopez", "last_reboot_time": "2025-03-17T06:12:00Z",
    "last_seen_at": "2025-03-19T13:40:00Z", "city": "Portland", "country": "US", "security_score": 82,
    "platform": "Windows",
    "operating_system": {"full_operating_system": "Windows 11 Pro 23H2", "major_version": "11", "minor_version": "0",
                         "architecture": "x64", "install_date": "2024-01-05T00:00:00Z", "end_of_life": False},
    "cpus": [{"model": "12th Gen Intel Core i5-12500", "cores": 12, "clock_speed": 3000}],
    "disk_partitions": [{"label": "OS", "mount_point": "C:", "size": 255013683200, "free_space": 18874368000,
                         "encrypted": True, "primary": True, "file_system": "NTFS"}],
    "network_interfaces": [{"label": "Ethernet", "mac_address": "3C:52:82:AA:10:4F", "ip_addresses": ["10.20.1.44"]}],
    "security": {"risk": "low", "antivirus_provider": "Microsoft Defender", "firewall_enabled": True},
}
ALERT = {
    "id": "Z2lkOi8vbGV2ZWwvQWxlcnQvNTU1MTI", "device_id": "Z2lkOi8vbGV2ZWwvRGV2aWNlLzk4NzY1",
    "device_hostname": "HDG-FRONT-01", "name": "Disk space low",
    "description": "Disk C: free space < 10% for 10 minutes", "payload": None, "severity": "critical",
    "is_resolved": False, "started_at": "2025-03-19T13:41:00Z", "resolved_at": None,
}


def tree(orgs):
    return {o.external_id: o.parent_external_id for o in orgs}


# -- groups ---------------------------------------------------------------------------------------
def test_four_level_tree_parents_first_whatever_the_listing_order():
    groups = [
        {"id": "L4", "name": "Front desk", "parent_id": "L3"},
        {"id": "L2", "name": "Portland", "parent_id": "L1"},
        {"id": "L3", "name": "Clinic", "parent_id": "L2"},
        {"id": "L1", "name": "Harbor Dental Group", "parent_id": None, "child_ids": ["L2"], "device_count": 2,
         "descendent_device_count": 12},
    ]
    orgs = n.organizations(groups)
    assert [o.external_id for o in orgs] == ["L1", "L2", "L3", "L4"]
    assert tree(orgs) == {"L1": None, "L2": "L1", "L3": "L2", "L4": "L3"}
    assert {o.kind for o in orgs} == {"group"}


def test_unknown_parent_and_self_parent_become_roots():
    orgs = n.organizations([{"id": "a", "name": "A", "parent_id": "deleted"}, {"id": "b", "name": "B", "parent_id": "b"}])
    assert tree(orgs) == {"a": None, "b": None}


@pytest.mark.parametrize("order", [["x", "y", "z"], ["z", "y", "x"], ["y", "z", "x"]])
def test_cycles_are_broken_at_the_smallest_id_whatever_the_order(order):
    parents = {"x": "z", "y": "x", "z": "y"}
    orgs = n.organizations([{"id": i, "name": i.upper(), "parent_id": parents[i]} for i in order])
    assert tree(orgs) == {"x": None, "y": "x", "z": "y"}
    assert [o.external_id for o in orgs] == ["x", "y", "z"]


def test_child_ids_fill_in_a_parent_only_when_parent_id_is_absent():
    orgs = n.organizations([
        {"id": "top", "name": "Top", "parent_id": None, "child_ids": ["sub", "explicit_root"]},
        {"id": "sub", "name": "Sub"},  # list endpoint without parent_id
        {"id": "explicit_root", "name": "Root", "parent_id": None},
    ])
    assert tree(orgs) == {"top": None, "sub": "top", "explicit_root": None}


def test_junk_rows_duplicates_and_names():
    orgs = n.organizations([
        {"id": "g1", "name": '  Café "Ünïcode" \x00 '}, {"id": "g1", "name": "dup"}, {"name": "no id"},
        "junk", None, {"id": 42, "name": None, "parent_id": 0}, {"id": {"x": 1}, "name": "bad id"},
    ])
    assert [(o.external_id, o.name) for o in orgs] == [("g1", 'Café "Ünïcode"'), ("42", "Group 42")]
    assert tree(orgs)["42"] is None  # parent 0 is not a listed group


def test_a_huge_deep_tree_needs_no_recursion():
    groups = [{"id": f"g{i}", "name": f"G{i}", "parent_id": f"g{i - 1}" if i else None} for i in range(5000)]
    orgs = n.organizations(reversed(groups))
    assert orgs[0].external_id == "g0" and orgs[-1].parent_external_id == "g4998"


# -- devices --------------------------------------------------------------------------------------
def test_device_from_the_facts_example():
    d = n.device(copy.deepcopy(DEVICE))
    assert (d.external_id, d.organization_external_id, d.name, d.hostname) == (
        DEVICE["id"], DEVICE["group_id"], "HDG-FRONT-01", "HDG-FRONT-01")
    assert (d.serial_number, d.asset_type, d.os, d.platform) == ("7XK2M93", "workstation", "Windows 11 Pro 23H2",
                                                                 "windows")
    assert d.make_model == "Dell Inc. OptiPlex 7010"
    assert (d.status, d.last_seen, d.last_user) == ("online", dt.datetime(2025, 3, 19, 13, 40, tzinfo=UTC),
                                                    "HARBOR\\mlopez")
    assert (d.local_ips, d.mac_addresses) == (["10.20.1.44"], ["3C:52:82:AA:10:4F"])
    assert d.remote_access_url == f"https://app.level.io/devices/{DEVICE['id']}"
    assert d.raw["disk_partitions"][0]["mount_point"] == "C:"  # kept for field mapping


@pytest.mark.parametrize(
    "role,expected",
    [("workstation", "workstation"), ("server", "server"), ("domain_controller", "server"),
     ("Domain Controller", "server"), ("domain-controller", "server"), ("laptop", "workstation"),
     ("SERVER", "server"), ("hypervisor", "other"), (None, "other"), (3, "other")],
)
def test_role_to_asset_type(role, expected):
    assert n.device({**DEVICE, "role": role}).asset_type == expected


@pytest.mark.parametrize(
    "os_info,platform,expected",
    [
        ({"major_version": 14}, "Mac", "Mac 14"),
        ({"major_version": 11.0}, "Windows", "Windows 11"),
        ({"major_version": "22"}, "Linux", "Linux 22"),
        ({"major_version": 10.15}, "Mac", "Mac 10.15"),
        ({"major_version": True}, "Mac", "Mac"),
        (None, "Linux", "Linux"),
        ("Ubuntu 22.04", "Linux", "Ubuntu 22.04"),  # a plain string is the full name
        ({"full_operating_system": None, "major_version": None}, None, ""),
    ],
)
def test_os_without_full_name_uses_platform_and_major_version(os_info, platform, expected):
    device = {"id": "d", "platform": platform}
    if os_info is not None:
        device["operating_system"] = os_info
    assert n.device(device).os == expected


def test_device_with_only_an_id_and_nulls_everywhere():
    d = n.device({"id": "d1", **{k: None for k in DEVICE if k != "id"}})
    assert (d.name, d.hostname, d.organization_external_id, d.status, d.last_seen) == ("d1", "", "", "unknown", None)
    assert (d.serial_number, d.os, d.make_model, d.local_ips, d.mac_addresses) == ("", "", "", [], [])
    assert n.device({"hostname": "no id"}) is None


def test_nickname_names_a_device_without_hostname_and_text_is_cleaned():
    d = n.device({"id": "d1", "hostname": "", "nickname": 'Réception "front" \x00desk', "serial_number": "None",
                  "last_logged_in_user": "null", "online": "false"})
    assert d.name == 'Réception "front" desk'
    assert (d.serial_number, d.last_user, d.status) == ("", "", "offline")


@pytest.mark.parametrize("flag", [None, "red", True, 3, {"color": "yellow"}, ["a"]])
@pytest.mark.parametrize("compliance", [True, 93.5, "93%", None, {"pct": 1}])
def test_flag_and_patch_compliance_of_any_type_are_kept_raw(flag, compliance):
    data = {**DEVICE, "flag": flag, "security": {"patch_compliance": compliance}}
    d = n.device(data)
    assert d.raw["flag"] == flag and d.raw["security"]["patch_compliance"] == compliance


def test_addresses_tolerate_strings_cidr_junk_and_duplicates():
    nics = [
        {"mac_address": "3c-52-82-aa-10-4f", "ip_addresses": "10.0.0.5, 10.0.0.6;fe80::1%12",
         "dns_servers": "10.0.0.2"},
        {"mac_address": "3C:52:82:AA:10:4F", "ip_addresses": ["10.0.0.5", "10.0.0.7/24", "not-an-ip", None, 7],
         "dns_servers": ["10.0.0.2"]},
        {"mac_address": "00:00:00:00:00:00", "ip_addresses": ["127.0.0.1", "0.0.0.0", "::1"]},
        {"mac_address": None, "ip_address": "192.168.1.9"},
        "junk",
    ]
    d = n.device({"id": "d", "network_interfaces": nics, "public_ip_address": "203.0.113.7"})
    assert d.local_ips == ["10.0.0.5", "10.0.0.6", "fe80::1", "10.0.0.7", "192.168.1.9"]
    assert d.mac_addresses == ["3C:52:82:AA:10:4F"]
    assert d.public_ip == "203.0.113.7"


def test_a_huge_interface_list():
    nics = [{"mac_address": f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", "ip_addresses": [f"10.1.{i >> 8}.{i & 255}"]}
            for i in range(2000)]
    d = n.device({"id": "d", "network_interfaces": nics + nics})
    assert len(d.local_ips) == 2000 and len(d.mac_addresses) == 2000


def test_make_model_does_not_repeat_the_maker():
    assert n.make_model({"manufacturer": "Dell Inc.", "model": "Dell Inc. OptiPlex"}) == "Dell Inc. OptiPlex"
    assert n.make_model({"manufacturer": None, "model": "MacBookPro18,1"}) == "MacBookPro18,1"


# -- alerts ---------------------------------------------------------------------------------------
def test_alert_from_the_facts_example_with_its_group_from_the_device():
    asked = []
    a = n.alert(ALERT, group_of_device=lambda d: asked.append(d) or "G-42")
    assert asked == [ALERT["device_id"]]
    assert (a.provider, a.external_id, a.event, a.severity) == ("level", ALERT["id"], "triggered", "high")
    assert (a.title, a.message, a.alert_type) == ("Disk space low", ALERT["description"], "monitor")
    assert (a.device_external_id, a.device_name, a.organization_external_id) == (
        ALERT["device_id"], "HDG-FRONT-01", "G-42")
    assert a.condition_key == f"device:{ALERT['device_id']}|disk space low"
    assert a.occurred_at == dt.datetime(2025, 3, 19, 13, 41, tzinfo=UTC)
    assert a.raw is ALERT


@pytest.mark.parametrize(
    "word,expected",
    [("information", "info"), ("warning", "medium"), ("critical", "high"), ("emergency", "critical"),
     ("Emergency", "critical"), ("INFORMATION", "info"), ("info", "info"), ("bogus", "medium"), (None, "medium")],
)
def test_severity_map(word, expected):
    assert n.alert({**ALERT, "severity": word}).severity == expected


def test_severity_overrides_per_integration():
    overrides = {"critical": "critical", "warning": "nonsense"}
    assert n.alert(ALERT, overrides=overrides).severity == "critical"
    assert n.alert({**ALERT, "severity": "warning"}, overrides=overrides).severity == "medium"
    assert n.SEVERITY_MAP.validate_overrides({"warning": "low"}) == []
    assert n.SEVERITY_MAP.validate_overrides({"severe": "low", "warning": "urgent"})


def test_resolved_alerts():
    resolved = {**ALERT, "is_resolved": True, "resolved_at": "2025-03-19T14:02:41Z"}
    a = n.alert(resolved)
    assert (a.event, a.occurred_at) == ("resolved", dt.datetime(2025, 3, 19, 14, 2, 41, tzinfo=UTC))
    # No is_resolved field: resolved_at decides.
    assert n.alert({k: v for k, v in resolved.items() if k != "is_resolved"}).event == "resolved"
    # The webhook's event type wins over the body.
    assert n.alert(resolved, event="triggered").event == "triggered"
    fallback = dt.datetime(2025, 3, 19, 14, 5, tzinfo=UTC)
    assert n.alert({**resolved, "resolved_at": None}, event="resolved", occurred_at=fallback).occurred_at == \
        dt.datetime(2025, 3, 19, 13, 41, tzinfo=UTC)  # started_at before the envelope time
    assert n.alert({"id": "x"}, event="resolved", occurred_at=fallback).occurred_at == fallback


def test_condition_key_groups_the_same_monitor_on_the_same_device():
    first = n.alert(ALERT)
    again = n.alert({**ALERT, "id": "other-id", "name": "  DISK   space low ", "description": "now 4%"})
    other_device = n.alert({**ALERT, "id": "x", "device_id": "other-device"})
    assert first.condition_key == again.condition_key != other_device.condition_key
    assert n.alert({**ALERT, "name": "x" * 300}).condition_key.startswith(f"device:{ALERT['device_id']}|sha256:")
    assert n.alert({**ALERT, "device_id": None}).condition_key == f"alert:{ALERT['id']}"
    assert n.alert({**ALERT, "name": ""}).condition_key == f"alert:{ALERT['id']}"


def test_alert_without_id_or_group_lookup():
    assert n.alert({k: v for k, v in ALERT.items() if k != "id"}) is None
    a = n.alert({**ALERT, "device_id": None}, group_of_device=lambda d: pytest.fail("no device to look up"))
    assert a.organization_external_id is None and a.device_external_id is None


@pytest.mark.parametrize("payload", [None, "raw text", {"disk": "C:"}, ["x"]])
def test_payload_of_any_type_is_ignored(payload):
    assert n.alert({**ALERT, "payload": payload}).message == ALERT["description"]


def test_alert_title_falls_back_and_text_is_kept_whole():
    description = 'Service "Spooler" stopped\nsecond line — ünïcode'
    a = n.alert({"id": "a", "device_hostname": "PC-1", "description": description})
    assert a.title == 'Service "Spooler" stopped' and a.message == description
    assert n.alert({"id": "a", "device_hostname": "PC-1"}).title == "PC-1: Level alert"


# -- the automation route -------------------------------------------------------------------------
def rendered(template, **values):
    import json

    body = json.loads(template)
    defaults = {"{{level_device_id}}": DEVICE["id"], "{{level_device_hostname}}": "HDG-FRONT-01",
                "{{level_device_nickname}}": "", "{{level_group_id}}": "G-7", "{{level_group_name}}": "Clinic",
                "{{level_group_path}}": "Harbor / Clinic", "{{level_time}}": "2025-03-19T13:41:00Z"}
    body = {k: defaults.get(v, v) for k, v in body.items()}
    body.update(values)
    return body


def test_automation_trigger_and_resolve():
    body = rendered(TRIGGER_TEMPLATE, check="Disk space low", severity="emergency", message="C: full")
    a = n.automation_alert(body, group_of_device=lambda d: pytest.fail("the body names the group"))
    assert (a.event, a.severity, a.title, a.message, a.alert_type) == (
        "triggered", "critical", "Disk space low", "C: full", "automation")
    assert a.external_id == f"automation:{DEVICE['id']}|disk space low"
    assert (a.organization_external_id, a.organization_name) == ("G-7", "Clinic")
    assert a.occurred_at == dt.datetime(2025, 3, 19, 13, 41, tzinfo=UTC)
    # The same condition as Level's own alert of that name on that device.
    assert a.condition_key == n.alert(ALERT).condition_key
    r = n.automation_alert(rendered(RESOLVE_TEMPLATE, check="Disk space low"))
    assert (r.event, r.external_id) == ("resolved", a.external_id)
    assert n.is_automation_alert(a.external_id) and not n.is_automation_alert(ALERT["id"])


def test_automation_without_group_asks_the_device():
    body = rendered(TRIGGER_TEMPLATE, check="Backup failed", group_id="{{level_group_id}}")
    a = n.automation_alert(body, group_of_device=lambda d: "G-from-device")
    assert a.organization_external_id == "G-from-device" and a.organization_name == ""


@pytest.mark.parametrize("change", [{"device_id": "{{level_device_id}}"}, {"device_id": None}, {"check": ""},
                                    {"check": None, "name": None}])
def test_automation_body_without_device_or_check(change):
    assert n.automation_alert(rendered(TRIGGER_TEMPLATE, **{"check": "X", **change})) is None


# -- directory changes ----------------------------------------------------------------------------
def test_group_changes():
    up = n.group_change("group_updated", {"id": "g2", "name": "Clinic — 北", "parent_id": "g1"})
    assert up.kind == DirectoryChangeKind.ORG_UPSERT
    assert (up.organization.external_id, up.organization.name, up.organization.parent_external_id) == (
        "g2", "Clinic — 北", "g1")
    assert n.group_change("group_created", {"id": "g3", "parent_id": "g3"}).organization.parent_external_id is None
    gone = n.group_change("group_deleted", {"id": "g2"})
    assert (gone.kind, gone.deleted_external_id, gone.organization) == (DirectoryChangeKind.ORG_DELETE, "g2", None)
    assert n.group_change("group_deleted", {}) is None


def test_device_changes_full_or_partial():
    partial = n.device_change("device_updated", {"id": DEVICE["id"], "hostname": "NEW-NAME", "group_id": "g9"})
    assert partial.kind == DirectoryChangeKind.DEVICE_UPSERT and partial.partial is True
    assert (partial.device.hostname, partial.device.organization_external_id) == ("NEW-NAME", "g9")
    full = n.device_change("device_created", {"id": DEVICE["id"]}, full=DEVICE)
    assert full.partial is False and full.device.os == "Windows 11 Pro 23H2"
    gone = n.device_change("device_deleted", {"id": DEVICE["id"]})
    assert (gone.kind, gone.deleted_external_id) == (DirectoryChangeKind.DEVICE_DELETE, DEVICE["id"])
    assert n.device_change("device_updated", {"hostname": "no id"}) is None
