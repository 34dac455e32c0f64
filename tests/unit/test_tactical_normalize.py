"""Tactical payload normalization: orgs, devices (classic and beta rows), software, alerts."""

from __future__ import annotations

import datetime as dt

import pytest

from integrations.tactical import normalize as n

UTC = dt.UTC

CLIENTS = [
    {"id": 4, "name": "Harbor Dental Group", "sites": [
        {"id": 9, "name": "Main Office", "client": 4}, {"id": 10, "name": "Annex", "client": 4}]},
    {"id": 5, "name": "Café Ünïcode", "sites": [{"id": 11, "name": "Main Office", "client": 5}]},
    {"id": "junk", "name": "no id"},
]


def test_organizations_clients_and_sites_as_children():
    orgs = list(n.organizations(CLIENTS))
    assert [(o.external_id, o.name, o.parent_external_id, o.kind) for o in orgs] == [
        ("client:4", "Harbor Dental Group", None, "client"),
        ("site:9", "Main Office", "client:4", "site"),
        ("site:10", "Annex", "client:4", "site"),
        ("client:5", "Café Ünïcode", None, "client"),
        ("site:11", "Main Office", "client:5", "site"),
    ]


def test_org_index_resolves_names_per_client():
    index = n.OrgIndex.build(CLIENTS)
    assert index.resolve("Harbor Dental Group", "Annex") == ("site:10", "client:4")
    assert index.resolve("café ünïcode", "main office") == ("site:11", "client:5")  # case-insensitive
    assert index.resolve("Harbor Dental Group", "Gone Site") == ("client:4", None)
    assert index.resolve("Unknown", "Main Office") == (None, None)
    assert index.resolve(None, "Main Office", client_id=5) == ("site:11", "client:5")


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2025-03-19T13:41:15.556123Z", dt.datetime(2025, 3, 19, 13, 41, 15, 556123, tzinfo=UTC)),
        ("2025-03-19 13:41:15.556123+00:00", dt.datetime(2025, 3, 19, 13, 41, 15, 556123, tzinfo=UTC)),
        ("2025-03-19 15:41:15+02:00", dt.datetime(2025, 3, 19, 13, 41, 15, tzinfo=UTC)),
        ("2025-03-19 13:41:15", dt.datetime(2025, 3, 19, 13, 41, 15, tzinfo=UTC)),
        (1742391675.0, dt.datetime(2025, 3, 19, 13, 41, 15, tzinfo=UTC)),
        ("1742391675.0", dt.datetime(2025, 3, 19, 13, 41, 15, tzinfo=UTC)),
        ("Mar-19-2025 - 13:41", dt.datetime(2025, 3, 19, 13, 41, tzinfo=UTC)),
        ("None", None),
        ("", None),
        (None, None),
        ("HDG-FRONT-01", None),
        (True, None),
    ],
)
def test_parse_dt(value, expected):
    assert n.parse_dt(value) == expected


@pytest.mark.parametrize("value,expected", [("info", "info"), ("warning", "medium"), ("error", "high"),
                                            ("ERROR", "high"), ("critical", "medium"), ("None", "medium")])
def test_severity_mapping(value, expected):
    assert n.severity(value) == expected


@pytest.mark.parametrize("value,expected", [(803, 803), ("803", 803), (" 7 ", 7), ("None", None), (None, None),
                                            ("HDG-FRONT-01", None), (True, None), (3.0, 3), (-1, None)])
def test_int_id(value, expected):
    assert n.int_id(value) == expected


TABLE_ROW = {
    "agent_id": "fKqzWbNwQXeLhTnUvYpRaJsDcMgHkBxE", "hostname": "HDG-FRONT-01", "site_name": "Main Office",
    "client_name": "Harbor Dental Group", "monitoring_type": "server", "status": "overdue",
    "last_seen": "2025-03-19T13:40:02.118734Z", "logged_username": "mlopez", "plat": "windows",
    "operating_system": "Windows Server 2022", "public_ip": "203.0.113.24", "local_ips": "10.20.1.44, 10.20.2.44",
    "make_model": "Dell Inc. PowerEdge R650", "serial_number": "7XK2M93",
}


def test_device_from_table_row():
    d = n.device_from_table_row(TABLE_ROW, "site:9")
    assert (d.external_id, d.organization_external_id, d.name, d.hostname) == (
        TABLE_ROW["agent_id"], "site:9", "HDG-FRONT-01", "HDG-FRONT-01")
    assert (d.asset_type, d.status, d.platform, d.serial_number) == ("server", "overdue", "windows", "7XK2M93")
    assert d.last_seen == dt.datetime(2025, 3, 19, 13, 40, 2, 118734, tzinfo=UTC)
    assert d.local_ips == ["10.20.1.44", "10.20.2.44"] and d.public_ip == "203.0.113.24"
    assert (d.last_user, d.make_model, d.os) == ("mlopez", "Dell Inc. PowerEdge R650", "Windows Server 2022")
    assert d.software is None  # not fetched here


def test_device_from_table_row_drops_error_strings_and_unknowns():
    row = {**TABLE_ROW, "local_ips": "error getting local ips", "make_model": "error getting make/model",
           "monitoring_type": "toaster", "status": "weird", "logged_username": "-", "serial_number": None}
    d = n.device_from_table_row(row, "client:4")
    assert (d.local_ips, d.make_model, d.asset_type, d.status, d.last_user, d.serial_number) == (
        [], "", "other", "unknown", "", "")
    assert n.device_from_table_row({"hostname": "no id"}, "client:4") is None


WMI_WINDOWS = {
    "bios": [[{"SerialNumber": "ABC123"}, {"Version": "1"}]],
    "comp_sys": [[{"Manufacturer": "LENOVO"}, {"Model": "20XW"}]],
    "comp_sys_prod": [[{"Vendor": "LENOVO"}, {"Version": "ThinkPad"}]],
    "network_config": [[{"IPAddress": ["192.168.5.20", "fe80::1"]}], [{"IPAddress": None}]],
}


def test_device_from_beta_row_derives_computed_fields():
    now = dt.datetime(2025, 3, 19, 14, 0, tzinfo=UTC)
    row = {"id": 112, "agent_id": "a" * 32, "hostname": "LT-1", "plat": "windows", "site": 9,
           "monitoring_type": "workstation", "last_seen": "2025-03-19T13:50:00Z", "offline_time": 4,
           "overdue_time": 30, "logged_in_username": "None", "last_logged_in_user": "bob",
           "operating_system": "Windows 11", "public_ip": "198.51.100.7", "wmi_detail": WMI_WINDOWS}
    d = n.device_from_beta_row(row, "site:9", now)
    assert (d.status, d.serial_number, d.make_model, d.local_ips) == ("offline", "ABC123", "LENOVO 20XW",
                                                                     ["192.168.5.20"])
    assert d.last_user == ""  # only shown for online agents, as Tactical does
    online = n.device_from_beta_row({**row, "last_seen": "2025-03-19T13:58:00Z"}, "site:9", now)
    assert (online.status, online.last_user) == ("online", "bob")
    overdue = n.device_from_beta_row({**row, "last_seen": "2025-03-19T12:00:00Z"}, "site:9", now)
    assert overdue.status == "overdue"
    never = n.device_from_beta_row({**row, "last_seen": None}, "site:9", now)
    assert never.status == "offline"


def test_device_from_beta_row_posix():
    row = {"agent_id": "b" * 30, "hostname": "srv", "plat": "linux", "monitoring_type": "server",
           "wmi_detail": {"serialnumber": "VMW-1", "make_model": "VMware Virtual Platform",
                          "local_ips": ["10.0.0.5", "10.0.0.6"]}}
    d = n.device_from_beta_row(row, "client:4")
    assert (d.serial_number, d.make_model, d.local_ips, d.asset_type) == (
        "VMW-1", "VMware Virtual Platform", ["10.0.0.5", "10.0.0.6"], "server")


def test_software_rows():
    rows = [{"name": "7-Zip 19.00 (x64)", "version": "19.00", "publisher": "Igor Pavlov",
             "install_date": "2019-06-09 00:00:00 +0000 UTC", "size": "5.2 MB", "source": "", "location": "",
             "uninstall": ""}, {"name": "", "version": "1"}, {"name": "None"}]
    sw = n.software(rows)
    assert [(s.name, s.version, s.publisher, s.installed_on, s.size) for s in sw] == [
        ("7-Zip 19.00 (x64)", "19.00", "Igor Pavlov", "2019-06-09 00:00:00 +0000 UTC", "5.2 MB")]


def test_condition_keys_tell_checks_apart():
    a = n.condition_key("AG", "check", 803, None, "m")
    b = n.condition_key("AG", "check", 804, None, "m")
    t = n.condition_key("AG", "task", None, 12, "m")
    av = n.condition_key("AG", "availability", None, None, "AG is overdue.")
    assert len({a, b, t, av}) == 4
    assert av == "agent:AG|availability"
    # Without ids (an older template), the message still separates two checks.
    assert n.condition_key("AG", "check", None, None, "x check failed") != n.condition_key(
        "AG", "check", None, None, "y check failed")


API_ALERT = {
    "id": 57, "hostname": "HDG-FRONT-01", "agent_id": "fKqzWbNwQXeLhTnUvYpRaJsDcMgHkBxE",
    "client": "Harbor Dental Group", "site": "Main Office", "alert_time": "2025-03-19T13:41:15.556123Z",
    "agent": 112, "assigned_check": 803, "assigned_task": None, "alert_type": "check",
    "message": "HDG-FRONT-01 has a diskspace check: Disk space C: < 10% that failed.", "resolved": False,
    "resolved_on": None, "severity": "error",
}


def test_alert_from_api():
    alert = n.alert_from_api(API_ALERT, n.OrgIndex.build(CLIENTS))
    assert (alert.provider, alert.external_id, alert.event, alert.severity) == ("tactical", "57", "triggered", "high")
    assert alert.condition_key == "agent:fKqzWbNwQXeLhTnUvYpRaJsDcMgHkBxE|check|check:803"
    assert (alert.organization_external_id, alert.organization_parent_external_id, alert.organization_name) == (
        "site:9", "client:4", "Main Office")
    assert (alert.device_external_id, alert.device_name) == (API_ALERT["agent_id"], "HDG-FRONT-01")
    assert alert.title.startswith("HDG-FRONT-01 has a diskspace check")
    assert alert.occurred_at == dt.datetime(2025, 3, 19, 13, 41, 15, 556123, tzinfo=UTC)


def test_alert_from_api_resolved_and_epoch_times_and_no_agent_id():
    row = {**API_ALERT, "resolved": True, "resolved_on": 1742392961.0, "alert_time": 1742391675.0}
    row.pop("agent_id")
    alert = n.alert_from_api(row, None)
    assert alert.event == "resolved"
    assert alert.occurred_at == dt.datetime(2025, 3, 19, 14, 2, 41, tzinfo=UTC)
    assert alert.device_external_id is None and alert.condition_key.startswith("agent:pk:112|")
    assert alert.organization_external_id is None


def test_webhook_body_with_python_str_values():
    body = {"event": "resolved", "alert_id": 57, "alert_type": "check", "severity": "warning",
            "message": "m", "alert_time": "2025-03-19 13:41:15.556123+00:00",
            "resolved_on": "2025-03-19 14:02:41.310442+00:00", "agent_id": "AG", "hostname": "H",
            "client_id": "4", "client_name": "Harbor", "site_id": "9", "site_name": "Main", "check_id": "803",
            "task_id": "None"}
    alert = n.alert_from_webhook(body, 57, "resolved")
    assert (alert.severity, alert.organization_external_id, alert.organization_parent_external_id) == (
        "medium", "site:9", "client:4")
    assert alert.condition_key == "agent:AG|check|check:803"
    assert alert.occurred_at == dt.datetime(2025, 3, 19, 14, 2, 41, 310442, tzinfo=UTC)
