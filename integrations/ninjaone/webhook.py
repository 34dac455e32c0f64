"""NinjaOne webhooks: reading an activity body, the registration we PUT, and the admin's card.

Two senders POST the same Activity-shaped JSON: the API webhook we register (``PUT /v2/webhook``,
our secret as a custom header, device expanded with its organization and location) and a
notification-channel webhook an admin adds by hand (no custom headers: the secret travels as
``?secret=`` in the URL, and the device is not expanded). NinjaOne signs neither.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from integrations.errors import WebhookParseError

from .normalize import ALERT_ACTIVITY_TYPES, WEBHOOK_STATUS_CODES

EXPAND = ("device", "organization", "location")


def read(body: bytes) -> dict[str, Any]:
    """The activity object; WebhookParseError for anything that is not a JSON object."""
    raw = (body or b"").decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    if not raw:
        raise WebhookParseError("The body is empty.")
    try:
        data = json.loads(raw)
    except ValueError:
        raise WebhookParseError("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise WebhookParseError("The body is not a JSON object (NinjaOne sends one activity per request).")
    return data


def configuration(url: str, header_name: str, secret: str, organization_ids: list[int] | None = None) -> dict:
    """The ``WebhookConfiguration`` body of ``PUT /v2/webhook``."""
    config: dict[str, Any] = {
        "url": url,
        "activities": {kind: list(WEBHOOK_STATUS_CODES) for kind in sorted(ALERT_ACTIVITY_TYPES)},
        "expand": list(EXPAND),
        "headers": [{"name": header_name, "value": secret}],
    }
    if organization_ids:
        config["organizationIds"] = [int(i) for i in organization_ids]
    return config


def card(url: str, header_name: str, secret: str) -> dict[str, Any]:
    channel_url = url + ("&" if "?" in url else "?") + urlencode({"secret": secret or "<secret>"})
    return {
        "payload_template": "",
        "registration": "api",
        "notification_channel_url": channel_url,
        "activities": {kind: list(WEBHOOK_STATUS_CODES) for kind in sorted(ALERT_ACTIVITY_TYPES)},
        "steps": [
            (f"Connecting registers this URL in NinjaOne as the app's webhook (PUT /v2/webhook), with the secret "
             f"in the {header_name} header: nothing to paste. 'Register webhook' does it again."),
            ("NinjaOne allows one API webhook per API app: if it answers 'Different PSA is already configured', "
             "remove the other PSA integration in NinjaOne first."),
            ("Alternatively (or as well), add a notification channel in NinjaOne (Administration > General > "
             "Notification Channels > Webhook) with notification_channel_url, and attach it to the policy "
             "conditions; such webhooks carry no custom headers, hence the secret in the URL."),
        ],
        "warnings": [
            ("Notification-channel webhooks do not include the device's organization: their alerts are "
             "attributed through the device once devices are synced."),
        ],
    }
