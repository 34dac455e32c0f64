"""Level payloads -> normalized records: groups, devices, alerts (REST, webhook, automation route),
and live directory changes from device/group webhook events.

Tolerant of what the sources disagree on (../shared/providers/level.md, "Uncertain" lines):
``major_version`` string or number, ``flag`` / ``patch_compliance`` of any type, ``child_ids`` and
counts possibly absent from group lists, ``payload`` string or object (never relied on), IPs as a
list or one string, ``dns_servers`` of any shape.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from integrations.coerce import (
    SeverityMap,
    any_datetime,
    as_dict,
    as_list,
    boolean,
    first_text,
    int_id,
    number,
    str_id,
    text,
)
from integrations.records import (
    AlertEventKind,
    DeviceRecord,
    DirectoryChange,
    DirectoryChangeKind,
    ExternalOrg,
    NormalizedAlert,
)

SLUG = "level"
DEVICE_URL = "https://app.level.io/devices/{id}"

# Level's four alert severities (API values lower case) -> ours. Admins override per integration.
SEVERITY_MAP = SeverityMap(
    table={"information": "info", "warning": "medium", "critical": "high", "emergency": "critical"},
    default="medium",
    labels={"information": "Information", "warning": "Warning", "critical": "Critical", "emergency": "Emergency"},
)
# Spellings seen or plausible for the same four words.
_SEVERITY_ALIASES = {"info": "information", "informational": "information", "warn": "warning"}

# Level device role -> assets.AssetType value; anything else is "other".
ROLE_TO_ASSET_TYPE: Mapping[str, str] = {
    "workstation": "workstation",
    "desktop": "workstation",
    "laptop": "workstation",
    "server": "server",
    "domain_controller": "server",
    "network_device": "network_device",
    "mobile": "mobile",
    "printer": "printer",
}

ALERT_TYPE = "monitor"  # native alerts come from Level's monitors
AUTOMATION_ALERT_TYPE = "automation"
# External ids of alerts from the automation route (they are not Level alerts).
AUTOMATION_PREFIX = "automation:"
_CONDITION_NAME_MAX = 200
_SPACES = re.compile(r"\s+")

GroupLookup = Callable[[str], "str | None"]
_MISSING: Any = object()  # a group without a parent_id key (not the same as parent_id: null)


# -- groups -----------------------------------------------------------------------------------
def organizations(groups: Iterable[dict[str, Any]]) -> list[ExternalOrg]:
    """Every group as an ExternalOrg, parents before children.

    The tree comes from ``parent_id`` (``child_ids`` fills in a parent only when a group has no
    ``parent_id`` key at all). A parent that is not among the groups, a group that is its own
    parent, or a cycle, makes the group a root: the tree is always a forest.
    """
    names: dict[str, str] = {}
    counts: dict[str, int | None] = {}
    parent: dict[str, str | None] = {}
    claimed_by: dict[str, str] = {}
    order: list[str] = []
    for group in groups:
        gid = str_id(group.get("id")) if isinstance(group, dict) else None
        if gid is None or gid in names:
            continue
        order.append(gid)
        names[gid] = text(group.get("name"), 500) or f"Group {gid}"
        counts[gid] = int_id(group.get("device_count"))  # the group's own devices (lists may omit it)
        parent[gid] = str_id(group.get("parent_id")) if "parent_id" in group else _MISSING
        for child in as_list(group.get("child_ids")):
            cid = str_id(child)
            if cid is not None:
                claimed_by.setdefault(cid, gid)
    for gid in order:
        if parent[gid] is _MISSING:
            parent[gid] = claimed_by.get(gid)
        if parent[gid] is not None and (parent[gid] == gid or parent[gid] not in names):
            parent[gid] = None
    _break_cycles(order, parent)
    depth: dict[str, int] = {}
    for gid in order:
        depth[gid] = _depth(gid, parent, depth)
    ranked = sorted(range(len(order)), key=lambda i: (depth[order[i]], i))
    return [
        ExternalOrg(external_id=order[i], name=names[order[i]], parent_external_id=parent[order[i]], kind="group",
                    device_count=counts[order[i]])
        for i in ranked
    ]


def _break_cycles(order: list[str], parent: dict[str, str | None]) -> None:
    """In each cycle, the smallest id becomes a root (deterministic whatever the listing order)."""
    done: set[str] = set()
    for start in order:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in done and node not in on_path:
            path.append(node)
            on_path.add(node)
            node = parent[node]
        if node is not None and node in on_path:
            cycle = path[path.index(node):]
            parent[min(cycle)] = None
        done.update(path)


def _depth(gid: str, parent: dict[str, str | None], memo: dict[str, int]) -> int:
    chain: list[str] = []
    node: str | None = gid
    while node is not None and node not in memo:
        chain.append(node)
        node = parent[node]
    base = memo[node] + 1 if node is not None else 0
    for i, item in enumerate(reversed(chain)):
        memo[item] = base + i
    return memo[gid]


def organization(group: dict[str, Any]) -> ExternalOrg | None:
    """One group (a webhook's ``data``); its parent is taken as given."""
    gid = str_id(group.get("id"))
    if gid is None:
        return None
    parent = str_id(group.get("parent_id"))
    return ExternalOrg(external_id=gid, name=text(group.get("name"), 500) or f"Group {gid}",
                       parent_external_id=parent if parent != gid else None, kind="group",
                       device_count=int_id(group.get("device_count")))


# -- devices ----------------------------------------------------------------------------------
def asset_type(role: Any) -> str:
    word = _SPACES.sub("_", text(role).lower().replace("-", "_"))
    return ROLE_TO_ASSET_TYPE.get(word, "other")


def version_text(value: Any) -> str:
    """``major_version`` is a string in some sources and a number in others: "11" either way."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, (int, float)):
        num = number(value)
        if num is None:
            return ""
        return str(int(num)) if num.is_integer() else str(num)
    return text(value, 50, none_strings=True)


def os_name(device: dict[str, Any]) -> str:
    os_info = as_dict(device.get("operating_system"))
    full = text(os_info.get("full_operating_system"), 255) or text(device.get("operating_system"), 255)
    if full:
        return full
    # Without include_operating_system: the platform and major version are the best we have.
    major = version_text(os_info.get("major_version"))
    return " ".join(p for p in (text(device.get("platform"), 50), major) if p)


def make_model(device: dict[str, Any]) -> str:
    make, model = text(device.get("manufacturer"), 200), text(device.get("model"), 200)
    if make and model.lower().startswith(make.lower()):
        return model  # "Dell Inc. OptiPlex" already names the maker
    return " ".join(p for p in (make, model) if p)


def _ips(value: Any) -> list[str]:
    items = as_list(value) if isinstance(value, (list, tuple)) else text(value).replace(";", ",").split(",")
    out = []
    for item in items:
        raw = text(item).split("/")[0].strip()  # tolerate CIDR notation
        try:
            ip = ipaddress.ip_address(raw.split("%")[0])
        except ValueError:
            continue
        if not (ip.is_loopback or ip.is_unspecified):
            out.append(str(ip))
    return out


def _mac(value: Any) -> str:
    raw = re.sub(r"[^0-9A-Fa-f]", "", text(value))
    if len(raw) != 12 or set(raw) == {"0"}:
        return ""
    raw = raw.upper()
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def addresses(device: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(IP addresses, MAC addresses) from ``network_interfaces``, each once, in Level's order."""
    ips: list[str] = []
    macs: list[str] = []
    for nic in as_list(device.get("network_interfaces")):
        nic = as_dict(nic)
        for ip in _ips(nic.get("ip_addresses")) + _ips(nic.get("ip_address")):
            if ip not in ips:
                ips.append(ip)
        mac = _mac(nic.get("mac_address"))
        if mac and mac not in macs:
            macs.append(mac)
    return ips, macs


def status(online: Any) -> str:
    value = boolean(online)
    return "unknown" if value is None else ("online" if value else "offline")


def device(data: dict[str, Any], group_id: str | None = None) -> DeviceRecord | None:
    """A device (REST list/detail or webhook ``data``); ``raw`` keeps it whole for field mapping
    (disks, security, tags, flag, custom fields...)."""
    device_id = str_id(data.get("id"))
    if device_id is None:
        return None
    hostname = text(data.get("hostname"), 255)
    ips, macs = addresses(data)
    public_ip = _ips(first_text(data.get("public_ip_address"), data.get("public_ip")))
    return DeviceRecord(
        external_id=device_id,
        organization_external_id=group_id or str_id(data.get("group_id")) or "",
        name=hostname or text(data.get("nickname"), 255) or device_id,
        hostname=hostname,
        serial_number=text(data.get("serial_number"), 255, none_strings=True),
        asset_type=asset_type(data.get("role")),
        os=os_name(data),
        platform=text(data.get("platform"), 50).lower(),
        make_model=make_model(data),
        status=status(data.get("online")),
        last_seen=any_datetime(data.get("last_seen_at")),
        last_user=text(data.get("last_logged_in_user"), 255, none_strings=True),
        public_ip=public_ip[0] if public_ip else "",
        local_ips=[ip for ip in ips if ip not in public_ip],
        mac_addresses=macs,
        remote_access_url=DEVICE_URL.format(id=device_id),
        raw=data,
    )


# -- alerts -----------------------------------------------------------------------------------
def severity(value: Any, overrides: Mapping[str, str] | None = None) -> str:
    word = text(value).lower()
    return SEVERITY_MAP.lookup(_SEVERITY_ALIASES.get(word, word), overrides)


def condition_key(device_id: str | None, name: str, alert_id: str) -> str:
    """The same monitor on the same device: device id + the alert's name.

    A Level alert id names one alert, which Level reopens itself when it fires again; a new id for
    the same monitor on the same device (after the old one was deleted, or across Level's own
    re-creation) is still the same condition, and its name is the monitor's name. The description
    is not part of it: it carries measured values ("free space < 10%"). Without a device or a
    name there is nothing to group on, so the alert is its own condition.
    """
    label = _SPACES.sub(" ", name).strip().casefold()
    if not device_id or not label:
        return f"alert:{alert_id}"
    if len(label) > _CONDITION_NAME_MAX:
        label = "sha256:" + hashlib.sha256(label.encode()).hexdigest()
    return f"device:{device_id}|{label}"


def _title(name: str, description: str, hostname: str) -> str:
    first = description.splitlines()[0].strip() if description else ""
    return (name or first or f"{hostname or 'Device'}: Level alert")[:255]


def _group(device_id: str | None, group_of_device: GroupLookup | None) -> str | None:
    if not device_id or group_of_device is None:
        return None
    return group_of_device(device_id)


def alert(
    data: dict[str, Any],
    *,
    event: str | None = None,
    group_of_device: GroupLookup | None = None,
    overrides: Mapping[str, str] | None = None,
    occurred_at: dt.datetime | None = None,
) -> NormalizedAlert | None:
    """A Level alert (REST row, ``GET /alerts/{id}``, or an alert webhook's ``data``).

    ``event`` wins when given (``alert_resolved`` -> resolved); otherwise ``is_resolved`` /
    ``resolved_at`` decide. Level's alerts carry no group: ``group_of_device(device_id)`` finds it.
    """
    alert_id = str_id(data.get("id"))
    if alert_id is None:
        return None
    if event is None:
        resolved = boolean(data.get("is_resolved"))
        if resolved is None:
            resolved = any_datetime(data.get("resolved_at")) is not None
        event = AlertEventKind.RESOLVED if resolved else AlertEventKind.TRIGGERED
    device_id = str_id(data.get("device_id"))
    name = text(data.get("name"), 255)
    description = text(data.get("description"))
    hostname = text(data.get("device_hostname"), 255)
    when = any_datetime(data.get("resolved_at")) if event == AlertEventKind.RESOLVED else None
    return NormalizedAlert(
        provider=SLUG,
        external_id=alert_id,
        condition_key=condition_key(device_id, name, alert_id),
        event=event,
        severity=severity(data.get("severity"), overrides),
        title=_title(name, description, hostname),
        message=description,
        alert_type=ALERT_TYPE,
        device_external_id=device_id,
        device_name=hostname,
        organization_external_id=_group(device_id, group_of_device),
        occurred_at=when or any_datetime(data.get("started_at")) or occurred_at,
        raw=data,
    )


# -- the automation route ---------------------------------------------------------------------
AUTOMATION_EVENTS = {
    "trigger": AlertEventKind.TRIGGERED, "triggered": AlertEventKind.TRIGGERED, "active": AlertEventKind.TRIGGERED,
    "alert_active": AlertEventKind.TRIGGERED, "fail": AlertEventKind.TRIGGERED, "failed": AlertEventKind.TRIGGERED,
    "resolve": AlertEventKind.RESOLVED, "resolved": AlertEventKind.RESOLVED, "alert_resolved": AlertEventKind.RESOLVED,
    "ok": AlertEventKind.RESOLVED, "recovered": AlertEventKind.RESOLVED,
}


def automation_alert(
    body: dict[str, Any],
    *,
    group_of_device: GroupLookup | None = None,
    overrides: Mapping[str, str] | None = None,
) -> NormalizedAlert | None:
    """The body an automation's HTTP action sends (the card's template, rendered by Level).

    Automations have no alert variables: the admin names the check and picks the severity in the
    template of each automation; Level fills in the device and group. The alert's identity is
    (device, check), so a later trigger of a resolved check reopens it, and its condition key is
    the native one for an alert of the same name.
    """
    device_id = str_id(body.get("device_id"), 255)
    if device_id is not None and device_id.startswith("{{"):
        device_id = None  # the template was pasted somewhere Level does not render variables
    check = text(body.get("check"), 255) or text(body.get("name"), 255)
    if device_id is None or not check:
        return None
    event = AUTOMATION_EVENTS.get(text(body.get("event")).lower(), AlertEventKind.TRIGGERED)
    hostname = text(body.get("hostname"), 255) or text(body.get("nickname"), 255)
    group_id = str_id(body.get("group_id"))
    if group_id is not None and group_id.startswith("{{"):
        group_id = None
    label = _SPACES.sub(" ", check).strip().casefold()
    ident = label if len(label) <= _CONDITION_NAME_MAX else "sha256:" + hashlib.sha256(label.encode()).hexdigest()
    message = text(body.get("message"))
    return NormalizedAlert(
        provider=SLUG,
        external_id=f"{AUTOMATION_PREFIX}{device_id}|{ident}"[:255],
        condition_key=condition_key(device_id, check, device_id),
        event=event,
        severity=severity(body.get("severity"), overrides),
        title=_title(check, message, hostname),
        message=message,
        alert_type=AUTOMATION_ALERT_TYPE,
        device_external_id=device_id,
        device_name=hostname,
        organization_external_id=group_id or _group(device_id, group_of_device),
        organization_name=text(body.get("group_name"), 500) if group_id else "",
        occurred_at=any_datetime(body.get("time")),
        raw=body,
    )


def is_automation_alert(external_id: str) -> bool:
    """An alert from the automation route: Level's alert list never reports it, and it cannot be
    resolved through Level's API."""
    return str(external_id).startswith(AUTOMATION_PREFIX)


# -- live directory changes -------------------------------------------------------------------
GROUP_EVENTS = ("group_created", "group_updated", "group_deleted")
DEVICE_EVENTS = ("device_created", "device_updated", "device_deleted")


def group_change(event_type: str, data: dict[str, Any],
                 occurred_at: dt.datetime | None = None) -> DirectoryChange | None:
    if event_type == "group_deleted":
        gid = str_id(data.get("id"))
        return DirectoryChange(DirectoryChangeKind.ORG_DELETE, deleted_external_id=gid,
                               occurred_at=occurred_at) if gid else None
    org = organization(data)
    return DirectoryChange(DirectoryChangeKind.ORG_UPSERT, organization=org, occurred_at=occurred_at) if org else None


def device_change(event_type: str, data: dict[str, Any], full: dict[str, Any] | None = None,
                  occurred_at: dt.datetime | None = None) -> DirectoryChange | None:
    """``full``: the device as ``GET /devices/{id}`` answers it (with inventory), when fetched."""
    if event_type == "device_deleted":
        did = str_id(data.get("id"))
        return DirectoryChange(DirectoryChangeKind.DEVICE_DELETE, deleted_external_id=did,
                               occurred_at=occurred_at) if did else None
    record = device(full) if full else device(data)
    if record is None:
        return None
    return DirectoryChange(DirectoryChangeKind.DEVICE_UPSERT, device=record, partial=not full, occurred_at=occurred_at)
