"""The generic webhook body -> a normalized alert (pure functions, no database, no network).

Body (JSON object; see docs/generic-webhook.md)::

    {"event": "trigger" | "resolve", "alert_id": "...", "condition": "...", "severity": "...",
     "title": "...", "message": "...", "alert_type": "...",
     "organization": {"id": "...", "name": "..."},
     "device": {"id": "...", "hostname": "...", "serial_number": "..."},
     "occurred_at": "2025-01-31T12:00:00Z"}

Only ``event`` and ``alert_id`` are required. Ids may be strings or integers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from integrations import coerce
from integrations.coerce import SeverityMap
from integrations.errors import WebhookParseError
from integrations.records import AlertEventKind, NormalizedAlert

SLUG = "generic"
EVENTS = {
    "trigger": AlertEventKind.TRIGGERED,
    "triggered": AlertEventKind.TRIGGERED,
    "resolve": AlertEventKind.RESOLVED,
    "resolved": AlertEventKind.RESOLVED,
}
# Unknown words (and no severity at all) are medium.
SEVERITIES = SeverityMap({
    "critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical", "disaster": "critical",
    "high": "high", "error": "high", "major": "high", "severe": "high",
    "medium": "medium", "warning": "medium", "warn": "medium", "moderate": "medium", "average": "medium",
    "low": "low", "minor": "low", "notice": "low",
    "info": "info", "information": "info", "informational": "info", "ok": "info", "debug": "info",
}, default="medium")
MAX_ID = 200  # delivery ids are "<event>:<alert_id>" in a 255-character column
MAX_CONDITION_KEY = 500


@dataclass(frozen=True)
class GenericEvent:
    event: str  # "trigger" | "resolve" (as the sender wrote it, lower-cased)
    kind: str  # AlertEventKind
    alert_id: str
    body: dict[str, Any]

    @property
    def delivery_id(self) -> str:
        # Canonical event word, so "trigger" and "triggered" redeliveries are the same delivery.
        word = "trigger" if self.kind == AlertEventKind.TRIGGERED else "resolve"
        return f"{word}:{self.alert_id}"


def _id(value: Any, field: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise WebhookParseError(f"'{field}' is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise WebhookParseError(f"'{field}' must be a string or an integer.")
    text = coerce.text(value)
    if not text:
        if required:
            raise WebhookParseError(f"'{field}' is required.")
        return None
    if len(text) > MAX_ID:
        raise WebhookParseError(f"'{field}' is longer than {MAX_ID} characters.")
    return text


def _text(value: Any, field: str, limit: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise WebhookParseError(f"'{field}' must be a string.")
    return coerce.text(value, limit)


def _object(body: dict[str, Any], field: str) -> dict[str, Any]:
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebhookParseError(f"'{field}' must be an object.")
    return value


def normalize_severity(value: Any) -> str:
    """One of SEVERITIES; synonyms mapped (warning->medium, error->high, ...); unknown -> medium."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, str)):
        raise WebhookParseError("'severity' must be a string.")
    return SEVERITIES.lookup(value)


def parse_occurred_at(value: Any) -> dt.datetime | None:
    """ISO 8601 (naive = UTC) or Unix seconds/milliseconds; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise WebhookParseError("'occurred_at' must be an ISO 8601 timestamp.")
    parsed = coerce.any_datetime(value)
    if parsed is None:
        raise WebhookParseError("'occurred_at' is not a valid ISO 8601 timestamp.")
    return parsed


def read_event(body: bytes) -> GenericEvent:
    """Decode and check the envelope (cheap: used at intake). Raises WebhookParseError."""
    try:
        data = json.loads(body.decode("utf-8-sig") if isinstance(body, (bytes, bytearray)) else body)
    except UnicodeDecodeError:
        raise WebhookParseError("The body is not UTF-8 text.") from None
    except ValueError as exc:
        raise WebhookParseError(f"The body is not valid JSON: {exc.msg} at position {exc.pos}.") from None
    if not isinstance(data, dict):
        raise WebhookParseError("The body must be a JSON object.")
    event = data.get("event")
    if event is None or event == "":
        raise WebhookParseError("'event' is required ('trigger' or 'resolve').")
    if not isinstance(event, str):
        raise WebhookParseError("'event' must be a string ('trigger' or 'resolve').")
    word = event.strip().lower()
    if word not in EVENTS:
        raise WebhookParseError(f"Unknown event {event[:50]!r}: use 'trigger' or 'resolve'.")
    alert_id = _id(data.get("alert_id"), "alert_id", required=True)
    return GenericEvent(event=word, kind=EVENTS[word], alert_id=alert_id, body=data)


def condition_key(org_id: str | None, device_id: str | None, condition: str) -> str:
    """(organization, device, condition), JSON-encoded so no separator can be forged in a field."""
    key = json.dumps([org_id or "", device_id or "", condition], ensure_ascii=False, separators=(",", ":"))
    if len(key) > MAX_CONDITION_KEY:
        digest = hashlib.sha256(condition.encode("utf-8")).hexdigest()
        key = json.dumps([org_id or "", device_id or "", f"sha256:{digest}"], ensure_ascii=False, separators=(",", ":"))
    return key


def to_alert(ev: GenericEvent) -> NormalizedAlert:
    """The full parse of a checked envelope. Raises WebhookParseError on wrong field types."""
    body = ev.body
    org = _object(body, "organization")
    device = _object(body, "device")
    org_name = _text(org.get("name"), "organization.name", 500)
    # An organization with a name but no id is still discoverable: its name is its id.
    org_id = _id(org.get("id"), "organization.id") or (org_name[:MAX_ID] or None)
    hostname = _text(device.get("hostname"), "device.hostname", 255)
    device_name = hostname or _text(device.get("name"), "device.name", 255)
    device_id = _id(device.get("id"), "device.id")
    serial = _text(device.get("serial_number"), "device.serial_number", 255)
    title = _text(body.get("title"), "title", 500)
    condition = _text(body.get("condition"), "condition") or title or ev.alert_id
    alert_type = _text(body.get("alert_type"), "alert_type", 100) or condition[:100]
    return NormalizedAlert(
        provider=SLUG,
        external_id=ev.alert_id,
        condition_key=condition_key(org_id, device_id or (hostname or None), condition),
        event=ev.kind,
        severity=normalize_severity(body.get("severity")),
        title=title or condition[:500],
        message=_text(body.get("message"), "message"),
        alert_type=alert_type,
        device_external_id=device_id,
        device_name=device_name,
        serial_number=serial,
        organization_external_id=org_id,
        organization_name=org_name,
        occurred_at=parse_occurred_at(body.get("occurred_at")),
        raw=body,
    )


def parse(body: bytes) -> list[NormalizedAlert]:
    return [to_alert(read_event(body))]


# What the webhook card shows as the body to send.
EXAMPLE_BODY: dict[str, Any] = {
    "event": "trigger",
    "alert_id": "chk-42-2025-01-31T12:00:00Z",
    "condition": "disk_space_low:C:",
    "severity": "high",
    "title": "Disk C: below 10% free",
    "message": "C: has 4.1 GB free of 237 GB.",
    "organization": {"id": "acme", "name": "Acme Corp"},
    "device": {"id": "dev-1001", "hostname": "ACME-FS01", "serial_number": "SN123456"},
    "occurred_at": "2025-01-31T12:00:00Z",
}
