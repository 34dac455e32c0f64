"""Safe ticket title/description templates: ``{{ field }}`` and nothing else.

Deliberately not a template engine: one regular-expression substitution over a fixed set
of plain string fields. There is no attribute or item access, no filters, no tags, no
loaders, so an admin-written (or alert-supplied) ``{{ ''.__class__ }}`` or ``{% load %}``
cannot reach Python objects. Any ``{{ ... }}`` that is not a known field renders empty,
``{% ... %}`` stays literal text, and values are substituted in one pass (an alert title
containing ``{{ client }}`` is not expanded again). ``render`` never raises.
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger(__name__)

FIELDS = ("title", "message", "severity", "device", "client", "organization", "provider", "alert_type", "asset_type")
DEFAULT_TITLE_TEMPLATE = "[{{ severity }}] {{ title }} on {{ device }}"
DEFAULT_TITLE_TEMPLATE_NO_DEVICE = "[{{ severity }}] {{ title }}"
# The default description: the message, then these "Label: value" lines where a value exists.
DEFAULT_DESCRIPTION_DETAILS = (
    ("Severity", "severity"),
    ("Device", "device"),
    ("Client", "client"),
    ("Organization", "organization"),
    ("Source", "provider"),
    ("Alert type", "alert_type"),
)
TITLE_MAX = 500
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")


def render(template: str | None, ctx: dict[str, Any]) -> str:
    """Substitute ``{{ field }}``; unknown or missing fields render empty; never raises."""
    try:
        if not template:
            return ""
        text = str(template)

        def sub(m: re.Match) -> str:
            name = _NAME.fullmatch(m.group(1))
            if name is None or name.group(1) not in FIELDS:
                return ""
            value = ctx.get(name.group(1))
            return "" if value is None else str(value)

        return _PLACEHOLDER.sub(sub, text)
    except Exception:  # a template must never break the pipeline
        log.exception("alert template failed to render; using the raw text")
        return str(template) if template is not None else ""


def render_title(template: str | None, ctx: dict[str, Any]) -> str:
    """A one-line ticket title: the rule's template, else the default; never empty."""
    title = " ".join(render(template, ctx).split()) if (template or "").strip() else ""
    if not title:  # no template, or one that rendered to nothing: the default
        filled = dict(ctx, title=ctx.get("title") or "Alert")
        default = DEFAULT_TITLE_TEMPLATE if ctx.get("device") else DEFAULT_TITLE_TEMPLATE_NO_DEVICE
        title = " ".join(render(default, filled).split())
    return title[:TITLE_MAX]


def render_description(template: str | None, ctx: dict[str, Any]) -> str:
    """The ticket description: the rule's template, else the default (details with no value left out)."""
    if (template or "").strip():
        return render(template, ctx).strip()
    details = [
        f"{label}: {ctx.get(field)}"
        for label, field in DEFAULT_DESCRIPTION_DETAILS
        if ctx.get(field) not in (None, "")
    ]
    message = str(ctx.get("message") or "").strip()
    return "\n\n".join(part for part in (message, "\n".join(details)) if part)
