"""NinjaOne payloads -> records: organizations/locations, devices (agent, VMware host, sparse),
activities (every status kind, absent severity, int/float times, missing device), alert rows,
patches and software."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from integrations.ninjaone import normalize as n
from integrations.records import AlertEventKind

UTC = dt.UTC

ORG = {"id": 12, "name": "Harbor Dental Group", "description": "Dental practice, 3 sites",
       "nodeApprovalMode": "AUTOMATIC", "tags": [], "fields": {}, "userData": {}}
DEVICE = {
    "id": 345, "uid": "5b0e7c1a-2d4f-4e8b-9a61-0c3f7d2e9b10", "organizationId": 12, "locationId": 31,
    "nodeClass": "WINDOWS_WORKSTATION", "nodeRoleId": 1, "rolePolicyId": 40, "approvalStatus": "APPROVED",
    "offline": False, "displayName": "HDG-FRONT-01", "systemName": "HDG-FRONT-01",
    "dnsName": "hdg-front-01.harbor.local", "netbiosName": "HDG-FRONT-01",
    "created": 1707363433.892432, "lastContact": 1742412252.744, "lastUpdate": 1742412252.744,
    "tags": [], "fields": {}, "ipAddresses": ["10.20.1.44"], "macAddresses": ["3C:52:82:AA:10:4F"],
    "publicIP": "203.0.113.24",
    "os": {"name": "Windows 11 Pro", "architecture": "64-bit", "buildNumber": "22631", "releaseId": "23H2",
           "lastBootTime": 1742300000.0, "needsReboot": False},
    "system": {"manufacturer": "Dell Inc.", "model": "OptiPlex 7010", "serialNumber": "7XK2M93",
               "biosSerialNumber": "7XK2M93", "domain": "harbor.local", "chassisType": "DESKTOP"},
    "lastLoggedInUser": "HARBOR\\mlopez", "deviceType": "AGENT",
}
ALERT = {"uid": "a3d1c2b4-77e0-4c3e-9f5a-1b2c3d4e5f60", "deviceId": 345,
         "message": "Disk C: free space is less than 10%", "createTime": 1742391365.182, "updateTime": 1742391365.182,
         "sourceType": "CONDITION_AGENT_DISK_FREE_SPACE", "sourceConfigUid": "9f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
         "sourceName": "Disk < 10%", "subject": "",
         "data": {"message": {"code": "agent_cond_disk_free_space_lt",
                              "params": {"threshold": 10, "unit": "%", "value": 7.4}}}}
TRIGGERED = {
    "id": 881230, "activityTime": 1742391675.556, "deviceId": 345, "severity": "MAJOR", "priority": "HIGH",
    "seriesUid": "a3d1c2b4-77e0-4c3e-9f5a-1b2c3d4e5f60", "activityType": "CONDITION", "statusCode": "TRIGGERED",
    "status": "Triggered", "sourceConfigUid": "9f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "sourceName": "Disk < 10%",
    "subject": "", "message": "Disk C: free space is less than 10%", "type": "Condition",
    "data": {"message": {"code": "agent_cond_disk_free_space_lt", "params": {"threshold": 10, "unit": "%",
                                                                             "value": 7.4}}},
    "device": {"id": 345, "organizationId": 12, "locationId": 31, "nodeClass": "WINDOWS_WORKSTATION",
               "approvalStatus": "APPROVED", "offline": False, "displayName": "HDG-FRONT-01",
               "systemName": "HDG-FRONT-01", "created": 1707363433.892432, "lastContact": 1742391600.1,
               "lastUpdate": 1742391600.1,
               "references": {"organization": {"id": 12, "name": "Harbor Dental Group", "nodeApprovalMode": "AUTOMATIC"},
                              "location": {"id": 31, "name": "Main Office"}}},
}
RESET = {"id": 881307, "activityTime": 1742395275.03, "deviceId": 345,
         "seriesUid": "a3d1c2b4-77e0-4c3e-9f5a-1b2c3d4e5f60", "activityType": "CONDITION", "statusCode": "RESET",
         "status": "Reset", "sourceConfigUid": "9f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "sourceName": "Disk < 10%",
         "message": "Disk C: free space is less than 10%", "type": "Condition",
         "data": {"message": {"code": "agent_cond_disk_free_space_lt", "params": {}}},
         "device": {"id": 345, "organizationId": 12, "displayName": "HDG-FRONT-01", "systemName": "HDG-FRONT-01",
                    "nodeClass": "WINDOWS_WORKSTATION", "offline": False}}


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=UTC)


# -- organizations ---------------------------------------------------------------------------------
def test_organizations_detailed_with_locations_as_children():
    org = {**ORG, "locations": [{"id": 31, "name": "Main Office"}, {"id": 32, "name": "Annexe «Nord»"}]}
    other = {"id": 13, "name": 'Smith "&" Sons'}  # brief mode: no tags/fields/description
    orgs = n.organizations([org, other])
    assert [(o.external_id, o.name, o.parent_external_id, o.kind) for o in orgs] == [
        ("org:12", "Harbor Dental Group", None, "organization"),
        ("loc:31", "Main Office", "org:12", "location"),
        ("loc:32", "Annexe «Nord»", "org:12", "location"),
        ("org:13", 'Smith "&" Sons', None, "organization"),
    ]


def test_locations_from_the_separate_list_and_tolerated_oddities():
    orgs = [ORG, {"id": 13, "name": None}, {"id": "bad"}, "junk", {"id": 12, "name": "duplicate"}]
    locations = [{"id": 31, "name": "Main Office", "organizationId": 12}, {"id": 40, "name": "", "organizationId": 13},
                 {"id": 41, "name": "Orphan", "organizationId": 99}, {"id": None, "organizationId": 12}]
    result = n.organizations(orgs, locations)
    assert [(o.external_id, o.name, o.parent_external_id) for o in result] == [
        ("org:12", "Harbor Dental Group", None), ("loc:31", "Main Office", "org:12"),
        ("org:13", "Organization 13", None), ("loc:40", "Location 40", "org:13")]


def test_many_organizations():
    orgs = [{"id": i, "name": f"Org {i}", "locations": [{"id": 100000 + i, "name": "HQ"}]} for i in range(1, 3001)]
    result = n.organizations(orgs)
    assert len(result) == 6000 and result[-1].parent_external_id == "org:3000"


def test_parse_ext():
    assert n.parse_ext("org:12") == ("org", 12) and n.parse_ext("loc:31") == ("loc", 31)
    assert n.parse_ext("site:1") == ("", None) and n.parse_ext("org:x") == ("org", None) and n.parse_ext("") == ("", None)


# -- devices --------------------------------------------------------------------------------------------
def test_agent_device():
    d = n.device(DEVICE)
    assert d.external_id == "345" and d.organization_external_id == "org:12" and d.site_external_id == "loc:31"
    assert d.name == "HDG-FRONT-01" and d.hostname == "HDG-FRONT-01" and d.serial_number == "7XK2M93"
    assert d.os == "Windows 11 Pro" and d.make_model == "Dell Inc. OptiPlex 7010" and d.platform == "windows"
    assert d.asset_type == "workstation" and d.status == "online" and d.last_seen == at(1742412252.744)
    assert d.last_user == "HARBOR\\mlopez" and d.public_ip == "203.0.113.24"
    assert d.local_ips == ["10.20.1.44"] and d.mac_addresses == ["3c:52:82:aa:10:4f"]
    assert d.raw["system"]["manufacturer"] == "Dell Inc."  # the whole record, for field mapping


def test_vmware_host_has_its_details_at_the_top():
    host = {"id": 900, "organizationId": 12, "nodeClass": "VMWARE_VM_HOST", "displayName": "esx01",
            "systemName": "esx01.harbor.local", "offline": True, "lastContact": 1742412252,
            "cpuModel": "Intel(R) Xeon(R) Silver 4210", "vendor": "Dell Inc.", "model": "PowerEdge R640",
            "serviceTag": "9ZX8Y7W", "releaseName": "VMware ESXi 7.0.3", "deviceType": "VMHost"}
    d = n.device(host)
    assert d.serial_number == "9ZX8Y7W" and d.make_model == "Dell Inc. PowerEdge R640"
    assert d.os == "VMware ESXi 7.0.3" and d.asset_type == "server" and d.platform == "vmware"
    assert d.status == "offline" and d.last_seen == at(1742412252) and d.site_external_id is None


def test_sparse_device_with_nulls_and_fallbacks():
    row = {"id": "77", "references": {"organization": {"id": 12}, "location": {"id": 31}},
           "displayName": None, "systemName": None, "dnsName": "pc77.local", "offline": None,
           "lastContact": None, "os": None, "system": {"serialNumber": None, "biosSerialNumber": "BIOS-77"},
           "ipAddresses": None, "macAddresses": "aa:bb:cc:dd:ee:ff", "lastLoggedInUser": None}
    d = n.device(row)
    assert d.external_id == "77" and d.organization_external_id == "org:12" and d.site_external_id == "loc:31"
    assert d.name == "pc77.local" and d.hostname == "pc77.local" and d.serial_number == "BIOS-77"
    assert d.status == "unknown" and d.last_seen is None and d.os == "" and d.asset_type == "other"
    assert d.local_ips == [] and d.mac_addresses == ["aa:bb:cc:dd:ee:ff"] and d.last_user == ""


def test_device_without_id_or_org():
    assert n.device({"displayName": "x"}) is None
    d = n.device({"id": 5})
    assert d.organization_external_id == "" and d.name == "Device 5"


def test_make_model_not_doubled_and_unicode():
    row = {"id": 1, "organizationId": 1, "system": {"manufacturer": "LENOVO", "model": "Lenovo ThinkPad T14"},
           "displayName": "Büro-PC «Empfang»", "lastLoggedInUser": {"userName": "CORP\\zoë", "logonTime": 1}}
    d = n.device(row)
    assert d.make_model == "Lenovo ThinkPad T14" and d.name == "Büro-PC «Empfang»" and d.last_user == "CORP\\zoë"


@pytest.mark.parametrize(("value", "expected"), [
    (1742412252, at(1742412252)), (1742412252.744, at(1742412252.744)), ("1742412252.5", at(1742412252.5)),
    ("2025-03-19T19:24:12Z", dt.datetime(2025, 3, 19, 19, 24, 12, tzinfo=UTC)),
    (1742412252744, None),  # milliseconds where seconds belong: unreadable, never divided by guess
    (None, None), ("", None), (True, None),
])
def test_seconds_never_guesses_milliseconds(value, expected):
    assert n.seconds(value) == expected


def test_huge_ip_and_mac_lists_are_bounded_and_deduplicated():
    row = {"id": 1, "organizationId": 1, "ipAddresses": [f"10.0.{i // 256}.{i % 256}" for i in range(5000)] + ["10.0.0.0"],
           "macAddresses": ["AA:AA:AA:AA:AA:AA", "aa:aa:aa:aa:aa:aa", None, 5]}
    d = n.device(row)
    assert len(d.local_ips) == 50 and d.local_ips[0] == "10.0.0.0"
    assert d.mac_addresses == ["aa:aa:aa:aa:aa:aa", "aa:aa:aa:aa:aa:aa", "5"]


@pytest.mark.parametrize(("node_class", "expected"), [
    ("WINDOWS_SERVER", ("server", True)), ("LINUX_WORKSTATION", ("workstation", True)), ("MAC", ("workstation", True)),
    ("APPLE_IPADOS", ("mobile", True)), ("NMS_SWITCH", ("network_device", True)), ("NMS_PRINTER", ("printer", True)),
    ("CLOUD_MONITOR_TARGET", ("other", True)), ("windows_server", ("server", True)),
    ("QUANTUM_TOASTER", ("other", False)), ("", ("other", False)), (None, ("other", False)),
])
def test_node_class_table(node_class, expected):
    assert n.node_class_asset_type(node_class) == expected


def test_node_class_overrides_and_unknown_reporting():
    unknown: set[str] = set()
    overrides = {"VMWARE_VM_GUEST": "workstation", "QUANTUM_TOASTER": "printer", "NMS_SWITCH": "not-a-type"}
    rows = [{"id": 1, "nodeClass": "VMWARE_VM_GUEST"}, {"id": 2, "nodeClass": "QUANTUM_TOASTER"},
            {"id": 3, "nodeClass": "NMS_SWITCH"}, {"id": 4, "nodeClass": "NEW_THING"}, {"id": 5, "nodeClass": "new_thing"}]
    types = [n.device(r, node_class_overrides=overrides, unknown_node_classes=unknown).asset_type for r in rows]
    assert types == ["workstation", "printer", "network_device", "other", "other"]
    assert unknown == {"NEW_THING"}


def test_every_table_value_is_an_asset_type():
    from assets.models import AssetType

    assert set(n.NODE_CLASS_ASSET_TYPES.values()) <= set(AssetType.values)
    assert set(n.ASSET_TYPES) == set(AssetType.values)


# -- activities ---------------------------------------------------------------------------------------------
def test_triggered_opens_with_organization_from_the_nested_device():
    a = n.alert_from_activity(TRIGGERED)
    assert a.event == AlertEventKind.TRIGGERED and a.external_id == TRIGGERED["seriesUid"]
    assert a.condition_key == "cond:9f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b|dev:345"
    assert a.severity == "high" and a.title == "Disk C: free space is less than 10%"
    assert a.device_external_id == "345" and a.device_name == "HDG-FRONT-01"
    assert a.organization_external_id == "org:12" and a.organization_name == "Harbor Dental Group"
    assert a.occurred_at == at(1742391675.556) and a.alert_type == "condition" and a.note == ""
    assert n.delivery_id(TRIGGERED) == "activity:881230"


def test_reset_resolves_the_same_series_with_another_delivery_id():
    a = n.alert_from_activity(RESET)
    assert a.event == AlertEventKind.RESOLVED and a.external_id == TRIGGERED["seriesUid"]
    assert a.condition_key == n.alert_from_activity(TRIGGERED).condition_key
    assert n.delivery_id(RESET) == "activity:881307" != n.delivery_id(TRIGGERED)
    assert a.severity == "medium"  # absent severity tolerated: the default


@pytest.mark.parametrize("code", ["RESET", "RESET_BY_PSA_TICKET_CALLBACK", "CUSTOM_HEALTH_STATUS_RESET"])
def test_every_reset_code_resolves(code):
    assert n.alert_from_activity({**RESET, "statusCode": code}).event == AlertEventKind.RESOLVED


def test_actionset_activity_type_counts_as_a_condition():
    assert n.alert_from_activity({**TRIGGERED, "activityType": "CONDITION_ACTIONSET"}).event == AlertEventKind.TRIGGERED


def test_acknowledged_is_an_update_with_a_note():
    body = {**TRIGGERED, "id": 881250, "statusCode": "ACKNOWLEDGED", "status": "Acknowledged", "userId": 7}
    del body["severity"]
    a = n.alert_from_activity(body)
    assert a.event == AlertEventKind.UPDATED and a.external_id == TRIGGERED["seriesUid"]
    assert a.note == "Acknowledged in NinjaOne by user 7: Disk C: free space is less than 10%"


@pytest.mark.parametrize("body", [
    {**TRIGGERED, "activityType": "SYSTEM", "statusCode": "NODE_CREATED"},
    {**TRIGGERED, "statusCode": "NODE_CREATED"},
    {**TRIGGERED, "activityType": "PATCH_MANAGEMENT", "statusCode": "TRIGGERED"},
    {**TRIGGERED, "statusCode": None},
    {"id": 1},
    {},
])
def test_anything_else_takes_no_ticket_action(body):
    assert n.alert_from_activity(body) is None
    assert "no ticket action" in n.activity_summary(body)


def test_status_display_text_is_never_used():
    body = {**TRIGGERED, "statusCode": "RESET", "status": "TRIGGERED"}  # AlgaPSA compared ``status``
    assert n.alert_from_activity(body).event == AlertEventKind.RESOLVED


def test_activity_type_falls_back_to_type_only_when_absent():
    body = {k: v for k, v in TRIGGERED.items() if k != "activityType"}
    assert n.alert_from_activity(body).event == AlertEventKind.TRIGGERED
    assert n.alert_from_activity({**body, "type": "Action Set"}) is None


@pytest.mark.parametrize(("severity", "priority", "expected"), [
    ("NONE", None, "info"), ("MINOR", None, "low"), ("MODERATE", None, "medium"), ("MAJOR", None, "high"),
    ("CRITICAL", None, "critical"), ("critical", None, "critical"), (None, None, "medium"),
    (None, "HIGH", "high"), (None, "LOW", "low"), ("MINOR", "HIGH", "low"), ("WEIRD", None, "medium"),
])
def test_severities(severity, priority, expected):
    body = {k: v for k, v in {**TRIGGERED, "severity": severity, "priority": priority}.items() if v is not None}
    assert n.alert_from_activity(body).severity == expected


def test_severity_overrides():
    assert n.alert_from_activity(TRIGGERED, {"major": "critical"}).severity == "critical"


def test_integer_activity_time_and_organization_from_references_only():
    body = copy.deepcopy(TRIGGERED)
    body["activityTime"] = 1592600612
    del body["device"]["organizationId"]
    a = n.alert_from_activity(body)
    assert a.occurred_at == at(1592600612) and a.organization_external_id == "org:12"


def test_params_start_date_is_milliseconds_and_used_only_as_a_fallback():
    body = copy.deepcopy(TRIGGERED)
    body["data"]["message"]["params"].update(start_date=1742391000123, end_date=1742391600456)
    assert n.params_window(body) == (at(1742391000.123), at(1742391600.456))
    assert n.alert_from_activity(body).occurred_at == at(1742391675.556)  # activityTime (seconds) wins
    del body["activityTime"]
    assert n.alert_from_activity(body).occurred_at == at(1742391000.123)


def test_channel_webhook_without_device_or_organization():
    body = {k: v for k, v in TRIGGERED.items() if k != "device"}
    a = n.alert_from_activity(body)
    assert a.device_external_id == "345" and a.organization_external_id is None and a.device_name == ""
    assert "device 345" in n.activity_summary(body)


def test_no_top_level_organization_id_is_needed_and_one_there_is_ignored():
    body = {**TRIGGERED, "organizationId": 999}
    assert n.alert_from_activity(body).organization_external_id == "org:12"


def test_without_series_uid_the_activity_is_its_own_alert():
    body = {k: v for k, v in TRIGGERED.items() if k != "seriesUid"}
    a = n.alert_from_activity(body)
    assert a.external_id == "activity:881230" and a.condition_key.startswith("cond:")
    assert n.alert_from_activity({k: v for k, v in body.items() if k != "id"}) is None


def test_titles_skip_bare_ids_and_empty_names():
    body = {**TRIGGERED, "message": "", "sourceName": "", "subject": "41"}
    assert n.alert_from_activity(body).title == "agent_cond_disk_free_space_lt"
    body["data"] = {}
    assert n.alert_from_activity(body).title == "NinjaOne condition on HDG-FRONT-01"


def test_quotes_and_unicode_in_messages():
    body = {**TRIGGERED, "message": 'Service "Spooler" stopped on Büro\nsecond line', "sourceName": "Svc ✓"}
    a = n.alert_from_activity(body)
    assert a.title == 'Service "Spooler" stopped on Büro' and a.message.endswith("second line")


# -- alerts (polling) -------------------------------------------------------------------------------------------
def test_alert_row_without_device_or_severity():
    a = n.alert_from_api(ALERT)
    assert a.external_id == ALERT["uid"] and a.event == AlertEventKind.TRIGGERED and a.severity == "medium"
    assert a.condition_key == "cond:9f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b|dev:345"
    assert a.organization_external_id is None and a.device_external_id == "345"
    assert a.occurred_at == at(1742391365.182) and a.title == "Disk C: free space is less than 10%"


def test_alert_row_matches_its_webhook_identity_and_condition():
    webhook = n.alert_from_activity(TRIGGERED)
    polled = n.alert_from_api({**ALERT, "device": TRIGGERED["device"]})
    assert (polled.external_id, polled.condition_key) == (webhook.external_id, webhook.condition_key)
    assert polled.organization_external_id == "org:12"


def test_alert_row_oddities():
    assert n.alert_from_api({"deviceId": 1}) is None
    row = {"uid": "u", "sourceName": "", "subject": "41", "message": None, "sourceType": "AGENT_OFFLINE",
           "createTime": 1742391365}
    a = n.alert_from_api(row)
    assert a.title == "AGENT_OFFLINE" and a.condition_key == "series:u" and a.device_external_id is None
    assert n.alert_from_api({"uid": "u2", "deviceId": 3, "sourceType": "AGENT_OFFLINE"}).condition_key == \
        "type:AGENT_OFFLINE|dev:3"


def test_many_alert_rows():
    rows = [{**ALERT, "uid": f"u-{i}", "deviceId": i} for i in range(20000)]
    alerts = [n.alert_from_api(r) for r in rows]
    assert len({a.external_id for a in alerts}) == 20000


# -- inventory --------------------------------------------------------------------------------------------------
def test_software_rows():
    rows = [
        {"name": "7-Zip 23.01 (x64)", "version": "23.01", "publisher": "Igor Pavlov", "installDate": "2024-01-05T00:00:00Z",
         "location": "C:\\Program Files\\7-Zip\\", "size": 5_341_184, "productCode": "", "deviceId": 345,
         "timestamp": 1742412252.7},
        {"name": "Notepad++ \"portable\"", "version": None, "publisher": None, "installDate": None, "size": None,
         "deviceId": 345},
        {"name": "", "deviceId": 345},
        {"name": "Orphan"},
        {"name": "Epoch dated", "installDate": 1704412800, "deviceId": 346},
    ]
    grouped = n.group_by_device(rows, n.software)
    assert list(grouped) == ["345", "346"]
    first, second = grouped["345"]
    assert (first.name, first.version, first.publisher, first.installed_on, first.size) == (
        "7-Zip 23.01 (x64)", "23.01", "Igor Pavlov", "2024-01-05T00:00:00Z", "5341184")
    assert (second.name, second.version, second.installed_on, second.size) == ('Notepad++ "portable"', "", "", "")
    assert grouped["346"][0].installed_on == "2024-01-05"


def test_patch_rows_pending_and_installed():
    pending = [
        {"id": "p-1", "name": "2025-03 Cumulative Update", "severity": "CRITICAL", "status": "MANUAL",
         "type": "SECURITY_UPDATES", "kbNumber": "KB5053598", "deviceId": 345, "timestamp": 1},
        {"id": "p-2", "name": "Driver", "severity": None, "status": "REJECTED", "type": "DRIVER_UPDATES", "deviceId": 345},
        {"id": "p-3", "name": "Failed one", "status": "FAILED", "deviceId": 345},
        {"id": "p-4", "name": "Approved", "status": "APPROVED", "deviceId": 345},
        {"name": "", "kbNumber": "", "deviceId": 345},
    ]
    installed = [{"id": "p-9", "name": "Installed", "status": "INSTALLED", "installedAt": 1742300000.5, "deviceId": 345},
                 {"name": "No id", "kbNumber": "KB1", "status": "FAILED", "installedAt": 1742300000, "deviceId": 345}]
    records = n.group_by_device(pending, n.patch)["345"] + n.group_by_device(
        installed, lambda r: n.patch(r, installed=True))["345"]
    assert [(p.external_id, p.state) for p in records] == [
        ("p-1", "pending"), ("p-2", "rejected"), ("p-3", "failed"), ("p-4", "approved"), ("p-9", "installed"),
        ("kb:KB1", "failed")]
    assert records[0].severity == "critical" and records[0].kind == "security_updates" and records[0].kb == "KB5053598"
    assert records[4].installed_at == at(1742300000.5)


def test_fingerprint_is_order_independent_and_changes_with_content():
    a = n.software({"name": "A", "version": "1"})
    b = n.software({"name": "B", "version": "2"})
    assert n.fingerprint([a, b]) == n.fingerprint([b, a])
    assert n.fingerprint([a, b]) != n.fingerprint([a, n.software({"name": "B", "version": "3"})])
