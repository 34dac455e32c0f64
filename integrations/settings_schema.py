"""Typed provider settings: one validation for the API (``settings`` in ``PUT integrations/{slug}/``)
and the connection card, from the provider's ``settings_fields`` declaration.

A PUT merges: keys it names are validated and replace the stored value, omitted keys keep theirs,
``null`` resets a key to its default. Unknown keys are refused (a typo must not be silently kept).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .coerce import boolean

if TYPE_CHECKING:
    from .base import Provider, SettingField


FIELD_MAPPING = "field_mapping"


def declared(cls: type[Provider]) -> tuple[SettingField, ...]:
    """The provider's settings plus the framework's own: every device provider has ``field_mapping``
    (integrations.services.fieldmap), unless it declares that name itself."""
    from .base import SettingField

    fields = tuple(cls.settings_fields)
    if cls.capabilities.device_sync and all(f.name != FIELD_MAPPING for f in fields):
        fields += (SettingField(
            FIELD_MAPPING, "Field mapping", "field_mapping", default={}, in_form=False,
            help_text="{target: source path}: asset fields (serial_number, os, ...) or attr.<name> from the "
                      "provider's device record; overlays the provider's defaults, an empty path switches one off.",
        ),)
    return fields


def defaults(cls: type[Provider]) -> dict[str, Any]:
    return {f.name: f.default for f in declared(cls)}


def options(cls: type[Provider], stored: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with the stored values of declared fields."""
    known = {f.name for f in declared(cls)}
    return {**defaults(cls), **{k: v for k, v in (stored or {}).items() if k in known}}


def _coerce(f: SettingField, value: Any) -> tuple[Any, str | None]:
    """(value, error) for one field; forms send strings, the API sends JSON types."""
    if f.kind == "bool":
        result = boolean(value)
        return (result, None) if result is not None else (None, "Must be true or false.")
    if f.kind == "choice":
        allowed = [c for c, _ in f.choices]
        if value in allowed:
            return value, None
        return None, f"Must be one of {', '.join(allowed)}."
    if f.kind == "int":
        if isinstance(value, bool):
            return None, "Must be a whole number."
        try:
            number = int(value) if not isinstance(value, float) or value.is_integer() else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            return None, "Must be a whole number."
        if f.min_value is not None and number < f.min_value or f.max_value is not None and number > f.max_value:
            return None, f"Must be between {f.min_value} and {f.max_value}."
        return number, None
    if f.kind == "text":
        if value is not None and not isinstance(value, (str, int, float)):
            return None, "Must be text."
        return ("" if value is None else str(value).strip())[:1000], None
    if f.kind == "map":
        if not isinstance(value, dict):
            return None, "Must be an object."
        return value, None
    if f.kind == "field_mapping":
        from .services import fieldmap

        cleaned, problems = fieldmap.clean(value)
        return (None, " ".join(problems)) if problems else (cleaned, None)
    raise ValueError(f"unknown setting kind {f.kind!r}")


def validate(provider: Provider, incoming: Any, stored: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the settings to store, field errors keyed ``settings.<name>``)."""
    cls = type(provider)
    if not isinstance(incoming, dict):
        return dict(stored or {}), {"settings": ["Must be an object."]}
    fields = {f.name: f for f in declared(cls)}
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(incoming) - set(fields))
    if unknown:
        known = ", ".join(fields) or "none"
        for key in unknown:
            errors[f"settings.{key}"] = [f"Unknown setting. {cls.name} settings: {known}."]
    result = {k: v for k, v in (stored or {}).items() if k in fields}
    for name, value in incoming.items():
        f = fields.get(name)
        if f is None:
            continue
        if value is None:
            result.pop(name, None)  # back to the default
            continue
        cleaned, error = _coerce(f, value)
        if error:
            errors[f"settings.{name}"] = [error]
        else:
            result[name] = cleaned
    if not errors:
        errors.update(provider.clean_settings({**defaults(cls), **result}) or {})
    return result, errors


def describe(cls: type[Provider]) -> list[dict[str, Any]]:
    """The declaration as the API shows it (``settings_fields`` of ``integrations/{slug}/``)."""
    return [
        {"name": f.name, "label": f.label, "kind": f.kind, "default": f.default,
         "choices": [c for c, _ in f.choices] or None, "min": f.min_value, "max": f.max_value,
         "help_text": f.help_text}
        for f in declared(cls)
    ]
