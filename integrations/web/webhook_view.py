"""Turn a provider's webhook card (integrations.services.config.webhook_card) into copy boxes.

Providers describe what to paste with a few conventional keys: ``url``, ``header_name``,
``payload_template``, ``failure_body``/``resolved_body``, ``rest_headers``, ``actions`` (one
entry per action to create in the provider), ``curl_example``, ``steps``, ``warnings``,
``severity_map``. Unknown keys are ignored. The secret is never put in the page: every
string is rendered with the secret replaced by ``<secret>``; the Reveal action shows the
secret and the boxes that contain it.
"""

from __future__ import annotations

from typing import Any

SECRET_PLACEHOLDER = "<secret>"


def without_secret(value: Any, secret: str) -> Any:
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, SECRET_PLACEHOLDER)
    if isinstance(value, dict):
        return {k: without_secret(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [without_secret(v, secret) for v in value]
    return value


def _box(boxes: list, key: str, label: str, text: Any, multiline: bool = True) -> None:
    if isinstance(text, str) and text:
        boxes.append({"key": key, "label": label, "text": text, "multiline": multiline or "\n" in text})


def boxes(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Copy boxes beyond URL/header/secret, in the order an admin needs them."""
    out: list[dict[str, Any]] = []
    actions = [a for a in card.get("actions") or [] if isinstance(a, dict)]
    if actions:
        for i, action in enumerate(actions, 1):
            name = str(action.get("name") or f"Action {i}")
            _box(out, f"action{i}-url", f"{name}: URL pattern", action.get("pattern") or action.get("url"), False)
            _box(out, f"action{i}-body", f"{name}: body", action.get("rest_body") or action.get("body"))
    else:
        if card.get("failure_body") or card.get("resolved_body"):
            _box(out, "failure", "Body for the failure action", card.get("failure_body"))
            _box(out, "resolved", "Body for the resolved action", card.get("resolved_body"))
        else:
            _box(out, "payload", "Payload template", card.get("payload_template"))
    _box(out, "headers", "Headers (JSON)", card.get("rest_headers"))
    _box(out, "curl", "Example request (curl)", card.get("curl_example"))
    for i, box in enumerate(out, 1):
        box["id"] = f"webhook-box-{i}"
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float))]
    return []


def view(card: dict[str, Any]) -> dict[str, Any]:
    """The template context of the webhook card (``card`` must already be without the secret)."""
    severity_map = card.get("severity_map") if isinstance(card.get("severity_map"), dict) else {}
    return {
        "url": card.get("url", ""),
        "header_name": card.get("header_name", ""),
        "boxes": boxes(card),
        "steps": _strings(card.get("steps")) or _strings(card.get("instructions")),
        "notes": _strings(card.get("warnings")) + _strings(card.get("notes")),
        "severity_map": sorted((str(k), str(v)) for k, v in severity_map.items()),
    }


def revealed_boxes(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Boxes whose text contains the secret, with the secret filled in (for the Reveal fragment)."""
    secret = card.get("secret") or ""
    if not secret:
        return []
    raw = boxes({k: v for k, v in card.items() if k != "secret"})
    return [dict(b, id=f"revealed-{b['key']}") for b in raw if secret in b["text"]]
