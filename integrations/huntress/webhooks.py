"""Huntress webhooks: Svix signatures and the events they carry.

Huntress sends through Svix: ``svix-id`` (the delivery id, the same on every retry),
``svix-timestamp`` (epoch seconds) and ``svix-signature`` (space-separated ``v1,<base64>``), an
HMAC-SHA256 of ``"{id}.{timestamp}.{raw body}"`` keyed with the base64 part of the ``whsec_...``
signing secret. White-labelled deliveries name the same headers ``webhook-id`` /
``webhook-timestamp`` / ``webhook-signature``. A timestamp more than 5 minutes off is refused.
Verification is the ``svix`` package's.

Bodies are flat JSON objects with ``event_type``: ``incident_report.created|closed|comment_added``,
``escalation.created|closed|overdue``, ``platform_action.*``, ``account_notice.*``. Any other type
is read as "unknown": stored by intake, acted on by nobody, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from svix.webhooks import Webhook, WebhookVerificationError

from integrations.base import SignatureScheme, WebhookRequest
from integrations.coerce import as_dict, str_id, text
from integrations.errors import WebhookParseError

ID_HEADERS = ("svix-id", "webhook-id")
TIMESTAMP_HEADERS = ("svix-timestamp", "webhook-timestamp")
SIGNATURE_HEADERS = ("svix-signature", "webhook-signature")
ALL_HEADERS = ID_HEADERS + TIMESTAMP_HEADERS + SIGNATURE_HEADERS
TOLERANCE_SECONDS = 300  # the svix package's fixed tolerance, stated here for the docs and card

CATEGORIES = ("incident_report", "escalation", "platform_action", "account_notice")
INCIDENT_EVENTS = ("incident_report.created", "incident_report.closed", "incident_report.comment_added")
ESCALATION_EVENTS = ("escalation.created", "escalation.closed", "escalation.overdue")


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The Svix message id (kept across retries): the delivery's identity for deduplication."""
    lowered = _lower(headers)
    for name in ID_HEADERS:
        value = str_id(lowered.get(name), limit=255)
        if value:
            return value
    return None


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> bool | None:
    """True for a valid Svix signature of ``body``; False for a bad, stale or unverifiable one (or
    no usable secret); None when the request carries no Svix/webhook signature header at all."""
    lowered = _lower(headers)
    if not any(name in lowered for name in ALL_HEADERS):
        return None
    if not secret:
        return False
    try:
        Webhook(secret).verify(body or b"", lowered)
    except WebhookVerificationError:
        return False
    except Exception:  # noqa: BLE001 - a secret that is not base64 (pasted wrong) verifies nothing
        return False
    return True


class SvixSignature(SignatureScheme):
    """The scheme HuntressProvider declares; intake passes it the signing secret."""

    name = "svix"
    headers = ALL_HEADERS

    def verify(self, request: WebhookRequest, secret: str) -> bool | None:
        return verify(request.body, request.headers, secret)


@dataclass
class Event:
    event_type: str  # as sent ("" when absent)
    category: str  # one of CATEGORIES, or "unknown"
    action: str  # created, closed, overdue, ... ("" when absent)
    object_id: str | None  # the report / escalation / action id
    payload: dict[str, Any]

    @property
    def known(self) -> bool:
        return self.category != "unknown"


def read(body: bytes) -> Event:
    """The event of a webhook body; raises WebhookParseError only for a body that is not a JSON object."""
    try:
        payload = json.loads((body or b"").decode("utf-8", errors="replace").lstrip("\ufeff") or "null")
    except ValueError:
        raise WebhookParseError("The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise WebhookParseError("The body is not a JSON object.")
    event_type = text(payload.get("event_type"), 100)
    category, _, action = event_type.partition(".")
    if category not in CATEGORIES:
        category = "unknown"
    return Event(event_type=event_type, category=category, action=action,
                 object_id=str_id(payload.get("id"), limit=64), payload=payload)


def summary(event: Event) -> str:
    """One line for the event log (intake cleans and clips it)."""
    data = event.payload
    kind = event.event_type or "event without event_type"
    if not event.known:
        return f"{kind} (not handled)"
    org = text(as_dict(data.get("organization")).get("name"))
    if not org:
        orgs = [text(as_dict(o).get("name")) for o in data.get("organizations") or [] if isinstance(o, dict)]
        org = ", ".join(o for o in orgs[:3] if o)
    subject = text(data.get("subject")) or text(data.get("message"))
    ident = f" {event.object_id}" if event.object_id else ""
    parts = [f"{kind}{ident}", subject, f"({org})" if org else ""]
    return " ".join(p for p in parts if p)
