"""NinjaOne payloads -> normalized records: organizations and locations, devices, activities
(webhooks), alerts (polling), patches and software (query rows).

Tolerant where the sources disagree (../shared/providers/ninjaone.md, "Uncertain" lines):
timestamps are epoch **seconds**, int or float (ISO text is read too, since some clients send it;
milliseconds only where NinjaOne uses them: ``data.message.params.start_date/end_date``); optional
fields are omitted or null; ``severity``/``priority`` are often absent; a webhook's organization is
on its nested device (``organizationId`` or ``references.organization.id``), never top level; an
alert row may lack ``device``; a VMware host has ``vendor``/``serviceTag``/``releaseName`` at the top
instead of ``system``/``os``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from integrations.coerce import (
    SeverityMap,
    as_dict,
    as_list,
    boolean,
    dig,
    epoch_millis,
    epoch_seconds,
    first_text,
    int_id,
    iso_datetime,
    number,
    str_id,
    text,
)
from integrations.records import (
    AlertEventKind,
    DeviceRecord,
    ExternalOrg,
    NormalizedAlert,
    PatchRecord,
    SoftwareRecord,
)

SLUG = "ninjaone"

# NinjaOne's activity severities -> ours; absent (often) -> the default. Admins override per integration.
SEVERITY_MAP = SeverityMap(
    table={"none": "info", "minor": "low", "moderate": "medium", "major": "high", "critical": "critical"},
    default="medium",
    labels={"none": "NONE", "minor": "MINOR", "moderate": "MODERATE", "major": "MAJOR", "critical": "CRITICAL"},
)
# Used only when an activity has a priority but no severity.
PRIORITY_MAP = SeverityMap(table={"none": "info", "low": "low", "medium": "medium", "high": "high"})

# nodeClass -> assets.AssetType value. Data, shown on the card; an admin's rows override it.
NODE_CLASS_ASSET_TYPES: Mapping[str, str] = {
    "WINDOWS_WORKSTATION": "workstation",
    "LINUX_WORKSTATION": "workstation",
    "MAC": "workstation",
    "NMS_COMPUTER": "workstation",
    "WINDOWS_SERVER": "server",
    "LINUX_SERVER": "server",
    "MAC_SERVER": "server",
    "NMS_SERVER": "server",
    "VMWARE_VM_HOST": "server",
    "HYPERV_VMM_HOST": "server",
    "NMS_VM_HOST": "server",
    "VMWARE_VM_GUEST": "server",
    "HYPERV_VMM_GUEST": "server",
    "NMS_VIRTUAL_MACHINE": "server",
    "ANDROID": "mobile",
    "AOSP": "mobile",
    "APPLE_IOS": "mobile",
    "APPLE_IPADOS": "mobile",
    "NMS_PHONE": "mobile",
    "NMS_SWITCH": "network_device",
    "NMS_ROUTER": "network_device",
    "NMS_FIREWALL": "network_device",
    "NMS_PRIVATE_NETWORK_GATEWAY": "network_device",
    "NMS_WAP": "network_device",
    "NMS_APPLIANCE": "network_device",
    "NMS_IPSLA": "network_device",
    "NMS_DIAL_MANAGER": "network_device",
    "NMS_NETWORK_MANAGEMENT_AGENT": "network_device",
    "NMS_PRINTER": "printer",
    "NMS_SCANNER": "printer",
    "CLOUD_MONITOR_TARGET": "other",
    "NMS_OTHER": "other",
    "MANAGED_DEVICE": "other",
    "UNMANAGED_DEVICE": "other",
}
ASSET_TYPES = ("workstation", "server", "network_device", "mobile", "printer", "other")
_PLATFORMS = (("WINDOWS", "windows"), ("LINUX", "linux"), ("MAC", "macos"), ("ANDROID", "android"),
              ("AOSP", "android"), ("APPLE_", "ios"), ("VMWARE", "vmware"), ("HYPERV", "hyperv"),
              ("NMS_", "network"), ("CLOUD_", "cloud"))

# Webhook activities: activityType + statusCode decide (never the display text ``status``).
ALERT_ACTIVITY_TYPES = frozenset({"CONDITION", "CONDITION_ACTIONSET"})
OPEN_CODES = frozenset({"TRIGGERED"})
RESOLVE_CODES = frozenset({"RESET", "RESET_BY_PSA_TICKET_CALLBACK", "CUSTOM_HEALTH_STATUS_RESET"})
NOTE_CODES = frozenset({"ACKNOWLEDGED"})
# What our registered webhook asks for (PUT /v2/webhook ``activities``).
WEBHOOK_STATUS_CODES = ("TRIGGERED", "RESET", "RESET_BY_PSA_TICKET_CALLBACK", "CUSTOM_HEALTH_STATUS_RESET",
                        "ACKNOWLEDGED")
ALERT_TYPE = "condition"
# OS patch statuses (/v2/queries/os-patches) -> PATCH_STATES.
PATCH_STATUS = {"MANUAL": "pending", "PENDING": "pending", "DELAYED": "pending", "APPROVED": "approved",
                "FAILED": "failed", "REJECTED": "rejected", "INSTALLED": "installed"}
_TITLE_MAX = 255


# -- scalars ------------------------------------------------------------------------------------
def seconds(value: Any) -> dt.datetime | None:
    """NinjaOne's timestamps: epoch seconds (int or float, or their text); ISO text tolerated.

    Never guesses milliseconds: a value too large for seconds is unreadable (None), not divided."""
    if isinstance(value, str) and number(value) is None:
        return iso_datetime(value)
    return epoch_seconds(value)


def org_ext(org_id: Any) -> str:
    return f"org:{org_id}"


def loc_ext(location_id: Any) -> str:
    return f"loc:{location_id}"


def parse_ext(external_id: str) -> tuple[str, int | None]:
    """("org" | "loc" | "", numeric id) of one of our external ids."""
    kind, _, rest = (external_id or "").partition(":")
    return (kind, int_id(rest)) if kind in ("org", "loc") else ("", None)


# -- organizations ------------------------------------------------------------------------------
def organizations(orgs: Iterable[dict[str, Any]],
                  locations: Iterable[dict[str, Any]] | None = None) -> list[ExternalOrg]:
    """Organizations, each followed by its locations (children, ``loc:<id>`` under ``org:<id>``).

    Locations come nested (``organizations-detailed``) or as ``/v2/locations`` rows with an
    ``organizationId``; a location whose organization is not listed is dropped.
    """
    result: list[ExternalOrg] = []
    names: dict[int, str] = {}
    children: dict[int, list[ExternalOrg]] = {}
    seen_locations: set[int] = set()

    def add_location(org_id: int, loc: Any) -> None:
        lid = int_id(loc.get("id")) if isinstance(loc, dict) else None
        if lid is None or lid in seen_locations:
            return
        seen_locations.add(lid)
        children.setdefault(org_id, []).append(ExternalOrg(
            external_id=loc_ext(lid), name=text(loc.get("name"), 500) or f"Location {lid}",
            parent_external_id=org_ext(org_id), kind="location"))

    for org in orgs:
        oid = int_id(org.get("id")) if isinstance(org, dict) else None
        if oid is None or oid in names:
            continue
        names[oid] = text(org.get("name"), 500) or f"Organization {oid}"
        for loc in as_list(org.get("locations")):
            add_location(oid, loc)
    for loc in locations or ():
        oid = int_id(as_dict(loc).get("organizationId"))
        if oid in names:
            add_location(oid, loc)
    for oid, name in names.items():
        result.append(ExternalOrg(external_id=org_ext(oid), name=name, kind="organization"))
        result.extend(children.get(oid, []))
    return result


def has_locations(orgs: Iterable[dict[str, Any]]) -> bool:
    return any(isinstance(org, dict) and "locations" in org for org in orgs)


# -- devices ------------------------------------------------------------------------------------
def node_class_asset_type(node_class: Any, overrides: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """(asset type, known) for a nodeClass: an admin's row, else the table, else ("other", False)."""
    key = text(node_class).upper()
    if overrides:
        chosen = overrides.get(key) or overrides.get(text(node_class))
        if chosen in ASSET_TYPES:
            return chosen, True
    if key in NODE_CLASS_ASSET_TYPES:
        return NODE_CLASS_ASSET_TYPES[key], True
    return "other", False


def platform_of(node_class: Any) -> str:
    key = text(node_class).upper()
    return next((plat for prefix, plat in _PLATFORMS if key.startswith(prefix)), "")


def device_org(device: Mapping[str, Any]) -> int | None:
    return int_id(device.get("organizationId")) if device.get("organizationId") is not None else int_id(
        dig(device, "references.organization.id"))


def device_location(device: Mapping[str, Any]) -> int | None:
    return int_id(device.get("locationId")) if device.get("locationId") is not None else int_id(
        dig(device, "references.location.id"))


def device_name(device: Mapping[str, Any]) -> str:
    return first_text(device.get("displayName"), device.get("systemName"), device.get("dnsName"),
                      device.get("netbiosName"), limit=255)


def last_user(value: Any) -> str:
    """``lastLoggedInUser`` as text ("DOMAIN\\user"), or the ``{userName, logonTime}`` object."""
    if isinstance(value, dict):
        value = value.get("userName") or value.get("username") or value.get("name")
    return text(value, 255, none_strings=True)


def _strings(values: Any, limit: int = 50) -> list[str]:
    if isinstance(values, str):
        values = [part for part in values.replace(";", ",").split(",")]
    out: list[str] = []
    for value in as_list(values):
        item = text(value, 100)
        if item and item not in out:
            out.append(item)
    return out[:limit]


def _make_model(device: Mapping[str, Any]) -> str:
    system = as_dict(device.get("system"))
    make = first_text(system.get("manufacturer"), device.get("vendor"), device.get("manufacturer"))
    model = first_text(system.get("model"), device.get("model"))
    if make and model and model.lower().startswith(make.lower()):
        return model[:255]
    return " ".join(part for part in (make, model) if part)[:255]


def _serial(device: Mapping[str, Any]) -> str:
    system = as_dict(device.get("system"))
    return first_text(system.get("serialNumber"), system.get("biosSerialNumber"), device.get("serialNumber"),
                      device.get("serviceTag"), limit=255)


def _os(device: Mapping[str, Any]) -> str:
    os_ = device.get("os")
    name = text(as_dict(os_).get("name")) if isinstance(os_, dict) else text(os_)
    return first_text(name, device.get("osName"), device.get("releaseName"), limit=255)


def device(row: Mapping[str, Any], *, node_class_overrides: Mapping[str, str] | None = None,
           unknown_node_classes: set[str] | None = None) -> DeviceRecord | None:
    """One ``/v2/devices(-detailed)`` or ``/v2/device/{id}`` record; None without an id.

    A node class the table does not know maps to "other" and is added to ``unknown_node_classes``.
    """
    did = int_id(row.get("id"))
    if did is None:
        return None
    node_class = text(row.get("nodeClass"))
    asset_type, known = node_class_asset_type(node_class, node_class_overrides)
    if not known and node_class and unknown_node_classes is not None:
        unknown_node_classes.add(node_class.upper())
    org, loc = device_org(row), device_location(row)
    offline = boolean(row.get("offline"))
    return DeviceRecord(
        external_id=str(did),
        organization_external_id=org_ext(org) if org is not None else "",
        name=device_name(row) or f"Device {did}",
        hostname=first_text(row.get("systemName"), row.get("netbiosName"), row.get("dnsName"), limit=255),
        serial_number=_serial(row),
        asset_type=asset_type,
        os=_os(row),
        platform=platform_of(node_class),
        make_model=_make_model(row),
        status="unknown" if offline is None else ("offline" if offline else "online"),
        last_seen=seconds(row.get("lastContact")),
        last_user=last_user(row.get("lastLoggedInUser")),
        public_ip=text(row.get("publicIP"), 100),
        local_ips=_strings(row.get("ipAddresses")),
        mac_addresses=[m.lower() for m in _strings(row.get("macAddresses"))],
        site_external_id=loc_ext(loc) if loc is not None else None,
        raw=dict(row),
    )


# -- activities (webhooks) ------------------------------------------------------------------------
def activity_type(body: Mapping[str, Any]) -> str:
    # ``type`` ("Condition") is the display form of activityType; read it only when activityType is absent.
    return (text(body.get("activityType")) or text(body.get("type")).replace(" ", "_")).upper()


def activity_kind(body: Mapping[str, Any]) -> str | None:
    """"open", "resolve", "note", or None (stored, no ticket action)."""
    if activity_type(body) not in ALERT_ACTIVITY_TYPES:
        return None
    code = text(body.get("statusCode")).upper()
    if code in OPEN_CODES:
        return "open"
    if code in RESOLVE_CODES:
        return "resolve"
    if code in NOTE_CODES:
        return "note"
    return None


def delivery_id(body: Mapping[str, Any]) -> str | None:
    """The activity id: one per event (a trigger and its reset have different ids)."""
    activity_id = str_id(body.get("id"))
    return f"activity:{activity_id}" if activity_id else None


def severity(body: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> str:
    word = text(body.get("severity")).lower()
    if word in SEVERITY_MAP.table or (overrides and word in overrides):
        return SEVERITY_MAP.lookup(word, overrides)
    priority = text(body.get("priority")).lower()
    if priority in PRIORITY_MAP.table:
        return PRIORITY_MAP.lookup(priority)
    return SEVERITY_MAP.lookup(word, overrides)  # absent or unknown: the default


def condition_key(source_config_uid: Any, device_id: Any, series_uid: Any = None, source_type: Any = None) -> str:
    """The same condition on the same device: ``sourceConfigUid`` + device (else the series itself)."""
    source, device = text(source_config_uid), text(device_id)
    if source:
        return f"cond:{source}|dev:{device or '?'}"
    if text(source_type) and device:
        return f"type:{text(source_type).upper()}|dev:{device}"
    return f"series:{text(series_uid) or '?'}"  # never group alerts we cannot tell apart


def _title(*candidates: Any) -> str:
    for candidate in candidates:
        value = text(candidate)
        if value and not value.isdigit():  # ``subject`` may be a bare event id such as "41"
            return value.splitlines()[0].strip()[:_TITLE_MAX]
    return ""


def condition_params(body: Mapping[str, Any]) -> dict[str, Any]:
    return as_dict(dig(body, "data.message.params"))


def params_window(body: Mapping[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``data.message.params.start_date/end_date``: epoch milliseconds (unlike every other time)."""
    params = condition_params(body)
    return epoch_millis(params.get("start_date")), epoch_millis(params.get("end_date"))


def _org_fields(device_obj: Mapping[str, Any]) -> tuple[str | None, str]:
    org = device_org(device_obj)
    if org is None:
        return None, ""
    return org_ext(org), text(dig(device_obj, "references.organization.name"), 500)


def ack_note(body: Mapping[str, Any]) -> str:
    who = str_id(body.get("userId"))
    message = text(body.get("message"))
    note = "Acknowledged in NinjaOne" + (f" by user {who}" if who else "")
    return f"{note}: {message}" if message else note + "."


def alert_from_activity(body: Mapping[str, Any], severity_overrides: Mapping[str, str] | None = None,
                        ) -> NormalizedAlert | None:
    """A webhook activity -> one alert event; None for activities that take no ticket action."""
    kind = activity_kind(body)
    if kind is None:
        return None
    device_obj = as_dict(body.get("device"))
    device_id = str_id(body.get("deviceId")) or str_id(device_obj.get("id"))
    series = text(body.get("seriesUid"))
    external_id = series or (f"activity:{str_id(body.get('id'))}" if str_id(body.get("id")) else "")
    if not external_id:
        return None  # nothing to correlate with: kept in the event log only
    org, org_name = _org_fields(device_obj)
    code = text(dig(body, "data.message.code"))
    started, _ended = params_window(body)
    event = {"open": AlertEventKind.TRIGGERED, "resolve": AlertEventKind.RESOLVED,
             "note": AlertEventKind.UPDATED}[kind]
    return NormalizedAlert(
        provider=SLUG,
        external_id=external_id,
        condition_key=condition_key(body.get("sourceConfigUid"), device_id, series),
        event=event,
        severity=severity(body, severity_overrides),
        title=_title(body.get("message"), body.get("sourceName"), body.get("subject"), code)
        or f"NinjaOne condition on {device_name(device_obj) or 'device ' + (device_id or '?')}",
        message=text(body.get("message")),
        alert_type=ALERT_TYPE,
        device_external_id=device_id,
        device_name=device_name(device_obj),
        serial_number=_serial(device_obj),
        organization_external_id=org,
        organization_name=org_name,
        occurred_at=seconds(body.get("activityTime")) or (started if kind == "open" else None),
        note=ack_note(body) if kind == "note" else "",
        raw=dict(body),
    )


def activity_summary(body: Mapping[str, Any]) -> str:
    """One line for the event log (intake cleans and clips it)."""
    code = text(body.get("statusCode")).upper() or "?"
    device_obj = as_dict(body.get("device"))
    who = device_name(device_obj) or (f"device {text(body.get('deviceId'))}" if body.get("deviceId") else "")
    what = _title(body.get("message"), body.get("sourceName"), body.get("subject"))
    action = {"open": "", "resolve": "", "note": ""}.get(activity_kind(body) or "", " (no ticket action)")
    return f"{activity_type(body) or 'ACTIVITY'} {code}{action}: {who} {what}".strip()


# -- alerts (polling) -----------------------------------------------------------------------------
def alert_from_api(row: Mapping[str, Any], severity_overrides: Mapping[str, str] | None = None,
                   ) -> NormalizedAlert | None:
    """A ``GET /v2/alerts`` row: an active alert (no severity there; ``device`` may be absent)."""
    uid = text(row.get("uid"))
    if not uid:
        return None
    device_obj = as_dict(row.get("device"))
    device_id = str_id(row.get("deviceId")) or str_id(device_obj.get("id"))
    org, org_name = _org_fields(device_obj)
    return NormalizedAlert(
        provider=SLUG,
        external_id=uid,
        condition_key=condition_key(row.get("sourceConfigUid"), device_id, uid, row.get("sourceType")),
        event=AlertEventKind.TRIGGERED,
        severity=severity(row, severity_overrides),
        title=_title(row.get("message"), row.get("sourceName"), row.get("subject"), dig(row, "data.message.code"),
                     row.get("sourceType")) or "NinjaOne alert",
        message=text(row.get("message")),
        alert_type=ALERT_TYPE,
        device_external_id=device_id,
        device_name=device_name(device_obj),
        serial_number=_serial(device_obj),
        organization_external_id=org,
        organization_name=org_name,
        occurred_at=seconds(row.get("createTime")) or seconds(row.get("updateTime")),
        raw=dict(row),
    )


# -- inventory (query rows) ---------------------------------------------------------------------------
def row_device(row: Mapping[str, Any]) -> str | None:
    return str_id(row.get("deviceId"))


def software(row: Mapping[str, Any]) -> SoftwareRecord | None:
    name = text(row.get("name"), 500)
    if not name:
        return None
    size = number(row.get("size"))
    installed = row.get("installDate")
    # A date-time string per N-OAS; an epoch (seconds) is read as such and shown as a date.
    when = seconds(installed) if isinstance(installed, (int, float)) else None
    return SoftwareRecord(
        name=name,
        version=text(row.get("version"), 200),
        publisher=text(row.get("publisher"), 300),
        installed_on=(when.date().isoformat() if when else text(installed, 100)),
        size=str(int(size)) if size is not None and size >= 0 else "",
    )


def patch(row: Mapping[str, Any], *, installed: bool = False) -> PatchRecord | None:
    """An ``os-patches`` row (pending/approved/failed/rejected) or an ``os-patch-installs`` row."""
    name = first_text(row.get("name"), row.get("title"), limit=1000)
    kb = text(row.get("kbNumber"), 50)
    patch_id = str_id(row.get("id")) or (f"kb:{kb}" if kb else "") or (
        "name:" + hashlib.sha256(name.encode()).hexdigest()[:24] if name else "")
    if not patch_id:
        return None
    status = text(row.get("status")).upper()
    if installed:
        state = "failed" if status == "FAILED" else "installed"
    else:
        state = PATCH_STATUS.get(status, "pending")
    return PatchRecord(
        external_id=patch_id,
        name=name or kb or patch_id,
        state=state,
        severity=text(row.get("severity"), 50).lower(),
        kind=text(row.get("type"), 100).lower(),
        kb=kb,
        installed_at=seconds(row.get("installedAt")),
    )


def group_by_device(rows: Iterable[Mapping[str, Any]], fn: Callable[[Mapping[str, Any]], Any]) -> dict[str, list]:
    """Query rows (every device mixed) -> {device id: [records]}; rows without a device are dropped."""
    grouped: dict[str, list] = {}
    for row in rows:
        device_id = row_device(row)
        record = fn(row) if device_id else None
        if record is not None:
            grouped.setdefault(device_id, []).append(record)
    return grouped


def fingerprint(records: Iterable[Any]) -> str:
    """A stable digest of a device's inventory, so an unchanged device is not rewritten."""
    rows = sorted(json.dumps(getattr(r, "__dict__", r), sort_keys=True, default=str) for r in records)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
