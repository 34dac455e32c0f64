"""The normalization kit: coercion helpers every provider uses on payloads it does not control.

Providers receive JSON written by other people's code: ids as ints or strings, timestamps
as epoch seconds (int or float), epoch milliseconds or ISO-8601, Python ``str()`` renderings
(``"None"``, ``"True"``), NUL characters PostgreSQL refuses. These helpers never raise on a
bad value: they answer ``None`` / ``""`` and the provider decides whether that is fatal.

Severity maps are data (:class:`SeverityMap`), one per provider, so the webhook card, the
provider's docs page and the parser all read the same table.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dateutil import parser as dateparser

from psa.text import clean

from .records import SEVERITIES

T = TypeVar("T")

# What Python's str() (Tactical's templates) and some JS clients write for "no value".
NONE_STRINGS = frozenset({"", "none", "null", "undefined", "nil", "-"})
TRUE_STRINGS = frozenset({"true", "1", "yes", "y", "on", "t"})
FALSE_STRINGS = frozenset({"false", "0", "no", "n", "off", "f"})
_DIGITS = re.compile(r"^\s*(\d{1,18})\s*$")
# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MILLIS_THRESHOLD = 1e11


# -- text ----------------------------------------------------------------------------------------
def text(value: Any, limit: int | None = None, *, none_strings: bool = False) -> str:
    """A trimmed string without NUL characters, clipped to ``limit``.

    Containers (dict, list) are not text: they answer "". ``none_strings`` also turns the
    renderings of "no value" ("None", "null", ...) into "".
    """
    if value is None or isinstance(value, (dict, list, tuple, set)):
        return ""
    if isinstance(value, bool):
        result = "true" if value else "false"
    else:
        result = clean(value).strip()
    if none_strings and result.lower() in NONE_STRINGS:
        return ""
    return result[:limit] if limit is not None else result


def clip(value: Any, limit: int) -> str:
    """``text`` clipped: the one helper for "fit this into a column"."""
    return text(value, limit)


def first_text(*values: Any, limit: int | None = None) -> str:
    """The first non-empty ``text`` of ``values``."""
    for value in values:
        result = text(value, limit)
        if result:
            return result
    return ""


# -- ids -----------------------------------------------------------------------------------------
def int_id(value: Any) -> int | None:
    """A non-negative integer id from an int, an integral float or a string of digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str):
        match = _DIGITS.match(value)
        return int(match.group(1)) if match else None
    return None


def str_id(value: Any, limit: int = 255) -> str | None:
    """An opaque id (string or integer) as a string; None when absent, empty or not a scalar."""
    if value is None or isinstance(value, (bool, dict, list, tuple, set)):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    result = text(value)
    if not result or len(result) > limit:
        return None
    return result


# -- booleans ------------------------------------------------------------------------------------
def boolean(value: Any, default: bool | None = None) -> bool | None:
    """True/False from bools, 0/1 and their string renderings ("True", "false", "yes"); else ``default``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_STRINGS:
            return True
        if word in FALSE_STRINGS:
            return False
    return default


# -- numbers -------------------------------------------------------------------------------------
def number(value: Any) -> float | None:
    """A finite float from a number or a numeric string; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if result == result and result not in (float("inf"), float("-inf")) else None


# -- datetimes -----------------------------------------------------------------------------------
def _from_epoch(seconds: float) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def epoch_seconds(value: Any) -> dt.datetime | None:
    """A UTC datetime from epoch seconds (int, float or a numeric string)."""
    seconds = number(value)
    return _from_epoch(seconds) if seconds is not None else None


def epoch_millis(value: Any) -> dt.datetime | None:
    """A UTC datetime from epoch milliseconds."""
    millis = number(value)
    return _from_epoch(millis / 1000) if millis is not None else None


def iso_datetime(value: Any) -> dt.datetime | None:
    """An aware datetime from ISO-8601 text (``Z`` and naive values are UTC); also Python's str(datetime)."""
    raw = text(value, none_strings=True)
    if not raw:
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            parsed = dateparser.isoparse(raw)
        except (ValueError, OverflowError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def any_datetime(value: Any) -> dt.datetime | None:
    """Epoch seconds or milliseconds (told apart by size), or ISO-8601 text; None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return epoch_millis(value) if abs(value) > _MILLIS_THRESHOLD else epoch_seconds(value)
    if isinstance(value, str) and number(value) is not None:
        return any_datetime(number(value))
    return iso_datetime(value)


# -- collections ---------------------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    """A list for a list (None and anything else -> [])."""
    return list(value) if isinstance(value, (list, tuple)) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def dig(data: Any, path: str, default: Any = None) -> Any:
    """``dig(device, "system.serialNumber")``: a dotted path through nested dicts (and list indexes)."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return default
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return default
    return current


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items, consuming ``items`` lazily."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


# -- severities ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeverityMap:
    """A provider's severity words -> our five (``critical high medium low info``), as data.

    ``table`` maps the provider's word (compared case-insensitively) to ours; ``default`` is used
    for absent or unknown words. ``overrides`` (an admin's per-integration choice) win over it.
    """

    table: Mapping[str, str]
    default: str = "medium"
    labels: Mapping[str, str] = field(default_factory=dict)  # provider word -> how the provider writes it

    def __post_init__(self) -> None:
        bad = {v for v in self.table.values() if v not in SEVERITIES} | (
            {self.default} - set(SEVERITIES))
        if bad:
            raise ValueError(f"severity map targets unknown severities: {sorted(bad)}")

    @staticmethod
    def _folded(overrides: Mapping[str, str] | None) -> dict[str, str]:
        # validate_overrides accepts "Warning" for "warning": apply it the same way.
        return {text(k).lower(): v for k, v in (overrides or {}).items() if v in SEVERITIES}

    def lookup(self, value: Any, overrides: Mapping[str, str] | None = None) -> str:
        word = text(value).lower()
        if overrides:
            chosen = self._folded(overrides).get(word)
            if chosen in SEVERITIES:
                return chosen
        return self.table.get(word, self.default)

    def rows(self, overrides: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """[{"provider": word, "severity": ours}] for cards and docs, in the table's order."""
        folded = self._folded(overrides)
        return [
            {"provider": self.labels.get(word, word), "severity": folded.get(word) or ours}
            for word, ours in self.table.items()
        ]

    def as_doc(self) -> dict[str, str]:
        """{ours: "their words"} (the shape the generic provider documents)."""
        out: dict[str, list[str]] = {}
        for word, ours in self.table.items():
            out.setdefault(ours, []).append(self.labels.get(word, word))
        return {ours: ", ".join(words) for ours, words in out.items()}

    def validate_overrides(self, overrides: Any) -> list[str]:
        """Errors in an admin's override table (unknown provider word or target severity)."""
        if overrides in (None, {}):
            return []
        if not isinstance(overrides, dict):
            return ["Must be an object of provider severity -> one of " + ", ".join(SEVERITIES) + "."]
        errors = []
        for word, ours in overrides.items():
            if str(word).lower() not in self.table:
                errors.append(f"Unknown severity {word!r}; known: {', '.join(self.table)}.")
            elif ours not in SEVERITIES:
                errors.append(f"{word}: {ours!r} is not one of {', '.join(SEVERITIES)}.")
        return errors
