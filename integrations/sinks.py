"""Where the records a provider produces go: the app that handles a record type registers its sink.

Providers return records (``NormalizedAlert``, ``DirectoryChange``, ``IncidentRecord``, ...) from
webhooks and polls; the framework hands each record to the sink registered for its type, so the
framework never imports the apps that consume them (the alert pipeline registers NormalizedAlert,
the framework itself DirectoryChange, the incident router IncidentRecord). A sink returns an
outcome dict with at least ``action`` (and ``alert``/``ticket`` ids when it made or touched them)
that the event log shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Integration

log = logging.getLogger("integrations.sinks")

Sink = Callable[..., dict[str, Any]]  # fn(integration, record, *, source, inbound_event) -> outcome
# fn(integration) -> None when the sink can take records of this integration now, else why not
Readiness = Callable[..., "str | None"]
_sinks: dict[type, Sink] = {}
_readiness: dict[type, Readiness] = {}


def register(record_type: type, sink: Sink, *, readiness: Readiness | None = None) -> None:
    """Called from an AppConfig.ready(); one sink per record type. ``readiness`` lets a provider ask,
    without knowing who handles its records, whether they can be handled now (e.g. the incident
    router before its routing is complete): see ``refusal``."""
    existing = _sinks.get(record_type)
    if existing is not None and existing is not sink:
        raise RuntimeError(f"a sink for {record_type.__name__} is already registered")
    _sinks[record_type] = sink
    if readiness is not None:
        _readiness[record_type] = readiness


def refusal(integration: Integration, record_type: type) -> str | None:
    """Why records of ``record_type`` from ``integration`` cannot be handled now (None: they can). A
    provider's ``refuse_job`` uses it to pause a poll whose records would have nowhere to go."""
    if record_type not in _sinks:
        return f"No handler for {record_type.__name__} is installed."
    check = _readiness.get(record_type)
    return check(integration) if check is not None else None


def deliver(integration: Integration, record: Any, *, source: str, inbound_event=None) -> dict[str, Any]:
    """Hand one record to its sink; returns the sink's outcome."""
    sink = _sinks.get(type(record))
    if sink is None:
        # A provider produced something no installed app handles: keep the event, say so.
        log.warning("no sink for %s records (provider %s)", type(record).__name__, integration.provider)
        return {"alert": None, "ticket": None, "rule": None, "action": "unhandled",
                "detail": f"No handler for {type(record).__name__} is installed."}
    outcome = sink(integration, record, source=source, inbound_event=inbound_event)
    outcome.setdefault("alert", None)
    outcome.setdefault("ticket", None)
    outcome.setdefault("rule", None)
    return outcome
