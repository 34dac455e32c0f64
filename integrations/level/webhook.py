"""Level's two inbound routes, told apart by the body, and the card an admin pastes from.

- Native webhooks (Settings > Webhooks, recommended): ``{"event_type", "event_id", "occurred_at",
  "data"}`` signed with ``X-Level-Signature``. ``event_id`` is the delivery id (Level keeps it on
  retries and manual re-runs). Event types we do not know are stored and answered 2xx: "send all
  event types" also sends types added later.
- The automation "HTTP request" action: a body built from the card's template, carrying our
  ``psa_route`` mark and Level's automation variables, authenticated by the shared-secret header.
  Automations have no alert variables, so this route reports a named check on a device.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from integrations.coerce import any_datetime, as_dict, str_id, text
from integrations.errors import WebhookParseError
from integrations.records import AlertEventKind

from .normalize import DEVICE_EVENTS, GROUP_EVENTS
from .signature import HEADER as SIGNATURE_HEADER

ROUTE_NATIVE = "native"
ROUTE_AUTOMATION = "automation"
AUTOMATION_MARK = "level-automation"
ALERT_EVENTS = {"alert_active": AlertEventKind.TRIGGERED, "alert_resolved": AlertEventKind.RESOLVED}
NATIVE_EVENTS = tuple(ALERT_EVENTS) + DEVICE_EVENTS + GROUP_EVENTS


@dataclass
class LevelEvent:
    route: str  # ROUTE_NATIVE or ROUTE_AUTOMATION
    event_type: str  # Level's event_type (native) or the automation's "event" word
    event_id: str | None
    occurred_at: dt.datetime | None
    data: dict[str, Any]  # the envelope's data (native) or the whole body (automation)
    salvaged: bool = False  # an automation body that was not valid JSON, read line by line

    @property
    def delivery_id(self) -> str | None:
        # The automation action sends no id: intake falls back to a hash of the body, which
        # differs per run because the template carries {{level_time}}.
        return self.event_id if self.route == ROUTE_NATIVE else None

    @property
    def is_alert(self) -> bool:
        return self.route == ROUTE_AUTOMATION or self.event_type in ALERT_EVENTS

    @property
    def is_directory(self) -> bool:
        return self.route == ROUTE_NATIVE and self.event_type in DEVICE_EVENTS + GROUP_EVENTS

    @property
    def is_known(self) -> bool:
        return self.route == ROUTE_AUTOMATION or self.event_type in NATIVE_EVENTS


def _decode(body: bytes) -> str:
    try:
        return (body or b"").decode("utf-8").lstrip("\ufeff").strip()
    except UnicodeDecodeError:
        raise WebhookParseError("The body is not UTF-8 text.") from None


def read(body: bytes) -> LevelEvent:
    """Read either route; raises WebhookParseError for a body that is neither."""
    raw = _decode(body)
    if not raw:
        raise WebhookParseError("The body is empty.")
    try:
        parsed = json.loads(raw)
    except ValueError:
        salvaged = _salvage_automation(raw)
        if salvaged is None:
            raise WebhookParseError("The body is not valid JSON.") from None
        return _automation(salvaged, salvaged=True)
    if not isinstance(parsed, dict):
        raise WebhookParseError("The body is not a JSON object.")
    if "event_type" in parsed:
        return _native(parsed)
    if parsed.get("psa_route") == AUTOMATION_MARK or "device_id" in parsed:
        return _automation(parsed)
    raise WebhookParseError(
        "Neither a Level webhook (no event_type) nor the automation payload from the webhook card (no device_id)."
    )


def _native(envelope: dict[str, Any]) -> LevelEvent:
    event_type = text(envelope.get("event_type"), 100).lower()
    data = as_dict(envelope.get("data"))
    if not event_type:
        raise WebhookParseError("The Level webhook has an empty event_type.")
    if event_type in NATIVE_EVENTS and str_id(data.get("id")) is None:
        raise WebhookParseError(f"The Level {event_type} webhook carries no data.id.")
    return LevelEvent(
        route=ROUTE_NATIVE,
        event_type=event_type,
        event_id=str_id(envelope.get("event_id")),
        occurred_at=any_datetime(envelope.get("occurred_at")),
        data=data,
    )


def _automation(body: dict[str, Any], *, salvaged: bool = False) -> LevelEvent:
    return LevelEvent(
        route=ROUTE_AUTOMATION,
        event_type=text(body.get("event"), 50).lower() or "trigger",
        event_id=None,
        occurred_at=any_datetime(body.get("time")),
        data=body,
        salvaged=salvaged,
    )


# One "key": "value" pair per line, as the card's template lays them out: a group name with a
# double quote in it breaks the JSON (Level substitutes variables as they are) but not the line.
_LINE = re.compile(r'^\s*"(?P<key>[a-z_]+)"\s*:\s*"(?P<value>.*)"\s*,?\s*$')


def _salvage_automation(raw: str) -> dict[str, Any] | None:
    if AUTOMATION_MARK not in raw:
        return None
    fields: dict[str, Any] = {}
    for line in raw.splitlines():
        match = _LINE.match(line)
        if match:
            fields[match.group("key")] = match.group("value").replace('\\"', '"')
    if fields.get("psa_route") != AUTOMATION_MARK or not fields.get("device_id"):
        return None
    return fields


def summary(event: LevelEvent) -> str:
    """One line for the event log (intake cleans and clips it)."""
    data = event.data
    if event.route == ROUTE_AUTOMATION:
        check = text(data.get("check")) or text(data.get("name"))
        host = text(data.get("hostname")) or text(data.get("device_id"))
        return f"automation {event.event_type} {check!r} on {host}"
    if event.event_type in ALERT_EVENTS:
        return f"{event.event_type}: {text(data.get('device_hostname'))} {text(data.get('name'))}".strip()
    if event.event_type in DEVICE_EVENTS:
        return f"{event.event_type}: {text(data.get('hostname')) or text(data.get('id'))}"
    if event.event_type in GROUP_EVENTS:
        return f"{event.event_type}: {text(data.get('name')) or text(data.get('id'))}"
    return f"{event.event_type}: not an event this PSA acts on (stored, no action)"


# -- the card ----------------------------------------------------------------------------------
def _template(event: str) -> str:
    # One pair per line (see _salvage_automation). Level renders the {{...}} variables.
    lines = [
        ("psa_route", AUTOMATION_MARK),
        ("event", event),
        ("check", "Name of what this automation reports (e.g. Disk space low)"),
        ("severity", "warning"),
        ("message", ""),
        ("device_id", "{{level_device_id}}"),
        ("hostname", "{{level_device_hostname}}"),
        ("nickname", "{{level_device_nickname}}"),
        ("group_id", "{{level_group_id}}"),
        ("group_name", "{{level_group_name}}"),
        ("group_path", "{{level_group_path}}"),
        ("time", "{{level_time}}"),
    ]
    body = ",\n".join(f'  "{key}": "{value}"' for key, value in lines)
    return "{\n" + body + "\n}"


TRIGGER_TEMPLATE = _template("trigger")
RESOLVE_TEMPLATE = _template("resolve")

AUTOMATION_CAN_CARRY = [
    "Which device (id, hostname, nickname) and which group (id, name, path) the automation ran on.",
    ("A check name, a severity (information, warning, critical, emergency) and a message that you write "
     "into each automation's payload: one automation per check you want to report."),
    ("Trigger or resolve: an automation whose payload says \"event\": \"resolve\" resolves the same check on "
     "the same device."),
]
AUTOMATION_CANNOT_CARRY = [
    ("Level's alert itself: automations have no alert variables, so no alert id, alert name, severity or "
     "description reaches this PSA through this route."),
    "Resolving in Level when the ticket is closed: there is no Level alert to resolve.",
    ("Healing by polling: Level's alert list does not know these checks, so a missed automation call is not "
     "recovered. Native webhooks have none of these limits."),
]


def card(url: str, header_name: str, secret: str, *, severity_table: dict[str, str],
         access: str | None = None) -> dict[str, Any]:
    secret_text = secret or "<secret>"
    headers = {"Content-Type": "application/json", header_name: secret_text}
    steps = [
        ("Native webhook (recommended): in Level, Settings > Webhooks > Add webhook. Paste the URL, paste the "
         "secret into Level's 'Secret' field (Level then signs every delivery with X-Level-Signature), and "
         "select the events listed here, or all events."),
        ("Optional, the automation route: in an automation, add an 'HTTP request' action: method POST, content "
         "type JSON, the URL, the header below, and the trigger body (a second automation, or step, with the "
         "resolve body resolves it). Set the check name and severity in each body."),
    ]
    warnings = [
        ("Level signs native webhooks only when its 'Secret' field is filled in: without it, deliveries are "
         "refused with 401."),
        "Automation route: " + " ".join(AUTOMATION_CANNOT_CARRY),
    ]
    if access == "read_only":
        warnings.append(
            "The API key is read-only: alerts are not resolved in Level when their ticket is closed (the "
            "ticket gets a note saying why). Give the key 'Read and write' access in Level to enable it."
        )
    elif access not in ("read_write", None):
        warnings.append("Could not tell whether the API key may write: test the connection again.")
    return {
        "url": url,
        "header_name": header_name,
        "payload_template": TRIGGER_TEMPLATE,
        "rest_headers": json.dumps(headers),
        "actions": [
            {"name": "Automation HTTP action (trigger)", "url": url, "body": TRIGGER_TEMPLATE},
            {"name": "Automation HTTP action (resolve)", "url": url, "body": RESOLVE_TEMPLATE},
        ],
        "native": {
            "url": url,
            "secret_field": "Secret",
            "secret": secret_text,
            "signature_header": SIGNATURE_HEADER,
            "signature": "sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>",
            "events": list(NATIVE_EVENTS),
            "unknown_events": "stored and answered 202, no action",
        },
        "automation": {
            "url": url,
            "method": "POST",
            "content_type": "JSON",
            "headers": headers,
            "trigger_body": TRIGGER_TEMPLATE,
            "resolve_body": RESOLVE_TEMPLATE,
            "variables": ["level_device_id", "level_device_hostname", "level_device_nickname", "level_group_id",
                          "level_group_name", "level_group_path", "level_time"],
            "can_carry": AUTOMATION_CAN_CARRY,
            "cannot_carry": AUTOMATION_CANNOT_CARRY,
        },
        "access": access or "unknown",
        "steps": steps,
        "warnings": warnings,
        "severity_map": dict(severity_table),
    }
