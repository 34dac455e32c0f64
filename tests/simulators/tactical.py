"""A Tactical RMM API simulator on loopback, speaking the real routes and shapes.

Shapes follow ../shared/providers/tactical.md (sections 2.1-2.7): ``/clients/`` with
nested sites, the unpaginated ``/agents/`` table (``?client=`` / ``?site=``; no ids),
agent detail, ``/agents/{agent_id}/meshcentral/``, ``/software/{agent_id}/``, the
optional beta API (404 unless ``beta_enabled``), ``PATCH /alerts/`` with its filters
(``{}`` = everything), ``GET``/``PUT /alerts/{id}/``, Knox login through
``/v2/checkcreds/`` + ``/v2/login/``, ``X-API-KEY`` auth with Tactical's 401 bodies.

Knobs: ``html_mode`` (dashboard host), ``fail_next(n, status)``, ``delay``,
``forbidden`` (path prefixes answering 403), ``beta_enabled``, ``add_many_agents``;
every call is recorded (``calls_to("PUT", "/alerts/5/")``).

``render_webhook`` reproduces how Tactical renders and sends a URL action.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .base import Reply, Request, SimulatorServer

NO_CREDS = {"detail": "Authentication credentials were not provided."}
BAD_TOKEN = {"detail": "Invalid token."}
FORBIDDEN = {"detail": "You do not have permission to perform this action."}
ALERT_404 = {"detail": "No Alert matches the given query."}
AGENT_404 = {"detail": "No Agent matches the given query."}


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class SimAgent:
    pk: int
    agent_id: str
    hostname: str
    site_id: int
    monitoring_type: str = "workstation"
    plat: str = "windows"
    status: str = "online"
    last_seen: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    logged_username: str = "jdoe"
    operating_system: str = "Windows 11 Pro, 64 bit v23H2 (build 22631.3296)"
    serial_number: str = ""
    make_model: str = "Dell Inc. OptiPlex 7010"
    public_ip: str = "203.0.113.24"
    local_ips: str = "10.20.1.44"
    description: str = ""


class TacticalSimulator(SimulatorServer):
    def __init__(self) -> None:
        super().__init__()
        self.clients: dict[int, dict[str, Any]] = {}
        self.sites: dict[int, dict[str, Any]] = {}
        self.agents: dict[str, SimAgent] = {}
        self.software: dict[str, list[dict[str, Any]]] = {}
        self.alerts: dict[int, dict[str, Any]] = {}
        self.api_keys: set[str] = {"TESTKEY" + "X" * 25}
        # username -> {"password", "totp" (code or None)}
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}  # knox token -> username
        self.forbidden: set[str] = set()
        self.beta_enabled = False
        self.mesh_fails = False
        self._ids = itertools.count(1)
        self._alert_ids = itertools.count(101)
        self._data_lock = threading.RLock()
        self._routes_setup()

    @property
    def api_key(self) -> str:
        return next(iter(self.api_keys))

    # -- data helpers ---------------------------------------------------------------------
    def add_client(self, name: str, sites: list[str] | None = None) -> dict[str, Any]:
        with self._data_lock:
            cid = next(self._ids)
            client = {"id": cid, "name": name, "server_policy": None, "workstation_policy": None,
                      "alert_template": None, "block_policy_inheritance": False, "custom_fields": [],
                      "maintenance_mode": False, "failing_checks": {"error": False, "warning": False}}
            self.clients[cid] = client
            for site_name in sites or ["Default"]:
                self.add_site(cid, site_name)
            return client

    def add_site(self, client_id: int, name: str) -> dict[str, Any]:
        with self._data_lock:
            sid = next(self._ids)
            site = {"id": sid, "name": name, "client": client_id, "server_policy": None, "workstation_policy": None,
                    "alert_template": None, "custom_fields": [], "block_policy_inheritance": False,
                    "maintenance_mode": False, "failing_checks": {"error": False, "warning": False}}
            self.sites[sid] = site
            return site

    def site_named(self, client_id: int, name: str) -> dict[str, Any]:
        return next(s for s in self.sites.values() if s["client"] == client_id and s["name"] == name)

    def add_agent(self, site_id: int, hostname: str, **kw: Any) -> SimAgent:
        with self._data_lock:
            pk = next(self._ids)
            agent = SimAgent(pk=pk, agent_id=kw.pop("agent_id", None) or secrets.token_urlsafe(24)[:32],
                             hostname=hostname, site_id=site_id, **kw)
            if not agent.serial_number:
                agent.serial_number = f"SN{pk:06d}"
            self.agents[agent.agent_id] = agent
            return agent

    def add_many_agents(self, site_id: int, n: int, prefix: str = "PC") -> None:
        for i in range(n):
            self.add_agent(site_id, f"{prefix}-{i:05d}", monitoring_type="server" if i % 10 == 0 else "workstation")

    def add_alert(self, agent: SimAgent, *, alert_type: str = "check", severity: str = "error",
                  message: str | None = None, check_id: int | None = None, task_id: int | None = None,
                  alert_time: dt.datetime | None = None) -> dict[str, Any]:
        with self._data_lock:
            site = self.sites[agent.site_id]
            client = self.clients[site["client"]]
            aid = next(self._alert_ids)
            if alert_type == "check" and check_id is None:
                check_id = next(self._ids)
            alert = {
                "id": aid, "hostname": agent.hostname, "agent_id": agent.agent_id, "client": client["name"],
                "site": site["name"], "alert_time": alert_time or dt.datetime.now(dt.UTC),
                "agent": agent.pk, "assigned_check": check_id, "assigned_task": task_id, "alert_type": alert_type,
                "message": message or f"{agent.hostname} has a diskspace check: Disk space C: < 10% that failed.",
                "snoozed": False, "snooze_until": None, "resolved": False, "resolved_on": None,
                "severity": severity, "email_sent": None, "resolved_email_sent": None, "sms_sent": None,
                "resolved_sms_sent": None, "hidden": False, "action_run": None, "action_stdout": None,
                "action_stderr": None, "action_retcode": None, "action_execution_time": None,
                "resolved_action_run": None, "resolved_action_stdout": None, "resolved_action_stderr": None,
                "resolved_action_retcode": None, "resolved_action_execution_time": None,
            }
            self.alerts[aid] = alert
            return alert

    def resolve_locally(self, alert_id: int) -> dict[str, Any]:
        """What Tactical does when the check passes again (it then sends the resolved webhook)."""
        with self._data_lock:
            alert = self.alerts[alert_id]
            alert["resolved"], alert["resolved_on"] = True, dt.datetime.now(dt.UTC)
            return alert

    # -- serialisation (Tactical's serializers) --------------------------------------------
    def _client_json(self, client: dict[str, Any]) -> dict[str, Any]:
        sites = [self._site_json(s) for s in self.sites.values() if s["client"] == client["id"]]
        return {**client, "sites": sites, "agent_count": sum(s["agent_count"] for s in sites)}

    def _site_json(self, site: dict[str, Any]) -> dict[str, Any]:
        count = sum(1 for a in self.agents.values() if a.site_id == site["id"])
        return {**site, "client_name": self.clients[site["client"]]["name"], "agent_count": count}

    def _table_row(self, a: SimAgent) -> dict[str, Any]:
        site = self.sites[a.site_id]
        return {
            "agent_id": a.agent_id, "alert_template": None, "hostname": a.hostname, "site_name": site["name"],
            "client_name": self.clients[site["client"]]["name"], "monitoring_type": a.monitoring_type,
            "description": a.description, "needs_reboot": False, "pending_actions_count": 0, "status": a.status,
            "overdue_text_alert": False, "overdue_email_alert": False, "overdue_dashboard_alert": False,
            "last_seen": _iso(a.last_seen), "boot_time": 1742200000.0,
            "checks": {"total": 0, "passing": 0, "failing": 0, "warning": 0, "info": 0, "has_failing_checks": False},
            "maintenance_mode": False, "logged_username": a.logged_username or "-", "italic": False, "policy": None,
            "block_policy_inheritance": False, "plat": a.plat, "goarch": "amd64", "has_patches_pending": False,
            "version": "2.8.0", "operating_system": a.operating_system, "public_ip": a.public_ip,
            "cpu_model": ["Intel(R) Core(TM) i5"], "graphics": "Intel(R) UHD Graphics", "local_ips": a.local_ips,
            "make_model": a.make_model, "physical_disks": ["Samsung SSD 256GB"], "custom_fields": [],
            "serial_number": a.serial_number,
        }

    def _wmi(self, a: SimAgent) -> dict[str, Any]:
        if a.plat != "windows":
            return {"serialnumber": a.serial_number, "make_model": a.make_model,
                    "local_ips": [ip.strip() for ip in a.local_ips.split(",")]}
        make, _, model = a.make_model.partition(" ")
        if a.make_model.startswith("Dell Inc."):
            make, model = "Dell Inc.", a.make_model[len("Dell Inc. "):]
        return {
            "bios": [[{"SerialNumber": a.serial_number}, {"Version": "1.2.3"}]],
            "comp_sys": [[{"Manufacturer": make}, {"Model": model}]],
            "comp_sys_prod": [[{"Vendor": make}, {"Version": "x"}]],
            "network_config": [[{"IPAddress": [ip.strip() for ip in a.local_ips.split(",")] + ["fe80::1"]}]],
        }

    def _beta_row(self, a: SimAgent) -> dict[str, Any]:
        # ListAgentSerializer: every model field (no computed status/serial/make_model).
        return {
            "id": a.pk, "version": "2.8.0", "operating_system": a.operating_system, "plat": a.plat, "goarch": "amd64",
            "hostname": a.hostname, "agent_id": a.agent_id, "last_seen": _iso(a.last_seen), "services": [],
            "public_ip": a.public_ip, "total_ram": 16, "disks": [], "boot_time": 1742200000.0,
            "logged_in_username": a.logged_username or "None", "last_logged_in_user": a.logged_username,
            "monitoring_type": a.monitoring_type, "description": a.description, "mesh_node_id": "node//abc",
            "overdue_email_alert": False, "overdue_text_alert": False, "overdue_dashboard_alert": False,
            "offline_time": 4, "overdue_time": 30, "check_interval": 120, "needs_reboot": False,
            "choco_installed": False, "wmi_detail": self._wmi(a), "patches_last_installed": None,
            "time_zone": None, "maintenance_mode": False, "block_policy_inheritance": False, "alert_template": None,
            "site": a.site_id, "policy": None,
        }

    def _alert_json(self, alert: dict[str, Any]) -> dict[str, Any]:
        return {**alert, "alert_time": _iso(alert["alert_time"]), "resolved_on": _iso(alert["resolved_on"])}

    # -- auth -----------------------------------------------------------------------------
    def _auth(self, request: Request) -> Reply | None:
        authz = request.headers.get("authorization", "")
        if authz.lower().startswith("token "):
            if authz[6:].strip() in self.tokens:
                return None
            return Reply(401, BAD_TOKEN)
        key = request.headers.get("x-api-key")
        if key is None:
            return Reply(401, NO_CREDS)
        if key not in self.api_keys:
            return Reply(401, BAD_TOKEN)
        return None

    def _authed(self, handler):
        def wrapped(request: Request) -> Reply:
            denied = self._auth(request)
            if denied is not None:
                return denied
            if any(request.path.startswith(prefix) for prefix in self.forbidden):
                return Reply(403, FORBIDDEN)
            with self._data_lock:
                return handler(request)

        return wrapped

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # -- routes ---------------------------------------------------------------------------
    def _routes_setup(self) -> None:
        r, a = self.route, self._authed
        r("GET", "/", lambda req: Reply(200, {"status": "ok"}))
        r("POST", "/v2/checkcreds/", self._checkcreds)
        r("POST", "/v2/login/", self._login)
        r("GET", "/clients/", a(lambda req: Reply(200, [self._client_json(c) for c in self.clients.values()])))
        r("GET", "/agents/", a(self._agents))
        r("GET", "/agents/{agent_id}/", a(self._agent_detail))
        r("GET", "/agents/{agent_id}/meshcentral/", a(self._meshcentral))
        r("GET", "/software/{agent_id}/", a(self._software))
        r("GET", "/beta/v1/agent/", self._beta_gate(a(self._beta_agents)))
        r("PATCH", "/alerts/", a(self._alerts_list))
        r("GET", "/alerts/{pk}/", a(self._alert_get))
        r("PUT", "/alerts/{pk}/", a(self._alert_put))

    def _beta_gate(self, handler):
        def wrapped(request: Request) -> Reply:
            return handler(request) if self.beta_enabled else self.not_found(request)

        return wrapped

    def _checkcreds(self, req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        user = self.users.get(str(body.get("username")))
        if not user or user["password"] != body.get("password"):
            return Reply(400, "Bad credentials")
        if not user.get("totp"):
            token = secrets.token_hex(32)
            self.tokens[token] = body["username"]
            expiry = _iso(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3))
            return Reply(200, {"expiry": expiry, "token": token, "totp": False})
        return Reply(200, {"totp": True})

    def _login(self, req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        user = self.users.get(str(body.get("username")))
        if not user or user["password"] != body.get("password") or str(body.get("twofactor")) != user.get("totp"):
            return Reply(400, "Bad credentials")
        token = secrets.token_hex(32)
        self.tokens[token] = body["username"]
        expiry = _iso(dt.datetime.now(dt.UTC) + dt.timedelta(hours=5))
        return Reply(200, {"expiry": expiry, "token": token, "username": body["username"], "name": None})

    def _agents(self, req: Request) -> Reply:
        agents = list(self.agents.values())
        if "site" in req.query:
            agents = [x for x in agents if str(x.site_id) == req.query["site"]]
        elif "client" in req.query:
            agents = [x for x in agents if str(self.sites[x.site_id]["client"]) == req.query["client"]]
        if req.query.get("detail") == "false":
            return Reply(200, [{"id": x.pk, "hostname": x.hostname, "agent_id": x.agent_id,
                                "client": self.clients[self.sites[x.site_id]["client"]]["name"],
                                "site": self.sites[x.site_id]["name"]} for x in agents])
        return Reply(200, [self._table_row(x) for x in agents])

    def _agent(self, req: Request) -> SimAgent | None:
        return self.agents.get(req.params["agent_id"])

    def _agent_detail(self, req: Request) -> Reply:
        agent = self._agent(req)
        if agent is None:
            return Reply(404, AGENT_404)
        row = self._beta_row(agent)
        row.pop("id")
        site = self.sites[agent.site_id]
        return Reply(200, {**row, "client": self.clients[site["client"]]["name"], "site_name": site["name"],
                           "status": agent.status})

    def _meshcentral(self, req: Request) -> Reply:
        agent = self._agent(req)
        if agent is None:
            return Reply(404, AGENT_404)
        if self.mesh_fails:
            return Reply(400, "Unable to connect to MeshCentral")
        base = "https://mesh.example.test/?login=tok&gotonode=node//abc"
        site = self.sites[agent.site_id]
        return Reply(200, {"hostname": agent.hostname, "control": base + "&viewmode=11&hide=31",
                           "terminal": base + "&viewmode=12&hide=31", "file": base + "&viewmode=13&hide=31",
                           "status": agent.status, "client": self.clients[site["client"]]["name"],
                           "site": site["name"]})

    def _software(self, req: Request) -> Reply:
        agent = self._agent(req)
        if agent is None:
            return Reply(404, AGENT_404)
        rows = self.software.get(agent.agent_id)
        if rows is None:
            return Reply(200, [])
        return Reply(200, {"id": agent.pk, "agent": agent.pk, "software": rows})

    def _beta_agents(self, req: Request) -> Reply:
        agents = sorted(self.agents.values(), key=lambda x: x.pk)
        if req.query.get("client_id"):
            agents = [x for x in agents if str(self.sites[x.site_id]["client"]) == req.query["client_id"]]
        if req.query.get("site"):
            agents = [x for x in agents if str(x.site_id) == req.query["site"]]
        size = min(int(req.query.get("page_size") or 100), 1000)
        page = int(req.query.get("page") or 1)
        chunk = agents[(page - 1) * size: page * size]
        if page > 1 and not chunk:
            return Reply(404, {"detail": "Invalid page."})
        more = page * size < len(agents)
        nxt = f"{self.url}/beta/v1/agent/?page={page + 1}&page_size={size}" if more else None
        return Reply(200, {"count": len(agents), "next": nxt, "previous": None,
                           "results": [self._beta_row(x) for x in chunk]})

    def _alerts_list(self, req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        alerts = list(self.alerts.values())
        keys = ("timeFilter", "clientFilter", "severityFilter", "resolvedFilter", "snoozedFilter")
        if "top" in body:
            active = [x for x in alerts if not x["resolved"] and not x["snoozed"] and not x["hidden"]]
            return Reply(200, {"alerts_count": len(active),
                               "alerts": [self._alert_json(x) for x in active[: int(body["top"])]]})
        if any(k in body for k in keys):
            # Only falsy values filter (Tactical): {"resolvedFilter": true} filters nothing.
            if "resolvedFilter" in body and not body["resolvedFilter"]:
                alerts = [x for x in alerts if x["resolved"] == body["resolvedFilter"]]
            if "snoozedFilter" in body and not body["snoozedFilter"]:
                alerts = [x for x in alerts if x["snoozed"] == body["snoozedFilter"]]
            if "severityFilter" in body:
                alerts = [x for x in alerts if x["severity"] in body["severityFilter"]]
            if "clientFilter" in body:
                names = {self.clients[c]["name"] for c in body["clientFilter"] if c in self.clients}
                alerts = [x for x in alerts if x["client"] in names]
        return Reply(200, [self._alert_json(x) for x in alerts])

    def _alert_get(self, req: Request) -> Reply:
        alert = self.alerts.get(int(req.params["pk"])) if req.params["pk"].isdigit() else None
        return Reply(200, self._alert_json(alert)) if alert else Reply(404, ALERT_404)

    def _alert_put(self, req: Request) -> Reply:
        alert = self.alerts.get(int(req.params["pk"])) if req.params["pk"].isdigit() else None
        if alert is None:
            return Reply(404, ALERT_404)
        body = req.body if isinstance(req.body, dict) else {}
        kind = body.get("type")
        if kind == "resolve":
            alert.update(resolved=True, resolved_on=dt.datetime.now(dt.UTC), snoozed=False,
                         snooze_until=None)
        elif kind == "snooze":
            if "snooze_days" not in body:
                return Reply(400, "Missing 'snoozed_days' when trying to snooze alert")
            alert["snoozed"] = True
        elif kind == "unsnooze":
            alert["snoozed"] = False
        elif kind is not None:
            return Reply(400, "There was an error in the request data")
        return Reply(200, "ok")

    # -- webhooks as Tactical renders and sends them -----------------------------------------
    def webhook_context(self, alert_id: int) -> dict[str, Any]:
        alert = self.alerts[alert_id]
        agent = self.agents[alert["agent_id"]]
        site = self.sites[agent.site_id]
        client = self.clients[site["client"]]
        check = {"__str__": f"Check {alert['assigned_check']}", "id": alert["assigned_check"]} \
            if alert["assigned_check"] is not None else None
        task = {"__str__": f"Task {alert['assigned_task']}", "id": alert["assigned_task"]} \
            if alert["assigned_task"] is not None else None
        return {
            "alert": {**alert, "__str__": alert["message"], "assigned_check": check, "assigned_task": task},
            "agent": {"__str__": agent.hostname, "hostname": agent.hostname, "agent_id": agent.agent_id,
                      "site": site["name"], "monitoring_type": agent.monitoring_type},
            "client": {"__str__": client["name"], "id": client["id"], "name": client["name"]},
            "site": {"__str__": site["name"], "id": site["id"], "name": site["name"]},
            "global": {"__str__": "None"},
        }


_PLACEHOLDER = re.compile(r"\{\{\s*(client|site|agent|global|alert)\.([\w.]+)\s*\}\}")
_STRAY_BACKSLASH = re.compile(r"\\(?![\\nrt])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _lookup(context: dict[str, Any], model: str, prop: str) -> Any:
    obj: Any = context.get(model)
    for part in prop.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif obj is None:
            return None
        else:
            # Tactical: an unknown property renders the parent object itself.
            return obj.get("__str__") if isinstance(obj, dict) else obj
    if isinstance(obj, dict):
        return obj.get("__str__")
    return obj


def substitute(template: str, context: dict[str, Any], *, url: bool = False) -> str:
    def repl(match: re.Match[str]) -> str:
        value = _lookup(context, match.group(1), match.group(2))
        # Tactical inserts Python str() of the value, and falsy values as "None".
        value = str(value) if value else "None"
        return quote(value, safe="") if url else value

    return _PLACEHOLDER.sub(repl, template)


def render_webhook(sim: TacticalSimulator, alert_id: int, *, url: str, headers_json: str,
                   body_template: str) -> tuple[str, dict[str, str], bytes]:
    """(url, headers, body) exactly as Tactical's REST URL action sends them."""
    context = sim.webhook_context(alert_id)
    rendered_url = substitute(url, context, url=True)
    headers = json.loads(substitute(headers_json, context)) if headers_json.strip() else {}
    text = substitute(body_template, context)
    text = _STRAY_BACKSLASH.sub(r"\\\\", _CONTROL.sub("", text))
    try:
        body: Any = json.loads(text, strict=False)
    except ValueError:
        body = text  # Tactical's fallback: the whole text as one JSON string literal
    return rendered_url, {str(k): str(v) for k, v in headers.items()}, json.dumps(body).encode()
