"""Tactical RMM payloads -> normalized records (organizations, devices, software, alerts).

Tolerant by design: Tactical renders webhook placeholders with Python ``str()`` (``None``,
``True``, ``2025-03-19 13:41:15.556123+00:00``), an unknown placeholder renders the
agent's hostname, and computed agent fields answer "error getting ..." strings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from integrations import coerce
from integrations.coerce import SeverityMap
from integrations.records import AlertEventKind, DeviceRecord, ExternalOrg, NormalizedAlert, SoftwareRecord

SLUG = "tactical"

# Tactical's scale is info / warning / error (no "critical"), mapped onto ours:
SEVERITIES = SeverityMap({"info": "info", "warning": "medium", "error": "high"}, default="medium")
ALERT_TYPES = ("availability", "check", "task", "custom")
MONITORING_TO_ASSET_TYPE = {"server": "server", "workstation": "workstation"}
STATUSES = ("online", "offline", "overdue")
# Default Agent.offline_time / overdue_time in minutes (Tactical agents/models.py).
DEFAULT_OFFLINE_MINUTES = 4
DEFAULT_OVERDUE_MINUTES = 30


# -- scalar helpers (the shared normalization kit, with Tactical's quirks) ---------------------
def text(value: Any) -> str:
    """A string, with Tactical's rendered falsy values ("None", "null") as empty."""
    return coerce.text(value, none_strings=True)


int_id = coerce.int_id

# Tactical's own renderings besides ISO-8601 and epoch seconds: the old agent table, str(datetime) + "UTC".
_TACTICAL_FORMATS = ("%b-%d-%Y - %H:%M", "%Y-%m-%d %H:%M:%S %z UTC", "%Y-%m-%d %H:%M:%S")


def parse_dt(value: Any) -> dt.datetime | None:
    """ISO-8601 (``Z``), Python ``str(datetime)``, epoch seconds, or Tactical's old table format (UTC)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return coerce.epoch_seconds(value)
    raw = text(value)
    if not raw:
        return None
    if coerce.number(raw) is not None:
        return coerce.epoch_seconds(raw)
    for fmt in _TACTICAL_FORMATS:
        try:
            parsed = dt.datetime.strptime(raw, fmt)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return coerce.iso_datetime(raw)


def severity(value: Any) -> str:
    return SEVERITIES.lookup(text(value))


def _computed(value: Any) -> str:
    """Tactical's computed properties answer "error getting ..." / "unknown ..." on failure."""
    result = text(value)
    lowered = result.lower()
    if lowered.startswith(("error getting", "unknown ", "unable to")):
        return ""
    return result


# -- organizations --------------------------------------------------------------------------
def client_ext(client_id: Any) -> str:
    return f"client:{client_id}"


def site_ext(site_id: Any) -> str:
    return f"site:{site_id}"


def organizations(clients: Iterable[dict[str, Any]]) -> Iterator[ExternalOrg]:
    for client in clients:
        cid = int_id(client.get("id"))
        if cid is None:
            continue
        yield ExternalOrg(external_id=client_ext(cid), name=text(client.get("name")) or f"Client {cid}", kind="client")
        for site in client.get("sites") or []:
            if not isinstance(site, dict):
                continue
            sid = int_id(site.get("id"))
            if sid is None:
                continue
            yield ExternalOrg(
                external_id=site_ext(sid),
                name=text(site.get("name")) or f"Site {sid}",
                parent_external_id=client_ext(cid),
                kind="site",
            )


@dataclass
class OrgIndex:
    """Client/site names -> ids (Tactical's table and alert rows carry names only)."""

    client_ids: dict[str, int] = field(default_factory=dict)
    site_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    site_client: dict[int, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, clients: Iterable[dict[str, Any]]) -> OrgIndex:
        index = cls()
        for client in clients:
            cid = int_id(client.get("id"))
            if cid is None:
                continue
            cname = text(client.get("name"))
            index.client_ids.setdefault(cname.casefold(), cid)
            index.names[client_ext(cid)] = cname
            for site in client.get("sites") or []:
                sid = int_id(site.get("id")) if isinstance(site, dict) else None
                if sid is None:
                    continue
                sname = text(site.get("name"))
                index.site_ids.setdefault((cid, sname.casefold()), sid)
                index.site_client[sid] = cid
                index.names[site_ext(sid)] = sname
        return index

    def resolve(self, client_name: Any, site_name: Any, client_id: int | None = None) -> tuple[str | None, str | None]:
        """(organization external id, parent external id): the site when known, else the client."""
        cid = client_id if client_id is not None else self.client_ids.get(text(client_name).casefold())
        if cid is None:
            return None, None
        sid = self.site_ids.get((cid, text(site_name).casefold()))
        if sid is not None:
            return site_ext(sid), client_ext(cid)
        return client_ext(cid), None


# -- devices --------------------------------------------------------------------------------
def _split_ips(value: Any) -> list[str]:
    if isinstance(value, list):
        items = [text(v) for v in value]
    else:
        items = [part.strip() for part in _computed(value).split(",")]
    return [ip for ip in items if ip]


def _wmi_first(wmi: dict[str, Any], section: str, key: str) -> str:
    """Windows wmi_detail sections are lists of lists of one-key dicts."""
    try:
        for entry in wmi.get(section) or []:
            for item in entry if isinstance(entry, list) else [entry]:
                if isinstance(item, dict) and key in item:
                    return text(item[key])
    except (TypeError, AttributeError):
        return ""
    return ""


def serial_from_wmi(wmi: Any, plat: str) -> str:
    if not isinstance(wmi, dict):
        return ""
    if plat in ("linux", "darwin"):
        return text(wmi.get("serialnumber"))
    return _wmi_first(wmi, "bios", "SerialNumber")


def make_model_from_wmi(wmi: Any, plat: str) -> str:
    if not isinstance(wmi, dict):
        return ""
    if plat in ("linux", "darwin"):
        return text(wmi.get("make_model"))
    make, model = _wmi_first(wmi, "comp_sys_prod", "Vendor"), _wmi_first(wmi, "comp_sys", "Model")
    if "to be filled" in model.lower():
        make, model = _wmi_first(wmi, "base_board", "Manufacturer"), _wmi_first(wmi, "base_board", "Product")
    return " ".join(p for p in (make, model) if p)


def local_ips_from_wmi(wmi: Any, plat: str) -> list[str]:
    if not isinstance(wmi, dict):
        return []
    if plat in ("linux", "darwin"):
        return _split_ips(wmi.get("local_ips") or [])
    ips: list[str] = []
    for entry in wmi.get("network_config") or []:
        for item in entry if isinstance(entry, list) else [entry]:
            if isinstance(item, dict) and isinstance(item.get("IPAddress"), list):
                ips.extend(ip for ip in item["IPAddress"] if isinstance(ip, str) and "." in ip)
    return ips


def compute_status(last_seen: dt.datetime | None, offline_minutes: Any, overdue_minutes: Any,
                   now: dt.datetime | None = None) -> str:
    """Tactical's Agent.status, for beta rows that carry raw fields only."""
    if last_seen is None:
        return "offline"
    now = now or dt.datetime.now(dt.UTC)
    offline = int_id(offline_minutes) or DEFAULT_OFFLINE_MINUTES
    overdue = int_id(overdue_minutes) or DEFAULT_OVERDUE_MINUTES
    age = now - last_seen
    if age <= dt.timedelta(minutes=offline):
        return "online"
    return "offline" if age <= dt.timedelta(minutes=overdue) else "overdue"


def _status(value: Any) -> str:
    status = text(value).lower()
    return status if status in STATUSES else "unknown"


def device_from_table_row(row: dict[str, Any], org_external_id: str) -> DeviceRecord | None:
    """A classic ``GET /agents/`` row (AgentTableSerializer)."""
    agent_id = text(row.get("agent_id"))
    if not agent_id:
        return None
    hostname = text(row.get("hostname"))
    plat = text(row.get("plat")).lower()
    user = text(row.get("logged_username")) or text(row.get("logged_in_username"))
    return DeviceRecord(
        external_id=agent_id,
        organization_external_id=org_external_id,
        name=hostname or agent_id,
        hostname=hostname,
        serial_number=_computed(row.get("serial_number")),
        asset_type=MONITORING_TO_ASSET_TYPE.get(text(row.get("monitoring_type")).lower(), "other"),
        os=_computed(row.get("operating_system")),
        platform=plat,
        make_model=_computed(row.get("make_model")),
        status=_status(row.get("status")),
        last_seen=parse_dt(row.get("last_seen")),
        last_user=user,
        public_ip=_computed(row.get("public_ip")),
        local_ips=_split_ips(row.get("local_ips")),
    )


def device_from_beta_row(row: dict[str, Any], org_external_id: str, now: dt.datetime | None = None) -> DeviceRecord | None:
    """A beta ``/beta/v1/agent/`` row: raw model fields, so computed ones are derived here."""
    agent_id = text(row.get("agent_id"))
    if not agent_id:
        return None
    hostname = text(row.get("hostname"))
    plat = text(row.get("plat")).lower()
    wmi = row.get("wmi_detail")
    last_seen = parse_dt(row.get("last_seen"))
    status = compute_status(last_seen, row.get("offline_time"), row.get("overdue_time"), now)
    user = text(row.get("logged_in_username"))
    if not user and status == "online":
        user = text(row.get("last_logged_in_user"))
    return DeviceRecord(
        external_id=agent_id,
        organization_external_id=org_external_id,
        name=hostname or agent_id,
        hostname=hostname,
        serial_number=serial_from_wmi(wmi, plat),
        asset_type=MONITORING_TO_ASSET_TYPE.get(text(row.get("monitoring_type")).lower(), "other"),
        os=_computed(row.get("operating_system")),
        platform=plat,
        make_model=make_model_from_wmi(wmi, plat),
        status=status,
        last_seen=last_seen,
        last_user=user,
        public_ip=_computed(row.get("public_ip")),
        local_ips=local_ips_from_wmi(wmi, plat),
    )


def software(rows: Iterable[dict[str, Any]]) -> list[SoftwareRecord]:
    result = []
    for row in rows:
        name = text(row.get("name"))
        if not name:
            continue
        result.append(
            SoftwareRecord(
                name=name[:500],
                version=text(row.get("version"))[:200],
                publisher=text(row.get("publisher"))[:300],
                installed_on=text(row.get("install_date"))[:100],
                size=text(row.get("size"))[:50],
            )
        )
    return result


# -- alerts ---------------------------------------------------------------------------------
def condition_key(agent_id: str, alert_type: str, check_id: int | None, task_id: int | None, message: str) -> str:
    """Tactical keeps one open alert per (agent, type[, check/task]): the same condition here."""
    parts = [f"agent:{agent_id or '?'}", alert_type or "alert"]
    if check_id is not None:
        parts.append(f"check:{check_id}")
    elif task_id is not None:
        parts.append(f"task:{task_id}")
    elif alert_type in ("check", "task", "custom") and message:
        # A template without the check/task ids: tell checks apart by their message.
        parts.append("msg:" + hashlib.sha256(message.encode()).hexdigest()[:16])
    return "|".join(parts)


def _alert_type(value: Any, check_id: int | None, task_id: int | None) -> str:
    alert_type = text(value).lower()
    if alert_type in ALERT_TYPES:
        return alert_type
    if check_id is not None:
        return "check"
    if task_id is not None:
        return "task"
    return "custom"


def _title(message: str, hostname: str, alert_type: str) -> str:
    first = message.splitlines()[0].strip() if message else ""
    return (first or f"{hostname or 'Agent'}: Tactical RMM {alert_type} alert")[:255]


def build_alert(
    *,
    alert_id: int,
    event: str,
    alert_type: Any,
    severity_value: Any,
    message: Any,
    agent_id: Any,
    hostname: Any,
    check_id: int | None,
    task_id: int | None,
    org_external_id: str | None,
    org_name: str,
    org_parent: str | None,
    occurred_at: dt.datetime | None,
    raw: dict[str, Any],
) -> NormalizedAlert:
    agent = text(agent_id)
    host = text(hostname)
    msg = text(message)
    kind = _alert_type(alert_type, check_id, task_id)
    return NormalizedAlert(
        provider=SLUG,
        external_id=str(alert_id),
        condition_key=condition_key(agent, kind, check_id, task_id, msg),
        event=event,
        severity=severity(severity_value),
        title=_title(msg, host, kind),
        message=msg,
        alert_type=kind,
        # "pk:<n>" is only a grouping fallback, never a device identity.
        device_external_id=agent if agent and not agent.startswith("pk:") else None,
        device_name=host,
        organization_external_id=org_external_id,
        organization_name=org_name,
        organization_parent_external_id=org_parent,
        occurred_at=occurred_at,
        raw=raw,
    )


def event_kind(value: Any) -> str | None:
    word = text(value).lower()
    if word in ("trigger", "triggered", "failure", "failed", "fail", "open", "new"):
        return AlertEventKind.TRIGGERED
    if word in ("resolved", "resolve", "ok", "closed", "close", "recovered"):
        return AlertEventKind.RESOLVED
    return None


def alert_from_webhook(body: dict[str, Any], alert_id: int, event: str) -> NormalizedAlert:
    """A readable webhook body rendered from our recommended template (tolerant of others)."""
    check_id = int_id(body.get("check_id", body.get("assigned_check_id")))
    task_id = int_id(body.get("task_id", body.get("assigned_task_id")))
    client_id, site_id = int_id(body.get("client_id")), int_id(body.get("site_id"))
    if site_id is not None:
        org, parent, org_name = site_ext(site_id), (client_ext(client_id) if client_id is not None else None), text(
            body.get("site_name"))
    elif client_id is not None:
        org, parent, org_name = client_ext(client_id), None, text(body.get("client_name"))
    else:
        org, parent, org_name = None, None, ""
    when = parse_dt(body.get("resolved_on")) if event == AlertEventKind.RESOLVED else None
    return build_alert(
        alert_id=alert_id,
        event=event,
        alert_type=body.get("alert_type"),
        severity_value=body.get("severity"),
        message=body.get("message"),
        agent_id=body.get("agent_id"),
        hostname=body.get("hostname"),
        check_id=check_id,
        task_id=task_id,
        org_external_id=org,
        org_name=org_name,
        org_parent=parent,
        occurred_at=when or parse_dt(body.get("alert_time")),
        raw=body,
    )


def alert_from_api(alert: dict[str, Any], index: OrgIndex | None, event: str | None = None) -> NormalizedAlert | None:
    """A ``GET /alerts/{id}/`` or ``PATCH /alerts/`` row (AlertSerializer: names, not ids, of client/site)."""
    alert_id = int_id(alert.get("id"))
    if alert_id is None:
        return None
    if event is None:
        event = AlertEventKind.RESOLVED if alert.get("resolved") is True else AlertEventKind.TRIGGERED
    org, parent = index.resolve(alert.get("client"), alert.get("site")) if index else (None, None)
    org_name = text(alert.get("site")) if org and org.startswith("site:") else text(alert.get("client"))
    when = parse_dt(alert.get("resolved_on")) if event == AlertEventKind.RESOLVED else None
    agent_id = text(alert.get("agent_id"))
    if not agent_id and int_id(alert.get("agent")) is not None:
        # Older servers' AlertSerializer lacks agent_id: fall back to the agent's primary key.
        agent_id = f"pk:{int_id(alert.get('agent'))}"
    return build_alert(
        alert_id=alert_id,
        event=event,
        alert_type=alert.get("alert_type"),
        severity_value=alert.get("severity"),
        message=alert.get("message"),
        agent_id=agent_id,
        hostname=alert.get("hostname"),
        check_id=int_id(alert.get("assigned_check")),
        task_id=int_id(alert.get("assigned_task")),
        org_external_id=org,
        org_name=org_name,
        org_parent=parent,
        occurred_at=when or parse_dt(alert.get("alert_time")),
        raw=alert,
    )
