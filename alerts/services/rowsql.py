"""Single-row UPDATEs of the alert hot path without the ORM's query building.

``QuerySet.filter(pk=..).update(..)`` and ``save(update_fields=..)`` spend several times
longer compiling the statement than PostgreSQL spends running it; the pipeline issues a few
of them per alert. The SQL here is built once per (model, columns, condition) and values are
prepared by the model fields themselves (``get_db_prep_save``: JSON, datetimes, etc.), so
it behaves the same on PostgreSQL and on the embedded SQLite default.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection


@functools.lru_cache(maxsize=64)
def _sql(model, names: tuple[str, ...], raw_set: str, where: str) -> tuple[str, tuple]:
    q = connection.ops.quote_name
    meta = model._meta
    fields = tuple(meta.get_field(n) for n in names)
    sets = [f"{q(f.column)} = %s" for f in fields]
    if raw_set:
        sets.append(raw_set)
    sql = f"UPDATE {q(meta.db_table)} SET {', '.join(sets)} WHERE {q(meta.pk.column)} = %s"
    if where:
        sql += f" AND ({where})"
    return sql, fields


def update_row(model, pk: int, values: dict[str, Any], *, raw_set: str = "", where: str = "", params=()) -> int:
    """UPDATE one row by primary key: ``values`` are field names -> plain values; ``raw_set`` a
    literal SET item (e.g. a counter increment); ``where`` an extra condition with ``params``.
    Returns the number of rows changed (0 or 1)."""
    names = tuple(values)
    sql, fields = _sql(model, names, raw_set, where)
    args = [f.get_db_prep_save(values[f.name], connection) for f in fields]
    args.append(pk)
    args.extend(params)
    with connection.cursor() as cur:
        cur.execute(sql, args)
        return cur.rowcount
