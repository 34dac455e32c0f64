"""Field mapping: source paths in a provider's device record -> an asset's fields and named attributes.

A mapping is ``{target: source path}``:
- targets are the asset fields in ``STANDARD_TARGETS`` ("serial_number", "os", ...) or named custom
  attributes "attr.<name>" (stored in ``Asset.attributes``, filterable as ``?attr.<name>=<value>``);
- a source path is dotted through ``DeviceRecord.raw`` ("operating_system.full_operating_system",
  "customFields.warrantyEnd", "cpus.0.model"); "*" walks every item of a list
  ("network_interfaces.*.mac_address" gives the list of MACs).

Every provider declares ``default_field_mapping``; an integration's ``field_mapping`` setting overlays
it (an empty path switches a default entry off). A standard field takes the mapped value only when
the path finds a non-empty value, otherwise the provider's own normalized value stays; attributes are
rebuilt from the mapping on every full record (a partial record only adds what it carries).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from assets.models import AssetType

SETTING = "field_mapping"
ATTR_PREFIX = "attr."
# Asset fields a mapping may set, with their column lengths.
STANDARD_TARGETS: dict[str, int] = {
    "name": 255, "hostname": 255, "serial_number": 255, "make_model": 255, "os": 255, "platform": 50,
    "asset_type": 20, "last_user": 255, "public_ip": 100,
}
MAX_ENTRIES = 100
MAX_PATH = 200
MAX_TEXT = 1000
# One attribute's value as JSON: a disk list fits, a whole inventory dump does not.
MAX_ATTRIBUTE_BYTES = 8192
# Names are lookup keys (?attr.<name>=): lower-case words, never "__" (Django's lookup separator).
_ATTR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_SEGMENT = re.compile(r"^(\*|[^.\s*]{1,100})$")
_ASSET_TYPES = set(AssetType.values)
_MISSING = object()


# -- validation --------------------------------------------------------------------------------
def attribute_name(target: str) -> str | None:
    """"attr.warranty_end" -> "warranty_end"; None for a standard target or a bad name."""
    if not target.startswith(ATTR_PREFIX):
        return None
    name = target[len(ATTR_PREFIX):]
    return name if _ATTR_NAME.match(name) and "__" not in name else None


def valid_path(path: str) -> bool:
    return 0 < len(path) <= MAX_PATH and all(_SEGMENT.match(part) for part in path.split("."))


def clean(value: Any) -> tuple[dict[str, str], list[str]]:
    """(the mapping to store, errors). ``value`` is {target: path}; a path of "" or null switches a
    default entry off (stored as "")."""
    if not isinstance(value, Mapping):
        return {}, ["Must be an object of {target: source path}."]
    errors: list[str] = []
    out: dict[str, str] = {}
    if len(value) > MAX_ENTRIES:
        errors.append(f"At most {MAX_ENTRIES} entries.")
    for target, path in value.items():
        target = str(target).strip()
        if target not in STANDARD_TARGETS and attribute_name(target) is None:
            errors.append(
                f"{target!r}: not a target. Use one of {', '.join(STANDARD_TARGETS)}, or attr.<name> "
                "(lower-case letters, digits and single underscores, starting with a letter)."
            )
            continue
        if path is None or (isinstance(path, str) and not path.strip()):
            out[target] = ""
            continue
        if not isinstance(path, str) or not valid_path(path.strip()):
            errors.append(f"{target}: {path!r} is not a source path (dotted names, list indexes or *, "
                          f"up to {MAX_PATH} characters).")
            continue
        out[target] = path.strip()
    return out, errors


def effective(provider_cls, settings: Mapping[str, Any] | None) -> dict[str, str]:
    """The provider's defaults overlaid with the integration's ``field_mapping`` (empty paths removed)."""
    merged = dict(provider_cls.default_field_mapping)
    stored = (settings or {}).get(SETTING)
    if isinstance(stored, Mapping):
        merged.update({str(k): str(v or "") for k, v in stored.items()})
    return {k: v for k, v in merged.items() if v}


# -- reading paths -----------------------------------------------------------------------------
def lookup(data: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of a dotted path; "*" collects over a list (nested lists are flattened once)."""
    parts = path.split(".")
    if "*" not in parts:  # the common case, walked without generators (a device sync does it per field)
        current = data
        for part in parts:
            if isinstance(current, Mapping):
                current = current.get(part, _MISSING)
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                return False, None
            if current is _MISSING:
                return False, None
        return (False, None) if current is None else (True, current)
    values = list(_walk(data, parts))
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return bool(flat), flat


def _walk(current: Any, parts: list[str]) -> Iterator[Any]:
    if not parts:
        if current is not None:
            yield current
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(current, list):
            for item in current:
                yield from _walk(item, rest)
        return
    if isinstance(current, Mapping):
        nxt = current.get(head, _MISSING)
    elif isinstance(current, list) and head.isdigit() and int(head) < len(current):
        nxt = current[int(head)]
    else:
        return
    if nxt is not _MISSING:
        yield from _walk(nxt, rest)


def available_paths(data: Any, limit: int = 300) -> list[str]:
    """The paths a record offers (lists shown once, as ".0" and ".*"), for the admin to pick from."""
    out: list[str] = []

    def visit(value: Any, prefix: str, depth: int) -> None:
        if len(out) >= limit or depth > 6:
            return
        if isinstance(value, Mapping):
            for key in value:
                if isinstance(key, str) and _SEGMENT.match(key) and key != "*":
                    visit(value[key], f"{prefix}.{key}" if prefix else key, depth + 1)
            return
        if prefix:
            out.append(prefix)
        if isinstance(value, list) and value:
            if isinstance(value[0], Mapping):
                for key in value[0]:
                    if isinstance(key, str) and _SEGMENT.match(key) and len(out) < limit:
                        out.append(f"{prefix}.*.{key}")
            visit(value[0], f"{prefix}.0", depth + 1)

    visit(data, "", 0)
    return out[:limit]


# -- values ------------------------------------------------------------------------------------
def _scalar_text(value: Any, limit: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (str, int, float)):
        return str(value).replace("\x00", "").strip()[:limit]
    return ""


def standard_value(target: str, value: Any) -> str:
    """The text an asset field takes ("" when the value does not fit the field)."""
    limit = STANDARD_TARGETS[target]
    if isinstance(value, list):
        text = ", ".join(t for t in (_scalar_text(v, limit) for v in value) if t)[:limit]
    else:
        text = _scalar_text(value, limit)
    if target == "asset_type":
        word = re.sub(r"[\s-]+", "_", text.lower())
        return word if word in _ASSET_TYPES else ""
    if target == "platform":
        return text.lower()
    return text


def attribute_value(value: Any) -> tuple[bool, Any]:
    """(kept, JSON-safe value): text clipped, non-finite numbers and oversized structures dropped."""
    if isinstance(value, str):
        text = value.replace("\x00", "").strip()[:MAX_TEXT]
        return bool(text), text
    if isinstance(value, bool) or value is None:
        return value is not None, value
    if isinstance(value, (int, float)):
        return (True, value) if math.isfinite(value) else (False, None)
    if isinstance(value, (list, dict)):
        try:
            encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).replace("\\u0000", "")
        except (TypeError, ValueError):
            return False, None
        if len(encoded.encode()) > MAX_ATTRIBUTE_BYTES:
            return False, None
        return True, json.loads(encoded)
    return False, None


@dataclass
class Mapped:
    fields: dict[str, str] = field(default_factory=dict)  # standard fields with a mapped value
    attributes: dict[str, Any] = field(default_factory=dict)
    # One row per mapping entry: {target, path, found, value, used, note} (the preview shows them).
    sources: list[dict[str, Any]] = field(default_factory=list)


def apply(mapping: Mapping[str, str], raw: Any) -> Mapped:
    """What ``mapping`` takes from one device record's ``raw``."""
    result = Mapped()
    for target, path in sorted(mapping.items()):
        if not path:
            continue
        found, value = lookup(raw, path)
        row: dict[str, Any] = {"target": target, "path": path, "found": found, "value": None, "used": False,
                               "note": "" if found else "Not in this device's record."}
        if found:
            if target in STANDARD_TARGETS:
                text = standard_value(target, value)
                row["value"] = text
                if text:
                    result.fields[target], row["used"] = text, True
                else:
                    row["note"] = ("Not an asset type (workstation, server, network_device, mobile, printer, "
                                   "other)." if target == "asset_type" else "Empty: the provider's value stays.")
            else:
                name = attribute_name(target)
                kept, clean_value = attribute_value(value)
                if name and kept:
                    result.attributes[name], row["value"], row["used"] = clean_value, clean_value, True
                elif isinstance(value, str) and not value.strip():
                    row["note"] = "Empty."
                else:
                    row["note"] = f"Not stored: over {MAX_ATTRIBUTE_BYTES} bytes as JSON, or not a JSON value."
        result.sources.append(row)
    return result


# -- the preview (API and panel card) ------------------------------------------------------------
PREVIEW_SCAN = 1000  # devices looked through for a named one before giving up


class PreviewUnavailable(Exception):
    """No device to preview on (nothing mapped, or the named device is not among the mapped ones)."""


def describe(provider_cls, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """{targets, defaults, mapping (this integration's overlay), effective} for the API and the card."""
    stored = (settings or {}).get(SETTING)
    return {
        "targets": [*STANDARD_TARGETS, "attr.<name>"],
        "defaults": dict(provider_cls.default_field_mapping),
        "mapping": dict(stored) if isinstance(stored, Mapping) else {},
        "effective": effective(provider_cls, settings),
    }


def preview(integration, mapping: Mapping[str, str] | None = None, device: str | None = None) -> dict[str, Any]:
    """What one real device of a mapped organization would give its asset under ``mapping`` (default: the
    integration's effective mapping), computed by the device sync's own code, without saving anything.

    Raises PreviewUnavailable, or the provider's errors (integrations.errors)."""
    from django.utils import timezone

    from assets.models import Asset
    from integrations.base import opened

    from .devices import _apply, target_for
    from .orgs import resolution_map

    resolved = resolution_map(integration)
    if not resolved:
        raise PreviewUnavailable("Map an organization to a client first: the preview uses one of its devices.")
    record = None
    with opened(integration) as provider:
        if mapping is None:
            mapping = effective(type(provider), integration.settings)
        for seen, candidate in enumerate(provider.iter_devices(set(resolved)), 1):
            if device is None or candidate.external_id == device:
                record = candidate
                break
            if seen >= PREVIEW_SCAN:
                break
    if record is None:
        raise PreviewUnavailable(f"Device {device} is not among the devices of the mapped organizations."
                                 if device else "The mapped organizations have no devices.")
    client_id, site_id = target_for(record, resolved) or (None, None)
    asset = Asset(tenant_id=integration.tenant_id)
    _apply(asset, record, client_id, site_id, timezone.now(), mapping=dict(mapping))
    mapped = apply(mapping, record.raw)
    return {
        "device": {"external_id": record.external_id, "name": record.name,
                   "organization_external_id": record.organization_external_id, "client": client_id},
        "asset": {f: getattr(asset, f) for f in (
            "name", "hostname", "serial_number", "asset_type", "os", "platform", "make_model", "status",
            "last_user", "public_ip", "local_ips", "remote_access_url")},
        "attributes": asset.attributes,
        "entries": mapped.sources,
        "paths": available_paths(record.raw),
    }
