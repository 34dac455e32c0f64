"""The compact trace of the pipeline's decisions for one alert (``Alert.trace``).

A list of ``{step, decision, detail, ...}`` entries, step one of ``attribute``, ``window``, ``rule``,
``dedup``, ``lifecycle``. ``evaluate()`` collects its entries in a list and the alert row stores
them with the state UPDATE it makes anyway (no statement of its own); lifecycle entries are appended
by the UPDATE that resolves the alert. Only what the pipeline already holds is read here: related
rows are used when they are cached on the instance, never fetched.

Entries carry ids (``rule``, ``window``, ``ticket``) besides the sentence. A ticket's number is not
known when an occurrence is counted, so a detail may hold ``{ticket}``: ``present()`` fills it in
with one query for all the entries shown.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.db.models import Func
from django.db.models import JSONField as JSONModelField

STEPS = ("attribute", "window", "rule", "dedup", "lifecycle")
# A re-fired or re-evaluated alert keeps its history; the oldest entries go past this many.
MAX_ENTRIES = 40
# Rules that did not match, named one by one up to this many (then counted).
MAX_SKIPPED = 10

CONDITION_WORDS = {
    "providers": "provider",
    "severities": "severity",
    "alert_types": "alert type",
    "clients": "client",
    "asset_types": "asset type",
    "text_contains": "text contains",
    "text_regex": "text pattern",
    "asset_has_open_ticket": "device already has an open ticket",
}


def entry(step: str, decision: str, detail: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"step": step, "decision": decision, "detail": detail}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def capped(entries: list) -> list:
    return entries[-MAX_ENTRIES:]


def _cached(obj, name: str):
    """The related row ``name`` if the instance already holds it (never a query)."""
    return obj._state.fields_cache.get(name) if obj is not None else None


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "?"


# -- attribute ---------------------------------------------------------------------------------


def attribute_entry(alert, attribution=None) -> dict[str, Any]:
    org = getattr(attribution, "organization", None) or _cached(alert, "organization")
    client = getattr(attribution, "client", None) or _cached(alert, "client")
    asset = getattr(attribution, "asset", None) or _cached(alert, "asset")
    asset_by = getattr(attribution, "asset_by", "") or ""
    named = alert.organization_external_id
    org_text = f"“{org.name}” ({named})" if org is not None and named else (f"“{named}”" if named else "")
    if alert.client_id is None:
        if named:
            detail = (f"Organization {org_text} is not mapped to a client, nor is any parent of it: map it "
                      f"under Settings > Integrations > {alert.provider} > Organizations.")
        else:
            device = alert.device_name or alert.device_external_id or "no device"
            detail = f"The event names no organization and its device ({device}) is not a known asset."
        return entry("attribute", "unmapped", detail)
    client_name = f"“{client.name}”" if client is not None else f"#{alert.client_id}"
    if named:
        via, parent = "", getattr(attribution, "mapped_via", None)
        if parent is not None and parent.external_id != named:
            via = f" through its parent “{parent.name}” ({parent.external_id})"
        detail = f"Organization {org_text or named} → client {client_name}{via}"
        decision = "mapped"
    else:
        detail = f"No organization in the event: client {client_name} of its device's asset"
        decision = "by_asset"
    if alert.asset_id:
        name = f"“{asset.name}”" if asset is not None else f"#{alert.asset_id}"
        detail += f"; device → asset {name}" + (f" (by {asset_by})" if asset_by else "") + "."
    elif alert.device_external_id or alert.device_name:
        detail += f"; device {alert.device_name or alert.device_external_id} is not a known asset of this client."
    else:
        detail += "."
    return entry("attribute", decision, detail, client=alert.client_id, asset=alert.asset_id)


# -- window ------------------------------------------------------------------------------------


def window_entry(window_match) -> dict[str, Any]:
    if window_match is None:
        return entry("window", "none", "No maintenance window covers it.")
    window, until = window_match
    return entry(
        "window",
        "suppressed",
        f"Maintenance window “{window.name}” covers it until {_when(until)}; the rules run when it ends.",
        window=window.pk,
        until=until.isoformat(),
    )


def window_ended_entry(window_name: str | None) -> dict[str, Any]:
    name = f" “{window_name}”" if window_name else ""
    return entry("window", "ended", f"The maintenance window{name} ended while the alert was still active.")


# -- rule --------------------------------------------------------------------------------------


def describe_conditions(conditions: dict | None, ctx: dict) -> str:
    """What a matching rule's conditions said about this alert ("severity is high, ...")."""
    c = conditions or {}
    parts = []
    for key, field in (("providers", "provider"), ("severities", "severity"), ("alert_types", "alert_type"),
                       ("asset_types", "asset_type")):
        if c.get(key):
            parts.append(f"{CONDITION_WORDS[key]} is {ctx.get(field) or '?'}")
    if c.get("clients"):
        parts.append(f"client is {ctx.get('client') or ctx.get('client_id')}")
    if c.get("text_contains"):
        parts.append(f"text contains “{c['text_contains']}”")
    if c.get("text_regex"):
        parts.append(f"text matches /{c['text_regex']}/")
    if c.get("asset_has_open_ticket"):
        parts.append("the device already has an open ticket")
    return ", ".join(parts)


def rule_entry(rule, ctx: dict, misses: list) -> dict[str, Any]:
    skipped = [{"rule": r.pk, "name": r.name, "failed": CONDITION_WORDS.get(key, key)}
               for r, key in misses[:MAX_SKIPPED]]
    before = ""
    if misses:
        names = "; ".join(f"“{s['name']}” ({s['failed']})" for s in skipped)
        total = getattr(misses, "total", len(misses))  # a rule_index.Misses counts past the ones it keeps
        more = f" and {total - len(skipped)} more" if total > len(skipped) else ""
        before = f" Not matched before it: {names}{more}."
    if rule.is_catch_all:
        why = "no other rule matched"
    else:
        said = describe_conditions(rule.conditions, ctx)
        why = f"on {said}" if said else "it has no conditions"
    verb = "ignores it" if rule.action == "ignore" else "makes tickets"
    detail = f"Rule “{rule.name}” matched ({why}); it {verb}.{before}"
    decision = "ignored" if rule.action == "ignore" else "matched"
    return entry("rule", decision, detail, rule=rule.pk, skipped=skipped or None)


# -- dedup -------------------------------------------------------------------------------------


def new_ticket_entry(ticket, *, reopened: bool = False) -> dict[str, Any]:
    board = _cached(ticket, "board")
    priority = _cached(ticket, "priority")
    where = f" on board “{board.name}”" if board is not None else ""
    prio = f" with priority {priority.name}" if priority is not None else ""
    first = "The previous ticket of this condition was closed: a new" if reopened else "A new"
    return entry("dedup", "new_ticket",
                 f"{first} open condition: ticket #{ticket.number} created{where}{prio}.", ticket=ticket.pk)


def occurrence_entry(ticket_id: int, count: int) -> dict[str, Any]:
    return entry("dedup", "occurrence",
                 f"The condition already has an open ticket: occurrence {count} counted on ticket {{ticket}}.",
                 ticket=ticket_id, occurrence=count)


def merged_entry(ticket_id: int) -> dict[str, Any]:
    return entry("dedup", "merged",
                 "The device already had an open ticket and the rule merges into it: counted on ticket {ticket}.",
                 ticket=ticket_id)


def related_entry(ticket_ids: list[int]) -> dict[str, Any]:
    return entry("dedup", "related",
                 f"Linked as related to {len(ticket_ids)} open ticket(s) of another provider on the same device.",
                 related=ticket_ids)


# -- lifecycle ---------------------------------------------------------------------------------


def resolved_entry(at: dt.datetime, why: str) -> dict[str, Any]:
    return entry("lifecycle", "resolved", f"Resolved at {_when(at)} ({why}).", at=at.isoformat())


def ticket_decision_entry(decision: str, detail: str, ticket_id: int | None) -> dict[str, Any]:
    return entry("lifecycle", decision, detail, ticket=ticket_id)


class JsonAppend(Func):
    """``trace`` with one more entry, in the UPDATE itself (PostgreSQL jsonb ``||``; SQLite json_insert)."""

    output_field = JSONModelField()

    def __init__(self, field: str, item: dict):
        from django.db.models import F

        super().__init__(F(field))
        self.item = item

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(COALESCE({sql}, '[]'::jsonb) || %s::jsonb)", [*params, json.dumps([self.item])]

    def as_sql(self, compiler, connection, **extra_context):  # the embedded SQLite default
        sql, params = compiler.compile(self.source_expressions[0])
        return f"json_insert(COALESCE({sql}, '[]'), '$[#]', json(%s))", [*params, json.dumps(self.item)]


def append(item: dict) -> JsonAppend:
    """For ``QuerySet.update(trace=append(entry))``."""
    return JsonAppend("trace", item)


# -- reading -----------------------------------------------------------------------------------


def present(entries: list | None) -> list[dict[str, Any]]:
    """The stored entries for the API and the pages: ``{ticket}`` filled in with the ticket's number."""
    from tickets.models import Ticket

    rows = [e for e in (entries or []) if isinstance(e, dict)]
    ids = {e["ticket"] for e in rows if isinstance(e.get("ticket"), int)}
    numbers = dict(Ticket.objects.filter(pk__in=ids).values_list("pk", "number")) if ids else {}
    out = []
    for e in rows:
        item = dict(e)
        detail = str(item.get("detail", ""))
        if "{ticket}" in detail:
            number = numbers.get(item.get("ticket"))
            detail = detail.replace("{ticket}", f"#{number}" if number is not None else "a deleted ticket")
        item["detail"] = detail
        item["label"] = str(item.get("decision", "")).replace("_", " ")
        if isinstance(item.get("ticket"), int):
            item["ticket_number"] = numbers.get(item["ticket"])
        out.append(item)
    return out
