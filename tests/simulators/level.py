"""A Level API simulator on loopback, speaking the routes and shapes of ../shared/providers/level.md.

- ``/v2/groups[/{id}]``, ``/v2/devices[/{id}]`` (``group_id``, ``ancestor_group_id`` and the
  ``include_*`` flags), ``/v2/alerts[/{id}]`` (``status``, ``device_id``), ``POST
  /v2/alerts/{id}/resolve``; lists page with ``limit`` (1-100, default 20) and ``starting_after``
  over ``{"data", "has_more"}``.
- Auth: the raw key in ``Authorization``; 401 ``{"error": "Access denied"}`` for a missing,
  "Bearer"-prefixed or unknown key; read-only keys get 403 on writes; ``no_access_keys`` get 403
  on everything (a key without access to this organization).
- Devices can be generated lazily (``add_many_devices``): thousands cost nothing until listed.

Knobs: ``rate_limit(n, retry_after)``, ``fail_next(n, status)`` (base), ``delay``, ``html_mode``,
``parent_null`` ("404": ``parent_id=null`` is read as an id, or "roots"), ``list_child_ids`` (group
lists with or without ``child_ids`` and counts), ``refuse_optional_includes`` (422 for the flags
only other clients use), ``resolve_resolved_status`` (what resolving a resolved alert answers).

``WebhookSender`` signs bodies like Level (``X-Level-Signature: sha256=<hex>``) and retries keeping
the ``event_id``; ``render_automation`` fills an automation template like Level's HTTP action.
"""

from __future__ import annotations

import base64
import datetime as dt
import heapq
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.level.signature import sign

from .base import Reply, Request, SimulatorServer

ACCESS_DENIED = {"error": "Access denied"}
WRITE_DENIED = {"error": "This API key is read-only"}
NOT_FOUND = {"error": "Not found"}
OPTIONAL_INCLUDES = ("include_disk_partitions", "include_security")
ROLES = ("workstation", "workstation", "workstation", "server", "domain_controller")
PLATFORMS = ("Windows", "Windows", "Mac", "Linux")


def gid(kind: str, n: int) -> str:
    return base64.b64encode(f"gid://level/{kind}/{n}".encode()).decode().rstrip("=")


def gid_number(value: str, kind: str) -> int | None:
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    match = re.fullmatch(rf"gid://level/{kind}/(\d+)", raw)
    return int(match.group(1)) if match else None


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass
class _Block:
    """Lazily generated devices n in [start, start + count) of one group."""

    start: int
    count: int
    group_id: str
    prefix: str


class LevelSimulator(SimulatorServer):
    def __init__(self) -> None:
        super().__init__()
        self.read_write_key = "lvl_rw_" + "a" * 24
        self.read_only_key = "lvl_ro_" + "b" * 24
        self.keys: dict[str, str] = {self.read_write_key: "read_write", self.read_only_key: "read_only"}
        self.no_access_keys: set[str] = set()
        self.groups: dict[str, dict[str, Any]] = {}  # insertion order = listing order
        self.devices: dict[int, dict[str, Any]] = {}  # explicit or materialized devices by number
        self.blocks: list[_Block] = []
        self.deleted: set[int] = set()
        self.alerts: dict[str, dict[str, Any]] = {}
        self.parent_null = "404"
        self.list_child_ids = True
        self.refuse_optional_includes = False
        self.resolve_resolved_status = 200
        self.now = dt.datetime(2025, 3, 19, 13, 40, tzinfo=dt.UTC)
        self._numbers = itertools.count(1000)
        self._rate_limited: list[str] = []
        self._data_lock = threading.RLock()
        self._routes_setup()

    # -- data -------------------------------------------------------------------------------
    def add_group(self, name: str, parent: dict[str, Any] | str | None = None) -> dict[str, Any]:
        with self._data_lock:
            parent_id = parent["id"] if isinstance(parent, dict) else parent
            group = {"id": gid("Group", next(self._numbers)), "name": name, "parent_id": parent_id}
            self.groups[group["id"]] = group
            return group

    def build_tree(self, clients: int = 3, depth: int = 4, fanout: int = 2, prefix: str = "Client") -> list[dict]:
        """``clients`` top groups, each a tree ``depth`` levels deep (top included)."""
        tops = []
        for c in range(clients):
            top = self.add_group(f"{prefix} {c + 1}")
            tops.append(top)
            level = [top]
            for d in range(1, depth):
                level = [self.add_group(f"{g['name']} / L{d + 1}-{i + 1}", g) for g in level for i in range(fanout)]
        return tops

    def children(self, group_id: str) -> list[str]:
        return [g["id"] for g in self.groups.values() if g["parent_id"] == group_id]

    def descendants(self, group_id: str) -> set[str]:
        out, todo = set(), [group_id]
        while todo:
            current = todo.pop()
            if current in out:
                continue
            out.add(current)
            todo.extend(self.children(current))
        return out

    def add_device(self, group: dict[str, Any] | str, hostname: str, **fields: Any) -> dict[str, Any]:
        with self._data_lock:
            group_id = group["id"] if isinstance(group, dict) else group
            n = next(self._numbers)
            device = {**self._generated(n, group_id, hostname), **fields}
            self.devices[n] = device
            return device

    def add_many_devices(self, group: dict[str, Any] | str, count: int, prefix: str = "PC") -> None:
        with self._data_lock:
            group_id = group["id"] if isinstance(group, dict) else group
            start = next(self._numbers)
            # Reserve the block's numbers so explicit devices never collide with it.
            self._numbers = itertools.count(start + count)
            self.blocks.append(_Block(start, count, group_id, prefix))

    def _generated(self, n: int, group_id: str, hostname: str) -> dict[str, Any]:
        """A full device as Level answers it with every include (trimmed per request later)."""
        platform = PLATFORMS[n % len(PLATFORMS)]
        # Sources disagree on major_version (string or number), patch_compliance (bool or percentage),
        # flag and dns_servers types: the generated devices vary them.
        major: Any = {"Windows": "11", "Mac": 14, "Linux": "22"}[platform] if n % 3 else 11.0
        return {
            "id": gid("Device", n), "hostname": hostname, "nickname": f"Poste « {n} »" if n % 7 == 0 else None,
            "role": ROLES[n % len(ROLES)], "group_id": group_id, "tags": ["sim"], "notes": None,
            "flag": (None, "red", True, {"color": "yellow"})[n % 4], "maintenance_mode": False,
            "online": n % 5 != 0, "manufacturer": "Dell Inc." if n % 2 else "LENOVO",
            "model": "OptiPlex 7010" if n % 2 else "ThinkPad T14", "architecture": "x64",
            "serial_number": f"SN{n:07d}", "total_memory": 17179869184, "memory_slots": 2, "cpu_cores": 8,
            "last_logged_in_user": f"HARBOR\\user{n}", "last_reboot_time": iso(self.now - dt.timedelta(days=2)),
            "last_seen_at": iso(self.now - dt.timedelta(minutes=n % 90)), "city": "Portland", "country": "US",
            "security_score": 80, "platform": platform,
            "operating_system": {"full_operating_system": f"{platform} {major} Pro", "major_version": major,
                                 "minor_version": "0", "architecture": "x64", "install_date": "2024-01-05T00:00:00Z",
                                 "end_of_life": False},
            "cpus": [{"model": "Intel Core i5", "cores": 8, "clock_speed": 3000}],
            "memory": [{"size": 8589934592}, {"size": 8589934592}],
            "disks": [{"model": "Samsung SSD", "size": 256060514304}],
            "disk_partitions": [{"label": "OS", "mount_point": "C:", "size": 255013683200,
                                 "free_space": 18874368000, "encrypted": True, "primary": True,
                                 "file_system": "NTFS"}],
            "network_interfaces": [{"label": "Ethernet", "description": "Intel NIC",
                                    "mac_address": f"3C:52:82:{n >> 16 & 255:02X}:{n >> 8 & 255:02X}:{n & 255:02X}",
                                    "ip_addresses": [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"],
                                    "gateway": "10.0.0.1",
                                    "dns_servers": ["10.0.0.2"] if n % 2 else "10.0.0.2"}],
            "security": {"score": 80, "risk": "low", "patch_compliance": (True, 93.5)[n % 2],
                         "antivirus_provider": "Microsoft Defender", "firewall_enabled": True},
        }

    def _device(self, n: int) -> dict[str, Any] | None:
        if n in self.deleted:
            return None
        if n in self.devices:
            return self.devices[n]
        for block in self.blocks:
            if block.start <= n < block.start + block.count:
                return self._generated(n, block.group_id, f"{block.prefix}-{n - block.start:05d}")
        return None

    def device_numbers(self) -> Iterator[int]:
        """Every device number in listing order (ascending), lazily: blocks are never expanded."""
        ranges = [range(b.start, b.start + b.count) for b in sorted(self.blocks, key=lambda b: b.start)]
        last = None
        for n in heapq.merge(sorted(self.devices), *ranges):
            if n != last and n not in self.deleted:  # a materialized device is in its block too
                yield n
            last = n

    def device_by_id(self, device_id: str) -> dict[str, Any] | None:
        n = gid_number(device_id, "Device")
        return self._device(n) if n is not None else None

    def update_device(self, device_id: str, **fields: Any) -> dict[str, Any]:
        """Change a device (materializing a generated one), e.g. move it: ``group_id=...``."""
        with self._data_lock:
            n = gid_number(device_id, "Device")
            device = dict(self._device(n))
            device.update(fields)
            self.devices[n] = device
            return device

    def delete_device(self, device_id: str) -> None:
        with self._data_lock:
            self.deleted.add(gid_number(device_id, "Device"))

    def add_alert(self, device: dict[str, Any] | str, name: str = "Disk space low", *, severity: str = "critical",
                  description: str | None = None, started_at: dt.datetime | None = None) -> dict[str, Any]:
        with self._data_lock:
            device = self.device_by_id(device) if isinstance(device, str) else device
            alert = {
                "id": gid("Alert", next(self._numbers)), "device_id": device["id"],
                "device_hostname": device["hostname"], "name": name,
                "description": description if description is not None else f"{name} on {device['hostname']}",
                "severity": severity, "is_resolved": False, "started_at": iso(started_at or self.now),
                "resolved_at": None,
            }
            self.alerts[alert["id"]] = alert
            return alert

    def resolve_locally(self, alert_id: str, at: dt.datetime | None = None) -> dict[str, Any]:
        """What Level does when the monitor recovers (it then sends alert_resolved)."""
        with self._data_lock:
            alert = self.alerts[alert_id]
            alert.update(is_resolved=True, resolved_at=iso(at or self.now + dt.timedelta(minutes=20)))
            return alert

    def reopen(self, alert_id: str) -> dict[str, Any]:
        """Level reopens a resolved alert when its monitor fails again (same id, refreshed payload)."""
        with self._data_lock:
            alert = self.alerts[alert_id]
            alert.update(is_resolved=False, resolved_at=None, started_at=iso(self.now + dt.timedelta(hours=1)))
            return alert

    # -- knobs ------------------------------------------------------------------------------
    def rate_limit(self, n: int = 1, retry_after: str = "1") -> None:
        with self._lock:
            self._rate_limited.extend([retry_after] * n)

    # -- serialisation ----------------------------------------------------------------------
    def _group_json(self, group: dict[str, Any], listing: bool, counts: dict[str, int] | None = None) -> dict:
        out = dict(group)
        if self.list_child_ids or not listing:
            counts = counts if counts is not None else self._device_counts()
            out["child_ids"] = self.children(group["id"])
            out["device_count"] = counts.get(group["id"], 0)
            out["descendent_device_count"] = sum(counts.get(g, 0) for g in self.descendants(group["id"]))
        return out

    def _device_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for block in self.blocks:
            taken = sum(1 for n in set(self.deleted) | set(self.devices) if block.start <= n < block.start + block.count)
            counts[block.group_id] = counts.get(block.group_id, 0) + block.count - taken
        for n, device in self.devices.items():  # explicit and materialized devices
            if n not in self.deleted:
                counts[device["group_id"]] = counts.get(device["group_id"], 0) + 1
        return counts

    @staticmethod
    def _device_json(device: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        out = dict(device)
        flags = {
            "include_operating_system": ("operating_system",), "include_cpus": ("cpus",),
            "include_memory": ("memory",), "include_disks": ("disks",),
            "include_network_interfaces": ("network_interfaces",), "include_disk_partitions": ("disk_partitions",),
            "include_security": ("security",),
        }
        for flag, keys in flags.items():
            if query.get(flag) != "true":
                for key in keys:
                    out.pop(key, None)
        return out

    # -- auth -------------------------------------------------------------------------------
    def _authed(self, handler: Callable[[Request], Reply], *, write: bool = False) -> Callable[[Request], Reply]:
        def wrapped(request: Request) -> Reply:
            with self._lock:
                retry_after = self._rate_limited.pop(0) if self._rate_limited else None
            if retry_after is not None:
                return Reply(429, {"error": "Too many requests"}, headers={"Retry-After": retry_after})
            key = request.headers.get("authorization", "")
            access = self.keys.get(key)
            if access is None and key not in self.no_access_keys:
                return Reply(401, ACCESS_DENIED)  # also "Bearer <key>": Level wants the raw key
            if key in self.no_access_keys:
                return Reply(403, {"error": "Forbidden"})
            if write and access != "read_write":
                return Reply(403, WRITE_DENIED)
            with self._data_lock:
                return handler(request)

        return wrapped

    # -- paging -----------------------------------------------------------------------------
    def _page(self, request: Request, rows: Iterator[dict[str, Any]], id_of=lambda r: r["id"]) -> Reply:
        try:
            limit = int(request.query.get("limit") or 20)
        except ValueError:
            return Reply(422, {"error": "limit must be an integer"})
        if not 1 <= limit <= 100:
            return Reply(422, {"error": "limit must be between 1 and 100"})
        after = request.query.get("starting_after")
        page: list[dict[str, Any]] = []
        found = after is None
        more = False
        for row in rows:
            if not found:
                found = id_of(row) == after
                continue
            if len(page) == limit:
                more = True
                break
            page.append(row)
        if not found:
            return Reply(422, {"error": "starting_after does not name an object of this list"})
        return Reply(200, {"data": page, "has_more": more})

    # -- routes -----------------------------------------------------------------------------
    def _routes_setup(self) -> None:
        r, a = self.route, self._authed
        r("GET", "/v2/groups", a(self._groups_list))
        r("GET", "/v2/groups/{id}", a(self._group_get))
        r("GET", "/v2/devices", a(self._devices_list))
        r("GET", "/v2/devices/{id}", a(self._device_get))
        r("GET", "/v2/alerts", a(self._alerts_list))
        r("GET", "/v2/alerts/{id}", a(self._alert_get))
        r("POST", "/v2/alerts/{id}/resolve", a(self._alert_resolve, write=True))

    def not_found(self, request: Request) -> Reply:
        return Reply(404, NOT_FOUND)

    def _groups_list(self, req: Request) -> Reply:
        groups: Iterator[dict[str, Any]] = iter(list(self.groups.values()))
        if "parent_id" in req.query:
            wanted = req.query["parent_id"]
            if wanted == "null":
                if self.parent_null == "404":
                    return Reply(404, NOT_FOUND)  # read as an id (one source's report)
                wanted = None
            elif wanted not in self.groups:
                return Reply(404, NOT_FOUND)
            groups = (g for g in self.groups.values() if g["parent_id"] == wanted)
        counts = self._device_counts()
        return self._page(req, (self._group_json(g, True, counts) for g in groups))

    def _group_get(self, req: Request) -> Reply:
        group = self.groups.get(req.params["id"])
        return Reply(200, self._group_json(group, False)) if group else Reply(404, NOT_FOUND)

    def _includes_refused(self, req: Request) -> Reply | None:
        if self.refuse_optional_includes and any(k in req.query for k in OPTIONAL_INCLUDES):
            return Reply(422, {"error": "Unknown parameter: include_disk_partitions"})
        return None

    def _devices_list(self, req: Request) -> Reply:
        refused = self._includes_refused(req)
        if refused:
            return refused
        group_id, ancestor = req.query.get("group_id"), req.query.get("ancestor_group_id")
        scope = self.descendants(ancestor) if ancestor else None

        def rows() -> Iterator[dict[str, Any]]:
            for n in self.device_numbers():
                device = self._device(n)
                if device is None or (group_id and device["group_id"] != group_id):
                    continue
                if scope is not None and device["group_id"] not in scope:
                    continue
                yield self._device_json(device, req.query)

        return self._page(req, rows())

    def _device_get(self, req: Request) -> Reply:
        refused = self._includes_refused(req)
        if refused:
            return refused
        device = self.device_by_id(req.params["id"])
        return Reply(200, self._device_json(device, req.query)) if device else Reply(404, NOT_FOUND)

    def _alerts_list(self, req: Request) -> Reply:
        status = req.query.get("status")
        if status not in (None, "active", "resolved"):
            return Reply(422, {"error": "status must be active or resolved"})
        device_id = req.query.get("device_id")
        rows = (
            dict(x) for x in list(self.alerts.values())
            if (status is None or x["is_resolved"] == (status == "resolved"))
            and (device_id is None or x["device_id"] == device_id)
        )
        return self._page(req, rows)

    def _alert_get(self, req: Request) -> Reply:
        alert = self.alerts.get(req.params["id"])
        return Reply(200, dict(alert)) if alert else Reply(404, NOT_FOUND)

    def _alert_resolve(self, req: Request) -> Reply:
        alert = self.alerts.get(req.params["id"])
        if alert is None:
            return Reply(404, NOT_FOUND)
        if alert["is_resolved"]:
            return Reply(self.resolve_resolved_status, dict(alert) if self.resolve_resolved_status < 300
                         else {"error": "Alert is already resolved"})
        alert.update(is_resolved=True, resolved_at=iso(self.now + dt.timedelta(minutes=5)))
        return Reply(200, dict(alert))

    # -- webhook events as Level builds them --------------------------------------------------
    def envelope(self, event_type: str, data: dict[str, Any], *, event_id: str | None = None,
                 occurred_at: dt.datetime | None = None) -> dict[str, Any]:
        when = (occurred_at or self.now).astimezone(dt.UTC)
        return {"event_type": event_type, "event_id": event_id or str(uuid.uuid4()),
                "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
                "data": data}

    def alert_event(self, alert_id: str, **kw: Any) -> dict[str, Any]:
        alert = dict(self.alerts[alert_id])
        return self.envelope("alert_resolved" if alert["is_resolved"] else "alert_active", alert, **kw)

    def device_event(self, event_type: str, device_id: str, **kw: Any) -> dict[str, Any]:
        if event_type == "device_deleted":
            return self.envelope(event_type, {"id": device_id}, **kw)
        device = self.device_by_id(device_id)
        # Events carry the device's own fields, not the inventory the include flags add.
        return self.envelope(event_type, self._device_json(device, {}), **kw)

    def group_event(self, event_type: str, group_id: str, **kw: Any) -> dict[str, Any]:
        group = self.groups.get(group_id) or {"id": group_id}
        return self.envelope(event_type, dict(group), **kw)


@dataclass
class Delivery:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class WebhookSender:
    """Posts webhook envelopes like Level: JSON body, ``X-Level-Signature`` when a secret is set,
    up to ``attempts`` tries on a non-2xx answer or a connection error, the same event_id each time.

    ``post(url, body, headers) -> status`` defaults to httpx; a test may pass Django's test client.
    """

    secret: str = ""
    attempts: int = 3
    post: Callable[[str, bytes, dict[str, str]], int] | None = None
    sent: list[Delivery] = field(default_factory=list)

    @staticmethod
    def body_of(envelope: dict[str, Any]) -> bytes:
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def headers_for(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "Level-Webhooks/1.0"}
        if self.secret:
            headers["X-Level-Signature"] = sign(body, self.secret)
        return headers

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if self.post is not None:
            return self.post(url, body, headers)
        try:
            return httpx.post(url, content=body, headers=headers, timeout=10.0).status_code
        except httpx.TransportError:
            return 0

    def deliver(self, url: str, envelope: dict[str, Any], *, attempts: int | None = None) -> list[int]:
        """Send until a 2xx answer or the attempts run out; returns every status (0: no answer)."""
        body = self.body_of(envelope)
        statuses = []
        for _ in range(attempts or self.attempts):
            headers = self.headers_for(body)
            status = self._post(url, body, headers)
            self.sent.append(Delivery(status, body, headers))
            statuses.append(status)
            if 200 <= status < 300:
                break
        return statuses

    def rerun(self, url: str, envelope: dict[str, Any]) -> int:
        """Level's manual re-run from its Requests log: one more delivery, same event_id."""
        return self.deliver(url, envelope, attempts=1)[0]


_VARIABLE = re.compile(r"\{\{\s*(level_[a-z_]+|cf_[\w]+)\s*\}\}")


def automation_variables(sim: LevelSimulator, device_id: str) -> dict[str, str]:
    device = sim.device_by_id(device_id)
    group = sim.groups.get(device["group_id"]) or {}
    path, node = [], group
    while node:
        path.insert(0, node["name"])
        node = sim.groups.get(node.get("parent_id") or "")
    return {
        "level_device_id": device["id"], "level_device_hostname": device["hostname"],
        "level_device_nickname": device.get("nickname") or "", "level_group_id": group.get("id", ""),
        "level_group_name": group.get("name", ""), "level_group_path": " / ".join(path),
        "level_tag_names": ", ".join(device.get("tags") or []), "level_time": iso(sim.now),
        "level_device_last_seen_at": device.get("last_seen_at") or "", "level_device_public_ip_address": "",
    }


def render_automation(sim: LevelSimulator, template: str, device_id: str) -> bytes:
    """An automation HTTP action's body: variables substituted as plain text (no JSON escaping)."""
    values = automation_variables(sim, device_id)
    return _VARIABLE.sub(lambda m: values.get(m.group(1), ""), template).encode("utf-8")
