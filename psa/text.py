"""Text hygiene for what we store: PostgreSQL text and jsonb reject NUL characters (shared by every app)."""

from __future__ import annotations

from typing import Any

NUL = "\x00"


def clean(value: Any, max_len: int | None = None) -> str:
    """A str without NUL characters (None -> ""), optionally cut to ``max_len``."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if NUL in text:
        text = text.replace(NUL, "")
    return text[:max_len] if max_len is not None else text


def clean_json(value: Any, depth: int = 0) -> Any:
    """A JSON-able copy of ``value`` with NUL stripped from every string (keys too)."""
    if depth > 50:  # absurd nesting: keep a marker instead of recursing forever
        return "<too deep>"
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return clean(value)


def body_text(body: bytes, limit: int | None = None) -> str:
    """A readable rendering of a raw body (invalid UTF-8 replaced, NUL removed)."""
    data = bytes(body or b"")
    if limit is not None:
        data = data[:limit]
    return clean(data.decode("utf-8", errors="replace"))
