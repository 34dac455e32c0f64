"""Tactical RMM alert webhooks: reading what Tactical sends, and the card an admin pastes.

Tactical has no webhook format of its own: the admin writes a URL Action (``rest``)
whose body is a template; Tactical substitutes ``{{...}}`` with Python ``str()`` of the
values, then ``json.loads`` the result and sends ``json.dumps`` of it. When a value
contains a double quote the substituted text is not JSON and Tactical sends the
**whole text as one JSON string literal**. The card therefore also puts
``{{alert.id}}`` (and the event) in the URL's query string, which Tactical renders
URL-quoted, so such a body can be salvaged by fetching the alert from the API.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from integrations.errors import WebhookParseError
from integrations.records import AlertEventKind

from .normalize import event_kind, int_id, parse_dt, text

_ALERT_ID_RE = re.compile(r'"alert_id"\s*:\s*"?\s*(\d{1,18})')
_EVENT_RE = re.compile(r'"event"\s*:\s*"(\w+)"')
_RESOLVED_ON_RE = re.compile(r'"resolved_on"\s*:\s*"([^"]{1,64})"')
EVENT_WORD = {AlertEventKind.TRIGGERED: "trigger", AlertEventKind.RESOLVED: "resolved"}

# The placeholders (verified on a real server, facts file section 2.7): ids via ".id",
# every string placeholder quoted, only {{alert.id}} bare (always an integer).
_FIELDS = (
    '"alert_id": {{alert.id}}, "alert_type": "{{alert.alert_type}}", "severity": "{{alert.severity}}", '
    '"message": "{{alert.message}}", "alert_time": "{{alert.alert_time}}", "resolved_on": "{{alert.resolved_on}}", '
    '"agent_id": "{{agent.agent_id}}", "hostname": "{{agent.hostname}}", '
    '"client_id": "{{client.id}}", "client_name": "{{client.name}}", '
    '"site_id": "{{site.id}}", "site_name": "{{site.name}}", '
    '"check_id": "{{alert.assigned_check.id}}", "task_id": "{{alert.assigned_task.id}}"'
)
FAILURE_BODY = '{"event": "trigger", ' + _FIELDS + "}"
RESOLVED_BODY = '{"event": "resolved", ' + _FIELDS + "}"

WARNINGS = [
    (
        "Tactical skips REST actions for info alerts unless Settings > Global Settings > Alerts > "
        "'Notify on info alerts' is on, and for warning alerts unless 'Notify on warning alerts' is on "
        "(both are off by default). Polling still picks those alerts up, up to one poll interval later."
    ),
    (
        "Tactical sends each webhook once, with no retry: keep polling enabled so alerts sent while this "
        "PSA was unreachable are still ingested and resolved."
    ),
    (
        "Resolving an alert through Tactical's API (as this PSA does when a technician closes the ticket) "
        "sends no resolved webhook; that is expected."
    ),
    (
        "A double quote in an alert's message or check name makes Tactical send an unreadable body; the "
        "alert id in the URL lets this PSA fetch the alert from the API instead, so keep ?alert_id= in the URL."
    ),
]


@dataclass
class ReadBody:
    alert_id: int
    event: str | None  # AlertEventKind, None when unknown
    body: dict[str, Any] | None  # None -> salvage from the API
    reason: str = ""  # why the body could not be read

    @property
    def delivery_id(self) -> str | None:
        # Tactical fires once per alert on failure and once on resolve: that pair is the delivery.
        return f"{EVENT_WORD[self.event]}:{self.alert_id}" if self.event else None


def _query_value(query: Any, *names: str) -> str:
    for name in names:
        value = query.get(name) if hasattr(query, "get") else None
        if isinstance(value, list):
            value = value[0] if value else None
        if value not in (None, ""):
            return str(value)
    return ""


def _event_of(body: dict[str, Any], fallback: str | None = None) -> str | None:
    # Tactical sets resolved_on only when the alert resolved (the failure action renders it "None"), so a
    # date there is a resolve whatever the body's or the URL's event says: an admin who pasted the failure
    # body into both URL actions still gets tickets closed, and the delivery id follows the real event.
    if parse_dt(body.get("resolved_on")):
        return AlertEventKind.RESOLVED
    kind = event_kind(body.get("event"))
    if kind:
        return kind
    if text(body.get("resolved")).lower() == "true":
        return AlertEventKind.RESOLVED
    return fallback


def read(body: bytes, query: Any) -> ReadBody:
    """Read a Tactical webhook; raises WebhookParseError only when no alert id can be found at all."""
    raw = (body or b"").decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    q_alert = int_id(_query_value(query, "alert_id", "alert"))
    q_event = event_kind(_query_value(query, "event"))

    candidate: Any
    inner = raw
    try:
        # strict=False: Tactical leaves real control characters (a "\n" in C:\Temp\new) in values.
        candidate = json.loads(raw, strict=False) if raw else None
    except ValueError:
        candidate = None
        reason = "The body is not valid JSON."
    else:
        reason = "The body is empty." if candidate is None else "The body is not a JSON object."
    if isinstance(candidate, str):
        # Tactical's fallback for a rendering that was not JSON: the whole text as a string.
        inner = candidate
        try:
            candidate = json.loads(candidate, strict=False)
        except ValueError:
            candidate = None
            reason = ("Tactical sent the body as a JSON string literal of invalid JSON "
                      "(a double quote or a bare None in a substituted value).")
    if isinstance(candidate, dict):
        alert_id = int_id(candidate.get("alert_id", candidate.get("id")))
        if alert_id is None:
            alert_id = q_alert
        if alert_id is not None:
            return ReadBody(alert_id=alert_id, event=_event_of(candidate, q_event), body=candidate)
        reason = "The body carries no alert_id."

    alert_id = q_alert
    if alert_id is None:
        match = _ALERT_ID_RE.search(inner)
        alert_id = int(match.group(1)) if match else None
    if alert_id is None:
        raise WebhookParseError(
            f"{reason} No alert id either: add ?alert_id={{{{alert.id}}}} to the webhook URL in Tactical "
            "so unreadable bodies can be fetched from the API."
        )
    match = _EVENT_RE.search(inner)
    event = (event_kind(match.group(1)) if match else None) or q_event
    resolved_on = _RESOLVED_ON_RE.search(inner)
    if resolved_on and parse_dt(resolved_on.group(1)):  # as for a readable body: a date means resolved
        event = AlertEventKind.RESOLVED
    return ReadBody(alert_id=alert_id, event=event, body=None, reason=reason)


def summary(read_body: ReadBody) -> str:
    word = EVENT_WORD.get(read_body.event or "", "event")
    if read_body.body is None:
        return f"{word} alert {read_body.alert_id}: body unreadable, to be fetched from Tactical"
    host = text(read_body.body.get("hostname"))
    message = text(read_body.body.get("message"))
    return f"{word} alert {read_body.alert_id}: {host} {message}".strip()  # intake cleans and clips it


def _url_with(url: str, params: str) -> str:
    return url + ("&" if "?" in url else "?") + params


def card(url: str, header_name: str, secret: str) -> dict[str, Any]:
    """Everything to paste into Tactical (Settings > Global Settings > URL Actions, Alert Templates)."""
    headers = json.dumps({"Content-Type": "application/json", header_name: secret or "<secret>"})
    url_with_id = _url_with(url, "alert_id={{alert.id}}")
    failure_url = _url_with(url_with_id, "event=trigger")
    resolved_url = _url_with(url_with_id, "event=resolved")
    return {
        "url": url_with_id,
        "payload_template": FAILURE_BODY,
        "rest_method": "post",
        "rest_headers": headers,
        "failure_body": FAILURE_BODY,
        "resolved_body": RESOLVED_BODY,
        "actions": [
            {"name": "PSA alert (failure)", "action_type": "rest", "rest_method": "post", "pattern": failure_url,
             "rest_headers": headers, "rest_body": FAILURE_BODY},
            {"name": "PSA alert (resolved)", "action_type": "rest", "rest_method": "post", "pattern": resolved_url,
             "rest_headers": headers, "rest_body": RESOLVED_BODY},
        ],
        "steps": [
            (
                "In Tactical: Settings > Global Settings > URL Actions > Add, type 'Rest', twice: one action "
                "from each entry of 'actions' (URL pattern, method POST, headers, body)."
            ),
            (
                "Settings > Alerts Manager: in the alert template that applies to your agents (or a new one, "
                "assigned to the clients, sites or policies concerned), set the failure action to 'PSA alert "
                "(failure)' and the resolved action to 'PSA alert (resolved)'."
            ),
            (
                "In that template enable the alert settings for agents, checks and tasks whose alerts should "
                "reach this PSA (the 'run actions' switches must be on)."
            ),
            "Keep alert_id in the URL: it lets this PSA recover alerts whose body Tactical could not render.",
        ],
        "warnings": WARNINGS,
        "docs": "docs/tactical.md",
    }
