"""Maintenance windows: which window (if any) covers an alert at a given instant.

A window's ``starts_at``/``ends_at`` is its first occurrence. An optional RFC 5545 RRULE
repeats it. Recurrence is computed on *local wall-clock time* in the window's IANA time
zone (dateutil's rrule over naive local datetimes, then zoneinfo), so a weekly Saturday
22:00-02:00 Europe/Berlin window is 22:00-02:00 local in winter and in summer; its
absolute (UTC) instants shift by an hour across the DST change, as people expect.

Edge cases, decided on purpose:
- the first occurrence always counts, even if the rule would not generate it (RFC 5545);
- a wall time that does not exist on a spring-forward day (02:30 in Berlin) is read with
  the offset before the change (zoneinfo's fold=0), i.e. one hour later in wall time;
- ``UNTIL=...Z`` (UTC) is converted to the window's local time, as the RFC requires for a
  floating DTSTART;
- FREQ is limited to DAILY, WEEKLY, MONTHLY or YEARLY (sub-daily maintenance windows are
  not a thing, and they would make evaluation costly).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil.rrule import rruleset, rrulestr

from alerts.models import MaintenanceWindow, WindowScope
from psa.tenancy import tenant_context

ALLOWED_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
# How far before/after ``at`` (beyond the window's length) to look for occurrences: covers
# the up-to-two-hour wall/absolute skew of a DST change.
_SLACK = dt.timedelta(hours=3)
_UNTIL_UTC = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)


class WindowError(ValueError):
    """An invalid rule or time zone; the message is fit for an admin."""


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def get_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises WindowError for anything else (no file paths)."""
    if not isinstance(name, str) or name not in _zone_names() and name != "UTC":
        raise WindowError(f"Unknown time zone {name!r}: use an IANA name such as Europe/Berlin.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise WindowError(f"Unknown time zone {name!r}.") from exc


def _local(instant: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """Naive local wall-clock time of an aware instant."""
    return instant.astimezone(tz).replace(tzinfo=None)


def _aware(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return local.replace(tzinfo=tz)


def _clean_rule_text(text: str, tz: ZoneInfo) -> str:
    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:].strip()

    def to_local(m: re.Match) -> str:
        utc = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
        return "UNTIL=" + _local(utc, tz).strftime("%Y%m%dT%H%M%S")

    return _UNTIL_UTC.sub(to_local, text)


def parse_rrule(text: str, starts_at: dt.datetime, timezone_name: str):
    """A dateutil rule over naive local datetimes; raises WindowError with a clear reason."""
    tz = get_zone(timezone_name)
    if not isinstance(text, str) or not text.strip():
        raise WindowError("Empty recurrence rule.")
    if "\n" in text.strip() or "DTSTART" in text.upper():
        raise WindowError("Give a single RRULE (e.g. FREQ=WEEKLY;BYDAY=SA); starts_at is the first occurrence.")
    body = _clean_rule_text(text, tz)
    parts = dict(p.split("=", 1) for p in body.upper().split(";") if "=" in p)
    freq = parts.get("FREQ")
    if freq is None:
        raise WindowError("The rule needs FREQ (DAILY, WEEKLY, MONTHLY or YEARLY).")
    if freq not in ALLOWED_FREQS:
        raise WindowError(f"FREQ={freq} is not supported: use DAILY, WEEKLY, MONTHLY or YEARLY.")
    for key in ("INTERVAL", "COUNT"):
        if key in parts and not (parts[key].isdigit() and int(parts[key]) >= 1):
            raise WindowError(f"{key} must be a whole number of at least 1.")
    dtstart = _local(starts_at, tz)
    try:
        rule = rrulestr(body, dtstart=dtstart, cache=False)
        # Generate once: dateutil reports some impossible combinations only while iterating.
        first = rule.after(dtstart, inc=True)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise WindowError(f"Invalid recurrence rule: {exc}") from None
    if first is None:
        raise WindowError("The rule never produces an occurrence.")
    return rule


def validate(starts_at: dt.datetime, ends_at: dt.datetime, rrule_text: str, timezone_name: str) -> None:
    """Raise WindowError when the window cannot be evaluated."""
    get_zone(timezone_name)
    if ends_at <= starts_at:
        raise WindowError("ends_at must be after starts_at.")
    if rrule_text:
        parse_rrule(rrule_text, starts_at, timezone_name)


@functools.lru_cache(maxsize=2048)
def _occurrence_set(rule_text: str, starts_at: dt.datetime, timezone_name: str) -> rruleset:
    """Cached recurrence set (with dateutil's own occurrence cache) of local start times."""
    rule = parse_rrule(rule_text, starts_at, timezone_name)
    tz = get_zone(timezone_name)
    rs = rruleset(cache=True)
    rs.rrule(rule)
    rs.rdate(_local(starts_at, tz))  # the first occurrence always counts
    return rs


def _length(window: MaintenanceWindow, tz: ZoneInfo) -> dt.timedelta:
    """Wall-clock length of the first occurrence (22:00-02:00 is 4 wall hours in any season)."""
    return _local(window.ends_at, tz) - _local(window.starts_at, tz)


def occurrence_at(window: MaintenanceWindow, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """(start, end) of the occurrence of ``window`` covering instant ``at``, else None (enabled ignored)."""
    if at < window.starts_at:
        return None
    if not window.rrule:
        return (window.starts_at, window.ends_at) if window.starts_at <= at < window.ends_at else None
    try:
        tz = get_zone(window.timezone)
        rs = _occurrence_set(window.rrule, window.starts_at, window.timezone)
    except WindowError:
        return None
    length = _length(window, tz)
    at_local = _local(at, tz)
    best: tuple[dt.datetime, dt.datetime] | None = None
    try:
        starts = rs.between(at_local - length - _SLACK, at_local + _SLACK, inc=True)
    except (ValueError, OverflowError):  # a rule dateutil cannot iterate: treat as never active
        return None
    for start_local in starts:
        start, end = _aware(start_local, tz), _aware(start_local + length, tz)
        if start <= at < end and (best is None or end > best[1]):
            best = (start.astimezone(dt.UTC), end.astimezone(dt.UTC))
    return best


def is_active(window: MaintenanceWindow, at: dt.datetime) -> bool:
    return bool(window.enabled) and occurrence_at(window, at) is not None


def next_start(window: MaintenanceWindow, after: dt.datetime) -> dt.datetime | None:
    """Start of the first occurrence strictly after ``after``; None when the window never starts again."""
    if not window.rrule:
        return window.starts_at if window.starts_at > after else None
    try:
        tz = get_zone(window.timezone)
        rs = _occurrence_set(window.rrule, window.starts_at, window.timezone)
    except WindowError:
        return None
    # Step back by the DST slack so an occurrence whose wall time precedes ``after`` by
    # less than the skew is still considered, then compare real instants.
    cursor = _local(after, tz) - _SLACK
    for _ in range(10):
        try:
            start_local = rs.after(cursor, inc=False)
        except (ValueError, OverflowError):
            return None
        if start_local is None:
            return None
        start = _aware(start_local, tz)
        if start > after:
            return start.astimezone(dt.UTC)
        cursor = start_local
    return None


def _in_scope(window: MaintenanceWindow, ctx: dict) -> bool:
    if window.scope == WindowScope.ALL:
        return True
    if window.scope == WindowScope.INTEGRATION:
        return bool(window.integration) and window.integration == (ctx.get("provider") or "")
    if window.scope == WindowScope.CLIENT:
        return window.client_id is not None and window.client_id == ctx.get("client_id")
    if window.scope == WindowScope.ASSET:
        return window.asset_id is not None and window.asset_id == ctx.get("asset_id")
    return False


in_scope = _in_scope  # dry runs judge an unsaved window with the pipeline's own scope test


def matching_window(tenant_id: int, ctx: dict, at: dt.datetime) -> tuple[MaintenanceWindow, dt.datetime] | None:
    """The enabled window of the tenant covering the alert ``ctx`` at ``at``, with the end of that
    occurrence. When several cover it, the one ending last wins (one re-evaluation, not many)."""
    from alerts.services.cache import tenant_config

    with tenant_context(tenant_id):
        enabled = tenant_config(tenant_id).windows  # cached per process; read-only
    # The same filter the query had: started, and not a one-off that is over.
    candidates = [w for w in enabled if w.starts_at <= at and not (not w.rrule and w.ends_at <= at)]
    best: tuple[MaintenanceWindow, dt.datetime] | None = None
    for window in candidates:
        if not _in_scope(window, ctx):
            continue
        occ = occurrence_at(window, at)
        if occ is not None and (best is None or occ[1] > best[1]):
            best = (window, occ[1])
    return best
