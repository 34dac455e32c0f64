"""JSON decoding for bodies from outside (webhooks, the API): refuse what we could not store or walk.

``json.loads`` accepts documents that break later: nesting deep enough to raise RecursionError
(while decoding, or later in whatever walks the result), integers past Python's digit limit,
``NaN``/``Infinity``/``1e400`` (PostgreSQL's JSON has no such numbers: the insert fails, and so
does every replay), lone surrogates ("\\ud800": not encodable as UTF-8, so no text column takes
them) and, optionally, NUL characters (PostgreSQL text and jsonb reject them). ``loads`` refuses
each with :class:`UnsafeJSON`, a ValueError whose message says which rule and where.

Non-finite numbers are refused, not stored as text: RFC 8259 has no such values, no RMM sends
them, and turning a number into a string would change what a parser sees; the raw body stays in
the event log for the admin to read.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 100  # real payloads nest under 20 levels
MAX_INT_DIGITS = 100  # ids and counters are under 30 digits; Python refuses past 4300
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnsafeJSON(ValueError):
    """Valid-looking JSON that is refused; ``str(exc)`` is a sentence for the caller."""


def _parse_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise UnsafeJSON(f"An integer of {digits} digits is over the {MAX_INT_DIGITS}-digit limit.")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"The number {text[:40]} is out of range (PostgreSQL JSON has no infinity).")
    return value


def _parse_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a JSON number (PostgreSQL JSON has no NaN or Infinity).")


def _check_text(value: str, where: str, allow_nul: bool) -> None:
    if value.isascii():
        if not allow_nul and "\x00" in value:
            raise UnsafeJSON(f"A NUL character (\\u0000) in {where} is not allowed.")
        return
    match = _SURROGATE.search(value)
    if match:
        raise UnsafeJSON(f"A lone surrogate (\\u{ord(match.group()):04x}) in {where} is not valid Unicode text.")
    if not allow_nul and "\x00" in value:
        raise UnsafeJSON(f"A NUL character (\\u0000) in {where} is not allowed.")


def check(document: Any, *, allow_nul: bool = True, max_depth: int = MAX_DEPTH) -> None:
    """Walk a decoded document without recursion; UnsafeJSON for depth or text it breaks."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value, "a string", allow_nul)
        elif isinstance(value, (dict, list)):
            if depth > max_depth:
                raise UnsafeJSON(f"The document nests deeper than {max_depth} levels.")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key, "an object key", allow_nul)
                    if isinstance(item, (str, dict, list)):
                        stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value if isinstance(item, (str, dict, list)))


def loads(data: bytes | bytearray | str, *, allow_nul: bool = True, strict: bool = True) -> Any:
    """Decode JSON from outside. ValueError (UnicodeDecodeError, JSONDecodeError) for a body that is
    not JSON at all; UnsafeJSON for one that is JSON but refused. ``strict=False`` allows raw
    control characters inside strings (some senders leave them)."""
    text = data.decode("utf-8-sig") if isinstance(data, (bytes, bytearray)) else data
    try:
        document = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            strict=strict,
        )
    except RecursionError:
        raise UnsafeJSON(f"The document nests deeper than {MAX_DEPTH} levels.") from None
    check(document, allow_nul=allow_nul)
    return document
