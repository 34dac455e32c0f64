"""IncidentRecord <-> JSON, for an incident held while routing was incomplete (its raw payload is
not kept: the record carries everything a ticket needs)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from integrations.records import IncidentRecord, RemediationRecord

_DATES = ("created_at", "updated_at", "sent_at", "closed_at", "status_updated_at")
_REM_DATES = ("approved_at", "completed_at")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _date(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def to_json(record: IncidentRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data.pop("raw", None)
    for name in _DATES:
        data[name] = _iso(getattr(record, name))
    if record.remediations is not None:
        data["remediations"] = [
            {**dataclasses.asdict(r), **{n: _iso(getattr(r, n)) for n in _REM_DATES}} for r in record.remediations
        ]
    return data


def from_json(data: dict[str, Any]) -> IncidentRecord:
    known = {f.name for f in dataclasses.fields(IncidentRecord)}
    values = {k: v for k, v in data.items() if k in known and k != "raw"}
    for name in _DATES:
        values[name] = _date(values.get(name))
    rems = values.get("remediations")
    if rems is not None:
        rem_fields = {f.name for f in dataclasses.fields(RemediationRecord)}
        values["remediations"] = [
            RemediationRecord(**{**{k: v for k, v in r.items() if k in rem_fields},
                                 **{n: _date(r.get(n)) for n in _REM_DATES}})
            for r in rems if isinstance(r, dict) and r.get("external_id")
        ]
    return IncidentRecord(**values)
