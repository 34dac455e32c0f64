"""A Huntress API simulator on loopback, built from ../shared/providers/huntress.md.

Routes under ``/v1``: ``account``, ``organizations`` (+ ``/{id}``), ``agents`` (+ ``/{id}``),
``incident_reports`` (+ ``/{id}``, ``/{id}/remediations``, ``POST /{id}/resolution``,
``POST /{id}/remediations/bulk_approval``), ``escalations`` (+ ``/{id}``).

Behaviour:
- HTTP Basic ``key:secret``; 401 for anything else. Keys belong to an account and may be
  read-only (the default account key: 403 on resolution).
- A sliding-window rate limit per account (``rate_limit`` per ``rate_window`` seconds; Huntress:
  60 per 60): the next request answers 429 with ``Retry-After`` (integer seconds like a real
  server, or fractional with ``retry_after_integer=False`` so tests stay fast). Refused requests
  do not count. ``consume(n)`` spends budget as another tool on the same account would.
- Paging: ``limit`` 1-500 (default 10), opaque keyset ``page_token`` (base64 of the last row's
  sort value and id), ``sort_field`` / ``sort_direction`` (default id, desc). The last page's
  ``pagination`` is ``{}`` / null tokens / missing tokens (``last_page_style``).
- Incident reports change over time (``set_severity``, ``add_remediation``, ``approve_remediations``,
  ``close_incident``): each change moves ``updated_at`` on a simulated clock, one second a step.
  Embedded remediations are the first 10, as an object ``{total_count, has_more, items}`` or, with
  ``remediations_shape = "list"``, a bare list.
- Resolution: 403 read-only key, 404 unknown, 422 status not ``sent``, 409 a remediation still
  ``unapproved``, else 201 and status ``resolved_word`` ("resolved" or "closed").
- A disabled account answers ``/v1/account`` with ``status: disabled`` and 403 elsewhere.

``WebhookSender`` delivers Svix-signed webhooks like Huntress: one message id per event, kept on
every retry, a fresh timestamp and signature per attempt.
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime as dt
import itertools
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from svix.webhooks import Webhook

from .base import Reply, Request, SimulatorServer

EPOCH = dt.datetime(2025, 3, 19, 13, 0, 0, tzinfo=dt.UTC)
REMEDIATION_STATUSES = ("unapproved", "approved", "completed", "failed", "cancelled")


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class ApiKey:
    secret: str
    account_id: int
    read_only: bool = True


class HuntressSimulator(SimulatorServer):
    def __init__(self, *, rate_limit: int = 60, rate_window: float = 60.0, retry_after_integer: bool = True):
        super().__init__()
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.retry_after_integer = retry_after_integer
        self.remediations_shape = "object"
        self.last_page_style = "missing"  # "missing" | "null" | "empty"
        self.resolved_word = "resolved"
        self.accounts: dict[int, dict[str, Any]] = {}
        self.keys: dict[str, ApiKey] = {}
        self.orgs: dict[int, dict[str, Any]] = {}
        self.agents: dict[int, dict[str, Any]] = {}
        self.incidents: dict[int, dict[str, Any]] = {}
        self.escalations: dict[int, dict[str, Any]] = {}
        self.clock = EPOCH
        self.throttled = 0  # 429s answered
        self.granted: list[tuple[float, int]] = []  # (monotonic time, account id) of counted requests
        self._windows: dict[int, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._ids = itertools.count(1000)
        self._data = threading.RLock()
        self.account = self.add_account("Example MSP", "examplemsp")
        self.api_key, self.api_secret = self.add_key(self.account["id"], read_only=True)
        self.rw_key, self.rw_secret = self.add_key(self.account["id"], read_only=False)
        self._routes_setup()

    # -- data -------------------------------------------------------------------------------------
    def _next_id(self) -> int:
        return next(self._ids)

    def tick(self, seconds: int = 1) -> str:
        with self._data:
            self.clock += dt.timedelta(seconds=seconds)
            return iso(self.clock)

    def add_account(self, name: str, subdomain: str, status: str = "enabled") -> dict[str, Any]:
        account = {"id": self._next_id(), "name": name, "subdomain": subdomain, "status": status,
                   "support_type": "not_applicable", "neighborhood_watch": None,
                   "billing_address": None, "shipping_address": None}
        self.accounts[account["id"]] = account
        return account

    def add_key(self, account_id: int, *, read_only: bool = True) -> tuple[str, str]:
        key, secret = "hk_" + secrets.token_hex(8), secrets.token_hex(16)
        self.keys[key] = ApiKey(secret, account_id, read_only)
        return key, secret

    def add_org(self, name: str, **kw: Any) -> dict[str, Any]:
        with self._data:
            now = self.tick()
            org = {"id": self._next_id(), "name": name, "key": kw.pop("key", name.lower().replace(" ", "-")[:40]),
                   "account_id": self.account["id"], "created_at": now, "updated_at": now, "agents_count": 0,
                   "incident_reports_count": 0, "logs_sources_count": 0, "billable_identity_count": 0,
                   "sat_learner_count": 0, "identity_provider_tenant_id": None, "report_recipients": [], **kw}
            self.orgs[org["id"]] = org
            return org

    def add_agent(self, org_id: int, hostname: str, serial: str | None = None, **kw: Any) -> dict[str, Any]:
        with self._data:
            now = self.tick()
            agent = {"id": self._next_id(), "account_id": self.account["id"], "organization_id": org_id,
                     "hostname": hostname, "domain_name": "corp.local", "platform": "windows",
                     "os": "Windows 11 Pro", "serial_number": serial if serial is not None else f"SN{len(self.agents):05d}",
                     "ipv4_address": "10.0.0.5", "external_ip": "203.0.113.24", "mac_addresses": [],
                     "version": "0.14.52", "firewall_status": "Enabled", "last_callback_at": now,
                     "tags": [], "created_at": now, "updated_at": now, **kw}
            self.agents[agent["id"]] = agent
            self.orgs[org_id]["agents_count"] += 1
            return agent

    def _remediation(self, action: str, type_: str = "assisted", status: str = "unapproved") -> dict[str, Any]:
        return {"id": self._next_id(), "type": type_, "action": action, "parameters": [], "status": status,
                "approved_at": None, "approved_by": None, "completed_at": None}

    def add_incident(self, org_id: int, agent_id: int | None = None, *, severity: str = "high",
                     status: str = "sent", remediations: int | list[str] = 1, **kw: Any) -> dict[str, Any]:
        with self._data:
            now = self.tick()
            org = self.orgs.get(org_id, {"name": f"Org {org_id}"})
            agent = self.agents.get(agent_id) if agent_id else None
            host = agent["hostname"] if agent else "cloud"
            actions = remediations if isinstance(remediations, list) else [
                f"Delete scheduled task \\Updater{i}" for i in range(remediations)]
            report = {
                "id": self._next_id(), "account_id": self.account["id"], "organization_id": org_id,
                "agent_id": agent_id, "status": status, "severity": severity, "platform": "windows",
                "subject": f"{severity.upper()} - Incident on {host} ({org['name']})",
                "summary": "A malicious scheduled task was created to persist a remote access tool.",
                "body": "<p>Huntress detected a persistence mechanism.</p>",
                "indicator_types": ["footholds"], "indicator_counts": {"footholds": 1},
                "remediations": [self._remediation(a) for a in actions],
                "sent_at": now if status == "sent" else None, "closed_at": None,
                "created_at": now, "status_updated_at": now, "updated_at": now,
            }
            report.update(kw)
            self.incidents[report["id"]] = report
            if org_id in self.orgs:
                self.orgs[org_id]["incident_reports_count"] += 1
            return report

    def _touch(self, report: dict[str, Any], status_changed: bool = False) -> None:
        now = self.tick()
        report["updated_at"] = now
        if status_changed:
            report["status_updated_at"] = now

    def set_severity(self, report_id: int, severity: str) -> dict[str, Any]:
        with self._data:
            report = self.incidents[report_id]
            report["severity"] = severity
            self._touch(report)
            return report

    def add_remediation(self, report_id: int, action: str, type_: str = "manual") -> dict[str, Any]:
        with self._data:
            report = self.incidents[report_id]
            rem = self._remediation(action, type_)
            report["remediations"].append(rem)
            self._touch(report)
            return rem

    def approve_remediations(self, report_id: int, ids: list[int] | None = None,
                             by: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._data:
            report = self.incidents[report_id]
            now = self.tick()
            for rem in report["remediations"]:
                if rem["status"] == "unapproved" and (ids is None or rem["id"] in ids):
                    rem.update(status="approved", approved_at=now,
                               approved_by=by or {"id": "123123", "email": "tech@msp.example", "name": "Ann Tech"})
            self._touch(report)
            return report

    def close_incident(self, report_id: int, status: str = "closed") -> dict[str, Any]:
        with self._data:
            report = self.incidents[report_id]
            report["status"] = status
            self._touch(report, status_changed=True)
            report["closed_at"] = report["updated_at"]
            return report

    def add_escalation(self, org_ids: list[int], *, severity: str = "high", status: str = "open",
                       subject: str = "Defender Disabled", type_: str = "Environmental Issue") -> dict[str, Any]:
        with self._data:
            now = self.tick()
            esc = {"id": self._next_id(), "account": {"id": self.account["id"], "name": self.account["name"]},
                   "organizations": [{"id": o, "name": self.orgs[o]["name"]} for o in org_ids],
                   "created_at": now, "updated_at": now, "resolved_at": None, "severity": severity,
                   "status": status, "subject": subject, "subtype": None, "type": type_}
            self.escalations[esc["id"]] = esc
            return esc

    def resolve_escalation(self, esc_id: int) -> dict[str, Any]:
        with self._data:
            esc = self.escalations[esc_id]
            now = self.tick()
            esc.update(status="resolved", resolved_at=now, updated_at=now)
            return esc

    def populate(self, orgs: int, incidents: int, agents_per_org: int = 2) -> None:
        """``incidents`` reports spread round-robin over ``orgs`` organizations and their agents."""
        made = [self.add_org(f"Org {i:03d} “Ünïcode” & Sons") for i in range(orgs)]
        hosts = {o["id"]: [self.add_agent(o["id"], f"HOST-{o['id']}-{j}")["id"] for j in range(agents_per_org)]
                 for o in made}
        severities = ("low", "high", "critical")
        for i in range(incidents):
            org = made[i % orgs]["id"]
            self.add_incident(org, hosts[org][i % agents_per_org], severity=severities[i % 3])

    # -- wire shapes ------------------------------------------------------------------------------
    def report_json(self, report: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in report.items() if k != "created_at"}  # not in the REST schema
        rems = out["remediations"]
        if self.remediations_shape == "object":
            out["remediations"] = {"total_count": len(rems), "has_more": len(rems) > 10, "items": rems[:10]}
        else:
            out["remediations"] = rems[:10]
        return out

    def incident_webhook(self, report_id: int, event_type: str = "incident_report.created",
                         nulls: tuple[str, ...] = ()) -> dict[str, Any]:
        """The flat payload Huntress posts (no indicator_types, no remediations)."""
        report = self.incidents[report_id]
        org = self.orgs.get(report["organization_id"])
        payload = {
            "event_type": event_type, "id": report_id,
            "api_url": f"{self.url}/v1/incident_reports/{report_id}",
            "account": {"id": self.account["id"], "name": self.account["name"]},
            "organization": {"id": report["organization_id"], "name": org["name"]} if org else None,
            "account_id": self.account["id"], "organization_id": report["organization_id"],
            "agent_id": report["agent_id"],
            **{k: report[k] for k in ("platform", "severity", "status", "subject", "summary", "body",
                                      "indicator_counts", "created_at", "sent_at", "status_updated_at",
                                      "closed_at", "updated_at")},
        }
        for name in nulls:
            payload[name] = None
        return payload

    def escalation_webhook(self, esc_id: int, event_type: str = "escalation.created") -> dict[str, Any]:
        esc = copy.deepcopy(self.escalations[esc_id])
        esc.update(event_type=event_type, api_url=f"{self.url}/v1/escalations/{esc_id}",
                   total_organizations_impacted=len(esc["organizations"]))
        if event_type == "escalation.overdue":
            esc["message"] = "This escalation is overdue: please respond in the Huntress portal."
        return esc

    # -- gatekeeping ------------------------------------------------------------------------------
    def consume(self, n: int) -> None:
        """Spend ``n`` requests of the account's budget now (another tool using the same account)."""
        with self._lock:
            window = self._windows[self.account["id"]]
            now = time.monotonic()
            window.extend([now] * n)

    def max_in_window(self, window: float | None = None) -> int:
        """The most counted requests of one account in any sliding window."""
        window = window if window is not None else self.rate_window
        best = 0
        with self._lock:
            stamps = sorted(t for t, _ in self.granted)
        start = 0
        for end, t in enumerate(stamps):
            while t - stamps[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def _auth(self, request: Request) -> ApiKey | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            key, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":")
        except ValueError:
            return None
        found = self.keys.get(key)
        return found if found and secrets.compare_digest(found.secret, secret) else None

    def dispatch(self, request: Request) -> Reply:
        if not request.path.startswith("/v1/"):
            return super().dispatch(request)
        key = self._auth(request)
        if key is None:
            return Reply(401, {"error": "Unauthorized: check your API key and secret."})
        request.api_key = key  # read by handlers (account, resolution)
        with self._lock:
            window = self._windows[key.account_id]
            now = time.monotonic()
            while window and window[0] <= now - self.rate_window:
                window.popleft()
            if len(window) >= self.rate_limit:
                self.throttled += 1
                wait = window[0] + self.rate_window - now
                value = str(max(1, math.ceil(wait))) if self.retry_after_integer else f"{max(wait, 0.001):.3f}"
                return Reply(429, {"error": "Rate limit exceeded"}, headers={"Retry-After": value})
            window.append(now)
            self.granted.append((now, key.account_id))
        account = self.accounts[key.account_id]
        if account["status"] == "disabled" and request.path != "/v1/account":
            return Reply(403, {"error": "This account is disabled."})
        return super().dispatch(request)

    # -- paging -----------------------------------------------------------------------------------
    def _page(self, request: Request, plural: str, rows: list[dict[str, Any]], sort_fields: tuple[str, ...],
              shape=None) -> Reply:
        q = request.query
        try:
            limit = int(q.get("limit", "10"))
        except ValueError:
            return Reply(400, {"error": "limit must be an integer"})
        if not 1 <= limit <= 500:
            return Reply(400, {"error": "limit must be between 1 and 500"})
        field_name = q.get("sort_field", "id")
        direction = q.get("sort_direction", "desc")
        if field_name not in sort_fields or direction not in ("asc", "desc"):
            return Reply(400, {"error": "Invalid sort parameters"})

        def sort_key(row):
            value = row.get(field_name)
            return (value if value is not None else "", row["id"])

        ordered = sorted(rows, key=sort_key, reverse=direction == "desc")
        token = q.get("page_token")
        if token:
            try:
                last = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                after = (last["v"], last["id"])
                if last["f"] != field_name:
                    raise ValueError("token of another sort")
            except Exception:  # noqa: BLE001 - any unreadable token is the client's error
                return Reply(400, {"error": "Invalid page_token"})
            if direction == "desc":
                ordered = [r for r in ordered if sort_key(r) < after]
            else:
                ordered = [r for r in ordered if sort_key(r) > after]
        page, rest = ordered[:limit], ordered[limit:]
        body: dict[str, Any] = {plural: [shape(r) if shape else copy.deepcopy(r) for r in page]}
        if rest:
            value, last_id = sort_key(page[-1])
            next_token = _b64(json.dumps({"f": field_name, "v": value, "id": last_id}).encode())
            body["pagination"] = {
                "next_page_token": next_token,
                "next_page_url": f"{self.url}{request.path}?page_token={next_token}&limit={limit}",
            }
        elif self.last_page_style == "empty":
            body["pagination"] = {}
        elif self.last_page_style == "null":
            body["pagination"] = {"next_page_token": None, "next_page_url": None}
        else:
            body["pagination"] = {"next_page_url": None}
        return Reply(200, body)

    # -- routes -----------------------------------------------------------------------------------
    def _routes_setup(self) -> None:
        r = self.route
        r("GET", "/v1/account", lambda q: Reply(200, {"account": copy.deepcopy(self.accounts[q.api_key.account_id])}))
        r("GET", "/v1/organizations", self._list_orgs)
        r("GET", "/v1/organizations/{pk}", lambda q: self._one(self.orgs, q, "organization"))
        r("GET", "/v1/agents", self._list_agents)
        r("GET", "/v1/agents/{pk}", lambda q: self._one(self.agents, q, "agent"))
        r("GET", "/v1/incident_reports", self._list_incidents)
        r("GET", "/v1/incident_reports/{pk}", lambda q: self._one(self.incidents, q, "incident_report",
                                                                  self.report_json))
        r("GET", "/v1/incident_reports/{pk}/remediations", self._list_remediations)
        r("POST", "/v1/incident_reports/{pk}/remediations/bulk_approval", self._bulk_approval)
        r("POST", "/v1/incident_reports/{pk}/resolution", self._resolve)
        r("GET", "/v1/escalations", self._list_escalations)
        r("GET", "/v1/escalations/{pk}", lambda q: self._one(self.escalations, q, "escalation"))

    @staticmethod
    def _pk(request: Request) -> int | None:
        try:
            return int(request.params["pk"])
        except (KeyError, ValueError):
            return None

    def _one(self, table: dict[int, dict[str, Any]], request: Request, wrapper: str, shape=None) -> Reply:
        with self._data:
            row = table.get(self._pk(request))
            if row is None:
                return Reply(404, {"error": "Not Found"})
            return Reply(200, {wrapper: shape(row) if shape else copy.deepcopy(row)})

    def _list_orgs(self, request: Request) -> Reply:
        with self._data:
            rows = [o for o in self.orgs.values()
                    if all(request.query.get(f) in (None, str(o[f])) for f in ("name", "key"))]
            return self._page(request, "organizations", rows, ("id", "created_at", "updated_at", "name", "key"))

    def _list_agents(self, request: Request) -> Reply:
        with self._data:
            rows = [a for a in self.agents.values()
                    if all(request.query.get(f) in (None, str(a[f])) for f in ("organization_id", "hostname",
                                                                                 "platform"))]
            return self._page(request, "agents", rows, ("id", "created_at", "updated_at"))

    def _list_incidents(self, request: Request) -> Reply:
        with self._data:
            rows = [i for i in self.incidents.values()
                    if all(request.query.get(f) in (None, str(i[f])) for f in ("status", "severity", "platform",
                                                                                "organization_id", "agent_id"))]
            return self._page(request, "incident_reports", rows, ("id", "created_at", "updated_at"),
                              shape=self.report_json)

    def _list_remediations(self, request: Request) -> Reply:
        with self._data:
            report = self.incidents.get(self._pk(request))
            if report is None:
                return Reply(404, {"error": "Not Found"})
            return self._page(request, "remediations", report["remediations"], ("id",))

    def _list_escalations(self, request: Request) -> Reply:
        with self._data:
            rows = [e for e in self.escalations.values()
                    if all(request.query.get(f) in (None, str(e[f])) for f in ("status", "severity"))]
            return self._page(request, "escalations", rows, ("id", "severity", "created_at", "updated_at"))

    def _bulk_approval(self, request: Request) -> Reply:
        if request.api_key.read_only:
            return Reply(403, {"error": "This API key is read-only."})
        with self._data:
            if self._pk(request) not in self.incidents:
                return Reply(404, {"error": "Not Found"})
            report = self.approve_remediations(self._pk(request))
            return Reply(200, {"remediations": copy.deepcopy(report["remediations"])})

    def _resolve(self, request: Request) -> Reply:
        if request.api_key.read_only:
            return Reply(403, {"error": "You do not have permission to resolve incident reports."})
        with self._data:
            report = self.incidents.get(self._pk(request))
            if report is None:
                return Reply(404, {"error": "Not Found"})
            if report["status"] != "sent":
                return Reply(422, {"error": "Incident Report cannot be resolved unless report status is 'sent'."})
            if any(r["status"] == "unapproved" for r in report["remediations"]):
                return Reply(409, {"error": "Incident Report cannot be resolved. Confirm that all remediations "
                                            "are approved and report status is 'sent'."})
            self.close_incident(report["id"], status=self.resolved_word)
            return Reply(201, {"incident_report": self.report_json(report)})


# -- webhooks ---------------------------------------------------------------------------------------
@dataclass
class Delivery:
    msg_id: str
    body: bytes
    attempts: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (status, headers sent)

    @property
    def delivered(self) -> bool:
        return any(200 <= status < 300 for status, _ in self.attempts)


class WebhookSender:
    """Posts events like Huntress's Svix: the same message id on every retry of one event, a fresh
    timestamp and signature each attempt, retried on any non-2xx answer after ``delays`` (Svix:
    immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; compressed here)."""

    def __init__(self, url: str, secret: str, *, header_prefix: str = "svix",
                 delays: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2), extra_signatures: int = 0):
        self.url = url
        self.secret = secret
        self.header_prefix = header_prefix
        self.delays = delays
        self.extra_signatures = extra_signatures  # rotated-out secrets' signatures sent alongside
        self.deliveries: list[Delivery] = []

    def headers_for(self, msg_id: str, body: bytes, when: dt.datetime | None = None) -> dict[str, str]:
        when = when or dt.datetime.now(dt.UTC)
        signatures = [Webhook(new_signing_secret()).sign(msg_id, when, body) for _ in range(self.extra_signatures)]
        signatures.append(Webhook(self.secret).sign(msg_id, when, body))
        p = self.header_prefix
        return {f"{p}-id": msg_id, f"{p}-timestamp": str(int(when.timestamp())),
                f"{p}-signature": " ".join(signatures), "content-type": "application/json",
                "user-agent": "Svix-Webhooks/1.0"}

    def send(self, payload: dict[str, Any] | bytes, msg_id: str | None = None) -> Delivery:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        delivery = Delivery(msg_id or "msg_" + _b64(secrets.token_bytes(15)), body)
        self.deliveries.append(delivery)
        with httpx.Client(timeout=15.0, trust_env=False) as client:
            for delay in self.delays:
                time.sleep(delay)
                headers = self.headers_for(delivery.msg_id, body)
                try:
                    status = client.post(self.url, content=body, headers=headers).status_code
                except httpx.TransportError:
                    status = 0
                delivery.attempts.append((status, headers))
                if 200 <= status < 300:
                    break
        return delivery
